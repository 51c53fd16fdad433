"""The device kernels behind the CPU functions' numpy signatures, for `control_backend`.

Each entry wraps the kernel the controls table names (`Control.gpu`) and takes and returns
what the table's CPU function (`Control.cpu`) does (numpy arrays,
one frame or a T-first batch), moves the batch to the device once, and brings the control
back for encoding. "lidar" and "hdmap" take a clip like `lidar_control_clip` and
`render_hdmap_clip` and run it `CLIP_BATCH` frames at a time (their per-frame working set
grows with the points or map segments, and an episode can be long).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from cosmos_sim.controls.hdmap import DynamicState, HDMapScene
from cosmos_sim.controls.lidar import (
    LIDAR_DILATE_PX,
    LIDAR_MAX_M,
    LIDAR_MIN_M,
    clip_windows,
)
from cosmos_sim.controls.table import CONTROLS
from cosmos_sim.kernels._backend import resolve_device
from cosmos_sim.types import SpecError


def _kernel(name: str) -> Callable[..., torch.Tensor]:
    """The device kernel of control `name`, as the controls table names it."""
    module, _, function = CONTROLS[name].gpu.partition(":")
    return getattr(importlib.import_module(module), function)


depth_control, seg_control, edge_control, vis_control, lidar_control, hdmap_control = (
    _kernel(name) for name in ("depth", "seg", "edge", "vis", "lidar", "hdmap")
)

CLIP_BATCH = 16
"""Frames per device call of the "lidar" and "hdmap" entries."""


def clip_backend(device: str | torch.device = "cuda") -> dict[str, Callable[..., np.ndarray]]:
    """{"depth", "seg", "edge", "vis", "lidar", "hdmap"} -> numpy-in, numpy-out functions
    running on `device`."""
    dev = resolve_device(device)

    def run(fn: Callable[..., torch.Tensor], frames: np.ndarray, single_ndim: int, *args, **kw):
        arr = np.asarray(frames)
        single = arr.ndim == single_ndim
        batch = _to_device(arr[None] if single else arr, dev)
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

    def matrices(mats: Sequence[np.ndarray], shape: tuple[int, int], name: str) -> torch.Tensor:
        arr = np.asarray([np.asarray(m, np.float64) for m in mats])
        if arr.ndim != 3 or arr.shape[1:] != shape:
            raise SpecError(f"{name}: need one {shape[0]}×{shape[1]} matrix per frame")
        return _to_device(arr, dev)

    def lidar_fn(
        sweeps: Sequence[np.ndarray | None],
        Ks: Sequence[np.ndarray],
        cam_to_worlds: Sequence[np.ndarray],
        height: int,
        width: int,
        *,
        ticks: Sequence[int] | None = None,
        sweeps_each_side: int = 2,
        max_m: float = LIDAR_MAX_M,
        min_m: float = LIDAR_MIN_M,
        dilate_px: int = LIDAR_DILATE_PX,
    ) -> np.ndarray:
        windows = clip_windows(sweeps, Ks, cam_to_worlds, ticks, sweeps_each_side)
        K = matrices(Ks, (3, 3), "lidar: Ks")
        poses = matrices(cam_to_worlds, (4, 4), "lidar: cam_to_worlds")
        on_device: dict[int, torch.Tensor] = {}  # each sweep goes over once, though ±2 share it
        out = []
        for start in range(0, len(windows), CLIP_BATCH):
            batch = windows[start : start + CLIP_BATCH]
            for i in {i for window in batch for i in window} - on_device.keys():
                on_device[i] = _to_device(np.asarray(sweeps[i]), dev)
            points = [[on_device[i] for i in window] for window in batch]
            part = slice(start, start + len(batch))
            out.append(
                lidar_control(points, K[part], poses[part], height, width,
                              max_m=max_m, min_m=min_m, dilate_px=dilate_px).cpu().numpy()
            )  # fmt: skip
            for i in set(on_device) - {i for w in windows[start + CLIP_BATCH :] for i in w}:
                del on_device[i]
        return np.concatenate(out)

    def hdmap_fn(
        scene: HDMapScene,
        Ks: Sequence[np.ndarray],
        cam_to_worlds: Sequence[np.ndarray],
        height: int,
        width: int,
        dynamics: Sequence[DynamicState | None] | None = None,
        *,
        near_m: float = 0.3,
    ) -> np.ndarray:
        if dynamics is not None and len(dynamics) != len(Ks):
            raise SpecError(f"hdmap: got {len(dynamics)} dynamic states for {len(Ks)} poses")
        K = matrices(Ks, (3, 3), "hdmap: Ks")
        poses = matrices(cam_to_worlds, (4, 4), "hdmap: cam_to_worlds")
        if K.shape[0] != poses.shape[0]:
            raise SpecError(f"hdmap: got {K.shape[0]} K and {poses.shape[0]} poses")
        out = []
        for start in range(0, K.shape[0], CLIP_BATCH):
            part = slice(start, start + CLIP_BATCH)
            dyn = None if dynamics is None else dynamics[part]
            frames = hdmap_control(scene, K[part], poses[part], height, width, dyn, near_m=near_m)
            out.append(frames.cpu().numpy())
        return np.concatenate(out)

    entries = {
        "depth": depth_fn,
        "seg": seg_fn,
        "edge": edge_fn,
        "vis": vis_fn,
        "lidar": lidar_fn,
        "hdmap": hdmap_fn,
    }
    assert entries.keys() == CONTROLS.keys()  # one device entry per table entry
    return entries


def _to_device(arr: np.ndarray, dev: torch.device) -> torch.Tensor:
    """A numpy array on `dev`. Read-only arrays (the sidecar's received frames) are copied
    when `dev` is the CPU, where the tensor would share their memory; `.to(cuda)` copies."""
    arr = np.ascontiguousarray(arr)
    if not arr.flags.writeable:
        if dev.type == "cpu":
            return torch.from_numpy(arr.copy())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # only read, on the way to the GPU
            return torch.from_numpy(arr).to(dev)
    return torch.from_numpy(arr).to(dev)
