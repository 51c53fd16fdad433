"""Multiview specs against a mirror of the Cosmos parser, and the Transfer 1 six-view order."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes.transfer25_multiview_config import load_multiview_spec

from cosmos_sim.controls import multiview as mv
from cosmos_sim.controls.spec import write_spec_json
from cosmos_sim.types import SpecError


def _videos(folder: Path, views, stem: str) -> dict[str, Path]:
    out = {}
    for view in views:
        path = folder / f"{stem}_{view}.mp4"
        path.write_bytes(b"\x00")
        out[view] = path
    return out


def test_transfer25_spec_with_inputs_validates_against_the_parser(tmp_path):
    controls = _videos(tmp_path, mv.TRANSFER25_VIEWS, "hdmap")
    inputs = _videos(tmp_path, mv.TRANSFER25_VIEWS, "rgb")
    spec = mv.transfer25_multiview_spec("run", controls, inputs=inputs, relative_to=tmp_path)
    mv.validate_transfer25_multiview(spec, tmp_path)
    parsed = load_multiview_spec(write_spec_json(spec, tmp_path / "spec.json"))
    assert parsed.num_conditional_frames == 1 and parsed.fps == 10
    assert parsed.rear.input_path == inputs["rear"].absolute()


def test_transfer25_spec_rejects_missing_views_and_extras(tmp_path):
    controls = _videos(tmp_path, mv.TRANSFER25_VIEWS[:-1], "hdmap")
    with pytest.raises(SpecError, match=r"missing \['front_tele'\]"):
        mv.transfer25_multiview_spec("run", controls)
    controls = _videos(tmp_path, mv.TRANSFER25_VIEWS, "hdmap")
    spec = mv.transfer25_multiview_spec("run", controls, relative_to=tmp_path)
    with pytest.raises(SpecError, match="unknown field"):
        mv.validate_transfer25_multiview({**spec, "save_view_grid": True}, tmp_path)
    (tmp_path / "hdmap_rear.mp4").unlink()
    with pytest.raises(SpecError, match="rear.control_path"):
        mv.validate_transfer25_multiview(spec, tmp_path)


def test_transfer1_six_view_order(tmp_path):
    videos = _videos(tmp_path, reversed(mv.TRANSFER1_VIEWS), "lidar")
    spec = mv.transfer1_multiview_spec("lidar", videos)
    assert [Path(p).name for p in spec["lidar"]["input_control"]] == [
        f"lidar_{v}.mp4"
        for v in ("front", "front_left", "front_right", "rear", "rear_left", "rear_right")
    ]
    with pytest.raises(SpecError, match="AV sample models take"):
        mv.transfer1_multiview_spec("depth", videos)


def test_rig_views_detects_layouts():
    assert mv.rig_views({v: v for v in mv.TRANSFER25_VIEWS}) == "transfer25"
    assert mv.rig_views({v: v for v in mv.TRANSFER1_VIEWS}) == "transfer1"
    assert mv.rig_views({"front": "front"}) is None
