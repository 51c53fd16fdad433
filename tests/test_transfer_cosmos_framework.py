"""Cosmos 3 sample args (controls) and the cosmos-framework backend, against a stand-in checkout.

`cosmos-sim controls` writes `cosmos3.json` per camera and `cosmos3_batch.jsonl`; they are
checked against cosmos-framework's own exported sample schema (pinned, upstream 5eee9ed) and
the rules its `build_sample` applies. The backend runs the stand-in
`cosmos_framework.scripts.inference` (fakes/cosmos_framework_checkout: it checks samples
against the same schema and lays out `OUT/<name>/vision.mp4` as the real tool does). An
acceptance test runs the real framework's parser when COSMOS_FRAMEWORK_PYTHON names a Python
that imports cosmos_framework.
"""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fakes.clips import moving_boxes_episode, write_test_clip
from typer.testing import CliRunner

from cosmos_sim.cli import app
from cosmos_sim.controls.clips import write_clips
from cosmos_sim.controls.spec_cosmos3 import cosmos3_spec
from cosmos_sim.transfer import find_clips, make_backend
from cosmos_sim.transfer.cosmos_framework import (
    CosmosFrameworkError,
    validate_file,
    validate_sample,
)
from cosmos_sim.types import SpecError
from cosmos_sim.video import read_video, video_info

CHECKOUT = Path(__file__).parent / "fakes" / "cosmos_framework_checkout"
W, H, FRAMES = 160, 96, 6


@pytest.fixture(scope="module")
def episodes_clips(tmp_path_factory):
    """Two episodes' clips (edge, vis, depth, seg), as `cosmos-sim controls` writes them."""
    root = tmp_path_factory.mktemp("controls")
    outs = []
    for name in ("run_a", "run_b"):
        episode = moving_boxes_episode(root / name, width=160, height=120, fps=16.0, ticks=3)
        outs.append(
            write_clips(
                episode,
                root / f"{name}_clips",
                modalities=["edge", "vis", "depth", "seg"],
                seed=1,
                progress=False,
            )  # fmt: skip
        )
    return outs


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    write_test_clip(root / "front", width=W, height=H, frames=FRAMES)
    return root


def test_controls_write_cosmos3_specs_that_pass_the_framework_schema(episodes_clips):
    for result in episodes_clips:
        out = result["out"]
        spec_path = out / "front" / "cosmos3.json"
        assert validate_file(spec_path) == [
            "sample 'run_a-front': num_frames 3 is outside [24, 200]".replace(
                "run_a", out.name.removesuffix("_clips")
            )
        ]
        spec = json.loads(spec_path.read_text())
        assert spec["model_mode"] == "video2video" and spec["resolution"] == "720"
        assert (spec["num_frames"], spec["fps"]) == (3, 16)
        assert {h: spec[h]["control_path"] for h in ("edge", "blur", "depth", "seg")} == {
            "edge": "edge.mp4", "blur": "vis.mp4", "depth": "depth.mp4", "seg": "seg.mp4"
        }  # fmt: skip
        assert spec["blur"]["weight"] == 0.5 and spec["edge"]["weight"] == 1.0
        assert (spec["guidance"], spec["control_guidance"]) == (3.0, 1.5)  # several hints
        assert (
            json.loads((out / "clips.json").read_text())["cosmos3_batch"] == "cosmos3_batch.jsonl"
        )
        validate_file(result["cosmos3_batch"])
    lines = [
        json.loads(line)
        for result in episodes_clips
        for line in result["cosmos3_batch"].read_text().splitlines()
    ]
    assert [s["name"] for s in lines] == ["run_a-front", "run_b-front"]  # unique across runs
    assert lines[0]["edge"]["control_path"] == "front/edge.mp4"  # relative to the batch file


def test_a_single_hint_gets_its_own_recommended_guidance(tmp_path):
    video = tmp_path / "wsm.mp4"
    video.write_bytes(b"")
    spec = cosmos3_spec("s", video, {"hdmap": video}, num_frames=101, fps=10, size=(1280, 720))
    assert "wsm" in spec and (spec["guidance"], spec["control_guidance"]) == (1.0, 3.0)
    assert spec["aspect_ratio"] == "16,9"
    with pytest.raises(SpecError, match="no Cosmos 3 control"):
        cosmos3_spec("s", video, {"lidar": video}, num_frames=5, fps=16, size=(64, 64))


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"colour": "red"}, r"Additional properties.*'colour'"),
        ({"resolution": "1080"}, r"resolution: '1080' is not valid"),
        ({"fps": 0}, r"fps"),
        ({"wsm": {"weight": 1.0}}, r"wsm.control_path is missing"),
        ({"edge": {"control_path": "edge.mp4", "weight": -1.0}}, r"weights .* >= 0"),
        ({"num_conditional_frames": 93}, r"num_conditional_frames 93 must be below"),
        ({"depth": {"control_path": "nowhere.mp4"}}, r"depth.control_path nowhere.mp4 does not"),
        ({"seg": {"control_path": "mask.png"}}, r"reads .mp4 videos"),
    ],
)
def test_the_validator_rejects_what_the_framework_rejects(tmp_path, change, error):
    for name in ("rgb.mp4", "edge.mp4", "mask.png"):
        (tmp_path / name).write_bytes(b"")
    edge = {"edge": tmp_path / "edge.mp4"}
    sample = cosmos3_spec("s", tmp_path / "rgb.mp4", edge, num_frames=93, fps=16,
                          size=(1280, 704), relative_to=tmp_path)  # fmt: skip
    assert validate_sample(sample, tmp_path) == []
    with pytest.raises(SpecError, match=error):
        validate_sample({**sample, **change}, tmp_path)


def test_transfer_fields_without_a_hint_and_repeated_names_are_refused(tmp_path):
    with pytest.raises(SpecError, match="transfer fields but no hint"):
        validate_sample({"name": "s", "num_video_frames_per_chunk": 93}, tmp_path)
    batch = tmp_path / "b.jsonl"
    batch.write_text('{"name": "a", "prompt": "p"}\n{"name": "a", "prompt": "q"}\n')
    with pytest.raises(SpecError, match=r"names \['a'\] repeat"):
        validate_file(batch)


def test_cli_runs_the_framework_from_another_directory_with_a_relative_out(
    clips, tmp_path, monkeypatch
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rel_clips = os.path.relpath(clips, elsewhere)
    result = CliRunner().invoke(
        app,
        ["transfer", rel_clips, "--out", "runs/out", "--backend", "cosmos-framework",
         "--cosmos-root", str(CHECKOUT), "--model", "Cosmos3-Nano", "--resolution", "256",
         "--steps", "3", "--prompt", "a wet road at dusk", "--seed", "4"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = elsewhere / "runs" / "out"
    info = video_info(out / "front" / "output.mp4")  # 320x192 tier canvas, 9 frames: fitted
    assert (info["width"], info["height"], info["frames"]) == (W, H, FRAMES)
    work = out / "front" / "cosmos3"
    argv = json.loads((work / "output" / "front" / "argv.json").read_text())
    assert argv[:2] == ["--parallelism-preset=latency", "-i"] and Path(argv[2]).is_absolute()
    assert argv[argv.index("--checkpoint-path") + 1] == "Cosmos3-Nano"
    assert argv[argv.index("--seed") + 1] == "4" and "--no-guardrails" not in argv
    sample = json.loads((work / "sample.json").read_text())
    assert sample["resolution"] == "256" and sample["num_steps"] == 3
    assert set(sample) >= {"edge", "depth", "seg"} and "blur" not in sample  # no vis.mp4
    edge, _ = read_video(clips / "front" / "edge.mp4")
    got, _ = read_video(out / "front" / "output.mp4")
    assert np.abs((255 - edge).astype(int) - got).mean() < 40  # the stand-in inverts edge
    log = (work / "inference.log").read_text()
    assert "3/3 [" in log and "Loaded 1 samples" in log


def test_a_failed_run_raises_with_the_tools_output(clips, tmp_path):
    engine = make_backend("cosmos-framework", cosmos_root=CHECKOUT, resolution=256)
    clip = find_clips(clips)[0]
    with pytest.raises(CosmosFrameworkError, match="(?s)exit code 1.*OutOfMemoryError"):
        list(engine.transfer(clip, "PLEASE FAIL", 0, tmp_path / "w"))


def test_bad_options_and_checkouts_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"github.com/NVIDIA/cosmos-framework"):
        make_backend("cosmos-framework", cosmos_root=tmp_path)
    with pytest.raises(SpecError, match="no lidar hint"):
        make_backend("cosmos-framework", cosmos_root=CHECKOUT, controls="edge,lidar")
    with pytest.raises(SpecError, match="tiers are"):
        make_backend("cosmos-framework", cosmos_root=CHECKOUT, resolution=704)
    engine = make_backend("cosmos-framework", cosmos_root=CHECKOUT, nproc_per_node=4)
    cmd = engine.command(Path("s.json"), Path("o"), 0)
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--nproc_per_node=4"]
    assert cmd[4:6] == ["-m", "cosmos_framework.scripts.inference"]


@pytest.mark.skipif(
    not os.environ.get("COSMOS_FRAMEWORK_PYTHON"),
    reason="set COSMOS_FRAMEWORK_PYTHON to a Python that imports cosmos_framework",
)
def test_the_real_framework_parser_accepts_the_written_specs(episodes_clips):
    """Acceptance: cosmos-framework's own OmniSampleOverrides.from_files on our files."""
    code = (
        "import sys; from cosmos_framework.inference.args import OmniSampleOverrides as O;"
        "from pathlib import Path; s = O.from_files([Path(f) for f in sys.argv[1:]]);"
        "print(len(s), sorted({x.name for x in s}))"
    )
    for files in (
        [r["out"] / "front" / "cosmos3.json" for r in episodes_clips],
        [r["cosmos3_batch"] for r in episodes_clips],  # one batch per episode, run together
    ):
        run = subprocess.run(
            [os.environ["COSMOS_FRAMEWORK_PYTHON"], "-c", code, *map(str, files)],
            capture_output=True,
            text=True,
            env={**os.environ, "COSMOS_TRAINING": "0"},
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert "2 ['run_a-front', 'run_b-front']" in run.stdout
