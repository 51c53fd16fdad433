"""Which implementation computes the controls: numpy/OpenCV on the CPU, or the device kernels.

`control_backend(device)` maps each control of the table (`controls.table.CONTROLS`) to a
function with the CPU function's numpy signature; `compute_controls` takes its functions
from it, so `device` means the same in the CLI, the pipeline and the server:

- "cpu": the functions of `cosmos_sim.controls` (the reference);
- "cuda" / "cuda:N": `cosmos_sim.kernels` on that GPU (an error where none is visible);
- "auto": "cuda" when a CUDA device is visible, else "cpu".

The CPU entries are the table's `Control.cpu`; the device entries wrap its `Control.gpu`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cosmos_sim.types import SpecError

DEVICES = ("auto", "cpu", "cuda")
"""Device names `control_backend` takes (and "cuda:N")."""

Backend = dict[str, Callable[..., np.ndarray]]


def cpu_backend() -> Backend:
    """The reference functions, by control name."""
    from cosmos_sim.controls.table import CONTROLS

    return {name: control.cpu for name, control in CONTROLS.items()}


def check_device(device: str, field: str = "device") -> str:
    """`device` if it is a name `control_backend` takes, else a SpecError naming `field`."""
    if not isinstance(device, str) or (
        device not in DEVICES and not (device.startswith("cuda:") and device[5:].isdigit())
    ):
        raise SpecError(
            f"{field}={device!r} is not known; use 'auto', 'cpu' or 'cuda'",
            field=field,
            fix="use 'auto', 'cpu', 'cuda' or 'cuda:N'",
        )
    return device


def control_backend(device: str = "auto") -> Backend:
    """The control functions for `device` ("auto", "cpu", "cuda" or "cuda:N"), by modality."""
    check_device(device)
    if device == "cpu":
        return cpu_backend()
    from cosmos_sim import kernels  # torch: imported only off the CPU path
    from cosmos_sim.kernels.clip_backend import clip_backend

    if device == "auto":
        if kernels.available_device() == "cpu":
            return cpu_backend()
        device = "cuda"
    try:
        return clip_backend(device)  # same signatures, device kernels (cosmos_sim/kernels/)
    except ValueError as exc:  # "cuda" asked for where none is visible
        raise SpecError(str(exc), field="device", fix="pass 'cpu' or 'auto'") from exc
