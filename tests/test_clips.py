import json

import numpy as np
import pytest
from fakes.transfer25_config import load_spec_file

from cosmos_sim import CameraSpec, EpisodeWriter, LidarSpec, SensorFrame
from cosmos_sim.controls import load_palette
from cosmos_sim.controls.clips import MODALITIES, write_clips
from cosmos_sim.episode import EpisodeError
from cosmos_sim.types import SpecError
from cosmos_sim.video import read_video, video_info

W, H = 64, 36  # 16:9 -> the 1280×704 bucket
PLANE_M, BOX_M = 20.0, 10.0


def camera_pose() -> np.ndarray:
    """OpenCV camera at the origin looking along world +x (x right = -y, y down = -z)."""
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = (0, -1, 0), (0, 0, -1), (1, 0, 0)
    return pose


def box_columns(tick: int) -> slice:
    return slice(10 + 4 * tick, 30 + 4 * tick)


def synthetic_episode(path, *, ticks=4, fps=16.0, lidar=True, width=W, height=H):
    """A wall at 20 m with a box at 10 m sliding right; a LiDAR hitting the box face."""
    cam = CameraSpec("front", width, height, fov_deg=60.0, far_m=50.0)
    lidars = [LidarSpec("roof")] if lidar else []
    K = cam.intrinsics
    with EpisodeWriter(path, cameras=[cam], lidars=lidars, fps=fps, simulator="synthetic") as w:
        for i in range(ticks):
            depth = np.full((height, width), PLANE_M, np.float32)
            ids = np.full((height, width), 1, np.int32)
            rgb = np.full((height, width, 3), 90, np.uint8)
            rows, cols = slice(10, 26), box_columns(i)
            depth[rows, cols], ids[rows, cols], rgb[rows, cols] = BOX_M, 7, (200, 40, 40)
            frames = [
                SensorFrame(
                    "front",
                    i,
                    i / fps,
                    camera_pose(),
                    camera=cam,
                    rgb=rgb,
                    depth_m=depth,
                    instance_id=ids,
                )
            ]
            if lidar:
                # Points on the box face: pixel (u, v) at 10 m.
                u = np.arange(cols.start, cols.stop, dtype=np.float64)
                v = np.arange(rows.start, rows.stop, dtype=np.float64)
                uu, vv = np.meshgrid(u, v)
                x_cam = np.stack(
                    [
                        (uu - K[0, 2]) / K[0, 0] * BOX_M,
                        (vv - K[1, 2]) / K[1, 1] * BOX_M,
                        np.full_like(uu, BOX_M),
                    ],
                    -1,
                ).reshape(-1, 3)
                world = x_cam @ camera_pose()[:3, :3].T
                frames.append(
                    SensorFrame(
                        "roof",
                        i,
                        i / fps,
                        np.eye(4),
                        lidar=lidars[0],
                        points_world=world.astype(np.float32),
                    )
                )
            w.append(frames)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    episode = synthetic_episode(root / "episode")
    result = write_clips(episode, root / "out", seed=3, progress=False)
    return root / "out", result


def test_write_clips_writes_the_layout(clips):
    out, result = clips
    cam = out / "front"
    written = ("rgb", *(m for m in MODALITIES if m != "hdmap"))  # no map.xodr: no hdmap
    for name in written:
        info = video_info(cam / f"{name}.mp4")
        assert (info["width"], info["height"], info["frames"], info["fps"]) == (1280, 704, 4, 16)
    for name in ("transfer25.json", "transfer1.json", "seg_palette.json", "contact_sheet.png"):
        assert (cam / name).is_file()
    assert (out / "transfer25_batch.jsonl").is_file()
    manifest = json.loads((out / "clips.json").read_text())
    assert manifest["source_ticks"] == [0, 1, 2, 3] and manifest["fps"] == 16
    assert manifest["cameras"]["front"]["videos"]["seg"] == "front/seg.mp4"
    assert set(result["cameras"]["front"]["videos"]) == set(written)


def test_write_clips_seg_video_decodes_to_the_saved_palette(clips):
    out, _ = clips
    palette = load_palette(out / "front" / "seg_palette.json")
    assert set(palette) == {1, 7}
    frames, _ = read_video(out / "front" / "seg.mp4")
    colours = {tuple(c) for c in frames.reshape(-1, 3)}
    assert colours == {palette[1], palette[7]}
    box_x = int((box_columns(0).start + 5) * 1280 / W)
    assert tuple(frames[0, 400, box_x]) == palette[7]


def test_write_clips_depth_is_near_bright_and_lidar_far_bright(clips):
    out, _ = clips
    depth, _ = read_video(out / "front" / "depth.mp4")
    box_x = int((box_columns(0).start + 5) * 1280 / W)
    assert depth[0, 400, box_x, 0] > 200 and depth[0, 50, 50, 0] < 50
    lidar, _ = read_video(out / "front" / "lidar.mp4")
    returns = lidar[0, ..., 0][lidar[0, ..., 0] > 0]
    assert returns.size > 0 and np.all(np.abs(returns.astype(int) - round(BOX_M / 75 * 255)) <= 1)
    rows, cols = np.nonzero(lidar[0, ..., 0])
    assert rows.min() >= 10 * 704 // H - 4
    # Frame 0 accumulates sweeps 0..2 (±2 sweeps), so the moving box smears to tick 2's place.
    assert box_columns(1).stop * 1280 // W < cols.max() <= box_columns(2).stop * 1280 // W + 4
    assert lidar[0, 50, 50, 0] == 0  # the wall has no LiDAR return


def test_write_clips_specs_parse_with_the_cosmos_mirror(clips, tmp_path, monkeypatch):
    out, _ = clips
    monkeypatch.chdir(tmp_path)
    (single,) = load_spec_file(out / "front" / "transfer25.json")
    assert single.video_path == (out / "front" / "rgb.mp4").absolute()
    assert {k for k in ("edge", "depth", "vis", "seg") if getattr(single, k)} == {
        "edge",
        "depth",
        "vis",
        "seg",
    }
    (batched,) = load_spec_file(out / "transfer25_batch.jsonl")
    assert batched.depth.control_path == (out / "front" / "depth.mp4").absolute()
    assert single.seed == 3  # write_clips' seed goes into the specs too
    spec1 = json.loads((out / "front" / "transfer1.json").read_text())
    assert spec1["seed"] == 3 and "lidar" not in spec1  # lidar needs the Sample-AV model
    spec_av = json.loads((out / "front" / "transfer1_av.json").read_text())
    assert spec_av["lidar"]["input_control"] == str((out / "front" / "lidar.mp4").absolute())
    assert spec_av["is_av_sample"] is True and spec_av["sigma_max"] == 80
    assert "lidar" not in json.loads((out / "front" / "transfer25.json").read_text())


def test_write_clips_resamples_30_fps_to_16(tmp_path):
    episode = synthetic_episode(tmp_path / "ep", ticks=6, fps=30.0, lidar=False)
    result = write_clips(episode, tmp_path / "out", modalities=["edge"], progress=False)
    assert result["source_ticks"].tolist() == [0, 1, 3, 5]
    assert video_info(tmp_path / "out" / "front" / "edge.mp4")["frames"] == 4
    assert result["notes"] == []


def test_write_clips_lists_the_episode_folder_a_fixed_number_of_times(tmp_path, monkeypatch):
    # Reading tick by tick through episode[i] re-lists the ticks folder per tick: quadratic
    # in the episode's length (an hour at 16 fps is 57,600 ticks).
    from cosmos_sim.episode import Episode

    episode = synthetic_episode(tmp_path / "ep", ticks=6)
    listings = []
    real = Episode.tick_paths
    monkeypatch.setattr(Episode, "tick_paths", lambda self: listings.append(1) or real(self))
    result = write_clips(episode, tmp_path / "out", modalities=["seg", "lidar"], progress=False)
    assert len(result["source_ticks"]) == 6
    assert len(listings) <= 2  # once to check the ticks, once to read them; not per tick


def test_write_clips_skips_lidar_by_default_when_the_episode_has_none(tmp_path):
    episode = synthetic_episode(tmp_path / "ep", ticks=2, lidar=False)
    result = write_clips(episode, tmp_path / "out", modalities=None, progress=False)
    assert "lidar" not in result["cameras"]["front"]["videos"]
    assert any("lidar" in note for note in result["notes"])


def test_write_clips_refuses_lidar_asked_for_without_a_lidar(tmp_path):
    episode = synthetic_episode(tmp_path / "ep", ticks=1, lidar=False)
    with pytest.raises(SpecError, match="LiDAR"):
        write_clips(episode, tmp_path / "out", modalities=["depth", "lidar"], progress=False)
    assert not (tmp_path / "out").exists()


def test_write_clips_refuses_an_unknown_modality(tmp_path):
    episode = synthetic_episode(tmp_path / "ep", ticks=1, lidar=False)
    with pytest.raises(SpecError, match="normals.*depth.*seg.*edge.*vis.*lidar"):
        write_clips(episode, tmp_path / "out", modalities=["normals"], progress=False)


def test_write_clips_refuses_a_non_empty_output_and_keeps_its_files(tmp_path):
    episode = synthetic_episode(tmp_path / "ep", ticks=1, lidar=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        write_clips(episode, out, progress=False)
    assert (out / "keep.txt").read_text() == "mine" and len(list(out.iterdir())) == 1


def test_write_clips_refuses_a_camera_without_a_bucket(tmp_path):
    episode = synthetic_episode(tmp_path / "ep", ticks=1, lidar=False, width=64, height=50)
    with pytest.raises(SpecError, match="64×50.*1280×704"):
        write_clips(episode, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_write_clips_refuses_an_episode_with_missing_ticks(tmp_path):
    episode = synthetic_episode(tmp_path / "ep", ticks=3, lidar=False)
    (episode / "ticks" / "000001.npz").unlink()
    with pytest.raises(EpisodeError, match=r"ticks \[1\] are missing"):
        write_clips(episode, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_write_clips_refuses_frames_whose_size_differs_from_the_camera(tmp_path):
    episode = synthetic_episode(tmp_path / "ep", ticks=2, lidar=False)
    tick = episode / "ticks" / "000001.npz"
    with np.load(tick) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["front/rgb"] = np.zeros((H // 2, W // 2, 3), np.uint8)
    with open(tick, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    with pytest.raises(SpecError, match=r"front\].rgb.*camera spec"):
        write_clips(episode, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_write_clips_refuses_an_unknown_device(tmp_path):
    episode = synthetic_episode(tmp_path / "ep", ticks=1, lidar=False)
    with pytest.raises(SpecError, match="device"):
        write_clips(episode, tmp_path / "out", device="tpu", progress=False)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"edge_preset": "ultra"}, "edge_preset 'ultra'"),
        ({"vis_preset": "ultra"}, "vis_preset 'ultra'"),
        ({"control_weights": {"depth": 3.0}}, r"control_weights\['depth'\] = 3.0"),
        ({"control_weights": {"dpth": 0.5}}, r"control_weights: 'dpth' is not a control"),
        ({"prompt": ""}, "prompt: give a non-empty prompt"),
        ({"cameras": ["front", "front"]}, "name each camera once"),
    ],
)
def test_write_clips_refuses_bad_options_before_writing_anything(tmp_path, option, message):
    episode = synthetic_episode(tmp_path / "ep", ticks=1, lidar=False)
    with pytest.raises(SpecError, match=message):
        write_clips(episode, tmp_path / "out", progress=False, **option)
    assert not (tmp_path / "out").exists()  # a corrected re-run can use the same folder


def test_ticks_read_ahead_in_order_and_the_readers_stop_when_closed(tmp_path):
    import threading
    import time

    from cosmos_sim.controls.clips import _Plan
    from cosmos_sim.controls.table import ControlSettings
    from cosmos_sim.episode import Episode

    episode = Episode(synthetic_episode(tmp_path / "ep", ticks=12))
    plan = _Plan(episode, 12, ["front"], ("seg",), {"front": (W, H)}, ControlSettings(),
                 skip_damaged=False, progress=False)  # fmt: skip
    order = [5, 0, 11, 3]
    assert [t.index for t in plan.load_ahead(order, ["front/rgb"])] == order
    reader = plan.load_ahead(range(12), ["front/rgb"])
    next(reader)
    reader.close()  # what an error downstream does

    def readers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("read-tick")]

    deadline = time.monotonic() + 10
    while readers() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not readers()
