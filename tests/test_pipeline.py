"""The one pipeline: the controls table, per-chunk controls, streamed clips, the camera model."""

import json

import numpy as np
import pytest
from test_clips import synthetic_episode

from cosmos_sim.controls import (
    CONTROLS,
    ClipStats,
    ClipStatsAccumulator,
    FrameChunk,
    compute_controls,
    depth_range,
    resolve_stats,
    seg_palette,
)
from cosmos_sim.controls.backend import cpu_backend
from cosmos_sim.controls.clips import write_clips
from cosmos_sim.pipeline import run_pipeline
from cosmos_sim.types import CameraSpec, SpecError, intrinsics_from_fov
from cosmos_sim.video import read_video


def test_every_control_of_the_table_has_a_cpu_function_and_a_kernel():
    assert set(cpu_backend()) == set(CONTROLS)
    for control in CONTROLS.values():
        module, _, function = control.gpu.partition(":")
        assert module.startswith("cosmos_sim.kernels.") and function


def test_k_from_fov_puts_the_principal_point_at_the_pixel_grid_centre():
    K = intrinsics_from_fov(1280, 704, 90.0, axis="horizontal")
    assert K[0, 0] == pytest.approx(640.0) and K[1, 1] == pytest.approx(640.0)
    assert (K[0, 2], K[1, 2]) == (639.5, 351.5)
    vertical = CameraSpec("front", 1280, 704, fov_deg=90.0).intrinsics
    assert vertical[1, 1] == pytest.approx(352.0) and vertical[0, 2] == 639.5


def test_carla_rig_cameras_use_the_core_camera_model():
    from cosmos_sim.bridges.carla_rig import default_rig

    cam = default_rig().cameras[0]
    expected = intrinsics_from_fov(cam.width, cam.height, cam.fov_deg, axis="horizontal")
    np.testing.assert_array_equal(cam.K, expected)
    np.testing.assert_array_equal(cam.spec().intrinsics, expected)


def test_streamed_depth_range_is_numpys_percentiles_within_the_histogram_bin():
    rng = np.random.default_rng(0)
    depth = rng.lognormal(1.5, 0.8, size=(6, 40, 50)).astype(np.float32)
    depth[0, :3] = 0.0  # no return: not part of the range
    acc = ClipStatsAccumulator(["depth"])
    for frame in depth:  # one frame at a time, as the first streaming pass feeds it
        acc.add(depth_m=frame[None])
    lo, hi = acc.result().depth_range_m
    exact_lo, exact_hi = depth_range(depth)
    assert lo == pytest.approx(exact_lo, rel=2**-12) and hi == pytest.approx(exact_hi, rel=2**-12)


def test_the_streamed_palette_sees_every_id_numpy_does():
    rng = np.random.default_rng(1)
    blocks = np.repeat(np.repeat(rng.integers(0, 40, (2, 6, 5)), 8, axis=1), 10, axis=2)
    speckled = rng.integers(-3, 2**20, (2, 48, 50))  # runs of one pixel, negative ids too
    for frames in (blocks.astype(np.int32), speckled.astype(np.int64)):
        acc = ClipStatsAccumulator(["seg"])
        for frame in frames:
            acc.add(instance_id=frame[None])
        assert sorted(acc.result().palette) == np.unique(frames).tolist()
    empty = ClipStatsAccumulator(["seg"])
    empty.add(instance_id=np.zeros((1, 0, 4), np.int32))
    assert empty.result().palette == {}


def test_a_growing_palette_keeps_the_colours_it_gave():
    chunk = FrameChunk(8, 8, instance_id=np.array([[[0, 3], [5, 5]]], np.int32))
    first = resolve_stats(chunk, ["seg"], None, seed=4).palette
    chunk.instance_id = np.array([[[9, 3], [2, 0]]], np.int32)
    grown = resolve_stats(chunk, ["seg"], ClipStats(palette=first), seed=4).palette
    assert {k: grown[k] for k in first} == first
    assert grown == seg_palette([0, 2, 3, 5, 9], 4)  # no collisions: as if drawn at once


def test_compute_controls_refuses_a_chunk_without_the_input_a_control_reads():
    chunk = FrameChunk(8, 8, rgb=np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(SpecError) as err:
        compute_controls(chunk, ["depth"], ClipStats(depth_range_m=(1.0, 5.0)))
    assert err.value.field == "depth_m" and "drop 'depth'" in err.value.fix


def test_chunked_clips_are_the_one_chunk_clips(tmp_path):
    episode = synthetic_episode(tmp_path / "ep", ticks=7)
    one = write_clips(episode, tmp_path / "one", chunk_frames=93, seed=2, progress=False)
    many = write_clips(episode, tmp_path / "many", chunk_frames=2, seed=2, progress=False)
    for name in ("rgb", "depth", "seg", "edge", "vis", "lidar"):
        a, _ = read_video(one["cameras"]["front"]["videos"][name])
        b, _ = read_video(many["cameras"]["front"]["videos"][name])
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert one["cameras"]["front"]["depth_range_m"] == many["cameras"]["front"]["depth_range_m"]


def test_clips_json_carries_k_pose_and_depth_range_per_frame(tmp_path):
    episode = synthetic_episode(tmp_path / "ep", ticks=3, lidar=False)
    write_clips(episode, tmp_path / "clips", modalities=["depth"], progress=False)
    manifest = json.loads((tmp_path / "clips" / "clips.json").read_text())
    cam = manifest["cameras"]["front"]
    assert len(cam["K"]) == len(cam["cam_to_world"]) == manifest["num_frames"] == 3
    K = np.array(cam["K"][0])
    assert K[0, 2] == pytest.approx((1280 - 1) / 2) and K[1, 2] == pytest.approx((704 - 1) / 2)
    lo, hi = cam["depth_range_m"]
    assert 10.0 <= lo < hi <= 20.0  # the box at 10 m and the wall at 20 m


def test_run_pipeline_runs_each_stage_into_its_folder(tmp_path):
    episode = synthetic_episode(tmp_path / "ep", ticks=3, lidar=False)
    phases = []
    result = run_pipeline(
        episode,
        tmp_path / "run",
        modalities=["depth", "seg", "edge"],
        on_stage=phases.append,
        progress=False,
    )
    assert phases == ["controls", "transfer", "dataset"]
    assert result.clips == tmp_path / "run" / "clips"
    assert (result.transfer / "front" / "output.mp4").is_file()
    assert (result.dataset / "annotations.json").is_file()
