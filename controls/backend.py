"""Which implementation computes the controls: numpy/OpenCV on the CPU, or the device kernels.

`control_backend(device)` maps each modality of `write_clips` to a function with the CPU
function's numpy signature; `write_clips` and the sidecar's `controls` method both take
their functions from it, so `device` means the same in the CLI and the server:

- "cpu": the functions of `cosmos_sim.controls` (the reference);
- "cuda" / "cuda:N": `cosmos_sim.kernels` on that GPU (an error where none is visible);
- "auto": "cuda" when a CUDA device is visible, else "cpu".

Entries: "depth" (`depth_control`), "seg" (`seg_control`), "edge" (`edge_control`), "vis"
(`vis_control`) take one frame or a T-first batch; "lidar" (`lidar_control_clip`) and
"hdmap" (`render_hdmap_clip`) take a clip, T cameras at once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cosmos_sim.controls.depth import depth_control
from cosmos_sim.controls.edge import edge_control
from cosmos_sim.controls.hdmap import render_hdmap_clip
from cosmos_sim.controls.lidar import lidar_control_clip
from cosmos_sim.controls.seg import seg_control
from cosmos_sim.controls.vis import vis_control
from cosmos_sim.types import SpecError

DEVICES = ("auto", "cpu", "cuda")
"""Device names `control_backend` takes (and "cuda:N")."""

Backend = dict[str, Callable[..., np.ndarray]]


def cpu_backend() -> Backend:
    """The reference functions, by modality."""
    return {
        "depth": depth_control,
        "seg": seg_control,
        "edge": edge_control,
        "vis": vis_control,
        "lidar": lidar_control_clip,
        "hdmap": render_hdmap_clip,
    }


def check_device(device: str, field: str = "device") -> str:
    """`device` if it is a name `control_backend` takes, else a SpecError naming `field`."""
    if not isinstance(device, str) or (
        device not in DEVICES and not (device.startswith("cuda:") and device[5:].isdigit())
    ):
        raise SpecError(f"{field}={device!r} is not known; use 'auto', 'cpu' or 'cuda'")
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
        return clip_backend(device)  # same signatures, device kernels (kernels/)
    except ValueError as exc:  # "cuda" asked for where none is visible
        raise SpecError(str(exc)) from exc
