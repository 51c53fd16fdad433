"""CARLA conventions with the real `carla` client: transforms, decoding, boxes, rig files."""

from __future__ import annotations

import carla
import numpy as np
import pytest
from fakes.carla_double import encode_depth

from cosmos_sim.bridges import carla as bridge
from cosmos_sim.bridges.carla_rig import default_rig, load_rig, rig_from_dict, ue_transform_matrix
from cosmos_sim.types import SpecError


def _random_transforms(n: int = 50):
    rng = np.random.default_rng(0)
    for _ in range(n):
        x, y, z, roll, pitch, yaw = (float(v) for v in rng.uniform(-170, 170, 6))
        yield carla.Transform(
            carla.Location(x, y, z), carla.Rotation(pitch=pitch, yaw=yaw, roll=roll)
        )


def test_ue_matrix_matches_carla_transform_get_matrix():
    for t in _random_transforms():
        r, loc = t.rotation, t.location
        ours = ue_transform_matrix(loc.x, loc.y, loc.z, r.roll, r.pitch, r.yaw)
        np.testing.assert_allclose(ours, np.array(t.get_matrix()), atol=1e-4)


def test_camera_pose_sees_what_carla_puts_in_front_of_the_camera():
    for t in _random_transforms():
        cam = bridge.camera_pose(t)
        assert np.linalg.det(cam[:3, :3]) == pytest.approx(1.0)
        for local, cv in (((5, 0, 0), (0, 0, 5)), ((0, 2, 0), (2, 0, 0)), ((0, 0, 3), (0, -3, 0))):
            # UE4 camera: x forward, y right, z up; OpenCV: x right, y down, z forward.
            world = t.transform(carla.Location(*map(float, local)))
            ours = cam @ np.array([*cv, 1.0])
            np.testing.assert_allclose(ours[:3], [world.x, -world.y, world.z], atol=1e-3)


def test_camera_fov_spans_the_image_edge_to_edge():
    # CARLA's horizontal FOV covers the whole image: with pixel centres at integers its
    # edges are at u = -0.5 and u = W - 0.5, and the optical axis is the image centre.
    cam = default_rig().cameras[0]
    K = cam.K
    half = np.radians(cam.fov_deg) / 2
    edges = {0.0: (cam.width - 1) / 2, np.tan(half): cam.width - 0.5, -np.tan(half): -0.5}
    for x_over_z, u in edges.items():
        projected = K @ np.array([x_over_z, 0.0, 1.0])
        assert projected[0] / projected[2] == pytest.approx(u)
    assert K[1, 2] == pytest.approx((cam.height - 1) / 2)


def test_body_pose_and_lidar_points_flip_y_into_a_right_handed_frame():
    for t in _random_transforms(10):
        body = bridge.body_pose(t)
        assert np.linalg.det(body[:3, :3]) == pytest.approx(1.0)
        pts = np.array([[1.0, 2.0, 3.0, 0.5], [-4.0, 0.5, 1.0, 0.1]], np.float32)
        world = bridge.ue_points_to_world(pts, t)
        for p, w in zip(pts, world, strict=True):
            want = t.transform(carla.Location(*map(float, p[:3])))
            np.testing.assert_allclose(w, [want.x, -want.y, want.z], atol=1e-3)


def test_depth_semantic_and_instance_decoding():
    depth = np.array([[0.5, 12.25, 999.0]])
    bgra = encode_depth(depth)
    np.testing.assert_allclose(bridge.decode_depth_m(bgra), depth, atol=1e-3)
    inst = np.zeros((1, 2, 4), np.uint8)
    inst[..., 2] = [14, 12]
    inst[..., 1] = [0x01, 0xFF]
    inst[..., 0] = [0x02, 0x00]
    class_id, instance_id = bridge.decode_instance(inst)
    assert class_id.tolist() == [[14, 12]] and instance_id.tolist() == [[0x0201, 0x00FF]]
    assert bridge.decode_rgb(np.array([[[1, 2, 3, 255]]], np.uint8)).tolist() == [[[3, 2, 1]]]
    with pytest.raises(bridge.CarlaBridgeError, match="expected 4×4×4"):
        bridge.bgra_view(b"\x00" * 10, 4, 4, "front/rgb")


def test_class_names_are_carla_city_object_labels():
    names = bridge.class_names()
    assert names[0] == "Unlabeled" and names[14] == "Car" and names[12] == "Pedestrians"


def test_box_classes():
    assert bridge.box_class("vehicle.carlamotors.firetruck", "truck") == "Truck"
    assert bridge.box_class("vehicle.yamaha.yzf", "motorcycle") == "Cyclist"
    assert bridge.box_class("walker.pedestrian.0001") == "Pedestrian"
    assert bridge.box_class("vehicle.audi.a2", "car") == "Car"
    assert bridge.box_class("static.prop.cone") == "Others"


def test_rig_file_parses_with_camera_intrinsics_and_mounts(tmp_path):
    rig = load_rig(
        __import__("pathlib").Path(__file__).parents[1] / "examples/rigs/front_camera.yaml"
    )
    cam = rig.cameras[0]
    assert cam.K[0, 0] == pytest.approx(640.0)  # 90° horizontal FOV over 1280 px
    np.testing.assert_allclose(cam.cam_to_body[:3, 3], [1.5, 0.0, 1.7])
    np.testing.assert_allclose(cam.cam_to_body[:3, 2], [1.0, 0.0, 0.0])  # looks forward
    assert rig.lidars[0].spec().points_per_channel == 2031
    assert default_rig().sensor_names == ["front", "lidar"]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"sensors": [{"name": "a", "type": "sonar"}]}, "unknown sensor type 'sonar'"),
        (
            {"sensors": [{"name": "a", "type": "camera", "zoom": 2}]},
            r"unknown field\(s\) \['zoom'\]",
        ),
        (
            {"sensors": [{"name": "a", "type": "camera", "outputs": ["normals"]}]},
            "unknown camera output",
        ),
        (
            {"sensors": [{"name": "a", "type": "lidar", "transform": {"w": 1}}]},
            r"transform: unknown",
        ),
        ({"sensors": [{"name": "a", "type": "camera"}] * 2}, "duplicate name"),
        ({"sensors": [], "fps": 10}, "non-empty list"),
        (
            {"sensors": [{"name": "a", "type": "camera"}], "egoo": {}},
            r"unknown field\(s\) \['egoo'\]",
        ),
    ],
)
def test_bad_rig_files_name_the_field(data, message):
    with pytest.raises(SpecError, match=message):
        rig_from_dict(data, source="rig.yaml")


def test_toml_rig_and_bad_syntax(tmp_path):
    path = tmp_path / "rig.toml"
    path.write_text('[[sensors]]\nname = "front"\ntype = "camera"\nwidth = 640\nheight = 352\n')
    assert load_rig(path).cameras[0].width == 640
    path.write_text("[[sensors]\n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_rig(path)
