"""The device kernels behind the CPU functions' numpy signatures, for `write_clips`.

Each entry takes and returns what its `cosmos_sim.controls` namesake does (numpy arrays,
one frame or a T-first batch), moves the batch to the device once, and brings the control
back for encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from cosmos_sim.kernels._backend import resolve_device
from cosmos_sim.kernels.canny import edge_control
from cosmos_sim.kernels.depth import depth_control
from cosmos_sim.kernels.seg import seg_control
from cosmos_sim.kernels.vis import vis_control


def clip_backend(device: str | torch.device = "cuda") -> dict[str, Callable[..., np.ndarray]]:
    """{"depth", "seg", "edge", "vis"} -> numpy-in, numpy-out functions running on `device`."""
    dev = resolve_device(device)

    def run(fn: Callable[..., torch.Tensor], frames: np.ndarray, single_ndim: int, *args, **kw):
        arr = np.asarray(frames)
        single = arr.ndim == single_ndim
        batch = torch.from_numpy(np.ascontiguousarray(arr[None] if single else arr)).to(dev)
        out = fn(batch, *args, **kw).cpu().numpy()
        return out[0] if single else out

    def depth_fn(depth_m: np.ndarray, *, min_m: float | None = None, max_m: float | None = None):
        return run(depth_control, depth_m, 2, min_m=min_m, max_m=max_m)

    def seg_fn(instance_id: np.ndarray, palette: Mapping[int, tuple[int, int, int]]):
        return run(seg_control, instance_id, 2, palette)

    def edge_fn(rgb: np.ndarray, preset: str = "medium"):
        return run(edge_control, rgb, 3, preset)

    def vis_fn(rgb: np.ndarray, preset: str = "medium"):
        return run(vis_control, rgb, 3, preset)

    return {"depth": depth_fn, "seg": seg_fn, "edge": edge_fn, "vis": vis_fn}
