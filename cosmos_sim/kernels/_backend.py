"""Which implementation runs: a Triton kernel for CUDA tensors when Triton imports, torch
otherwise (CPU, CI, or a GPU box without Triton). Both compute the same function; the parity
tests pin the torch path to the CPU references, and the Triton path to the torch path."""

from __future__ import annotations

import os
from typing import Literal

import torch

try:  # Triton ships with CUDA builds of torch; CPU-only installs (CI) do without it.
    import triton  # noqa: F401

    HAS_TRITON = True
except ImportError:  # pragma: no cover - depends on the install
    HAS_TRITON = False

Impl = Literal["auto", "triton", "torch"]


def available_device() -> str:
    """The default device: "cuda" when a CUDA device is visible, else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn "auto" / "cpu" / "cuda" / "cuda:1" into a torch.device; "auto" picks the GPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device(available_device())
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: no CUDA device is visible; pass 'cpu' or 'auto'")
    return resolved


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def use_triton(tensor: torch.Tensor, impl: Impl = "auto") -> bool:
    """True when `impl` asks for (or "auto" allows) the Triton kernel for `tensor`."""
    if impl not in ("auto", "triton", "torch"):
        raise ValueError(f"impl={impl!r}: use 'auto', 'triton' or 'torch'")
    runnable = HAS_TRITON and (tensor.is_cuda or _interpreting())
    if impl == "triton" and not runnable:
        raise ValueError(
            "impl='triton' needs Triton and a CUDA tensor (or TRITON_INTERPRET=1); "
            "use impl='auto' to fall back to torch"
        )
    return impl != "torch" and runnable


def as_tensor(array, device: torch.device | str | None = None) -> torch.Tensor:
    """numpy array or tensor -> tensor on `device` (kept where it is when device is None)."""
    tensor = array if isinstance(array, torch.Tensor) else torch.from_numpy(array)
    return tensor if device is None else tensor.to(device, non_blocking=True)
