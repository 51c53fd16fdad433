"""LiDAR sweeps through open3d: PCD/PLY export, voxel downsampling, sweep accumulation.

The Transfer 1 LiDAR control itself is `controls.lidar.lidar_control` (shared by the
PyBullet and CARLA bridges, whose sweeps are world-frame `points_world`); this module is
the point-cloud side: files other tools open (CloudCompare, Open3D, PCL) and the voxel grid
that keeps accumulated sweeps small.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_sim.episode import ensure_empty_dir
from cosmos_sim.extras import require
from cosmos_sim.types import SpecError

FORMATS = ("pcd", "ply")


def _o3d() -> Any:
    return require("open3d", "carla", "point-cloud export", " (on Debian also libusb-1.0-0)")


def _points(points: np.ndarray, name: str = "points") -> np.ndarray:
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] != 3 or not np.issubdtype(arr.dtype, np.floating):
        raise SpecError(f"{name}: expected float N×3 points, got {arr.dtype} {arr.shape}")
    return arr.astype(np.float64)


def to_open3d(points: np.ndarray, colors: np.ndarray | None = None) -> Any:
    """N×3 metres (+ optional N×3 colours in [0, 1]) -> open3d.geometry.PointCloud."""
    o3d = _o3d()
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(_points(points)))
    if colors is not None:
        cloud.colors = o3d.utility.Vector3dVector(np.asarray(colors, dtype=np.float64))
    return cloud


def write_point_cloud(
    path: str | Path, points: np.ndarray, colors: np.ndarray | None = None
) -> Path:
    """Write a .pcd or .ply file (binary); the suffix picks the format."""
    path = Path(path)
    if path.suffix.lstrip(".").lower() not in FORMATS:
        raise SpecError(f"point cloud {path}: use a .pcd or .ply file name")
    if not _o3d().io.write_point_cloud(str(path), to_open3d(points, colors), write_ascii=False):
        raise OSError(f"open3d could not write {path}; check the folder exists and is writable")
    return path


def read_point_cloud(path: str | Path) -> np.ndarray:
    """N×3 float32 points of a .pcd/.ply file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"point cloud {path} does not exist")
    return np.asarray(_o3d().io.read_point_cloud(str(path)).points, dtype=np.float32)


def voxel_downsample(points: np.ndarray, voxel_m: float) -> np.ndarray:
    """One point (the centroid) per occupied voxel of `voxel_m` metres."""
    if not voxel_m > 0:
        raise SpecError(f"voxel_m must be > 0, got {voxel_m}")
    cloud = to_open3d(points).voxel_down_sample(float(voxel_m))
    return np.asarray(cloud.points, dtype=np.float32)


def accumulate_sweeps(
    sweeps: Sequence[np.ndarray | None], voxel_m: float | None = None
) -> np.ndarray:
    """Concatenate world-frame sweeps (None entries skipped), optionally voxel-downsampled."""
    parts = [_points(s, f"sweeps[{i}]") for i, s in enumerate(sweeps) if s is not None]
    if not parts:
        raise SpecError("accumulate_sweeps: no sweeps given (all None)")
    points = np.concatenate(parts)
    return voxel_downsample(points, voxel_m) if voxel_m else points.astype(np.float32)


def export_episode_sweeps(
    episode: Any, sensor: str, out: str | Path, fmt: str = "pcd"
) -> list[Path]:
    """Write each tick's world-frame sweep of `sensor` as <out>/<tick:06d>.<fmt>.

    `out` must not exist or be empty: files already there are never overwritten.
    """
    if fmt not in FORMATS:
        raise SpecError(f"fmt {fmt!r}: use one of {FORMATS}")
    if sensor not in episode.lidars:
        raise SpecError(
            f"sensor {sensor!r} is not a LiDAR of this episode: {sorted(episode.lidars)}"
        )
    out = ensure_empty_dir(out, "point-cloud folder")
    written = []
    for tick in episode:
        frame = tick.frames.get(sensor)
        if frame is not None and frame.points_world is not None:
            written.append(write_point_cloud(out / f"{tick.index:06d}.{fmt}", frame.points_world))
    return written
