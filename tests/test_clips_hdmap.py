"""The hdmap modality of `write_clips`: a CARLA capture (through the server test double) with
its map.xodr, a non-CARLA episode given `xodr=`, and the errors when there is no map."""

from __future__ import annotations

import json
from pathlib import Path

import carla
import cv2
import numpy as np
import pytest
from fakes import carla_double as double
from fakes.transfer25_config import load_spec_file
from typer.testing import CliRunner

from cosmos_sim import CameraSpec, Episode, EpisodeWriter, SensorFrame
from cosmos_sim.bridges import carla as bridge
from cosmos_sim.bridges.opendrive import compile_map
from cosmos_sim.cli import app
from cosmos_sim.controls import hdmap
from cosmos_sim.controls.clips import CONTACT_SHEET_CELL_PX, write_clips
from cosmos_sim.types import SpecError
from cosmos_sim.video import read_video, scale_intrinsics, video_info

STREET = Path(__file__).parent / "data" / "two_way_street.xodr"
BUCKET = (1280, 704)  # the 16:9 bucket of the 64×36 cameras below
RIG = """
fps: 10
ego: {blueprint: vehicle.lincoln.mkz_2020, autopilot: true}
sensors:
  - {name: front, type: camera, outputs: [rgb, depth, semantic, instance],
     width: 64, height: 36, fov_deg: 90, transform: {x: 1.5, z: 1.7}}
"""


def _white(frame: np.ndarray) -> np.ndarray:
    """Pixels of a faded v3 white lane line: equal channels, clearly lit."""
    r, g, b = (frame[..., k].astype(int) for k in range(3))
    return (r == g) & (g == b) & (r > 100)


def _yellow(frame: np.ndarray) -> np.ndarray:
    """Pixels of a faded v3 yellow lane line: red equals green, no blue."""
    r, g, b = (frame[..., k].astype(int) for k in range(3))
    return (r == g) & (b == 0) & (r > 100)


def _bluish(frame: np.ndarray) -> np.ndarray:
    """The v3 Car box gradient runs dark blue -> light blue."""
    r, b = frame[..., 0].astype(int), frame[..., 2].astype(int)
    return b > r + 100


@pytest.fixture(scope="module")
def carla_clips(tmp_path_factory):
    """A CARLA episode captured through the server double (map.xodr saved), clips by default."""
    root = tmp_path_factory.mktemp("carla_hdmap")
    (root / "rig.yaml").write_text(RIG)
    world = double.FakeWorld()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(double.FakeClient, "world", world, raising=False)
        mp.setattr(double.FakeClient, "traffic_manager", double.FakeTrafficManager(), False)
        mp.setattr(carla, "Client", double.FakeClient)
        episode = bridge.capture_episode(
            root / "run", rig=root / "rig.yaml", seconds=0.3, timeout_s=1.0, progress=False
        )
    world.join()
    result = write_clips(episode, root / "clips", seed=5, progress=False)
    return Episode(episode), root / "clips", result


def test_hdmap_is_written_by_default_for_an_episode_with_its_map(carla_clips):
    episode, out, result = carla_clips
    assert (episode.path / "map.xodr").is_file()
    videos = result["cameras"]["front"]["videos"]
    assert set(videos) == {"rgb", "depth", "seg", "edge", "vis", "hdmap"}
    info = video_info(out / "front" / "hdmap.mp4")
    assert (info["width"], info["height"], info["frames"], info["fps"]) == (*BUCKET, 5, 16)
    manifest = json.loads((out / "clips.json").read_text())
    assert manifest["modalities"][-1] == "hdmap"
    assert manifest["hdmap"]["map"] == str((episode.path / "map.xodr").absolute())
    assert manifest["hdmap"]["version"] == "v3"
    assert not any("hdmap" in note for note in result["notes"])


def test_hdmap_frames_are_the_renderer_s_frames_of_each_tick_bit_exact(carla_clips):
    episode, out, result = carla_clips
    frames, _ = read_video(out / "front" / "hdmap.mp4")
    scene = hdmap.compile_scene(compile_map(episode.path / "map.xodr").geometry)
    cam = episode.cameras["front"]
    for k, tick_index in enumerate(result["source_ticks"]):
        tick = episode[int(tick_index)]
        front = tick.frames["front"]
        K = scale_intrinsics(front.K, (cam.width, cam.height), BUCKET)
        dynamic = hdmap.DynamicState.from_tick_data(tick.data)
        want = hdmap.render_hdmap(scene, K, front.cam_to_world, *BUCKET[::-1], dynamic)
        np.testing.assert_array_equal(frames[k], want)
    # The frames hold v3 lane-line colours, and the other car from the tick's dynamic state.
    assert _white(frames[0]).sum() > 2000 and _yellow(frames[0]).sum() > 200
    static = hdmap.render_hdmap(scene, K, front.cam_to_world, *BUCKET[::-1], hdmap.DynamicState())
    (box,) = tick.data["boxes"]  # the last tick's other car: drawn where its centre projects
    centre = np.linalg.inv(front.cam_to_world) @ [*np.mean(box["corners"], axis=0), 1.0]
    u, v = np.round((K @ centre[:3])[:2] / centre[2]).astype(int)
    assert _bluish(frames[-1][v - 2 : v + 3, u - 2 : u + 3]).all()
    assert not _bluish(static[v - 2 : v + 3, u - 2 : u + 3]).any()


def test_hdmap_is_in_the_transfer1_spec_only(carla_clips, tmp_path, monkeypatch):
    _, out, _ = carla_clips
    spec1 = json.loads((out / "front" / "transfer1_av.json").read_text())
    assert spec1["hdmap"] == {
        "input_control": str((out / "front" / "hdmap.mp4").absolute()),
        "control_weight": 1.0,
    }
    spec25 = json.loads((out / "front" / "transfer25.json").read_text())
    assert "hdmap" not in spec25 and {"edge", "depth", "vis", "seg"} <= set(spec25)
    monkeypatch.chdir(tmp_path)
    (parsed,) = load_spec_file(out / "front" / "transfer25.json")  # extra="forbid" parser
    assert parsed.seed == 5


def test_hdmap_is_a_column_of_the_contact_sheet(carla_clips):
    _, out, _ = carla_clips
    sheet = cv2.imread(str(out / "front" / "contact_sheet.png"))[..., ::-1]
    pad, label_w = 4, 110  # imaging.image_grid's layout
    columns = 1 + 5  # rgb, depth, seg, edge, vis, hdmap
    assert sheet.shape[1] == label_w + columns * (CONTACT_SHEET_CELL_PX + pad) + pad
    x0 = label_w + pad + 5 * (CONTACT_SHEET_CELL_PX + pad)
    cell = sheet[:, x0 : x0 + CONTACT_SHEET_CELL_PX]
    frames, _ = read_video(out / "front" / "hdmap.mp4")
    ch = round(BUCKET[1] * CONTACT_SHEET_CELL_PX / BUCKET[0])
    shrunk = cv2.resize(frames[0], (CONTACT_SHEET_CELL_PX, ch), interpolation=cv2.INTER_AREA)
    # Frame 0's cell is the shrunk first hdmap frame (below the 22 px label row and the pad).
    top = 22 + pad
    assert _white(shrunk).sum() > 100
    np.testing.assert_array_equal(cell[top : top + ch], shrunk)


def _street_episode(path: Path, ticks: int = 3) -> Path:
    """A non-CARLA episode: a camera 1.5 m up on lane -1's centre (y = -1.75 m) of
    two_way_street.xodr, driving along +x; no map.xodr in the folder."""
    cam = CameraSpec("front", 64, 36, fov_deg=90.0)
    with EpisodeWriter(path, cameras=[cam], fps=10.0, simulator="pybullet") as writer:
        for i in range(ticks):
            pose = np.eye(4)  # OpenCV axes: x right = -y, y down = -z, z forward = +x
            pose[:3, 0], pose[:3, 1], pose[:3, 2] = (0, -1, 0), (0, 0, -1), (1, 0, 0)
            pose[:3, 3] = (20.0 + i, -1.75, 1.5)
            frame = SensorFrame(
                "front", i, i / 10.0, pose, camera=cam,
                rgb=np.full((36, 64, 3), 90, np.uint8),
                depth_m=np.full((36, 64), 10.0, np.float32),
                instance_id=np.ones((36, 64), np.int32),
            )  # fmt: skip
            writer.append([frame])
    return path


def test_xodr_gives_a_non_carla_episode_its_hdmap(tmp_path):
    episode = _street_episode(tmp_path / "ep")
    result = write_clips(
        episode, tmp_path / "out", modalities=["hdmap"], xodr=STREET, progress=False
    )
    frames, _ = read_video(tmp_path / "out" / "front" / "hdmap.mp4")
    assert frames.shape == (5, BUCKET[1], BUCKET[0], 3)
    # On lane -1 the nearest line left of the lane centre is the yellow centre line (y = 0),
    # the nearest right of it the white broken divider (y = -3.5); 5.5 m ahead both are
    # painted (dashes 3 m on, 9 m off from s = 0; the camera is at s = 20).
    K = scale_intrinsics(CameraSpec("front", 64, 36, fov_deg=90.0).intrinsics, (64, 36), BUCKET)
    u, v = (K @ np.array([0.0, 1.5, 5.5]))[:2] / 5.5
    row = frames[0, int(round(v))]
    yellow, white = np.flatnonzero(_yellow(row)), np.flatnonzero(_white(row))
    left_yellow, right_white = yellow[yellow < u], white[white > u]
    assert left_yellow.size and right_white.size
    assert left_yellow.max() > max(white[white < u], default=-1)
    assert right_white.min() < min(yellow[yellow > u], default=BUCKET[0])
    assert json.loads((tmp_path / "out" / "clips.json").read_text())["hdmap"]["map"] == str(
        STREET.absolute()
    )
    assert "transfer25" not in result["cameras"]["front"]  # hdmap alone has no 2.5 spec


def test_asking_for_hdmap_without_a_map_names_the_fix(tmp_path):
    episode = _street_episode(tmp_path / "ep", ticks=1)
    with pytest.raises(SpecError, match=r"'hdmap'.*no OpenDRIVE map \(map\.xodr.*xodr="):
        write_clips(episode, tmp_path / "out", modalities=["edge", "hdmap"], progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(SpecError, match=r"xodr='nowhere\.xodr': no such file"):
        write_clips(episode, tmp_path / "out", modalities=["hdmap"], xodr="nowhere.xodr")
    result = write_clips(episode, tmp_path / "out", modalities=None, progress=False)
    assert "hdmap" not in result["cameras"]["front"]["videos"]
    assert any(note.startswith("hdmap skipped") for note in result["notes"])


def test_controls_command_takes_xodr(tmp_path):
    episode = _street_episode(tmp_path / "ep", ticks=1)
    runner = CliRunner()
    args = ["controls", str(episode), "--modalities", "hdmap"]
    refused = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert refused.exit_code != 0 and "--xodr" in refused.output
    done = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--xodr", str(STREET)])
    assert done.exit_code == 0, done.output
    assert video_info(tmp_path / "b" / "front" / "hdmap.mp4")["frames"] == 2
