"""The cosmos-cli backend against a stand-in for cosmos-transfer2.5's examples/inference.py."""

import json
from pathlib import Path

import numpy as np
import pytest
from fakes.clips import write_test_clip
from fakes.transfer25_config import load_spec_file

from cosmos_sim.transfer import GuardrailBlocked, find_clips, run_transfer
from cosmos_sim.transfer.cosmos_cli import CosmosCliBackend, CosmosCliError
from cosmos_sim.types import SpecError
from cosmos_sim.video import read_video

CHECKOUT = Path(__file__).parent / "fakes" / "cosmos_transfer_checkout"
W, H, FRAMES = 64, 32, 5


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    write_test_clip(root / "front", width=W, height=H, frames=FRAMES)
    return root


def test_runs_the_checkout_and_collects_its_video(clips, tmp_path):
    out = run_transfer(
        clips, tmp_path / "out", backend="cosmos-cli", cosmos_root=CHECKOUT,
        prompt="a wet road at dusk", seed=11, num_steps=4,
    )  # fmt: skip
    rgb = read_video(clips / "front" / "rgb.mp4")[0].astype(int)
    output = read_video(out / "front" / "output.mp4")[0].astype(int)
    assert output.shape == rgb.shape
    assert np.abs((255 - rgb) - output).mean() < 6  # the stand-in inverts the input video

    work = out / "front" / "cosmos"
    (sample,) = load_spec_file(work / "spec.json")  # parses as Cosmos parses it
    assert (sample.name, sample.prompt, sample.seed, sample.num_steps) == (
        "front", "a wet road at dusk", 11, 4,
    )  # fmt: skip
    assert sample.video_path == (clips / "front" / "rgb.mp4").resolve()
    assert sample.edge.control_path == (clips / "front" / "edge.mp4").resolve()
    log = (work / "inference.log").read_text()
    assert "Processing sample front" in log and "4/4 [" in log
    manifest = json.loads((out / "transfer.json").read_text())
    assert manifest["backend"] == "cosmos-cli"
    assert "examples/inference.py -i SPEC -o OUTDIR" in manifest["backend_settings"]["command"]


def test_controls_option_picks_the_control_blocks(clips):
    backend = CosmosCliBackend(CHECKOUT, controls=["seg", "depth"])
    spec = backend.spec(find_clips(clips)[0], "p", 1)
    assert {k for k in ("edge", "vis", "depth", "seg") if k in spec} == {"depth", "seg"}


def test_failure_output_is_reported_verbatim(clips, tmp_path):
    with pytest.raises(CosmosCliError, match=r"exit code 1") as err:
        run_transfer(
            clips, tmp_path / "out", backend="cosmos-cli", cosmos_root=CHECKOUT,
            prompt="PLEASE FAIL", num_steps=2,
        )  # fmt: skip
    assert "torch.OutOfMemoryError: CUDA out of memory (stand-in)" in str(err.value)
    assert (tmp_path / "out" / "front" / "cosmos" / "spec.json").is_file()


def test_torchrun_launch_on_two_processes(clips, tmp_path):
    out = run_transfer(
        clips, tmp_path / "out", backend="cosmos-cli", cosmos_root=CHECKOUT,
        nproc_per_node=2, num_steps=2,
    )  # fmt: skip
    log = (out / "front" / "cosmos" / "inference.log").read_text()
    assert "torch.distributed.run --nproc_per_node=2" in log
    assert "rank 1 of 2" in log and "rank 0 of 2" in log
    assert read_video(out / "front" / "output.mp4")[0].shape[0] == FRAMES


def test_a_folder_that_is_not_a_checkout_is_named(clips, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a cosmos-transfer2.5 checkout"):
        run_transfer(clips, tmp_path / "out", backend="cosmos-cli", cosmos_root=tmp_path)


def test_a_relative_out_from_another_working_directory_succeeds(clips, tmp_path, monkeypatch):
    # The README runs `cosmos-sim transfer CLIPS --out transfer`: a relative --out. The tool
    # runs in the checkout, so a relative -i/-o would name files that are not there.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = run_transfer(
        clips, Path("transfer"), backend="cosmos-cli", cosmos_root=CHECKOUT, num_steps=2
    )
    assert read_video(elsewhere / "transfer" / "front" / "output.mp4")[0].shape[0] == FRAMES
    log = (out / "front" / "cosmos" / "inference.log").read_text().splitlines()[0]
    _, _, _, spec, _, outdir = log.split()[1:7]
    assert Path(spec).is_absolute() and Path(outdir).is_absolute()


def test_the_distilled_edge_model_runs_four_steps_with_experimental_checkpoints(clips, tmp_path):
    out = run_transfer(
        clips, tmp_path / "out", backend="cosmos-cli", cosmos_root=CHECKOUT,
        model="edge/distilled",
    )  # fmt: skip
    work = out / "front" / "cosmos"
    (sample,) = load_spec_file(work / "spec.json")
    assert sample.num_steps == 4 and sample.edge is not None
    assert (sample.depth, sample.seg, sample.vis) == (None, None, None)  # an edge-only model
    log = (work / "inference.log").read_text()
    assert "--model edge/distilled" in log and "model edge/distilled" in log and "4/4 [" in log
    with pytest.raises(SpecError, match="takes only the edge control"):
        CosmosCliBackend(CHECKOUT, model="edge/distilled", controls=["seg"])
    with pytest.raises(SpecError, match="--model 'edge/fast'"):
        CosmosCliBackend(CHECKOUT, model="edge/fast")


def test_guided_generation_and_control_masks_come_from_the_instance_masks(clips, tmp_path):
    clip = find_clips(clips)[0]
    ids = next(clip.instance_ids())
    box = int(ids.max())  # a moving box of the test scene
    out = run_transfer(
        clips, tmp_path / "out", backend="cosmos-cli", cosmos_root=CHECKOUT, num_steps=2,
        controls=["edge", "vis"] if clip.video_path("vis").is_file() else ["edge", "depth"],
        guided_ids=[box], control_masks={"edge": [box]},
    )  # fmt: skip
    work = out / "front" / "cosmos"
    (sample,) = load_spec_file(work / "spec.json")
    labels = np.load(sample.guided_generation_mask)["arr_0"]
    assert labels.shape == (FRAMES, H, W)
    assert np.array_equal(labels[0], ids)  # the episode's instance ids, frame by frame
    assert sample.guided_generation_foreground_labels == [box]
    mask = read_video(sample.edge.mask_path)[0]
    assert mask.shape == (FRAMES, H, W, 3)
    assert np.array_equal(mask[0, ..., 0] > 127, ids == box)  # white exactly on the box
    assert "anchored px" in (work / "inference.log").read_text()


def test_the_sample_name_comes_from_the_clip_spec(tmp_path):
    folder = write_test_clip(tmp_path / "clips" / "front", width=W, height=H, frames=3)
    (folder / "transfer25.json").write_text(json.dumps({"name": "ep_007-front"}))
    out = run_transfer(
        tmp_path / "clips", tmp_path / "out", backend="cosmos-cli", cosmos_root=CHECKOUT,
        num_steps=1, controls=["edge"],
    )  # fmt: skip
    assert (out / "front" / "cosmos" / "output" / "ep_007-front.mp4").is_file()
    assert read_video(out / "front" / "output.mp4")[0].shape[0] == 3


def test_a_guardrail_block_is_an_error_not_a_missing_video(clips, tmp_path):
    # Upstream logs "Guardrail blocked generation" and skips the sample (keep_going).
    with pytest.raises(GuardrailBlocked, match="guardrail blocked clip"):
        run_transfer(
            clips, tmp_path / "out", backend="cosmos-cli", cosmos_root=CHECKOUT,
            prompt="PLEASE BLOCK this", num_steps=1,
        )  # fmt: skip
    manifest = json.loads((tmp_path / "out" / "transfer.json").read_text())
    assert "guardrail" in manifest["cameras"]["front"]["error"]
