"""Labelled dataset: output frames aligned back to the episode's ticks and labels."""

import json

import cv2
import numpy as np
import pytest
from fakes.clips import CLASS_NAMES, moving_boxes_episode
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from cosmos_sim import Episode
from cosmos_sim.cli import app
from cosmos_sim.controls.clips import write_clips
from cosmos_sim.controls.seg import load_palette
from cosmos_sim.dataset import AlignmentError, write_dataset
from cosmos_sim.transfer import register_backend, run_transfer
from cosmos_sim.video import read_video, write_video

FPS, TICKS = 30.0, 20


class EchoSeg:
    """A test backend whose 'photoreal' output is the clip's own seg video."""

    name = "echo-seg"

    def describe(self):
        return {"model": "echo"}

    def transfer(self, clip, prompt, seed, workdir):
        return clip.frames("seg")


register_backend("echo-seg", EchoSeg)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    # boxes move ~19 px per tick, so a frame paired with the wrong tick cannot line up
    episode = moving_boxes_episode(root / "episode", fps=FPS, ticks=TICKS, speed=1.8)
    write_clips(episode, root / "clips", modalities=["depth", "seg", "edge"], progress=False)
    return root


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_masks_and_boxes_line_up_with_the_output_after_the_round_trip(run, tmp_path):
    transfer = run_transfer(run / "clips", tmp_path / "transfer", backend="echo-seg")
    out = write_dataset(run / "episode", transfer, tmp_path / "dataset")
    coco = json.loads((out / "annotations.json").read_text())
    clips = json.loads((run / "clips" / "clips.json").read_text())
    palette = load_palette(run / "clips" / "front" / "seg_palette.json")
    episode = Episode(run / "episode")
    assert [im["tick"] for im in coco["images"]] == clips["source_ticks"]
    assert len(coco["images"]) == 11  # 20 ticks at 30 fps -> ceil(20 * 16 / 30) frames
    by_image = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    for im in coco["images"]:
        image = cv2.cvtColor(cv2.imread(str(out / im["file_name"])), cv2.COLOR_BGR2RGB)
        assert image.shape == (240, 320, 3)  # back at camera size, from the 960×704 bucket
        ids = episode[im["tick"]].frames["front"].instance_id
        for ann in by_image[im["id"]]:
            mask = mask_utils.decode(ann["segmentation"]).astype(bool)
            assert np.array_equal(mask, ids == ann["instance_id"])  # labels: exact
            ys, xs = np.nonzero(mask)
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                   ys.max() - ys.min() + 1]  # fmt: skip
            colour = np.array(palette[ann["instance_id"]])
            seen = np.abs(image.astype(int) - colour).max(axis=-1) < 40
            assert _iou(seen, mask) > 0.8, (im["frame"], ann["instance_id"])
            if ann["instance_id"] >= 10:  # a moving box: the neighbouring ticks do not fit
                for other in (im["tick"] - 1, im["tick"] + 1):
                    if 0 <= other < TICKS:
                        moved = episode[other].frames["front"].instance_id == ann["instance_id"]
                        assert _iou(seen, moved) < 0.6


def test_appearance_dataset_records_its_provenance_and_geometry(run, tmp_path):
    transfer = run_transfer(run / "clips", tmp_path / "t", prompt="foggy night", seed=9)
    out = write_dataset(run / "episode", transfer, tmp_path / "dataset")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backend"] == "appearance"
    assert manifest["prompts"] == {"front": "foggy night"}
    assert manifest["seed"] == 9
    assert manifest["cameras"]["front"]["frames"] == 11
    coco = json.loads((out / "annotations.json").read_text())
    assert {c["id"]: c["name"] for c in coco["categories"]} == CLASS_NAMES
    image = coco["images"][3]
    frame = Episode(run / "episode")[image["tick"]].frames["front"]
    assert np.array_equal(np.load(out / image["depth_file"]), frame.depth_m)
    assert np.allclose(image["K"], frame.K) and np.allclose(
        image["cam_to_world"], frame.cam_to_world
    )
    assert image["model_time_s"] == pytest.approx(3 / 16)
    assert image["sim_time_s"] == pytest.approx(image["tick"] / FPS)
    assert (out / "overlay_front.png").is_file()


def test_a_transfer_with_a_missing_frame_fails_naming_both_counts(run, tmp_path):
    transfer = run_transfer(run / "clips", tmp_path / "t", backend="echo-seg")
    video = transfer / "front" / "output.mp4"
    frames, fps = read_video(video)
    write_video(video, frames[:-1], fps)
    with pytest.raises(AlignmentError, match=r"has 10 frames but its clip has 11"):
        write_dataset(run / "episode", transfer, tmp_path / "dataset")


def test_without_a_transfer_the_sim_rgb_is_labelled_per_tick(run, tmp_path):
    out = write_dataset(run / "episode", None, tmp_path / "dataset", sheets=False)
    coco = json.loads((out / "annotations.json").read_text())
    assert [im["tick"] for im in coco["images"]] == list(range(TICKS))
    assert json.loads((out / "manifest.json").read_text())["backend"] == "simulator"


def test_cli_dataset_command(run, tmp_path):
    transfer = run_transfer(run / "clips", tmp_path / "t")
    result = CliRunner().invoke(
        app, ["dataset", str(run / "episode"), str(tmp_path / "ds"), "--transfer", str(transfer)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ds" / "annotations.json").is_file()
