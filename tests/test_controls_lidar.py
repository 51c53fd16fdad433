import numpy as np
import pytest

from cosmos_sim.controls import lidar_control, lidar_control_clip, lidar_depth
from cosmos_sim.types import SpecError

H, W = 48, 64
K = np.array([[40.0, 0, W / 2], [0, 40.0, H / 2], [0, 0, 1]])


def camera_looking_along_world_x(origin=(1.0, 2.0, 3.0)) -> np.ndarray:
    """OpenCV camera at `origin`: z forward = world +x, x right = world -y, y down = world -z."""
    pose = np.eye(4)
    pose[:3, 0] = (0, -1, 0)
    pose[:3, 1] = (0, 0, -1)
    pose[:3, 2] = (1, 0, 0)
    pose[:3, 3] = origin
    return pose


POSE = camera_looking_along_world_x()


def ahead(distance_m: float, right_m: float = 0.0, down_m: float = 0.0) -> np.ndarray:
    """World point `distance_m` ahead of POSE's camera, shifted right/down in the image."""
    return np.array([[1.0 + distance_m, 2.0 - right_m, 3.0 - down_m]], np.float32)


def test_lidar_point_at_half_range_projects_to_the_principal_point_with_grey_128():
    out = lidar_control([ahead(37.5)], K, POSE, H, W, dilate_px=1)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    assert tuple(np.argwhere(out[..., 0])[0]) == (H // 2, W // 2)
    assert abs(int(out[H // 2, W // 2, 0]) - 128) <= 1
    assert np.count_nonzero(out[..., 0]) == 1


def test_lidar_projection_follows_K():
    # 10 m ahead, 2.5 m right and 1 m down: u = 40 * 2.5 / 10 + 32 = 42, v = 4 + 24 = 28
    out = lidar_control([ahead(10.0, right_m=2.5, down_m=1.0)], K, POSE, H, W, dilate_px=1)
    assert tuple(np.argwhere(out[..., 0])[0]) == (28, 42)


def test_lidar_far_is_brighter_than_near_and_no_return_is_black():
    sweep = np.concatenate([ahead(10.0, right_m=-3.0), ahead(60.0, right_m=15.0)])
    out = lidar_control([sweep], K, POSE, H, W, dilate_px=1)[..., 0]
    near, far = out[H // 2, 20], out[H // 2, 42]
    assert far > near > 0
    assert near == round(10 / 75 * 255) and far == round(60 / 75 * 255)
    assert np.count_nonzero(out) == 2


def test_lidar_drops_points_nearer_than_min_and_behind_and_clips_far():
    sweep = np.concatenate([ahead(2.5), ahead(-10.0), ahead(200.0, right_m=50.0)])
    out = lidar_control([sweep], K, POSE, H, W, dilate_px=1)[..., 0]
    assert np.count_nonzero(out) == 1
    assert out[H // 2, W // 2 + 10] == 255  # 200 m clipped to 75 m


def test_lidar_zbuffer_keeps_the_nearest_point():
    sweep = np.concatenate([ahead(50.0), ahead(10.0), ahead(30.0)])
    depth = lidar_depth([sweep], K, POSE, H, W)
    assert depth[H // 2, W // 2] == pytest.approx(10.0)


def test_lidar_dilation_spreads_returns_and_nearest_wins_where_they_overlap():
    single = lidar_control([ahead(20.0)], K, POSE, H, W, dilate_px=4)[..., 0]
    assert np.count_nonzero(single) == 16
    pair = np.concatenate([ahead(20.0), ahead(60.0, right_m=1.5)])  # 1 pixel apart
    out = lidar_control([pair], K, POSE, H, W, dilate_px=4)[..., 0]
    assert out[H // 2, W // 2] == round(20 / 75 * 255)
    assert out[H // 2, W // 2 + 1] == round(20 / 75 * 255)


def test_lidar_accumulates_several_sweeps():
    out = lidar_control([ahead(20.0), ahead(20.0, right_m=5.0)], K, POSE, H, W, dilate_px=1)
    assert np.count_nonzero(out[..., 0]) == 2


def test_lidar_control_clip_uses_plus_minus_k_sweeps():
    # Sweep i puts one point i pixels right of the centre (20 m ahead: 0.5 m per pixel).
    sweeps = [ahead(20.0, right_m=0.5 * i) for i in range(10)]
    sweeps[6] = None  # the LiDAR did not fire at tick 6
    clip = lidar_control_clip(
        sweeps, [K] * 2, [POSE] * 2, H, W, ticks=[5, 0], sweeps_each_side=2, dilate_px=1
    )
    assert clip.shape == (2, H, W, 3)
    cols = set(np.argwhere(clip[0, ..., 0])[:, 1] - W // 2)
    assert cols == {3, 4, 5, 7, 8}
    assert set(np.argwhere(clip[1, ..., 0])[:, 1] - W // 2) == {0, 1, 2}


def test_lidar_rejects_bad_points():
    with pytest.raises(SpecError, match="N×3"):
        lidar_control([np.zeros((4, 2))], K, POSE, H, W)
    with pytest.raises(SpecError, match="NaN"):
        lidar_control([np.full((1, 3), np.nan)], K, POSE, H, W)
    with pytest.raises(SpecError, match="list"):
        lidar_control(np.zeros((4, 3)), K, POSE, H, W)


def test_lidar_depth_agrees_with_the_camera_depth_on_a_pybullet_capture():
    """Bridge poses, K and LiDAR points, projected here, land where the camera saw them."""
    pybullet_bridge = pytest.importorskip("cosmos_sim.bridges.pybullet")
    with pybullet_bridge.make_scene("street", width=256, height=144) as scene:
        scene.step()
        frames = {f.sensor: f for f in scene.bridge.capture(0, 0.0)}
    cam = next(f for f in frames.values() if f.camera is not None)
    sweep = next(f for f in frames.values() if f.lidar is not None)
    depth = lidar_depth([sweep.points_world], cam.K, cam.cam_to_world, 144, 256, min_m=0.0)
    hit = depth > 0
    assert hit.sum() > 1000
    rel = np.abs(depth[hit] - cam.depth_m[hit]) / cam.depth_m[hit]
    assert np.median(rel) < 0.02 and np.percentile(rel, 90) < 0.05
