"""Augmentation during a run: the Augmenter, its overflow policies, `capture --augment`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from cosmos_sim.augment import Augmenter
from cosmos_sim.augment.writer import FOLDER, MANIFEST, check_consistent, read_labels
from cosmos_sim.cli import app
from cosmos_sim.dataset import instance_annotations
from cosmos_sim.episode import Episode
from cosmos_sim.transfer.base import BackendError, TickFrame, register_backend
from cosmos_sim.types import CameraSpec, SensorFrame, SpecError

runner = CliRunner()
SIZE = ["--width", "96", "--height", "54"]


@pytest.fixture(scope="module")
def augmented_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("aug") / "run"
    args = ["capture", "--out", str(out), "--sim", "pybullet", "--scene", "tabletop"]
    result = runner.invoke(app, [*args, "--seconds", "0.5", *SIZE, "--augment", "appearance"])
    assert result.exit_code == 0, result.output
    assert "8 of 8 ticks, 0 chunks skipped" in result.output
    return out


def _labels(frame: SensorFrame) -> list[dict]:
    return instance_annotations(frame.instance_id, frame.class_id)


def test_capture_augment_writes_one_frame_per_tick_with_that_ticks_labels(augmented_run):
    episode = Episode(augmented_run)
    assert episode.complete and len(episode) == 8
    folder = augmented_run / FOLDER
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["complete"] and manifest["backend"] == "appearance"
    assert manifest["stats"]["frames_out"] == 8 and manifest["stats"]["ticks_skipped"] == []
    assert check_consistent(folder) == 8
    lines = read_labels(folder, "front")
    assert [line["tick"] for line in lines] == list(range(8))
    for line in lines:
        tick = episode[line["tick"]]
        frame = tick.frames["front"]
        assert line["annotations"] == _labels(frame)  # the tick's own ground truth
        assert line["sim_time_s"] == tick.sim_time_s
        np.testing.assert_allclose(line["cam_to_world"], frame.cam_to_world)
        image = cv2.imread(str(folder / line["file"]))
        assert image.shape == (54, 96, 3)
    coco = json.loads((folder / "annotations.json").read_text())
    assert [im["tick"] for im in coco["images"]] == list(range(8))
    assert {c["name"] for c in coco["categories"]} == set(episode.class_names.values()) - {
        episode.class_names.get(0)
    }
    assert len(coco["annotations"]) == sum(len(line["annotations"]) for line in lines)


def test_each_augmented_frame_is_the_render_of_its_own_tick(augmented_run):
    """Re-render the episode's ticks offline: frame k on disk matches tick k best."""
    episode = Episode(augmented_run)
    with Augmenter("appearance", chunk_frames=8, resolution="bucket") as augmenter:
        for tick in episode:
            augmenter.submit(tick.frames)
        augmenter.close()
        rendered = {a.tick: a.frame.astype(np.float32) for a in augmenter.poll()}
    for line in read_labels(augmented_run / FOLDER, "front"):
        on_disk = cv2.imread(str(augmented_run / FOLDER / line["file"]))[..., ::-1]
        errors = {t: np.abs(on_disk - f).mean() for t, f in rendered.items()}
        assert min(errors, key=errors.get) == line["tick"]
        assert errors[line["tick"]] < 4  # only JPEG's loss


@pytest.mark.parametrize("backend, says", [("nosuch", "not a transfer backend"),
                                            ("diffusers", "needs ['model']")])  # fmt: skip
def test_capture_refuses_a_backend_it_cannot_build_before_recording(tmp_path, backend, says):
    out = tmp_path / "run"
    result = runner.invoke(app, ["capture", "--out", str(out), *SIZE, "--augment", backend])
    assert result.exit_code == 2 and says in result.output
    assert not out.exists()


# -- a slow stand-in backend: its session waits at a gate the test opens ----------------


class GatedBackend:
    """A backend whose session copies the RGB back, each push waiting for `gate`."""

    name = "gated"
    needs = ()
    gate = threading.Event()
    pushing = threading.Event()

    def describe(self) -> dict:
        return {"model": None}

    def start(self, options):
        return GatedSession()


class GatedSession:
    def __init__(self) -> None:
        self.ready: list[TickFrame] = []

    def push(self, chunk) -> None:
        GatedBackend.pushing.set()
        assert GatedBackend.gate.wait(timeout=30), "the test never opened the gate"
        self.ready += [TickFrame(int(t), f) for t, f in zip(chunk.ticks, chunk.rgb, strict=True)]

    def pull(self, wait: bool = False):
        ready, self.ready = self.ready, []
        return ready

    def close(self) -> None:
        pass


register_backend("gated", GatedBackend)
CAM = CameraSpec("cam", 32, 18, fov_deg=60)


def _tick(index: int) -> list[SensorFrame]:
    rgb = np.full((18, 32, 3), index, np.uint8)
    return [SensorFrame("cam", index, index / 16, np.eye(4), camera=CAM, rgb=rgb)]


@pytest.fixture()
def gate():
    GatedBackend.gate.clear()
    GatedBackend.pushing.clear()
    yield GatedBackend.gate
    GatedBackend.gate.set()


def test_skip_policy_drops_and_counts_chunks_while_the_backend_is_busy(gate):
    augmenter = Augmenter(
        "gated", chunk_frames=2, max_chunks_queued=1, overflow="skip", resolution="camera"
    )
    for index in range(2):  # chunk 1: the worker takes it and waits at the gate
        augmenter.submit(_tick(index))
    assert GatedBackend.pushing.wait(timeout=30)
    for index in range(2, 6):  # chunk 2 waits in the queue, chunk 3 finds it full
        augmenter.submit(_tick(index))
    gate.set()
    stats = augmenter.close()
    frames = augmenter.poll()
    assert [a.tick for a in frames] == [0, 1, 2, 3]
    assert stats.chunks_skipped == 1 and stats.ticks_skipped == [4, 5]
    assert stats.frames_out + len(stats.ticks_skipped) == stats.ticks_in == 6
    for item in frames:  # each output still carries its own tick
        assert np.all(item.frame == item.tick) and item.labels.frame_index == item.tick


def test_block_policy_holds_the_simulator_until_the_backend_has_room(gate):
    augmenter = Augmenter(
        "gated", chunk_frames=2, max_chunks_queued=1, overflow="block", resolution="camera"
    )
    for index in range(4):
        augmenter.submit(_tick(index))
    assert GatedBackend.pushing.wait(timeout=30)
    third = threading.Thread(target=lambda: [augmenter.submit(_tick(i)) for i in (4, 5)])
    third.start()
    third.join(timeout=0.5)
    assert third.is_alive(), "submit returned while the queue was full and the backend busy"
    gate.set()
    third.join(timeout=30)
    stats = augmenter.close()
    assert [a.tick for a in augmenter.poll()] == list(range(6))
    assert stats.chunks_skipped == 0 and stats.ticks_skipped == []
    assert stats.submit_wait_s > 0 and len(stats.lag_s) == 6


def test_misuse_is_refused_naming_the_fix(gate):
    gate.set()
    with pytest.raises(SpecError, match="overflow"):
        Augmenter("gated", overflow="drop")
    with pytest.raises(SpecError, match="chunk_frames"):
        Augmenter("gated", chunk_frames=0)
    with pytest.raises(SpecError, match="not known"):
        Augmenter("no-such-backend")
    with pytest.raises(SpecError, match="pass its name"):
        Augmenter(GatedBackend(), worker="process")
    augmenter = Augmenter("gated", chunk_frames=4, resolution="camera")
    augmenter.submit(_tick(3))
    with pytest.raises(SpecError, match="in order"):
        augmenter.submit(_tick(3))
    with pytest.raises(SpecError, match="no camera frame"):
        augmenter.submit([])
    augmenter.close()
    with pytest.raises(SpecError, match="after close"):
        augmenter.submit(_tick(4))


class WrongTickBackend(GatedBackend):
    def start(self, options):
        session = GatedSession()
        push = session.push

        def shifted(chunk):
            push(chunk)
            session.ready = [TickFrame(f.tick + 100, f.frame) for f in session.ready]

        session.push = shifted
        return session


def test_a_session_returning_ticks_it_was_not_given_fails_the_run(gate):
    gate.set()
    register_backend("wrong-tick", WrongTickBackend)
    augmenter = Augmenter("wrong-tick", chunk_frames=1, resolution="camera")
    augmenter.submit(_tick(0))
    with pytest.raises(BackendError, match="not pushed"):
        augmenter.close()


def test_a_process_worker_augments_the_same_frames_as_a_thread(augmented_run):
    episode = Episode(augmented_run)
    results = {}
    for worker in ("thread", "process"):
        with Augmenter("appearance", chunk_frames=4, resolution="camera", worker=worker) as aug:
            for tick in episode.ticks(range(4)):
                aug.submit(tick.frames)
            aug.close()
            results[worker] = aug.poll()
    assert [a.tick for a in results["process"]] == [0, 1, 2, 3]
    for a, b in zip(results["thread"], results["process"], strict=True):
        np.testing.assert_array_equal(a.frame, b.frame)
        np.testing.assert_array_equal(a.labels.instance_id, b.labels.instance_id)


def test_killing_the_run_leaves_a_readable_episode_and_consistent_augmented_folder(tmp_path):
    out = tmp_path / "run"
    command = [str(Path(sys.executable).parent / "cosmos-sim"), "capture", "--out", str(out),
               "--seconds", "30", *SIZE, "--augment", "appearance"]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    labels = out / FOLDER / "front" / "labels.jsonl"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if labels.is_file() and labels.read_text().count("\n") >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the simulator and its augment worker
        proc.wait()
    episode = Episode(out)
    assert not episode.complete and len(episode) >= 3
    count = check_consistent(out / FOLDER)
    assert count >= 3
    for line in read_labels(out / FOLDER, "front"):
        assert line["tick"] < len(episode)
        assert line["annotations"] == _labels(episode[line["tick"]].frames["front"])


# -- CARLA: the same option on the CARLA path, against the test double of the server ------

CARLA_RIG = """
fps: 10
ego: {blueprint: vehicle.lincoln.mkz_2020, autopilot: true}
sensors:
  - {name: front, type: camera, outputs: [rgb, depth, semantic, instance],
     width: 64, height: 36, fov_deg: 90, transform: {x: 1.5, z: 1.7}}
"""


@pytest.fixture()
def carla_server(monkeypatch: pytest.MonkeyPatch):
    import carla
    from fakes import carla_double as double

    world = double.FakeWorld()
    monkeypatch.setattr(double.FakeClient, "world", world, raising=False)
    monkeypatch.setattr(double.FakeClient, "traffic_manager", double.FakeTrafficManager(), False)
    monkeypatch.setattr(carla, "Client", double.FakeClient)
    yield world
    world.join()


def test_capture_augment_on_the_carla_path(carla_server, tmp_path):
    rig = tmp_path / "rig.yaml"
    rig.write_text(CARLA_RIG)
    out = tmp_path / "run"
    args = ["capture", "--out", str(out), "--sim", "carla", "--rig", str(rig), "--seconds", "0.5"]
    result = runner.invoke(app, [*args, "--timeout", "1", "--augment", "appearance"])
    assert result.exit_code == 0, result.output
    episode = Episode(out)
    assert episode.complete and len(episode) == 5
    lines = read_labels(out / FOLDER, "front")
    assert [line["tick"] for line in lines] == list(range(5))
    for line in lines:
        frame = episode[line["tick"]].frames["front"]
        assert line["annotations"] == _labels(frame)
        assert line["sim_time_s"] == frame.sim_time_s
    assert check_consistent(out / FOLDER) == 5
