"""`cosmos-sim view RUN --save out.rrd`: a recording rerun itself reads back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from cosmos_sim.cli import app

rerun_chunk = pytest.importorskip("rerun.chunk")
runner = CliRunner()


def _ok(*args: str) -> None:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def demo_like_run(tmp_path_factory):
    """A small run laid out as `cosmos-sim demo` lays it out (no learned env)."""
    root = tmp_path_factory.mktemp("run")
    episode, clips, transfer, dataset = (
        root / n for n in ("episode", "clips", "transfer", "dataset")
    )
    _ok("capture", "--out", str(episode), "--seconds", "0.25", "--width", "320", "--height", "176")
    _ok("controls", str(episode), "--out", str(clips))
    _ok("transfer", str(clips), "--out", str(transfer))
    _ok("dataset", str(episode), str(dataset), "--transfer", str(transfer))
    return root


def _columns_by_entity(path):
    store = rerun_chunk.RrdReader(path).stream().to_chunks()
    columns: dict[str, set[str]] = {}
    rows: dict[str, int] = {}
    for chunk in store:
        batch = chunk.to_record_batch()
        columns.setdefault(chunk.entity_path, set()).update(batch.schema.names)
        rows[chunk.entity_path] = rows.get(chunk.entity_path, 0) + chunk.num_rows
    return columns, rows


def test_view_saves_a_recording_with_cameras_images_labels_and_controls(demo_like_run, tmp_path):
    rrd = tmp_path / "run.rrd"
    _ok("view", str(demo_like_run), "--save", str(rrd))
    columns, rows = _columns_by_entity(rrd)
    ticks = len(list((demo_like_run / "episode" / "ticks").glob("*.npz")))

    camera = columns["/world/front"]
    assert any(c.startswith("Pinhole:image_from_camera") for c in camera)
    assert any(c.startswith("Transform3D:") for c in camera)
    assert any(c.startswith("Image:") for c in columns["/world/front/rgb"])
    assert any(c.startswith("DepthImage:") for c in columns["/world/front/depth"])
    assert any(c.startswith("SegmentationImage:") for c in columns["/world/front/instance"])
    assert rows["/world/front/rgb"] == ticks
    clips = json.loads((demo_like_run / "clips" / "clips.json").read_text())
    for control in clips["modalities"]:
        assert rows[f"/clips/front/{control}"] == clips["num_frames"]
    assert rows["/transfer/front"] == clips["num_frames"]
    assert any(c.startswith("Boxes2D:") for c in columns["/dataset/front/labels"])
    assert {"tick", "sim_time"} <= columns["/world/front/rgb"]


def test_view_logs_the_camera_pose_and_intrinsics_of_the_episode(demo_like_run, tmp_path):
    from cosmos_sim.episode import Episode

    rrd = tmp_path / "episode.rrd"
    _ok("view", str(demo_like_run / "episode"), "--save", str(rrd))
    frame = Episode(demo_like_run / "episode")[0].frames["front"]
    for chunk in rerun_chunk.RrdReader(rrd).stream().to_chunks():
        if chunk.entity_path != "/world/front":
            continue
        batch = chunk.to_record_batch()
        if "Pinhole:image_from_camera" in batch.schema.names:
            logged = np.asarray(batch.column("Pinhole:image_from_camera")[0].as_py()).reshape(3, 3)
            # rerun stores the 3×3 column-major
            np.testing.assert_allclose(logged.T, frame.K, rtol=1e-6)
            return
    pytest.fail("no Pinhole logged at /world/front")


def test_view_refuses_a_folder_that_is_not_a_run(tmp_path):
    result = runner.invoke(app, ["view", str(tmp_path), "--save", str(tmp_path / "x.rrd")])
    assert result.exit_code == 2
    assert "episode.json" in result.output
