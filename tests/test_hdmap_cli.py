"""`cosmos-sim hdmap`: any OpenDRIVE file to a video, contact sheet and poses; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fakes.transfer25_multiview_config import load_multiview_spec
from typer.testing import CliRunner

from cosmos_sim.bridges.opendrive import OpenDriveError
from cosmos_sim.cli import app
from cosmos_sim.controls.multiview import transfer1_multiview_spec
from cosmos_sim.types import SpecError
from cosmos_sim.video import read_video
from cosmos_sim.wsm import write_hdmap_clip

DATA = Path(__file__).parent / "data"
STREET = DATA / "two_way_street.xodr"
RIGS = Path(__file__).parents[1] / "examples" / "rigs"
REAL_MAPS = sorted((DATA / "opendrive").glob("*.xodr"))  # real maps, copied from shared/data


def test_hdmap_command_writes_video_sheet_and_poses(tmp_path):
    result = CliRunner().invoke(
        app, ["hdmap", "--xodr", str(STREET), "--out", str(tmp_path / "o"), "--seconds", "1"]
    )
    assert result.exit_code == 0, result.output
    frames, fps = read_video(tmp_path / "o" / "hdmap.mp4")
    assert frames.shape == (16, 704, 1280, 3) and fps == 16
    assert frames.max() > 200  # lines were drawn
    poses = json.loads((tmp_path / "o" / "poses.json").read_text())
    assert len(poses["frames"]) == 16
    ego = np.array([f["ego_to_world"] for f in poses["frames"]])
    # The default trajectory drives lane -1 (y = -1.75) forward at constant speed.
    np.testing.assert_allclose(ego[:, 1, 3], -1.75, atol=1e-3)
    np.testing.assert_allclose(np.diff(ego[:, 0, 3]), 8.0 / 16, atol=1e-3)
    assert (tmp_path / "o" / "contact_sheet.png").stat().st_size > 1000


@pytest.mark.parametrize("xodr", REAL_MAPS, ids=lambda p: p.stem)
def test_hdmap_on_the_real_maps(xodr, tmp_path):
    written = write_hdmap_clip(xodr, tmp_path / "o", seconds=0.5, progress=False)
    frames, _ = read_video(written["video"])
    assert frames.max() > 100


def test_multiview_rig_writes_seven_views_and_a_spec_the_cosmos_parser_accepts(tmp_path):
    rig = RIGS / "transfer25_multiview.yaml"
    written = write_hdmap_clip(STREET, tmp_path / "o", rig=rig, seconds=0.3, progress=False)
    assert written["fps"] == 10
    spec = load_multiview_spec(written["spec"])
    assert spec.fps == 10 and spec.num_conditional_frames == 0
    frames, _ = read_video(spec.front_wide.control_path)
    assert frames.shape[1:] == (720, 1280, 3)


def test_transfer1_six_view_rig_writes_its_spec(tmp_path):
    written = write_hdmap_clip(
        STREET, tmp_path / "o", rig=RIGS / "transfer1_multiview.toml", seconds=0.2, progress=False
    )
    assert "spec" not in written and "view_condition_video" in written["note"]
    views = ("front", "front_left", "front_right", "rear", "rear_left", "rear_right")
    spec = transfer1_multiview_spec(
        "hdmap", {v: tmp_path / "o" / f"hdmap_{v}.mp4" for v in views},
        view_condition_video=tmp_path / "front_rgb.mp4",
    )  # fmt: skip
    paths = spec["hdmap"]["input_control"]
    assert [Path(p).name for p in paths] == [f"hdmap_{v}.mp4" for v in views]
    assert all(Path(p).is_file() for p in paths)


def test_unparseable_opendrive_names_the_file(tmp_path):
    bad = tmp_path / "broken.xodr"
    bad.write_text("<OpenDRIVE><road></OpenDRIVE")
    with pytest.raises(OpenDriveError, match=r"broken.xodr.*as XML it is broken"):
        write_hdmap_clip(bad, tmp_path / "o", progress=False)
    result = CliRunner().invoke(app, ["hdmap", "--xodr", str(bad), "--out", str(tmp_path / "p")])
    assert result.exit_code == 2 and "broken.xodr" in result.output


def test_trajectory_that_leaves_the_road_is_refused(tmp_path):
    traj = tmp_path / "traj.json"
    poses = [{"x": 10.0 + i, "y": -1.75, "yaw_deg": 0.0} for i in range(5)]
    poses.append({"x": 20.0, "y": 40.0, "yaw_deg": 0.0})
    traj.write_text(json.dumps({"fps": 10, "poses": poses}))
    with pytest.raises(OpenDriveError, match=r"pose 5 at \(x=20.00, y=40.00\) leaves the road"):
        write_hdmap_clip(STREET, tmp_path / "o", trajectory=traj, progress=False)


def test_trajectory_file_drives_the_camera(tmp_path):
    traj = tmp_path / "traj.json"
    poses = [{"x": 10.0 + i, "y": 1.75, "yaw_deg": 180.0} for i in range(10)]
    traj.write_text(json.dumps({"fps": 10, "poses": poses}))
    written = write_hdmap_clip(STREET, tmp_path / "o", trajectory=traj, progress=False)
    frames = json.loads(Path(written["poses"]).read_text())["frames"]
    ego = np.array(frames[0]["ego_to_world"])
    np.testing.assert_allclose(ego[:3, 3], [10.0, 1.75, 0.0], atol=1e-6)
    np.testing.assert_allclose(ego[:3, 0], [-1.0, 0.0, 0.0], atol=1e-6)  # yaw 180°


def test_rig_with_unknown_sensor_type_or_field_is_refused(tmp_path):
    rig = tmp_path / "rig.yaml"
    rig.write_text("sensors:\n  - {name: cam, type: radar}\n")
    with pytest.raises(SpecError, match=r"sensor 'cam': unknown sensor type 'radar'"):
        write_hdmap_clip(STREET, tmp_path / "o", rig=rig, progress=False)
    rig.write_text("sensors:\n  - {name: cam, type: camera, focal: 3}\n")
    with pytest.raises(SpecError, match=r"sensor 'cam': unknown field\(s\) \['focal'\]"):
        write_hdmap_clip(STREET, tmp_path / "o2", rig=rig, progress=False)


def test_a_camera_scaled_to_its_bucket_keeps_the_pixel_centre_convention(tmp_path):
    # A 640×360 camera (cx = 319.5, the image centre) is drawn at the 1280×704 bucket. Pixel
    # centres sit at integers, so the optical axis moves to the new centre (319.5 + 0.5) · 2
    # − 0.5 = 639.5, as `controls` scales K for the same camera (video.scale_intrinsics).
    rig = tmp_path / "small.yaml"
    rig.write_text("sensors:\n  - {name: front, type: camera, width: 640, height: 360}\n")
    written = write_hdmap_clip(STREET, tmp_path / "o", rig=rig, seconds=0.1, progress=False)
    K = np.array(json.loads(written["poses"].read_text())["frames"][0]["cameras"]["front"]["K"])
    assert K[0, 2] == pytest.approx(639.5)
    assert K[1, 2] == pytest.approx(351.5)
    assert K[0, 0] == pytest.approx(K[1, 1] * (2.0 / (704 / 360)))


def test_cosmos3_target_writes_wsm_videos_for_the_nvidia_rig(tmp_path):
    result = CliRunner().invoke(
        app,
        ["hdmap", "--xodr", str(STREET), "--out", str(tmp_path / "o"), "--rig", "nvidia",
         "--target", "cosmos3", "--seconds", "0.3"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "o" / "wsm.json").read_text())
    assert manifest["hint"] == "wsm" and manifest["fps"] == 10 and manifest["frames"] == 3
    views = {entry["view"] for entry in manifest["cameras"].values()}
    assert views == {"front_wide", "cross_left", "cross_right", "rear_left", "rear_right",
                     "rear", "front_tele"}  # fmt: skip
    front = manifest["cameras"]["camera_front_wide_120fov"]["control_path"]
    frames, fps = read_video(tmp_path / "o" / front)
    assert frames.shape == (3, 720, 1280, 3) and fps == 10 and frames.max() > 200
    poses = json.loads((tmp_path / "o" / "poses.json").read_text())["frames"][0]["cameras"]
    yaw = {
        name: np.degrees(np.arctan2(cam["cam_to_world"][1][2], cam["cam_to_world"][0][2]))
        for name, cam in poses.items()
    }
    # Optical axes: cross cameras 66° and rear sides 152° to the left/right of forward.
    assert yaw["camera_cross_left_120fov"] == pytest.approx(66, abs=0.5)
    assert yaw["camera_rear_right_70fov"] == pytest.approx(-152, abs=0.5)
