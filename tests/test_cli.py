"""The command line end to end on a tiny live capture, and its bad-input messages."""

import json

import pytest
from typer.testing import CliRunner

from cosmos_sim import Episode
from cosmos_sim.cli import app

runner = CliRunner()
SMALL = ["--width", "160", "--height", "88"]  # the 16:9 bucket's aspect at 1/8 size


@pytest.fixture(scope="module")
def street_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "street"
    result = runner.invoke(
        app,
        ["capture", "--sim", "pybullet", "--scene", "street", "--seconds", "0.3", "--out", str(out)]
        + SMALL,
    )
    assert result.exit_code == 0, result.output
    return out


def test_capture_records_a_readable_episode(street_run):
    episode = Episode(street_run)
    assert episode.complete and len(episode) >= 2
    assert episode.manifest["simulator"] == "pybullet"
    assert episode.lidars, "the street scene carries a LiDAR"


def test_controls_writes_every_requested_video_and_both_specs(street_run, tmp_path):
    out = tmp_path / "clips"
    result = runner.invoke(
        app, ["controls", str(street_run), "--out", str(out), "--modalities", "depth,seg,lidar"]
    )
    assert result.exit_code == 0, result.output
    camera_dirs = [p for p in out.iterdir() if p.is_dir()]
    assert camera_dirs
    for cam in camera_dirs:
        names = {p.name for p in cam.iterdir()}
        assert {"rgb.mp4", "depth.mp4", "seg.mp4", "lidar.mp4"} <= names
        assert {"transfer25.json", "transfer1.json", "seg_palette.json"} <= names
        assert "edge.mp4" not in names
        spec = json.loads((cam / "transfer25.json").read_text())
        assert set(spec) >= {"name", "prompt", "video_path", "depth", "seg"}
        assert "edge" not in spec
    assert (out / "transfer25_batch.jsonl").is_file()


def test_unknown_scene_names_the_known_ones(tmp_path):
    result = runner.invoke(app, ["capture", "--scene", "moon", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "moon" in result.output and "tabletop" in result.output and "street" in result.output


def test_unknown_simulator_is_refused(tmp_path):
    result = runner.invoke(app, ["capture", "--sim", "gazebo", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "--sim 'gazebo' is not known" in result.output


def test_unknown_modality_names_the_known_ones(street_run, tmp_path):
    result = runner.invoke(
        app, ["controls", str(street_run), "--out", str(tmp_path / "c"), "--modalities", "thermal"]
    )
    assert result.exit_code == 2
    assert "thermal" in result.output and "depth" in result.output


def test_non_empty_output_is_refused_and_left_untouched(street_run, tmp_path):
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    result = runner.invoke(app, ["controls", str(street_run), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "not empty" in result.output
    assert keep.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_controls_on_a_folder_that_is_not_an_episode(tmp_path):
    result = runner.invoke(app, ["controls", str(tmp_path), "--out", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert "episode.json" in result.output


def test_camera_without_a_cosmos_bucket_is_refused(tmp_path):
    run = tmp_path / "square_ish"
    result = runner.invoke(
        app,
        [
            "capture",
            "--scene",
            "tabletop",
            "--seconds",
            "0.1",
            "--width",
            "100",
            "--height",
            "37",
            "--out",
            str(run),
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["controls", str(run), "--out", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert "100" in result.output and "1280" in result.output


def test_demo_runs_the_whole_loop_and_writes_the_documented_layout(tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--seconds", "0.25"])
    assert result.exit_code == 0, result.output
    camera = out / "clips" / "front"
    for name in ("rgb", "depth", "seg", "edge", "vis"):
        assert (camera / f"{name}.mp4").stat().st_size > 0
    for name in ("transfer25.json", "transfer1.json", "seg_palette.json", "contact_sheet.png"):
        assert (camera / name).is_file()
    coco = json.loads((out / "dataset" / "annotations.json").read_text())
    assert coco["images"] and coco["annotations"] and coco["categories"]
    manifest = json.loads((out / "transfer" / "transfer.json").read_text())
    assert manifest["backend"] == "appearance"
    assert "embedded appearance backend (not Cosmos)" in result.output


def test_demo_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "old.txt").write_text("keep")
    result = runner.invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "not empty" in result.output
    assert (tmp_path / "old.txt").read_text() == "keep"


def test_transfer_refuses_options_its_backend_would_ignore(tmp_path):
    result = runner.invoke(
        app, ["transfer", str(tmp_path), "--out", str(tmp_path / "o"), "--model", "/m"]
    )
    assert result.exit_code == 2
    assert "--model does not apply to --backend appearance" in result.output
    assert not (tmp_path / "o").exists()
