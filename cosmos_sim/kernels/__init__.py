"""Batched device versions of the hot control ops (torch, with Triton kernels on CUDA).

Every function takes a clip as T×H×W[×C] tensors and returns tensors on the same device; the
CPU functions in `cosmos_sim.controls` are the reference, and the parity tests hold these to
them (exact for depth, seg, edge and LiDAR; SSIM for vis; pixel agreement for the HD map).
On a CUDA tensor the Triton kernel runs when Triton imports; `impl="torch"` forces the plain
torch path (what runs on the CPU).
"""

from cosmos_sim.kernels._backend import HAS_TRITON, available_device, resolve_device
from cosmos_sim.kernels.canny import canny, edge_control
from cosmos_sim.kernels.depth import depth_control, depth_range
from cosmos_sim.kernels.hdmap import hdmap_control
from cosmos_sim.kernels.lidar import lidar_control, lidar_depth
from cosmos_sim.kernels.seg import seg_control
from cosmos_sim.kernels.vis import bilateral_filter, vis_control

__all__ = [
    "HAS_TRITON",
    "available_device",
    "bilateral_filter",
    "canny",
    "depth_control",
    "depth_range",
    "edge_control",
    "hdmap_control",
    "lidar_control",
    "lidar_depth",
    "resolve_device",
    "seg_control",
    "vis_control",
]
