"""Bad input found by the reliability pass: each case named, nothing half-written kept."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from test_clips import camera_pose, synthetic_episode
from typer.testing import CliRunner

from cosmos_sim import CameraSpec, EpisodeWriter, LidarSpec, SensorFrame
from cosmos_sim.cli import app
from cosmos_sim.controls.clips import write_clips
from cosmos_sim.dataset import AlignmentError
from cosmos_sim.episode import DamagedTickError, Episode, EpisodeError
from cosmos_sim.pipeline import run_pipeline
from cosmos_sim.types import SpecError

runner = CliRunner()


def _tick(episode, index):
    return episode / "ticks" / f"{index:06d}.npz"


def _damage(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zero-byte":
        path.write_bytes(b"")
    else:  # one flipped bit inside the compressed arrays
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(flipped))


@pytest.mark.parametrize("how", ["truncated", "zero-byte", "bit-flipped"])
def test_a_damaged_tick_is_named_and_leaves_no_output_folder(tmp_path, how):
    episode = synthetic_episode(tmp_path / "ep", ticks=4, lidar=False)
    _damage(_tick(episode, 2), how)
    with pytest.raises(DamagedTickError) as err:
        write_clips(episode, tmp_path / "clips", modalities=["depth", "seg", "edge"],
                    progress=False)  # fmt: skip
    assert err.value.path == _tick(episode, 2) and "000002.npz" in str(err.value)
    assert "--skip-damaged" in err.value.fix
    assert not (tmp_path / "clips").exists()


def test_skip_damaged_shows_the_tick_before_and_lists_it(tmp_path):
    episode = synthetic_episode(tmp_path / "ep", ticks=4, lidar=False)
    _damage(_tick(episode, 2), "truncated")
    result = write_clips(
        episode, tmp_path / "clips", modalities=["seg"], skip_damaged=True, progress=False
    )
    manifest = json.loads((tmp_path / "clips" / "clips.json").read_text())
    assert manifest["damaged_ticks"] == [2] and result["damaged_ticks"] == [2]
    assert manifest["source_ticks"] == [0, 1, 1, 3]  # the dataset takes tick 1's labels there
    assert any("damaged ticks [2]" in note for note in result["notes"])


def test_skip_damaged_at_the_start_shows_the_first_good_tick(tmp_path):
    episode = synthetic_episode(tmp_path / "ep", ticks=3, lidar=False)
    _damage(_tick(episode, 0), "zero-byte")
    write_clips(episode, tmp_path / "clips", modalities=["edge"], skip_damaged=True,
                progress=False)  # fmt: skip
    manifest = json.loads((tmp_path / "clips" / "clips.json").read_text())
    assert manifest["source_ticks"] == [1, 1, 2] and manifest["damaged_ticks"] == [0]


def test_cli_names_the_damaged_tick_and_lists_skipped_ones(tmp_path):
    episode = synthetic_episode(tmp_path / "ep", ticks=3, lidar=False)
    _damage(_tick(episode, 1), "truncated")
    args = ["controls", str(episode), "--modalities", "edge", "--out"]
    failed = runner.invoke(app, [*args, str(tmp_path / "a")])
    assert failed.exit_code == 2, failed.output
    assert "000001.npz" in failed.output and "--skip-damaged" in failed.output
    assert not (tmp_path / "a").exists()
    kept = runner.invoke(app, [*args, str(tmp_path / "b"), "--skip-damaged"])
    assert kept.exit_code == 0, kept.output
    assert "damaged ticks [1]" in kept.output


def test_a_failed_run_empties_an_output_folder_that_existed_empty(tmp_path):
    episode = synthetic_episode(tmp_path / "ep", ticks=3, lidar=False)
    _damage(_tick(episode, 2), "truncated")
    (tmp_path / "clips").mkdir()
    with pytest.raises(DamagedTickError):
        write_clips(episode, tmp_path / "clips", modalities=["edge"], progress=False)
    assert (tmp_path / "clips").is_dir() and not any((tmp_path / "clips").iterdir())


def test_dataset_refuses_transfer_output_of_another_episode(tmp_path):
    first = synthetic_episode(tmp_path / "first", ticks=3, lidar=False)
    second = synthetic_episode(tmp_path / "second", ticks=3, lidar=False)  # same length
    made = run_pipeline(first, tmp_path / "run", stages=["controls", "transfer"],
                        modalities=["depth", "seg", "edge"], progress=False)  # fmt: skip
    with pytest.raises(AlignmentError) as err:
        run_pipeline(second, tmp_path / "data", stages=["dataset"], transfer_out=made.transfer)
    assert str(first) in str(err.value) and str(second) in str(err.value)
    assert err.value.field == "episode"
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("name", ["../../x", "/abs", "a/b", "..", ""])
def test_sensor_names_that_are_not_folder_names_are_refused(name):
    with pytest.raises(SpecError) as err:
        CameraSpec(name, 64, 36)
    assert err.value.field == "CameraSpec.name"
    with pytest.raises(SpecError):
        LidarSpec(name)


def test_an_episode_whose_manifest_names_a_camera_outside_the_folder_is_refused(tmp_path):
    episode = synthetic_episode(tmp_path / "ep", ticks=1, lidar=False)
    manifest = json.loads((episode / "episode.json").read_text())
    manifest["cameras"][0]["name"] = "../../escape"
    (episode / "episode.json").write_text(json.dumps(manifest))
    with pytest.raises(SpecError, match="not a usable sensor name"):
        write_clips(episode, tmp_path / "clips", progress=False)
    assert not (tmp_path / "clips").exists() and not (tmp_path.parent / "escape").exists()


def _frame(cam, index=0, **arrays):
    h, w = cam.height, cam.width
    defaults = {
        "rgb": np.zeros((h, w, 3), np.uint8),
        "depth_m": np.full((h, w), 5.0, np.float32),
        "instance_id": np.zeros((h, w), np.int32),
    }
    return SensorFrame(cam.name, index, index / 16, camera_pose(), camera=cam,
                       **{**defaults, **arrays})  # fmt: skip


def test_the_writer_checks_arrays_again_when_it_writes(tmp_path):
    cam = CameraSpec("front", 64, 36)
    with EpisodeWriter(tmp_path / "ep", cameras=[cam], fps=16, simulator="t") as writer:
        writer.append([_frame(cam, 0)])
        frame = _frame(cam, 1)
        frame.depth_m[3, 3] = np.nan  # changed after the frame checked itself
        with pytest.raises(SpecError, match="depth_m: contains NaN"):
            writer.append([frame])
        assert writer.num_ticks == 1
    assert len(Episode(tmp_path / "ep")) == 1  # the reader accepts everything written
    assert not list((tmp_path / "ep" / "ticks").glob(".*.tmp"))


def test_a_full_disk_is_one_line_and_leaves_no_temp_file(tmp_path, monkeypatch):
    import errno

    cam = CameraSpec("front", 64, 36)
    writer = EpisodeWriter(tmp_path / "ep", cameras=[cam], fps=16, simulator="t")
    writer.append([_frame(cam, 0)])

    def full(fh, **_):
        fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full)
    with pytest.raises(OSError) as err:
        writer.append([_frame(cam, 1)])
    assert err.value.errno == errno.ENOSPC and "the 1 ticks before it are kept" in str(err.value)
    assert not list((tmp_path / "ep" / "ticks").glob(".*.tmp"))
    writer.close(complete=False)
    assert Episode(tmp_path / "ep").manifest["num_ticks"] == 1


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: CameraSpec("c", 64, 36, K=np.zeros((3, 3))), "CameraSpec.K"),
        (lambda: CameraSpec("c", True, 36), "CameraSpec.width"),
        (lambda: CameraSpec("c", 64, 36, far_m=float("inf")), None),
        (lambda: LidarSpec(hz=float("inf")), None),
    ],
)
def test_specs_refuse_values_that_fail_later(build, field):
    with pytest.raises(SpecError) as err:
        build()
    assert field is None or err.value.field == field


def test_the_writer_refuses_inf_fps_a_sensor_twice_and_writes_after_close(tmp_path):
    cam = CameraSpec("front", 64, 36)
    with pytest.raises(SpecError, match="finite number"):
        EpisodeWriter(tmp_path / "a", cameras=[cam], fps=float("inf"), simulator="t")
    writer = EpisodeWriter(tmp_path / "b", cameras=[cam], fps=16, simulator="t")
    with pytest.raises(EpisodeError, match="more than once"):
        writer.append([_frame(cam, 0), _frame(cam, 0)])
    writer.append([_frame(cam, 0)])
    writer.close()
    with pytest.raises(EpisodeError, match="is closed"):
        writer.append([_frame(cam, 1)])
    assert Episode(tmp_path / "b").manifest["num_ticks"] == 1


def test_the_cli_shows_a_traceback_for_a_bug_and_one_line_for_bad_input(tmp_path, monkeypatch):
    bad = runner.invoke(app, ["controls", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and bad.output.startswith("error:")

    def bug(*_, **__):
        raise KeyError("a bug, not input")

    monkeypatch.setattr("cosmos_sim.pipeline.run_pipeline", bug)
    crashed = runner.invoke(app, ["controls", str(tmp_path), "--out", str(tmp_path / "o")])
    assert crashed.exit_code == 1 and isinstance(crashed.exception, KeyError)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_capture_finalises_the_episode_and_says_what_it_kept(tmp_path, sig):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from cosmos_sim.cli import main; main()", "capture",
         "--out", str(out), "--seconds", "600", "--width", "128", "--height", "72",
         "--renderer", "tiny"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((out / "ticks").glob("*.npz"))) < 2:
        time.sleep(0.2)
    os.kill(proc.pid, sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    manifest = json.loads((out / "episode.json").read_text())
    kept = len(list((out / "ticks").glob("*.npz")))
    assert manifest["num_ticks"] == kept >= 2 and manifest["complete"] is False
    assert not list((out / "ticks").glob(".*.tmp"))
    assert f"kept {kept} whole ticks" in stderr
