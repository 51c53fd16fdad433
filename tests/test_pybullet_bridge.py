"""The PyBullet bridge against real PyBullet (DIRECT mode, small images)."""

from __future__ import annotations

import math

import numpy as np
import pybullet as p
import pybullet_data
import pytest

from cosmos_sim.bridges.pybullet import (
    MAX_RAYS_PER_BATCH,
    PyBulletBridge,
    decode_instance_id,
    enable_egl,
    link_pose,
    look_at,
    make_scene,
)
from cosmos_sim.types import CameraSpec, LidarSpec, SpecError

RENDERERS = ["tiny", "egl"]


@pytest.fixture
def client():
    """A fresh DIRECT client with nothing in it (TinyRenderer)."""
    c = p.connect(p.DIRECT)
    p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=c)
    yield c
    if p.isConnected(physicsClientId=c):
        p.disconnect(physicsClientId=c)


def _egl_loads() -> bool:
    c = p.connect(p.DIRECT)
    try:
        return enable_egl(c)
    finally:
        p.disconnect(physicsClientId=c)


EGL_LOADS = _egl_loads()


@pytest.fixture(params=RENDERERS)
def rendered_client(request, client):
    """A fresh client rendering with each renderer (EGL loaded before any body)."""
    if request.param == "egl" and not enable_egl(client):
        pytest.skip("the eglRenderer plugin does not load on this machine (no EGL/Mesa)")
    return client, request.param


def _box(c: int, half, pos, rgba=(0.8, 0.3, 0.3, 1), yaw: float = 0.0) -> int:
    return p.createMultiBody(
        0.0,
        p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=c),
        p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=rgba, physicsClientId=c),
        basePosition=pos,
        baseOrientation=p.getQuaternionFromEuler([0, 0, yaw]),
        physicsClientId=c,
    )


def _sphere(c: int, radius: float, pos) -> int:
    return p.createMultiBody(
        0.0,
        p.createCollisionShape(p.GEOM_SPHERE, radius=radius, physicsClientId=c),
        p.createVisualShape(p.GEOM_SPHERE, radius=radius, physicsClientId=c),
        basePosition=pos,
        physicsClientId=c,
    )


def _ground(c: int) -> int:
    return p.createMultiBody(
        0.0,
        p.createCollisionShape(p.GEOM_PLANE, physicsClientId=c),
        # Thick: EGL draws very thin large boxes flattened to their centre.
        p.createVisualShape(
            p.GEOM_BOX,
            halfExtents=[50, 50, 0.5],
            visualFramePosition=[0, 0, -0.5],
            physicsClientId=c,
        ),
        physicsClientId=c,
    )


def _unproject(frame) -> np.ndarray:
    """World points of every pixel from depth, K and cam_to_world (OpenCV pixel centres)."""
    h, w = frame.depth_m.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(frame.K).T
    cam = rays * frame.depth_m[..., None]
    return cam @ frame.cam_to_world[:3, :3].T + frame.cam_to_world[:3, 3]


# -- depth, K and poses ---------------------------------------------------------------------


def test_depth_is_distance_along_the_optical_axis_to_a_facing_wall(rendered_client):
    c, renderer = rendered_client
    distance = 2.0
    _box(c, [0.05, 10, 10], [distance + 0.05, 0, 1])
    cam = CameraSpec(
        "eye", 64, 48, fov_deg=70, near_m=0.05, far_m=20, cam_to_body=look_at([0, 0, 1], [1, 0, 1])
    )
    with PyBulletBridge(c, [cam], renderer=renderer) as bridge:
        assert bridge.renderer == renderer
        (frame,) = bridge.capture(0, 0.0)
    # Every pixel, the corners included (where the ray is ~1.4× longer), reads the distance.
    np.testing.assert_allclose(frame.depth_m, distance, atol=2e-3)
    assert frame.depth_m.dtype == np.float32


def test_nothing_hit_reads_as_the_far_plane(client):
    cam = CameraSpec("eye", 32, 24, near_m=0.1, far_m=42.0)
    (frame,) = PyBulletBridge(client, [cam]).capture(0, 0.0)
    assert np.all(frame.depth_m == np.float32(42.0))
    assert np.all(frame.instance_id == 0) and np.all(frame.class_id == 0)


@pytest.mark.parametrize(
    "K",
    [None, ((70.0, 0, 50.0), (0, 65.0, 20.0), (0, 0, 1))],
    ids=["from-fov", "off-centre-principal-point"],
)
def test_depth_K_and_pose_unproject_the_floor_onto_z0(rendered_client, K):
    c, renderer = rendered_client
    _ground(c)
    cam = CameraSpec(
        "eye",
        81,
        61,
        K=K,
        fov_deg=60,
        near_m=0.1,
        far_m=50,
        cam_to_body=look_at([-1.0, -0.5, 1.2], [1.5, 0.4, 0.0]),
    )
    (frame,) = PyBulletBridge(c, [cam], renderer=renderer).capture(0, 0.0)
    floor = frame.instance_id > 0
    assert floor.mean() > 0.5
    world = _unproject(frame)[floor]
    # Depth, K (incl. its principal point) and cam_to_world agree to millimetres.
    assert np.abs(world[:, 2]).max() < 5e-3


@pytest.mark.parametrize(
    "K",
    [None, ((120.0, 0, 100.0), (0, 120.0, 30.0), (0, 0, 1))],
    ids=["from-fov", "off-centre-principal-point"],
)
def test_a_projected_object_centre_lands_in_its_own_mask(rendered_client, K):
    c, renderer = rendered_client
    centres = [[2.0, 0.3, 0.9], [2.5, -0.6, 1.4], [1.6, 0.0, 0.6]]
    bodies = [_sphere(c, 0.06, pos) for pos in centres]
    cam = CameraSpec(
        "eye", 160, 90, K=K, fov_deg=50, cam_to_body=look_at([0.0, 0.1, 1.1], [2.0, 0.0, 0.9])
    )
    (frame,) = PyBulletBridge(c, [cam], renderer=renderer).capture(0, 0.0)
    body_of_pixel, _ = decode_instance_id(frame.instance_id)
    world_to_cam = np.linalg.inv(frame.cam_to_world)
    for body, centre in zip(bodies, centres, strict=True):
        x_cam = world_to_cam[:3, :3] @ centre + world_to_cam[:3, 3]
        u, v = (frame.K @ x_cam)[:2] / x_cam[2]
        assert body_of_pixel[round(v), round(u)] == body
        rows, cols = np.nonzero(body_of_pixel == body)
        # The mask's centroid is the projected centre, to sub-pixel accuracy.
        assert abs(cols.mean() - u) < 0.35 and abs(rows.mean() - v) < 0.35


def test_skewed_K_is_rejected(client):
    cam = CameraSpec("eye", 32, 24, K=((30.0, 2.0, 16.0), (0, 30.0, 12.0), (0, 0, 1)))
    with pytest.raises(SpecError, match="skew"):
        PyBulletBridge(client, [cam])


def test_mounted_camera_rides_on_the_link_frame(client):
    arm = p.loadURDF("kuka_iiwa/model.urdf", useFixedBase=True, physicsClientId=client)
    cam_to_link = look_at([0.0, 0.0, 0.1], [0.0, 0.0, 1.0], up=(1.0, 0.0, 0.0))
    wrist = CameraSpec("wrist", 32, 24, cam_to_body=cam_to_link)
    fixed = CameraSpec("fixed", 32, 24, cam_to_body=look_at([2, 0, 1], [0, 0, 0.5]))
    bridge = PyBulletBridge(client, [wrist, fixed], mounts={"wrist": (arm, 6)})
    for q in (0.0, 0.7):
        for joint in range(7):
            p.resetJointState(arm, joint, q, physicsClientId=client)
        wrist_frame, fixed_frame = bridge.capture(0, 0.0)
        state = p.getLinkState(arm, 6, computeForwardKinematics=True, physicsClientId=client)
        link = np.eye(4)
        link[:3, :3] = np.array(p.getMatrixFromQuaternion(state[5])).reshape(3, 3)
        link[:3, 3] = state[4]
        np.testing.assert_allclose(wrist_frame.ego_to_world, link, atol=1e-6)
        np.testing.assert_allclose(wrist_frame.cam_to_world, link @ cam_to_link, atol=1e-6)
        np.testing.assert_allclose(fixed_frame.cam_to_world, fixed.cam_to_body_matrix)
        assert fixed_frame.ego_to_world is None


def test_base_mount_uses_the_urdf_frame_not_the_centre_of_mass(client):
    # The iiwa base's inertial frame is offset by (-0.1, 0, 0.07) from its URDF frame.
    arm = p.loadURDF("kuka_iiwa/model.urdf", [0.5, 0.2, 0.0], physicsClientId=client)
    np.testing.assert_allclose(link_pose(client, arm)[:3, 3], [0.5, 0.2, 0.0], atol=1e-6)


# -- ids and classes ------------------------------------------------------------------------


def test_instance_and_class_ids_follow_a_user_body_class_map(client):
    _ground(client)
    left = _box(client, [0.2, 0.2, 0.2], [2, 0.4, 0.2])
    right = _box(client, [0.2, 0.2, 0.2], [2, -0.4, 0.2])
    unmapped = _box(client, [0.1, 0.1, 0.1], [1.5, 0, 0.6])
    cam = CameraSpec("eye", 96, 72, fov_deg=60, cam_to_body=look_at([0, 0, 0.6], [2, 0, 0.2]))
    bridge = PyBulletBridge(
        client, [cam], body_classes={left: 7, right: 3, 0: 0}, class_names={7: "crate"}
    )
    assert bridge.class_names == {0: "background", 3: "class3", 7: "crate"}
    (frame,) = bridge.capture(0, 0.0)
    body, link = decode_instance_id(frame.instance_id)
    assert {left, right, unmapped} <= set(np.unique(body).tolist())
    assert np.all(frame.class_id[body == left] == 7)
    assert np.all(frame.class_id[body == right] == 3)
    assert np.all(frame.class_id[body == unmapped] == 0)  # not in the map
    assert np.all(frame.class_id[body == 0] == 0)  # the ground, mapped to background
    assert np.all(link[frame.instance_id > 0] == -1)  # all are single-link bodies
    assert np.all(frame.instance_id[body == left] == left + 1)


def test_instance_ids_encode_body_and_link(client):
    arm = p.loadURDF("kuka_iiwa/model.urdf", useFixedBase=True, physicsClientId=client)
    cam = CameraSpec("eye", 96, 96, fov_deg=60, cam_to_body=look_at([2.0, 0, 0.7], [0, 0, 0.6]))
    (frame,) = PyBulletBridge(client, [cam]).capture(0, 0.0)
    body, link = decode_instance_id(frame.instance_id)
    seen_links = set(np.unique(link[body == arm]).tolist())
    assert {-1, 1, 2, 3} <= seen_links  # base and several links, each its own instance
    ids = frame.instance_id[(body == arm) & (link == 2)]
    assert np.all(ids == 1 + arm + (2 + 1) * 2**24)


def test_default_classes_are_one_per_body_name(client):
    a = p.loadURDF("cube_small.urdf", [1.0, 0.1, 0.5], physicsClientId=client)
    b = p.loadURDF("cube_small.urdf", [1.0, -0.1, 0.5], physicsClientId=client)
    duck = p.loadURDF("sphere_small.urdf", [1.0, 0.0, 0.3], physicsClientId=client)
    cam = CameraSpec("eye", 64, 64, fov_deg=30, cam_to_body=look_at([0, 0, 0.4], [1, 0, 0.4]))
    bridge = PyBulletBridge(client, [cam])
    assert bridge.class_names == {0: "background", 1: "cube", 2: "urdf_robot"}
    (frame,) = bridge.capture(0, 0.0)
    body, _ = decode_instance_id(frame.instance_id)
    assert set(np.unique(frame.class_id[body == a])) == {1}
    assert set(np.unique(frame.class_id[body == b])) == {1}
    assert set(np.unique(frame.class_id[body == duck])) == {2}
    late = p.loadURDF("r2d2.urdf", [3.0, 0.0, 0.5], physicsClientId=client)
    (frame,) = bridge.capture(1, 0.1)
    body, _ = decode_instance_id(frame.instance_id)
    assert bridge.class_names[3] == "physics"  # r2d2's robot name, added when it appeared
    assert set(np.unique(frame.class_id[body == late])) == {3}


# -- LiDAR ----------------------------------------------------------------------------------


def test_lidar_hits_a_plane_at_the_height_over_sin_elevation(client):
    _ground(client)
    height = 1.7
    lidar_to_world = np.eye(4)
    lidar_to_world[:3, 3] = [0.3, -0.2, height]
    # 20 rings × 1000 = 20000 rays: more than one rayTestBatch call takes.
    spec = LidarSpec(
        "lidar",
        channels=20,
        points_per_channel=1000,
        range_m=100.0,
        fov_up_deg=-5.0,
        fov_down_deg=-40.0,
        lidar_to_body=lidar_to_world,
    )
    assert spec.num_rays > MAX_RAYS_PER_BATCH
    (frame,) = PyBulletBridge(client, [], [spec]).capture(3, 0.25)
    points = frame.points_world
    assert points.shape == (spec.num_rays, 3) and points.dtype == np.float32
    np.testing.assert_allclose(points[:, 2], 0.0, atol=1e-4)
    ranges = np.linalg.norm(points - lidar_to_world[:3, 3], axis=1)
    elevation = np.radians(np.repeat(np.linspace(-40.0, -5.0, 20), 1000))
    np.testing.assert_allclose(ranges, height / np.sin(-elevation), rtol=1e-4)
    np.testing.assert_allclose(frame.cam_to_world, lidar_to_world)
    assert frame.frame_index == 3 and frame.sim_time_s == 0.25


def test_lidar_drops_misses_and_its_own_body_and_follows_its_mount(client):
    _ground(client)
    car = _box(client, [1.0, 0.5, 0.3], [0, 0, 0.3])
    p.resetBasePositionAndOrientation(
        car, [2.0, 1.0, 0.3], p.getQuaternionFromEuler([0.3, 0, 1.0]), physicsClientId=client
    )
    mount = np.eye(4)
    mount[:3, 3] = [0.0, 0.0, 0.35]  # just above the roof: low rings would hit the car
    spec = LidarSpec(
        "roof",
        channels=16,
        points_per_channel=360,
        range_m=30.0,
        fov_up_deg=15.0,
        fov_down_deg=-25.0,
        lidar_to_body=mount,
    )
    (frame,) = PyBulletBridge(client, [], [spec], mounts={"roof": car}).capture(0, 0.0)
    np.testing.assert_allclose(frame.cam_to_world, link_pose(client, car) @ mount, atol=1e-9)
    points = frame.points_world
    assert 0 < len(points) < spec.num_rays  # rays above the horizon return nothing
    np.testing.assert_allclose(points[:, 2], 0.0, atol=1e-4)  # only the ground, not the car
    assert np.linalg.norm(points - frame.cam_to_world[:3, 3], axis=1).max() <= 30.0 + 1e-4


# -- renderers ------------------------------------------------------------------------------


@pytest.mark.skipif(not EGL_LOADS, reason="the eglRenderer plugin does not load here")
def test_egl_and_tiny_render_the_same_depth_and_ids():
    frames = {}
    for renderer in RENDERERS:
        scene = make_scene("tabletop", width=96, height=54, renderer=renderer)
        try:
            assert scene.bridge.renderer == renderer
            (frames[renderer],) = scene.bridge.capture(0, 0.0)
        finally:
            scene.close()
    egl, tiny = frames["egl"], frames["tiny"]
    # Rasterisers differ only on silhouette pixels.
    assert (egl.instance_id == tiny.instance_id).mean() > 0.97
    same = egl.instance_id == tiny.instance_id
    close = np.abs(egl.depth_m - tiny.depth_m)[same] < 0.01
    assert close.mean() > 0.99


@pytest.mark.skipif(not EGL_LOADS, reason="the eglRenderer plugin does not load here")
def test_egl_is_refused_where_it_would_render_nothing(client):
    _box(client, [1, 1, 1], [3, 0, 0])  # a body exists before EGL: EGL would not draw it
    cam = CameraSpec("eye", 16, 16, cam_to_body=look_at([0, 0, 0], [1, 0, 0]))
    with pytest.raises(SpecError, match="enable_egl"):
        PyBulletBridge(client, [cam], renderer="egl")
    with pytest.raises(SpecError, match="enable_egl"):
        enable_egl(client)
    auto = PyBulletBridge(client, [cam], renderer="auto")
    assert auto.renderer == "tiny"
    (frame,) = auto.capture(0, 0.0)
    assert frame.instance_id.max() > 0  # TinyRenderer still sees the body


@pytest.mark.skipif(not EGL_LOADS, reason="the eglRenderer plugin does not load here")
def test_egl_loads_once_per_client_and_tiny_cannot_be_forced_over_it(client):
    assert enable_egl(client) and enable_egl(client)  # the second call is a no-op
    _box(client, [1, 1, 1], [3, 0, 0])
    cam = CameraSpec("eye", 16, 16, cam_to_body=look_at([0, 0, 0], [1, 0, 0]))
    first = PyBulletBridge(client, [cam])
    second = PyBulletBridge(client, [cam], renderer="egl")
    assert first.renderer == second.renderer == "egl"
    with pytest.raises(SpecError, match="tiny"):
        PyBulletBridge(client, [cam], renderer="tiny")
    first.close()
    second.close()
    assert second.capture(0, 0.0)[0].instance_id.max() > 0  # bridges leave enable_egl's plugin


def test_a_bridge_on_an_empty_client_loads_egl_itself(client):
    cam = CameraSpec("eye", 32, 24, cam_to_body=look_at([0, 0, 1], [3, 0, 1]))
    bridge = PyBulletBridge(client, [cam])
    if bridge.renderer != "egl":
        pytest.skip("the eglRenderer plugin does not load on this machine")
    _box(client, [0.1, 2, 2], [3, 0, 1])  # created after the plugin: EGL draws it
    assert bridge.capture(0, 0.0)[0].instance_id.max() > 0
    bridge.close()
    bridge.close()  # idempotent; the plugin stays until p.disconnect
    assert PyBulletBridge(client, [cam]).renderer == "egl"


@pytest.mark.skipif(not EGL_LOADS, reason="the eglRenderer plugin does not load here")
def test_an_egl_plugin_the_user_loaded_is_recognised(client):
    import pkgutil

    p.loadPlugin(
        pkgutil.get_loader("eglRenderer").get_filename(),
        "_eglRendererPlugin",
        physicsClientId=client,
    )
    _box(client, [0.1, 2, 2], [3, 0, 1])
    assert PyBulletBridge(client, [CameraSpec("eye", 16, 16)]).renderer == "egl"


# -- bad input ------------------------------------------------------------------------------


def test_bad_bridge_input_gets_clear_errors(client):
    box = _box(client, [0.1, 0.1, 0.1], [1, 0, 0])
    cam = CameraSpec("eye", 16, 16)
    lidar = LidarSpec("eye", channels=2, points_per_channel=4)
    cases = [
        (dict(cameras=[cam, cam]), "unique"),
        (dict(cameras=[cam], lidars=[lidar]), "unique"),
        (dict(cameras=[]), "at least one"),
        (dict(cameras=[cam], mounts={"eye": 99}), "body 99 does not exist"),
        (dict(cameras=[cam], mounts={"eye": (box, 3)}), "links -1..-1"),
        (dict(cameras=[cam], mounts={"nose": box}), "'nose' is not a sensor"),
        (dict(cameras=[cam], mounts={"eye": "base"}), "give a body id or a"),
        (dict(cameras=[cam], body_classes={42: 1}), "body 42 does not exist"),
        (dict(cameras=[cam], body_classes={box: -1}), "ints >= 0"),
        (dict(cameras=[cam], renderer="vulkan"), "not one of"),
        (dict(cameras=["eye"]), "expected CameraSpec"),
    ]
    for kwargs, message in cases:
        with pytest.raises(SpecError, match=message):
            PyBulletBridge(client, **kwargs)
    p.disconnect(physicsClientId=client)
    with pytest.raises(SpecError, match="not a connected PyBullet client"):
        PyBulletBridge(client, [cam])


def test_removed_mount_body_is_named_at_capture(client):
    box = _box(client, [0.1, 0.1, 0.1], [1, 0, 0])
    bridge = PyBulletBridge(client, [CameraSpec("eye", 16, 16)], mounts={"eye": box})
    p.removeBody(box, physicsClientId=client)
    with pytest.raises(RuntimeError, match=f"body {box}"):
        bridge.capture(0, 0.0)


def test_decode_instance_id_round_trips():
    body = np.array([0, 5, 123456, 7])
    link = np.array([-1, 0, 12, 126])
    ids = (1 + body + (link + 1) * 2**24).astype(np.int32)
    got_body, got_link = decode_instance_id(np.append(ids, 0))
    np.testing.assert_array_equal(got_body, [*body, -1])
    np.testing.assert_array_equal(got_link, [*link, -2])


def test_look_at_is_an_opencv_camera_pose():
    pose = look_at([1, 2, 3], [1, 5, 3])  # looking along +y, z up
    np.testing.assert_allclose(pose[:3, 2], [0, 1, 0], atol=1e-12)  # z forward
    np.testing.assert_allclose(pose[:3, 1], [0, 0, -1], atol=1e-12)  # y down
    np.testing.assert_allclose(pose[:3, 0], [1, 0, 0], atol=1e-12)  # x right
    with pytest.raises(SpecError):
        look_at([0, 0, 0], [0, 0, 1])
    assert math.isclose(np.linalg.det(pose[:3, :3]), 1.0)
