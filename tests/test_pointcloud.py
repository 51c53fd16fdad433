"""open3d point-cloud I/O and downsampling, and the LiDAR control on a CARLA-style sweep."""

from __future__ import annotations

import numpy as np
import pytest

from cosmos_sim.bridges.carla_rig import default_rig
from cosmos_sim.controls import pointcloud
from cosmos_sim.controls.lidar import lidar_control
from cosmos_sim.episode import Episode, EpisodeWriter
from cosmos_sim.types import LidarSpec, SensorFrame, SpecError


@pytest.mark.parametrize("fmt", ["pcd", "ply"])
def test_point_cloud_round_trip(tmp_path, fmt):
    pts = np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32)
    path = pointcloud.write_point_cloud(tmp_path / f"sweep.{fmt}", pts)
    np.testing.assert_allclose(pointcloud.read_point_cloud(path), pts, atol=1e-6)
    with pytest.raises(SpecError, match="use a .pcd or .ply"):
        pointcloud.write_point_cloud(tmp_path / "sweep.xyz", pts)


def test_voxel_downsample_keeps_one_point_per_voxel():
    rng = np.random.default_rng(1)
    clusters = [rng.uniform(-0.1, 0.1, (100, 3)) + centre for centre in ((0, 0, 0), (5, 5, 0))]
    pts = np.concatenate(clusters).astype(np.float32)
    down = pointcloud.voxel_downsample(pts, 1.0)
    assert len(down) == 2  # one centroid per occupied 1 m voxel
    np.testing.assert_allclose(sorted(down[:, 0]), [c[:, 0].mean() for c in clusters], atol=1e-5)
    assert len(pointcloud.accumulate_sweeps([pts, None, pts + 20.0])) == 400
    with pytest.raises(SpecError, match="voxel_m must be > 0"):
        pointcloud.voxel_downsample(pts, 0.0)


def test_lidar_control_of_a_world_frame_sweep_is_far_bright():
    cam = default_rig().cameras[0]
    # Two returns straight ahead of the camera at 10 m and 60 m (ego x forward).
    pose = np.eye(4) @ cam.cam_to_body
    pts = np.array([[11.5, 0.0, 1.7], [61.5, 3.0, 1.7]], np.float32)
    image = lidar_control([pts], cam.K, pose, cam.height, cam.width)
    near = image[cam.height // 2, cam.width // 2, 0]
    assert 0 < near < image.max()
    assert image.max() == round(60 / 75 * 255)


def test_episode_sweeps_export_one_file_per_tick_and_never_overwrite(tmp_path):
    lidar = LidarSpec("roof", channels=2, points_per_channel=4)
    sweeps = [np.random.default_rng(i).normal(size=(50, 3)).astype(np.float32) for i in range(3)]
    with EpisodeWriter(tmp_path / "ep", lidars=[lidar], fps=10, simulator="t") as writer:
        for i, pts in enumerate(sweeps):
            writer.append(
                [SensorFrame("roof", i, i / 10, np.eye(4), lidar=lidar, points_world=pts)]
            )
    episode = Episode(tmp_path / "ep")
    written = pointcloud.export_episode_sweeps(episode, "roof", tmp_path / "pcd")
    assert [p.name for p in written] == ["000000.pcd", "000001.pcd", "000002.pcd"]
    np.testing.assert_allclose(pointcloud.read_point_cloud(written[2]), sweeps[2], atol=1e-6)
    before = written[0].read_bytes()
    with pytest.raises(FileExistsError, match="not empty"):
        pointcloud.export_episode_sweeps(episode, "roof", tmp_path / "pcd", fmt="pcd")
    assert written[0].read_bytes() == before
    with pytest.raises(SpecError, match="not a LiDAR of this episode"):
        pointcloud.export_episode_sweeps(episode, "front", tmp_path / "other")
