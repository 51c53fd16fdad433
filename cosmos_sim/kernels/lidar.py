"""LiDAR control on the device: project, z-buffer, dilate, scale -> far-bright sparse depth.

Follows `cosmos_sim.controls.lidar_control` step for step: float64 projection (Rᵀ(p − t),
then K, floor), float32 depth, a per-pixel minimum (scatter-reduce, order-free, so exact),
dilation of the "nearer is larger" code with the same dilate_px square and anchor as
cv2.dilate, and the same float32 rounding. A whole clip is one batch: every point carries its
frame's index, so one scatter and one pooling serve all frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from cosmos_sim.controls.lidar import LIDAR_DILATE_PX, LIDAR_MAX_M, LIDAR_MIN_M
from cosmos_sim.kernels._backend import Impl, use_triton
from cosmos_sim.types import SpecError

Points = torch.Tensor | Sequence[torch.Tensor]


def lidar_control(
    points_world: Sequence[Points],
    K: torch.Tensor,
    cam_to_world: torch.Tensor,
    height: int,
    width: int,
    *,
    max_m: float = LIDAR_MAX_M,
    min_m: float = LIDAR_MIN_M,
    dilate_px: int = LIDAR_DILATE_PX,
    impl: Impl = "auto",
) -> torch.Tensor:
    """T frames of world points (each N×3, or a list of sweeps) -> T×H×W×3 uint8.

    K is 3×3 or T×3×3, cam_to_world T×4×4; the output is on cam_to_world's device.
    """
    if not 0 <= min_m < max_m:
        raise SpecError(f"lidar: need 0 <= min_m < max_m, got min_m={min_m}, max_m={max_m}")
    c = float(np.float32(max_m + 1.0))
    top = float(np.float32(max_m))
    scale = float(np.float32(255.0 / max_m))
    if use_triton(torch.as_tensor(cam_to_world), impl):
        from cosmos_sim.kernels import _lidar_triton

        pts, frame, poses, Ks = _inputs(points_world, K, cam_to_world)
        t = poses.shape[0]
        zbits = _lidar_triton.zbuffer(pts, frame, poses, Ks, t, height, width, min_m)
        return _lidar_triton.finish(zbits, dilate_px, c, top, scale)
    depth = lidar_depth(points_world, K, cam_to_world, height, width, min_m=min_m)
    hit = depth > 0
    if dilate_px > 1:
        code = torch.where(hit, c - depth.clamp(max=top), 0.0)
        # cv2.dilate's default anchor is the kernel centre k // 2: the window spans
        # [-k//2, k - 1 - k//2]; outside the image counts as nothing.
        lo = dilate_px // 2
        hi = dilate_px - 1 - lo
        code = F.pad(code.unsqueeze(1), (lo, hi, lo, hi))
        code = F.max_pool2d(code, dilate_px, stride=1)[:, 0]
        hit = code > 0
        depth = torch.where(hit, c - code, 0.0)
    value = torch.round(depth.clamp(max=top) * scale)
    value = torch.where(hit, value.clamp(1, 255), 0).to(torch.uint8)
    return value.unsqueeze(-1).expand(*value.shape, 3).contiguous()


def lidar_depth(
    points_world: Sequence[Points],
    K: torch.Tensor,
    cam_to_world: torch.Tensor,
    height: int,
    width: int,
    *,
    min_m: float = LIDAR_MIN_M,
) -> torch.Tensor:
    """T×H×W float32 z-buffered depth in metres, 0 where no point lands."""
    pts, frame, poses, Ks = _inputs(points_world, K, cam_to_world)
    t = poses.shape[0]
    pts = pts.to(torch.float64)
    rot = poses[frame, :3, :3]
    cam = ((pts - poses[frame, :3, 3]).unsqueeze(1) @ rot)[:, 0]  # Rᵀ(p − t), as (p − t) @ R
    z = cam[:, 2]
    keep = z >= min_m
    cam, z, frame = cam[keep], z[keep], frame[keep]
    uvw = (cam.unsqueeze(1) @ Ks[frame].transpose(1, 2))[:, 0]
    u = torch.floor(uvw[:, 0] / z + 0.5).long()
    v = torch.floor(uvw[:, 1] / z + 0.5).long()
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    flat = (frame[inside] * height + v[inside]) * width + u[inside]
    depth = torch.full((t * height * width,), float("inf"), dtype=torch.float32, device=pts.device)
    depth.scatter_reduce_(0, flat, z[inside].to(torch.float32), reduce="amin")
    depth = torch.where(torch.isinf(depth), 0.0, depth)
    return depth.reshape(t, height, width)


def _inputs(
    points_world: Sequence[Points], K: torch.Tensor, cam_to_world: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Checked N×3 points (all frames), their frame indices, T×4×4 poses and T×3×3 intrinsics."""
    poses = torch.as_tensor(cam_to_world, dtype=torch.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or poses.shape[0] != len(points_world):
        raise SpecError(
            f"lidar: cam_to_world must be T×4×4 with T = {len(points_world)} frames, "
            f"got {tuple(poses.shape)}"
        )
    t = poses.shape[0]
    Ks = torch.as_tensor(K, dtype=torch.float64, device=poses.device)
    if Ks.shape == (3, 3):
        Ks = Ks.expand(t, 3, 3)
    if Ks.shape != (t, 3, 3):
        raise SpecError(f"lidar: K must be 3×3 or T×3×3, got {tuple(Ks.shape)}")
    pts, frame = _gather(points_world, poses.device)
    return pts, frame, poses, Ks


def _gather(
    points_world: Sequence[Points], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """All frames' points as one N×3 tensor plus each point's frame index."""
    chunks, counts = [], []
    for i, item in enumerate(points_world):
        sweeps = [item] if isinstance(item, torch.Tensor | np.ndarray) else list(item)
        count = 0
        for j, sweep in enumerate(sweeps):
            p = torch.as_tensor(sweep, device=device)
            if p.ndim != 2 or p.shape[1] != 3:
                raise SpecError(
                    f"lidar: frame {i} sweep {j} must be N×3 world points, got {tuple(p.shape)}"
                )
            chunks.append(p)
            count += p.shape[0]
        counts.append(count)
    total = sum(counts)
    if not total:
        empty = torch.zeros((0, 3), dtype=torch.float64, device=device)
        return empty, torch.zeros(0, dtype=torch.int64, device=device)
    pts = torch.cat(chunks)
    if not bool(torch.isfinite(pts).all()):
        raise SpecError("lidar: some points are NaN/inf; drop rays that hit nothing")
    frame = torch.repeat_interleave(
        torch.arange(len(counts), device=device),
        torch.tensor(counts, device=device),
        output_size=total,
    )
    return pts, frame
