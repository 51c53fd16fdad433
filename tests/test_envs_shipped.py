"""On the shipped embedded world model: the examples, the registered ids, eval-policies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def require_shipped_weights() -> None:
    embedded = pytest.importorskip("cosmos_sim.envs.embedded")
    if not (embedded.ASSET_DIR / embedded.WEIGHTS_FILE).is_file():
        pytest.skip("the embedded world model's weights are not in assets/ yet")


def test_multiverse_example_writes_grid_video_and_summary(tmp_path):
    require_shipped_weights()
    out = tmp_path / "mv"
    subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "multiverse.py"),
            "--futures",
            "3",
            "--steps",
            "4",
            "--warmup-steps",
            "1",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["return"]) == len(summary["success"]) == 3
    assert (out / "multiverse.png").stat().st_size > 0 and (out / "multiverse.mp4").is_file()


def test_registered_learned_pushcube_passes_check_env_batches_and_ranks_policies(tmp_path):
    require_shipped_weights()
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env
    from typer.testing import CliRunner

    import cosmos_sim  # noqa: F401
    from cosmos_sim.cli import app

    check_env(
        gym.make("cosmos_sim/LearnedPushCube-v0", render_mode="rgb_array").unwrapped,
        skip_render_check=False,
    )
    vec = gym.make_vec(
        "cosmos_sim/LearnedPushCube-v0", num_envs=3, vectorization_mode="vector_entry_point"
    )
    obs, _ = vec.reset(seed=0)
    obs, reward, *_ = vec.step(np.zeros((3, 2), np.float32))
    assert obs.shape == (3, 64, 64, 3) and reward.shape == (3,)
    policies = "cosmos_sim.envs.pushcube_policies"
    result = CliRunner().invoke(
        app,
        [
            "eval-policies",
            "--policies",
            f"{policies}:scripted,{policies}:random_policy",
            "--episodes",
            "2",
            "--out",
            str(tmp_path / "eval"),
            "--bootstrap",
            "50",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["learned"] == "cosmos_sim/LearnedPushCube-v0" and report["paired_starts"]
