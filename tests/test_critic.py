"""The Cosmos Reason critic on the real Qwen3-VL classes with tiny random weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fakes.tiny_reason import build_tiny_reason
from typer.testing import CliRunner

from cosmos_sim.cli import app
from cosmos_sim.critic import ReasonCritic

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_reason(tmp_path_factory):
    return build_tiny_reason(tmp_path_factory.mktemp("reason") / "tiny")


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_the_vision_tower_gets_normalised_frames_and_one_token_per_merged_patch(tiny_reason):
    critic = ReasonCritic(tiny_reason, frames_per_video=3)
    seen = {}

    def grab(module, args, kwargs):
        seen["pixels"] = (args[0] if args else kwargs["hidden_states"]).detach().clone()
        seen["grid"] = kwargs.get("grid_thw", args[1] if len(args) > 1 else None).clone()

    critic.model.model.visual.register_forward_pre_hook(grab, with_kwargs=True)
    original_forward = critic.model.forward

    def spy(**inputs):
        seen["input_ids"] = inputs["input_ids"].clone()
        return original_forward(**inputs)

    critic.model.forward = spy
    frames = np.random.default_rng(0).integers(0, 256, (12, 96, 160, 3), dtype=np.uint8)
    score = critic.score(frames)

    assert 0.0 <= score.plausibility <= 1.0 and score.adherence is None
    pixels, grid = seen["pixels"], seen["grid"]
    assert grid.shape == (3, 3)  # one (t, h, w) grid per sampled frame
    assert -3.0 < pixels.min() < 0.0 < pixels.max() < 3.0  # mean/std normalised, not 0-255
    image_tokens = int((seen["input_ids"] == critic.model.config.image_token_id).sum())
    assert image_tokens == int(grid.prod(-1).sum()) // 4  # merge 2×2


def test_scores_are_deterministic_and_depend_on_the_question(tiny_reason):
    critic = ReasonCritic(tiny_reason, frames_per_video=2)
    frames = np.random.default_rng(1).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    first = critic.score(frames, prompt="a rainy night")
    assert critic.score(frames, prompt="a rainy night") == first
    assert first.adherence is not None and first.adherence != first.plausibility


def test_bad_frames_and_missing_models_are_named(tiny_reason, tmp_path):
    critic = ReasonCritic(tiny_reason, frames_per_video=2)
    with pytest.raises(ValueError, match="T×H×W×3 uint8"):
        critic.score(np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(FileNotFoundError, match="local Hugging Face cache"):
        ReasonCritic("nvidia/Not-A-Cached-Model")


@pytest.fixture(scope="module")
def demo_like_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    episode, clips, transfer, dataset = (
        root / name for name in ("episode", "clips", "transfer", "dataset")
    )
    _ok("capture", "--out", str(episode), "--seconds", "0.25", "--width", "320", "--height", "176")
    _ok("controls", str(episode), "--out", str(clips))
    _ok("transfer", str(clips), "--out", str(transfer), "--prompt", "a foggy street")
    _ok("dataset", str(episode), str(dataset), "--transfer", str(transfer))
    return root


def test_critic_cli_scores_transfer_and_filters_the_dataset(demo_like_run, tiny_reason):
    out = _ok("critic", str(demo_like_run), "--model", str(tiny_reason), "--frames", "2")
    assert "transfer" in out
    scores = json.loads((demo_like_run / "transfer" / "critic.json").read_text())
    front = scores["scores"]["front"]
    assert set(front) == {"plausibility", "adherence"}
    manifest = json.loads((demo_like_run / "dataset" / "manifest.json").read_text())
    assert manifest["critic"]["scores"] == scores["scores"]
    assert manifest["critic"]["kept_cameras"] == ["front"]

    coco_before = json.loads((demo_like_run / "dataset" / "annotations.json").read_text())
    _ok(
        "critic", str(demo_like_run), "--model", str(tiny_reason), "--frames", "2",
        "--threshold", "1.0",
    )  # fmt: skip
    coco_after = json.loads((demo_like_run / "dataset" / "annotations.json").read_text())
    kept = json.loads((demo_like_run / "dataset" / "annotations_unfiltered.json").read_text())
    assert coco_after["images"] == [] and coco_after["annotations"] == []
    assert kept == coco_before  # nothing already written is lost


def test_critic_refuses_a_threshold_outside_zero_one(demo_like_run, tiny_reason):
    result = runner.invoke(
        app, ["critic", str(demo_like_run), "--model", str(tiny_reason), "--threshold", "2"]
    )
    assert result.exit_code == 2 and "--threshold" in result.output


def test_critic_scores_learned_env_rollouts(tmp_path, tiny_reason):
    from cosmos_sim.video import write_video

    learned = tmp_path / "learned_env"
    learned.mkdir()
    write_video(learned / "multiverse.mp4", np.zeros((6, 64, 64, 3), np.uint8), fps=16)
    (tmp_path / "episode").mkdir()
    critic = ReasonCritic(tiny_reason, frames_per_video=2)
    from cosmos_sim.critic import score_run

    written = score_run(critic, learned=learned)
    assert set(written["learned"]["scores"]) == {"multiverse"}
    assert (
        json.loads((learned / "critic.json").read_text())["scores"]["multiverse"]["adherence"]
        is None
    )
    assert torch.is_grad_enabled()  # inference_mode did not leak
