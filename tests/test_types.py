"""Core sensor types validate their fields and name the field in every error."""

import numpy as np
import pytest

from cosmos_sim import CameraSpec, LidarSpec, SensorFrame, SpecError


def test_intrinsics_from_vertical_fov():
    cam = CameraSpec("front", width=1280, height=704, fov_deg=90.0)
    K = cam.intrinsics
    assert K[0, 0] == pytest.approx(352.0) and K[1, 1] == pytest.approx(352.0)
    assert (K[0, 2], K[1, 2]) == (639.5, 351.5)  # centre of pixels at integer coordinates


def test_explicit_K_overrides_fov_and_round_trips_through_dict():
    K = [[500.0, 0, 300], [0, 500.0, 200], [0, 0, 1]]
    cam = CameraSpec("c", width=640, height=400, K=K)
    np.testing.assert_array_equal(cam.intrinsics, K)
    assert CameraSpec.from_dict(cam.to_dict()) == cam


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"width": 0}, "CameraSpec.width"),
        ({"height": 1.5}, "CameraSpec.height"),
        ({"fov_deg": 180}, "CameraSpec.fov_deg"),
        ({"near_m": 5, "far_m": 1}, "CameraSpec.near_m"),
        ({"K": np.eye(2)}, "CameraSpec.K"),
        ({"cam_to_body": np.diag([1, 1, -1, 1])}, "CameraSpec.cam_to_body"),
    ],
)
def test_camera_spec_errors_name_the_field(kwargs, field):
    args = {"name": "c", "width": 64, "height": 48} | kwargs
    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        CameraSpec(**args)


def test_unknown_field_in_a_saved_spec_is_named():
    with pytest.raises(SpecError, match=r"unknown field\(s\) \['fov'\]"):
        CameraSpec.from_dict({"name": "c", "width": 4, "height": 4, "fov": 60})


def test_lidar_rays_are_unit_and_span_the_elevation_range():
    spec = LidarSpec(channels=3, points_per_channel=8, fov_up_deg=10, fov_down_deg=-20)
    rays = spec.ray_directions()
    assert rays.shape == (24, 3) and spec.num_rays == 24
    np.testing.assert_allclose(np.linalg.norm(rays, axis=1), 1.0)
    elevation = np.degrees(np.arcsin(rays[:, 2]))
    assert elevation.min() == pytest.approx(-20) and elevation.max() == pytest.approx(10)


def test_lidar_spec_rejects_inverted_fov():
    with pytest.raises(SpecError, match="fov_down_deg"):
        LidarSpec(fov_up_deg=-30, fov_down_deg=10)


def test_sensor_frame_checks_dtype_shape_and_finite_depth():
    cam = CameraSpec("front", width=8, height=6)
    ok = SensorFrame("front", 0, 0.0, np.eye(4), camera=cam, rgb=np.zeros((6, 8, 3), np.uint8))
    np.testing.assert_allclose(ok.K, cam.intrinsics)
    with pytest.raises(SpecError, match=r"rgb: expected dtype uint8, got float32"):
        SensorFrame("front", 0, 0.0, np.eye(4), camera=cam, rgb=np.zeros((6, 8, 3), np.float32))
    with pytest.raises(SpecError, match=r"depth_m: image is \(6, 7\)"):
        SensorFrame("front", 0, 0.0, np.eye(4), camera=cam, depth_m=np.ones((6, 7), np.float32))
    bad = np.ones((6, 8), np.float32)
    bad[2, 3] = np.nan
    with pytest.raises(SpecError, match="depth_m: contains NaN or inf"):
        SensorFrame("front", 0, 0.0, np.eye(4), camera=cam, depth_m=bad)
    with pytest.raises(SpecError, match="cam_to_world"):
        SensorFrame("front", 0, 0.0, np.ones((4, 4)))
