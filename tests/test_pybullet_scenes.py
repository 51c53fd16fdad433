"""The built-in PyBullet scenes and record_episode (real PyBullet, small images)."""

from __future__ import annotations

import numpy as np
import pytest

from cosmos_sim.bridges.pybullet import SCENES, make_scene, record_episode
from cosmos_sim.episode import Episode
from cosmos_sim.types import SpecError

SIZE = {"width": 96, "height": 54}


@pytest.mark.parametrize("name", ["tabletop", "street"])
def test_scene_ticks_carry_every_field(name):
    with make_scene(name, **SIZE) as scene:
        assert scene.name == name and scene.fps == 16.0 and scene.seed == 0
        assert scene.bridge.renderer in ("egl", "tiny")
        poses = []
        for index in range(3):
            frames = {f.sensor: f for f in scene.bridge.capture(index, scene.sim_time_s)}
            assert set(frames) == {s.name for s in (*scene.cameras, *scene.lidars)}
            for cam in scene.cameras:
                frame = frames[cam.name]
                assert frame.rgb.shape == (54, 96, 3) and frame.rgb.dtype == np.uint8
                assert frame.rgb.std() > 5  # a picture, not a blank
                assert cam.near_m <= frame.depth_m.min() < frame.depth_m.max() <= cam.far_m
                assert len(np.unique(frame.instance_id)) >= 4
                assert set(np.unique(frame.class_id)) <= set(scene.bridge.class_names)
                assert len(np.unique(frame.class_id)) >= 4
                np.testing.assert_allclose(frame.K, cam.intrinsics)
                poses.append(frame.cam_to_world)
            for lidar in scene.lidars:
                points = frames[lidar.name].points_world
                assert len(points) > lidar.num_rays // 2
                assert np.all(points[:, 2] > -0.01)  # nothing below the ground
            assert frames[scene.cameras[0].name].frame_index == index
            scene.step()
        assert scene.sim_time_s == pytest.approx(3 / 16)
        data = scene.tick_data()
        assert all(isinstance(v, np.ndarray) for v in data.values())
    if name == "street":  # the chase camera rides on the moving car
        assert np.linalg.norm(poses[-1][:3, 3] - poses[0][:3, 3]) > 0.5


def test_tabletop_arm_moves_and_pushes_objects():
    with make_scene("tabletop", **SIZE) as scene:
        start = scene.tick_data()
        for _ in range(int(9 * scene.fps)):  # two push cycles
            scene.step()
        end = scene.tick_data()
    assert np.abs(end["joint_positions"] - start["joint_positions"]).max() > 0.1
    moved = np.linalg.norm(end["object_poses"][:, :2] - start["object_poses"][:, :2], axis=1)
    assert moved.max() > 0.03  # the arm pushed something


def test_scenes_are_deterministic_under_a_seed():
    def run(seed):
        with make_scene("tabletop", seed=seed, renderer="tiny", **SIZE) as scene:
            for _ in range(4):
                scene.step()
            (frame,) = scene.bridge.capture(0, scene.sim_time_s)
            return frame.rgb, scene.tick_data()["object_poses"]

    rgb_a, poses_a = run(3)
    rgb_b, poses_b = run(3)
    _, poses_c = run(4)
    np.testing.assert_array_equal(rgb_a, rgb_b)
    np.testing.assert_array_equal(poses_a, poses_b)
    assert not np.allclose(poses_a, poses_c)


def test_record_episode_reads_back(tmp_path):
    with make_scene("street", **SIZE) as scene:
        path = record_episode(scene, 0.25, tmp_path / "run", progress=False)
        renderer = scene.bridge.renderer
    episode = Episode(path)
    assert episode.complete and len(episode) == 4 and episode.fps == 16.0
    assert episode.manifest["simulator"] == "pybullet" and episode.manifest["scene"] == "street"
    assert episode.manifest["seed"] == 0
    meta = episode.manifest["meta"]
    assert meta["renderer"] == renderer
    assert meta["rig"]["chase"]["body"] == "racecar" and meta["rig"]["lidar"]["link"] == -1
    assert episode.class_names[0] == "background" and "ego_car" in episode.class_names.values()
    ticks = list(episode)
    assert [t.index for t in ticks] == [0, 1, 2, 3]
    assert [t.sim_time_s for t in ticks] == pytest.approx([0, 1 / 16, 2 / 16, 3 / 16])
    chase = ticks[2].frames["chase"]
    assert chase.depth_m.shape == (54, 96) and chase.instance_id.dtype == np.int32
    assert chase.ego_to_world is not None
    assert ticks[2].frames["lidar"].points_world.shape[1] == 3
    assert ticks[2].data["ego_pose"].shape == (7,)
    assert episode.stack("chase", "rgb").shape == (4, 54, 96, 3)


def test_bad_scene_input_gets_clear_errors(tmp_path):
    with pytest.raises(SpecError, match=r"'kitchen' is not known.*street.*tabletop"):
        make_scene("kitchen")
    with pytest.raises(SpecError, match="not one of"):
        make_scene("tabletop", renderer="opengl")
    assert sorted(SCENES) == ["street", "tabletop"]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with make_scene("tabletop", renderer="tiny", width=32, height=18) as scene:
        with pytest.raises(SpecError, match="seconds"):
            record_episode(scene, 0.0, tmp_path / "run")
        with pytest.raises(FileExistsError, match="not empty"):
            record_episode(scene, 0.1, tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
