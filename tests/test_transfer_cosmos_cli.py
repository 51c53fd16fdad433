"""The cosmos-cli backend against a stand-in for cosmos-transfer2.5's examples/inference.py."""

import json
from pathlib import Path

import numpy as np
import pytest
from fakes.clips import write_test_clip
from fakes.transfer25_config import load_spec_file

from cosmos_sim.transfer import find_clips, run_transfer
from cosmos_sim.transfer.cosmos_cli import CosmosCliBackend, CosmosCliError
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
