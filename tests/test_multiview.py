"""Multiview specs against a mirror of the Cosmos parser, and the Transfer 1 six-view order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fakes.transfer1_specs import load_transfer1_spec
from fakes.transfer25_multiview_config import load_multiview_spec

from cosmos_sim.controls import multiview as mv
from cosmos_sim.controls.spec import write_spec_json
from cosmos_sim.types import SpecError
from cosmos_sim.video import write_video


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
    spec = mv.transfer25_multiview_spec(
        "run", controls, inputs=inputs, relative_to=tmp_path, num_frames=29
    )
    mv.validate_transfer25_multiview(spec, tmp_path)
    parsed = load_multiview_spec(write_spec_json(spec, tmp_path / "spec.json"))
    assert parsed.num_conditional_frames == 1 and parsed.fps == 10
    assert parsed.rear.input_path == inputs["rear"].absolute()


def test_transfer25_spec_rejects_missing_views_and_extras(tmp_path):
    controls = _videos(tmp_path, mv.TRANSFER25_VIEWS[:-1], "hdmap")
    with pytest.raises(SpecError, match=r"missing \['front_tele'\]"):
        mv.transfer25_multiview_spec("run", controls, num_frames=29)
    controls = _videos(tmp_path, mv.TRANSFER25_VIEWS, "hdmap")
    spec = mv.transfer25_multiview_spec("run", controls, relative_to=tmp_path, num_frames=29)
    with pytest.raises(SpecError, match="unknown field"):
        mv.validate_transfer25_multiview({**spec, "save_view_grid": True}, tmp_path)
    (tmp_path / "hdmap_rear.mp4").unlink()
    with pytest.raises(SpecError, match="rear.control_path"):
        mv.validate_transfer25_multiview(spec, tmp_path)


def test_transfer1_six_view_order_checkpoint_and_condition_video(tmp_path, monkeypatch):
    videos = _videos(tmp_path, reversed(mv.TRANSFER1_VIEWS), "lidar")
    (tmp_path / "front_rgb.mp4").write_bytes(b"\x00")
    spec = mv.transfer1_multiview_spec(
        "lidar", videos, view_condition_video=tmp_path / "front_rgb.mp4"
    )
    assert [Path(p).name for p in spec["lidar"]["input_control"]] == [
        f"lidar_{v}.mp4"
        for v in ("front", "front_left", "front_right", "rear", "rear_left", "rear_right")
    ]
    # Without ckpt_path upstream loads the single-view AV controlnet; without
    # view_condition_video transfer_multiview.py fails; the model learned 30 fps.
    assert spec["lidar"]["ckpt_path"] == (
        "nvidia/Cosmos-Transfer1-7B-Sample-AV-Single2MultiView/t2w_lidar_control.pt"
    )
    assert spec["fps"] == 30
    monkeypatch.chdir(tmp_path.parent)
    _, args = load_transfer1_spec(write_spec_json(spec, tmp_path / "s.json"), multiview=True)
    assert args["view_condition_video"] == str(tmp_path / "front_rgb.mp4")
    with pytest.raises(SpecError, match="AV sample models take"):
        mv.transfer1_multiview_spec("depth", videos, view_condition_video="x.mp4")
    with pytest.raises(SpecError, match="view_condition_video"):
        mv.transfer1_multiview_spec("lidar", videos, view_condition_video="")


@pytest.mark.parametrize(("frames", "chunks"), [(29, 1), (56, 1), (57, 2), (300, 10)])
def test_long_drives_turn_on_autoregressive_multiview(tmp_path, frames, chunks):
    # Without enable_autoregressive upstream makes one 29-frame chunk whatever the length.
    controls = {}
    for view in mv.TRANSFER25_VIEWS:
        controls[view] = tmp_path / f"hdmap_{view}.mp4"
        write_video(controls[view], np.zeros((frames, 16, 16, 3), np.uint8), 10)
    spec = mv.transfer25_multiview_spec("drive", controls, relative_to=tmp_path)
    mv.validate_transfer25_multiview(spec, tmp_path)
    parsed = load_multiview_spec(write_spec_json(spec, tmp_path / "spec.json"))
    assert parsed.enable_autoregressive == (chunks > 1)
    assert parsed.chunks_for(frames, 10) == chunks  # what upstream's multiview.py runs
    assert frames - 28 < mv.multiview_output_frames(chunks) <= frames
    assert parsed.num_conditional_frames == 0  # no input videos: controls alone


def test_rig_views_detects_layouts():
    assert mv.rig_views({v: v for v in mv.TRANSFER25_VIEWS}) == "transfer25"
    assert mv.rig_views({v: v for v in mv.TRANSFER1_VIEWS}) == "transfer1"
    assert mv.rig_views({"front": "front"}) is None


def test_shipped_rigs_follow_nvidias_av_rig_and_transfer1s_training_rate():
    from cosmos_sim.bridges.carla_rig import load_rig

    rigs = Path(__file__).parents[1] / "examples" / "rigs"
    yaws = {c.name: c.mount.yaw for c in load_rig(rigs / "transfer25_multiview.yaml").cameras}
    # NVIDIA's 7-camera rig (as CARLA's Cosmos bridge mounts it): cross ±66°, rear sides ±152°
    assert (yaws["cross_left"], yaws["cross_right"]) == (-66.0, 66.0)
    assert (yaws["rear_left"], yaws["rear_right"]) == (-152.0, 152.0)
    assert load_rig(rigs / "transfer1_multiview.toml").fps == 30  # Sample-AV trained at 30 fps
