"""LiDAR control (Transfer 1 AV): world-frame points -> a sparse, dilated depth image.

Points are moved into the camera (OpenCV frame), projected with K, and z-buffered (nearest
wins). The value of a pixel is its depth along the optical axis d (metres), clipped to
[0, max_m] and scaled d / max_m · 255: **far is bright**, no return is black. Points nearer
than min_m are dropped (they are the ego vehicle or noise). The image is then dilated with a
dilate_px × dilate_px square so that each return covers a few pixels; where dilated returns
overlap, the nearer one wins. Pixel centres sit at integer coordinates (OpenCV, as the
bridges' K), so a point lands in pixel round(K · x_cam / z).
Accumulating ±2 sweeps (at 10 Hz) densifies the image: pass several sweeps, already in world
coordinates, or use `lidar_control_clip` for a whole clip.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from cosmos_sim.types import SpecError

LIDAR_MAX_M = 75.0
LIDAR_MIN_M = 3.0
LIDAR_DILATE_PX = 4


def lidar_depth(
    points_world_sweeps: Sequence[np.ndarray],
    K: np.ndarray,
    cam_to_world: np.ndarray,
    height: int,
    width: int,
    *,
    min_m: float = LIDAR_MIN_M,
) -> np.ndarray:
    """Float32 H×W z-buffered depth (metres) of the projected points; 0 where no return."""
    pts = _stack_points(points_world_sweeps)
    K = np.asarray(K, dtype=np.float64)
    cam_to_world = np.asarray(cam_to_world, dtype=np.float64)
    if K.shape != (3, 3) or cam_to_world.shape != (4, 4):
        raise SpecError(
            f"lidar: K must be 3×3 and cam_to_world 4×4, got {K.shape}, {cam_to_world.shape}"
        )
    rot, trans = cam_to_world[:3, :3], cam_to_world[:3, 3]
    cam = (pts.astype(np.float64) - trans) @ rot  # world -> camera: Rᵀ (p − t)
    z = cam[:, 2]
    keep = z >= min_m
    cam, z = cam[keep], z[keep]
    uvw = cam @ K.T
    u = np.floor(uvw[:, 0] / z + 0.5).astype(np.int64)
    v = np.floor(uvw[:, 1] / z + 0.5).astype(np.int64)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    flat = v[inside] * width + u[inside]
    depth = np.full(height * width, np.inf, dtype=np.float32)
    np.minimum.at(depth, flat, z[inside].astype(np.float32))
    depth[np.isinf(depth)] = 0.0
    return depth.reshape(height, width)


def lidar_control(
    points_world_sweeps: Sequence[np.ndarray],
    K: np.ndarray,
    cam_to_world: np.ndarray,
    height: int,
    width: int,
    *,
    max_m: float = LIDAR_MAX_M,
    min_m: float = LIDAR_MIN_M,
    dilate_px: int = LIDAR_DILATE_PX,
) -> np.ndarray:
    """World-frame sweeps -> uint8 H×W×3 LiDAR control (far bright, no return black)."""
    if not 0 <= min_m < max_m:
        raise SpecError(f"lidar: need 0 <= min_m < max_m, got min_m={min_m}, max_m={max_m}")
    depth = lidar_depth(points_world_sweeps, K, cam_to_world, height, width, min_m=min_m)
    hit = depth > 0
    if dilate_px > 1:
        # Dilation takes the max; encode nearer as larger so the nearest return wins.
        code = np.where(hit, (max_m + 1.0) - np.minimum(depth, max_m), 0).astype(np.float32)
        kernel = np.ones((dilate_px, dilate_px), np.uint8)
        code = cv2.dilate(code, kernel)
        hit = code > 0
        depth = np.where(hit, (max_m + 1.0) - code, 0)
    value = np.rint(np.minimum(depth, max_m) * (255.0 / max_m))
    # A return is never black: black means "no return".
    value = np.where(hit, np.clip(value, 1, 255), 0).astype(np.uint8)
    return np.repeat(value[..., None], 3, axis=-1)


def lidar_control_clip(
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
    """LiDAR control for a clip: T×H×W×3, each frame from ±`sweeps_each_side` sweeps.

    `sweeps[i]` is the world-frame sweep recorded at tick i (None if the LiDAR did not fire
    then). Output frame j is for tick `ticks[j]` (default: every tick) seen by a camera with
    `Ks[j]`, `cam_to_worlds[j]`; it accumulates the sweep at or before that tick and
    `sweeps_each_side` sweeps on each side of it.
    """
    windows = clip_windows(sweeps, Ks, cam_to_worlds, ticks, sweeps_each_side)
    frames = []
    for window, K, pose in zip(windows, Ks, cam_to_worlds, strict=True):
        frames.append(
            lidar_control(
                [sweeps[i] for i in window],
                K,
                pose,
                height,
                width,
                max_m=max_m,
                min_m=min_m,
                dilate_px=dilate_px,
            )
        )
    return np.stack(frames)


def clip_windows(
    sweeps: Sequence[np.ndarray | None],
    Ks: Sequence[np.ndarray],
    cam_to_worlds: Sequence[np.ndarray],
    ticks: Sequence[int] | None = None,
    sweeps_each_side: int = 2,
) -> list[list[int]]:
    """The sweep indices each output frame of `lidar_control_clip` accumulates (checked).

    Shared with the device version (`cosmos_sim.kernels.clip_backend`), so both pick the
    same sweeps.
    """
    fired = [i for i, s in enumerate(sweeps) if s is not None]
    if not fired:
        raise SpecError("lidar: the clip has no LiDAR sweeps; record a LidarSpec in the rig")
    ticks = list(range(len(sweeps))) if ticks is None else list(ticks)
    if not len(ticks) == len(Ks) == len(cam_to_worlds):
        raise SpecError(
            f"lidar: got {len(ticks)} ticks, {len(Ks)} K and {len(cam_to_worlds)} "
            "poses; give one K and one pose per output frame"
        )
    fired_arr = np.asarray(fired)
    windows = []
    for tick in ticks:
        at = max(int(np.searchsorted(fired_arr, tick, side="right")) - 1, 0)
        windows.append(fired[max(at - sweeps_each_side, 0) : at + sweeps_each_side + 1])
    return windows


def _stack_points(points_world_sweeps: Sequence[np.ndarray]) -> np.ndarray:
    if isinstance(points_world_sweeps, np.ndarray):
        raise SpecError("lidar: pass a list of N×3 sweeps (e.g. [points]), not one array")
    arrays = [np.asarray(p) for p in points_world_sweeps]
    for i, p in enumerate(arrays):
        if p.ndim != 2 or p.shape[1] != 3:
            raise SpecError(f"lidar: sweep {i} must be N×3 world points, got shape {p.shape}")
        if not np.all(np.isfinite(p)):
            raise SpecError(f"lidar: sweep {i} has NaN/inf points; drop rays that hit nothing")
    if not arrays:
        return np.zeros((0, 3), np.float64)
    return np.concatenate(arrays, axis=0)
