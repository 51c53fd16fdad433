"""The live-capture path end to end, against a test double of the CARLA server."""

from __future__ import annotations

from pathlib import Path

import carla
import numpy as np
import pytest
from fakes import carla_double as double

from cosmos_sim import Episode
from cosmos_sim.bridges import carla as bridge
from cosmos_sim.bridges.opendrive import compile_map
from cosmos_sim.controls import hdmap

RIG = """
fps: 10
ego: {blueprint: vehicle.lincoln.mkz_2020, autopilot: true}
sensors:
  - {name: front, type: camera, outputs: [rgb, depth, semantic, instance],
     width: 64, height: 32, fov_deg: 90, transform: {x: 1.5, z: 1.7}}
  - {name: lidar, type: lidar, channels: 16, range_m: 50, transform: {z: 2.0}}
"""


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch) -> double.FakeWorld:
    world = double.FakeWorld()
    monkeypatch.setattr(double.FakeClient, "world", world, raising=False)
    monkeypatch.setattr(double.FakeClient, "traffic_manager", double.FakeTrafficManager(), False)
    monkeypatch.setattr(carla, "Client", double.FakeClient)
    yield world
    world.join()


@pytest.fixture()
def rig_file(tmp_path: Path) -> Path:
    path = tmp_path / "rig.yaml"
    path.write_text(RIG)
    return path


def _capture(out: Path, rig: Path, **kw) -> Path:
    kw.setdefault("seconds", 0.6)
    kw.setdefault("timeout_s", 1.0)
    return bridge.capture_episode(out, rig=rig, progress=False, **kw)


def test_capture_matches_every_sensor_to_the_ticked_frame(server, rig_file, tmp_path):
    path = _capture(tmp_path / "run", rig_file)
    episode = Episode(path)
    assert episode.complete and len(episode) == 6
    assert episode.class_names[14] == "Car"
    for tick in episode:
        frame = tick.data["carla_frame"]
        front = tick.frames["front"]
        # The double paints each RGB frame with its frame id: a mixed-up tick would show.
        assert np.all(front.rgb[..., 0] == frame % 256)
        assert front.extras["carla_frame"] == frame == tick.frames["lidar"].extras["carla_frame"]
        assert front.depth_m.dtype == np.float32
        np.testing.assert_allclose(front.depth_m[0, 0], 1.0, atol=1e-3)
        np.testing.assert_allclose(front.depth_m[0, -1], 250.0, atol=1e-3)
        assert set(np.unique(front.class_id)) == {11, 14}
        assert np.all(front.instance_id == 0x1234)
    frames = [t.data["carla_frame"] for t in episode]
    assert frames == list(range(frames[0], frames[0] + 6))
    # The map is saved with the episode: the HD-map control needs no server afterwards.
    scene = hdmap.compile_scene(compile_map(path / "map.xodr").geometry)
    tick = episode[0]
    front = tick.frames["front"]
    image = hdmap.render_hdmap(
        scene, front.K, front.cam_to_world, 32, 64, hdmap.DynamicState.from_tick_data(tick.data)
    )
    assert image.shape == (32, 64, 3)


def test_capture_converts_poses_points_boxes_and_lights(server, rig_file, tmp_path):
    tick = Episode(_capture(tmp_path / "run", rig_file, seconds=0.1))[0]
    spawn = server.get_map().get_spawn_points()[0]  # UE4 (10, -2, 0.3), yaw 30°
    ego = np.asarray(tick.data["ego"]["ego_to_world"])
    np.testing.assert_allclose(ego[:3, 3], [10.0, 2.0, 0.3], atol=1e-5)  # y flipped
    yaw = np.degrees(np.arctan2(ego[1, 0], ego[0, 0]))
    assert yaw == pytest.approx(-30.0, abs=1e-4)  # UE4 yaw is clockwise seen from above
    # The camera looks along the ego's forward axis: its OpenCV z is the ego's x.
    cam = tick.frames["front"].cam_to_world
    np.testing.assert_allclose(cam[:3, 2], ego[:3, 0], atol=1e-6)
    expected_cam = spawn.transform(carla.Location(1.5, 0.0, 1.7))
    np.testing.assert_allclose(
        cam[:3, 3], [expected_cam.x, -expected_cam.y, expected_cam.z], atol=1e-4
    )
    # LiDAR: the double returns a point 10 m ahead and 5 m right of the sensor (UE4 frame).
    lidar_at = spawn.transform(carla.Location(0.0, 0.0, 2.0))
    ahead = spawn.transform(carla.Location(10.0, 0.0, 2.0))
    pts = tick.frames["lidar"].points_world
    np.testing.assert_allclose(pts[0], [ahead.x, -ahead.y, ahead.z], atol=1e-4)
    assert tick.frames["lidar"].cam_to_world[:3, 3] == pytest.approx(
        [lidar_at.x, -lidar_at.y, lidar_at.z], abs=1e-4
    )
    (box,) = tick.data["boxes"]
    assert box["class"] == "Car" and box["id"] == server.other_car_id
    car = server.get_actor(server.other_car_id)
    want = [[v.x, -v.y, v.z] for v in car.bounding_box.get_world_vertices(car.get_transform())]
    np.testing.assert_allclose(box["corners"], want, atol=1e-3)
    (light,) = tick.data["traffic_lights"]
    assert light["state"] == "red" and light["opendrive_id"] == "20"


def test_capture_restores_settings_and_destroys_everything(server, rig_file, tmp_path):
    original = server.get_settings()
    _capture(tmp_path / "run", rig_file)
    assert server.applied[0].synchronous_mode and server.applied[0].fixed_delta_seconds == 0.1
    assert server.applied[-1] is original
    assert not [a for a in server.actors.values() if a.type_id.startswith("sensor.")]
    assert not [a for a in server.actors.values() if a.type_id == "vehicle.lincoln.mkz_2020"]
    assert double.FakeClient.traffic_manager.sync_calls == [True, False]


def test_a_dropped_sensor_frame_is_an_error_naming_the_sensor(server, rig_file, tmp_path):
    server.drop = ("depth", server.frame + 5)  # the third recorded tick (after 2 warm-ups)
    original = server.get_settings()
    with pytest.raises(bridge.CarlaBridgeError, match=r"'front/depth'.*no measurement for frame"):
        _capture(tmp_path / "run", rig_file, timeout_s=0.3)
    assert server.applied[-1] is original
    episode = Episode(tmp_path / "run")  # the partial episode stays readable
    assert not episode.complete and len(episode) == 2


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_settings_are_restored_on_an_exception_or_ctrl_c(
    server, rig_file, tmp_path, monkeypatch, failure
):
    original = server.get_settings()
    calls = {"n": 0}
    real_collect = bridge.CarlaRig.collect

    def failing_collect(self, frame, index):
        calls["n"] += 1
        if calls["n"] == 3:
            raise failure("boom")
        return real_collect(self, frame, index)

    monkeypatch.setattr(bridge.CarlaRig, "collect", failing_collect)
    with pytest.raises(failure):
        _capture(tmp_path / "run", rig_file)
    assert server.applied[-1] is original
    assert not [a for a in server.actors.values() if a.type_id.startswith("sensor.")]
    partial = Episode(tmp_path / "run")  # the ticks before the failure stay readable
    assert not partial.complete and len(partial) == 2
    assert [tick.index for tick in partial] == [0, 1]


def test_existing_ego_id_is_used_and_not_destroyed(server, rig_file, tmp_path):
    ego_id = server.other_car_id
    tick = Episode(_capture(tmp_path / "run", rig_file, ego=str(ego_id), seconds=0.1))[0]
    assert tick.data["ego"]["id"] == ego_id
    assert tick.data["boxes"] == []  # the ego is not among the other actors' boxes
    assert ego_id in server.actors


def test_unknown_ego_id_is_a_clear_error(server, rig_file, tmp_path):
    with pytest.raises(bridge.CarlaBridgeError, match=r"--ego 4242: no actor.*vehicles there"):
        _capture(tmp_path / "run", rig_file, ego="4242")
    assert server.applied[-1].synchronous_mode is False


def test_replay_mode_follows_the_hero(server, rig_file, tmp_path):
    tick = Episode(_capture(tmp_path / "run", rig_file, replay=Path("drive.log"), seconds=0.1))[0]
    assert tick.data["ego"]["id"] == double.FakeClient.replay_hero
    assert double.FakeClient.stopped_replayer
    with pytest.raises(bridge.CarlaBridgeError, match="cannot read this recorder log"):
        _capture(tmp_path / "run2", rig_file, replay=Path("missing.rec"))


def test_server_of_another_version_is_refused(server, rig_file, tmp_path, monkeypatch):
    monkeypatch.setattr(double.FakeClient, "server_version", "0.9.15")
    with pytest.raises(bridge.CarlaBridgeError, match=r"runs 0.9.15.*pip install carla==0.9.15"):
        _capture(tmp_path / "run", rig_file)
    assert server.applied == []


def test_missing_server_is_a_clear_error_after_the_timeout_not_a_hang():
    # The real carla.Client on a closed port: connect returns (raises) instead of blocking.
    with pytest.raises(bridge.CarlaBridgeError, match=r"no CARLA server answered at 127.0.0.1:1"):
        bridge.connect("127.0.0.1", 1, timeout_s=1.0)


def test_settings_are_restored_when_the_traffic_manager_refuses_synchronous_mode(
    server, rig_file, tmp_path, monkeypatch
):
    # The world is already synchronous when the traffic manager is switched (e.g. its port
    # is taken by another client): the world's settings must still come back.
    original = server.get_settings()

    def refuse(self, on: bool) -> None:
        raise RuntimeError("trying to create rpc server for traffic manager; port in use")

    monkeypatch.setattr(double.FakeTrafficManager, "set_synchronous_mode", refuse)
    with pytest.raises(RuntimeError, match="port in use"):
        _capture(tmp_path / "run", rig_file)
    assert server.applied[-1] is original


def test_replaying_a_log_recorded_on_another_map_captures_the_replayed_world(
    server, rig_file, tmp_path, monkeypatch
):
    # replay_file loads the log's map; the world handle from before it is an expired episode.
    replayed = double.FakeWorld()
    real_replay = double.FakeClient.replay_file

    def replay_on_its_own_map(self, *args):
        def expired(*_args, **_kwargs):
            raise RuntimeError("trying to access an expired episode; a new episode was started")

        server.get_settings = server.apply_settings = server.tick = expired
        monkeypatch.setattr(double.FakeClient, "world", replayed)
        return real_replay(self, *args)

    monkeypatch.setattr(double.FakeClient, "replay_file", replay_on_its_own_map)
    try:
        path = _capture(tmp_path / "run", rig_file, replay=Path("drive.log"), seconds=0.1)
    finally:
        replayed.join()
    assert Episode(path)[0].data["ego"]["id"] == double.FakeClient.replay_hero
    assert replayed.applied[-1].synchronous_mode is False  # restored on the replayed world
