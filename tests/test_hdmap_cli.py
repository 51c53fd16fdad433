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
from cosmos_sim.controls.hdmap_style import ELEMENT_COLORS
from cosmos_sim.controls.multiview import TRANSFER1_VIEWS
from cosmos_sim.types import SpecError
from cosmos_sim.video import read_video
from cosmos_sim.wsm import clip_timing, write_hdmap_clip

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
    # The preview grid is not named like a single-camera clip.
    assert written["video"] == tmp_path / "o" / "hdmap_grid.mp4" and written["video"].is_file()
    assert not (tmp_path / "o" / "hdmap.mp4").exists()


def _palette_share(frames: np.ndarray, colors: list[tuple[int, int, int]]) -> dict:
    """Share of drawn pixels that are each colour, faded with distance (a scalar multiple)."""
    pixels = frames.reshape(-1, 3).astype(float)
    pixels = pixels[pixels.max(axis=1) > 60]  # drawn; dimmer blends are ambiguous
    share = {}
    for color in colors:
        c = np.array(color, float)
        scale = pixels @ c / (c @ c)
        share[color] = float(np.mean(np.abs(pixels - scale[:, None] * c).max(axis=1) <= 3))
    return share


def test_transfer1_target_renders_v1_colours_at_30_fps_with_an_av_spec(tmp_path):
    result = CliRunner().invoke(
        app,
        ["hdmap", "--xodr", str(STREET), "--out", str(tmp_path / "o"), "--target", "transfer1",
         "--seconds", "0.2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "6 frames at 30 fps" in result.output
    frames, fps = read_video(tmp_path / "o" / "hdmap.mp4")
    assert fps == 30 and frames.shape == (6, 704, 1280, 3)
    v1, v3 = ELEMENT_COLORS["v1"], ELEMENT_COLORS["v3"]
    v3_only = [c for c in v3.values() if c not in v1.values()]
    share = _palette_share(frames, [*v1.values(), *v3_only])
    # Lane lines and road boundaries in v1 colours (the rest are anti-aliased blends of the
    # two); no pixel in a v3-only colour such as its magenta boundary.
    assert share[v1["laneline"]] > 0.2 and share[v1["road_boundary"]] > 0.2
    assert sum(share[c] for c in v3_only) == 0.0
    spec = json.loads((tmp_path / "o" / "transfer1_av.json").read_text())
    assert spec["is_av_sample"] is True and spec["sigma_max"] == 80 and spec["fps"] == 30
    assert spec["hdmap"]["input_control"] == str((tmp_path / "o" / "hdmap.mp4").absolute())
    assert not {"vis", "edge", "depth", "seg", "lidar"} & set(spec)
    assert json.loads((tmp_path / "o" / "poses.json").read_text())["version"] == "v1"


def test_each_target_defaults_to_its_models_rate_and_window():
    assert clip_timing("transfer1", None, None) == (30.0, 121)  # Transfer 1's window
    assert clip_timing("transfer1", "transfer1", None) == (30.0, 57)  # per view, six views
    assert clip_timing("transfer1", None, 2.0) == (30.0, 60)
    assert clip_timing("transfer25", None, None) == (16.0, 93)
    assert clip_timing("transfer25", "transfer25", None)[0] == 10.0
    assert clip_timing("cosmos3", None, None) == (10.0, 101)


def test_transfer1_six_view_rig_writes_per_view_specs_and_asks_for_the_front_rgb(tmp_path):
    rig = str(RIGS / "transfer1_multiview.toml")
    args = ["hdmap", "--xodr", str(STREET), "--rig", rig, "--target", "transfer1",
            "--seconds", "0.1"]  # fmt: skip
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "o"
    assert "view_condition_video" in result.output and "--front-rgb" in result.output
    assert not (out / "transfer1_multiview.json").exists()
    assert (out / "hdmap_grid.mp4").is_file() and not (out / "hdmap.mp4").exists()
    for view in TRANSFER1_VIEWS:
        frames, fps = read_video(out / view / "hdmap.mp4")
        assert fps == 30 and frames.shape == (3, 704, 1280, 3)
        spec = json.loads((out / view / "transfer1_av.json").read_text())
        assert spec["fps"] == 30 and spec["is_av_sample"] is True
        assert spec["hdmap"]["input_control"] == str((out / view / "hdmap.mp4").absolute())
    # Given the front RGB, the six-view spec is written in Cosmos' view order.
    front_rgb = out / "front" / "hdmap.mp4"  # any real mp4 stands in for the RGB here
    result = CliRunner().invoke(
        app, [*args, "--out", str(tmp_path / "p"), "--front-rgb", str(front_rgb)]
    )
    assert result.exit_code == 0, result.output
    spec = json.loads((tmp_path / "p" / "transfer1_multiview.json").read_text())
    assert spec["fps"] == 30
    assert spec["view_condition_video"] == str(front_rgb.absolute())
    paths = spec["hdmap"]["input_control"]
    assert paths == [str((tmp_path / "p" / v / "hdmap.mp4").absolute()) for v in TRANSFER1_VIEWS]
    assert "Single2MultiView" in spec["hdmap"]["ckpt_path"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "transfer1", "--version", "v3"], "--version v3 with --target transfer1"),
        (["--target", "cosmos3", "--version", "v1"], "--version v1 with --target cosmos3"),
        (["--target", "transfer2"], "target 'transfer2'"),
        (["--front-rgb", str(STREET)], "--front-rgb (view_condition_video) is for --target"),
        (["--target", "transfer1", "--front-rgb", str(STREET)], "--front-rgb"),
    ],
)
def test_target_refuses_what_its_models_do_not_read(extra, message, tmp_path):
    result = CliRunner().invoke(
        app, ["hdmap", "--xodr", str(STREET), "--out", str(tmp_path / "o"), *extra]
    )
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "o").exists()


def test_transfer1_six_view_front_rgb_must_exist(tmp_path):
    with pytest.raises(SpecError, match=r"--front-rgb .*missing.mp4: no such file"):
        write_hdmap_clip(
            STREET, tmp_path / "o", rig=RIGS / "transfer1_multiview.toml", target="transfer1",
            view_condition_video=tmp_path / "missing.mp4", progress=False,
        )  # fmt: skip


def test_transfer25_target_points_transfer1_rigs_at_the_transfer1_target(tmp_path):
    written = write_hdmap_clip(
        STREET, tmp_path / "o", rig=RIGS / "transfer1_multiview.toml", seconds=0.2, progress=False
    )
    assert "spec" not in written and "--target transfer1" in written["note"]


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
