"""The episode format: atomic ticks, readable while written, survives SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cosmos_sim import CameraSpec, Episode, EpisodeError, EpisodeWriter, LidarSpec, SensorFrame

CAM = CameraSpec("front", width=32, height=24, near_m=0.1, far_m=20.0)
LIDAR = LidarSpec("roof", channels=4, points_per_channel=16)


def _frames(index: int) -> list[SensorFrame]:
    rng = np.random.default_rng(index)
    pose = np.eye(4)
    pose[:3, 3] = [index * 0.5, 0.0, 1.0]
    camera = SensorFrame(
        "front",
        index,
        index / 10,
        pose,
        camera=CAM,
        rgb=rng.integers(0, 255, (24, 32, 3), dtype=np.uint8),
        depth_m=rng.uniform(0.1, 20, (24, 32)).astype(np.float32),
        instance_id=rng.integers(0, 5, (24, 32), dtype=np.int32),
        class_id=rng.integers(0, 3, (24, 32), dtype=np.int32),
        extras={"boxes": [[1, 2, 3]]},
    )
    lidar = SensorFrame(
        "roof",
        index,
        index / 10,
        pose,
        lidar=LIDAR,
        points_world=rng.normal(size=(50, 3)).astype(np.float32),
    )
    return [camera, lidar]


def test_episode_round_trips_every_field(tmp_path):
    written = []
    with EpisodeWriter(
        tmp_path / "ep",
        cameras=[CAM],
        lidars=[LIDAR],
        fps=10,
        simulator="test",
        seed=3,
        class_names={1: "cube"},
    ) as writer:
        for i in range(3):
            frames = _frames(i)
            written.append(frames)
            writer.append(frames, data={"action": np.array([0.1 * i, -0.2]), "reward": i * 1.5})
    episode = Episode(tmp_path / "ep")
    assert episode.complete and len(episode) == 3 and episode.fps == 10
    assert episode.class_names == {1: "cube"}
    tick = episode[2]
    assert tick.data["reward"] == 3.0
    np.testing.assert_allclose(tick.data["action"], [0.2, -0.2])
    cam = tick.frames["front"]
    for key in ("rgb", "depth_m", "instance_id", "class_id"):
        np.testing.assert_array_equal(getattr(cam, key), getattr(written[2][0], key))
    np.testing.assert_array_equal(cam.cam_to_world, written[2][0].cam_to_world)
    np.testing.assert_allclose(cam.K, CAM.intrinsics)
    assert cam.extras == {"boxes": [[1, 2, 3]]}
    np.testing.assert_array_equal(tick.frames["roof"].points_world, written[2][1].points_world)
    assert episode.stack("front", "depth_m").shape == (3, 24, 32)


def test_reader_opens_an_episode_while_it_is_written(tmp_path):
    writer = EpisodeWriter(tmp_path / "ep", cameras=[CAM], lidars=[LIDAR], fps=10, simulator="t")
    writer.append(_frames(0))
    writer.append(_frames(1))
    episode = Episode(tmp_path / "ep")
    assert not episode.complete
    assert len(episode) == 2
    assert episode[1].index == 1
    writer.append(_frames(2))
    assert len(episode) == 3
    assert episode[2].index == 2 and episode[-1].index == 2  # a tick added after a read
    writer.close()
    assert Episode(tmp_path / "ep").complete


def test_recording_killed_with_sigkill_loses_at_most_the_tick_in_flight(tmp_path):
    out = tmp_path / "ep"
    ready = tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        import numpy as np, pathlib
        from cosmos_sim import CameraSpec, EpisodeWriter, SensorFrame
        cam = CameraSpec("front", width=320, height=240)
        rng = np.random.default_rng(0)
        writer = EpisodeWriter({str(out)!r}, cameras=[cam], fps=30, simulator="test")
        i = 0
        while True:
            rgb = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
            writer.append([SensorFrame("front", i, i / 30, np.eye(4), camera=cam, rgb=rgb)])
            i += 1
            if i == 5:
                pathlib.Path({str(ready)!r}).touch()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        while not ready.exists():
            assert proc.poll() is None, "the recording process died on its own"
            os.sched_yield()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    episode = Episode(out)
    assert not episode.complete
    assert len(episode) >= 5
    for index, tick in enumerate(episode):
        assert tick.index == index
        assert tick.frames["front"].rgb.shape == (240, 320, 3)


def test_writer_refuses_a_non_empty_folder_and_keeps_its_content(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        EpisodeWriter(tmp_path, cameras=[CAM], fps=10, simulator="t")
    assert (tmp_path / "keep.txt").read_text() == "precious"


def test_writer_refuses_an_unwritable_folder_and_names_it(tmp_path):
    # A folder inside a regular file can never be created (also as root, where chmod
    # would not stop the write); the file is left as it was.
    blocker = tmp_path / "blocker"
    blocker.write_text("precious")
    with pytest.raises(PermissionError, match=r"episode folder .*blocker/run is not writable"):
        EpisodeWriter(blocker / "run", cameras=[CAM], fps=10, simulator="t")
    assert blocker.read_text() == "precious"


def test_writer_rejects_a_frame_whose_size_does_not_match_the_rig(tmp_path):
    small = CameraSpec("front", width=16, height=12)
    frame = SensorFrame(
        "front", 0, 0.0, np.eye(4), camera=small, rgb=np.zeros((12, 16, 3), np.uint8)
    )
    with EpisodeWriter(tmp_path / "ep", cameras=[CAM], fps=10, simulator="t") as writer:
        with pytest.raises(EpisodeError, match=r"rig camera is \(24, 32\)"):
            writer.append([frame])


def test_writer_rejects_unknown_sensors_and_out_of_order_ticks(tmp_path):
    with EpisodeWriter(tmp_path / "ep", cameras=[CAM], lidars=[LIDAR], fps=10, simulator="t") as w:
        with pytest.raises(EpisodeError, match="next tick is 0"):
            w.append(_frames(1))
        other = SensorFrame("rear", 0, 0.0, np.eye(4))
        with pytest.raises(EpisodeError, match="'rear' is not in this episode's rig"):
            w.append([other])


def test_missing_ticks_are_reported_by_index(tmp_path):
    with EpisodeWriter(tmp_path / "ep", cameras=[CAM], lidars=[LIDAR], fps=10, simulator="t") as w:
        for i in range(4):
            w.append(_frames(i))
    (tmp_path / "ep" / "ticks" / "000002.npz").unlink()
    with pytest.raises(EpisodeError, match=r"ticks \[2\] are missing"):
        len(Episode(tmp_path / "ep"))


def test_reader_explains_a_folder_that_is_not_an_episode(tmp_path):
    with pytest.raises(EpisodeError, match="no episode.json"):
        Episode(tmp_path)
    (tmp_path / "episode.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(EpisodeError, match="format is not"):
        Episode(tmp_path)
