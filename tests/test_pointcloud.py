"""open3d point-cloud I/O and downsampling, and the LiDAR control on a CARLA-style sweep."""

from __future__ import annotations

import numpy as np
import pytest
from cosmos_sim.bridges.carla_rig import default_rig
from cosmos_sim.controls import pointcloud
from cosmos_sim.controls.lidar import lidar_control

from cosmos_sim.types import SpecError


@pytest.mark.parametrize("fmt", ["pcd", "ply"])
def test_point_cloud_round_trip(tmp_path, fmt):
    pts = np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32)
    path = pointcloud.write_point_cloud(tmp_path / f"sweep.{fmt}", pts)
    np.testing.assert_allclose(pointcloud.read_point_cloud(path), pts, atol=1e-6)
    with pytest.raises(SpecError, match="use a .pcd or .ply"):
        pointcloud.write_point_cloud(tmp_path / "sweep.xyz", pts)


def test_voxel_downsample_keeps_one_point_per_voxel():
    grid = np.stack(np.meshgrid(np.arange(10), np.arange(10), np.arange(2), indexing="ij"), -1)
    pts = (grid.reshape(-1, 3) * 0.1 + 0.05).astype(np.float32)  # 200 points in 1×1×0.2 m
    down = pointcloud.voxel_downsample(pts, 0.52)  # voxels start at the minimum point
    assert len(down) == 4  # 2×2×1 voxels
    both = pointcloud.accumulate_sweeps([pts, None, pts + 5.0])
    assert len(both) == 400


def test_lidar_control_of_a_world_frame_sweep_is_far_bright():
    cam = default_rig().cameras[0]
    # Two returns straight ahead of the camera at 10 m and 60 m (ego x forward).
    pose = np.eye(4) @ cam.cam_to_body
    pts = np.array([[11.5, 0.0, 1.7], [61.5, 3.0, 1.7]], np.float32)
    image = lidar_control([pts], cam.K, pose, cam.height, cam.width)
    near = image[cam.height // 2, cam.width // 2, 0]
    assert 0 < near < image.max()
    assert image.max() == round(60 / 75 * 255)
