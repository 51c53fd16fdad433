"""Cosmos Predict 2.5 robot action-cond through a checkout's tool, with a stand-in script."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cosmos_sim.envs import LearnedEnv, LearnedVectorEnv
from cosmos_sim.envs.predict25 import (
    ACTION_HIGH,
    ACTION_LOW,
    Predict25Error,
    Predict25WorldModel,
    integrate_actions,
)
from cosmos_sim.envs.world_model import WorldModelError

STANDIN = Path(__file__).parent / "fakes" / "predict25_standin.py"
SCALE = np.array([20.0] * 6 + [1.0])


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    root = tmp_path / "cosmos-predict2.5"
    (root / "examples").mkdir(parents=True)
    (root / "cosmos_predict2").mkdir()
    shutil.copy(STANDIN, root / "examples" / "action_conditioned.py")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("STANDIN_LOG", str(tmp_path / "standin_log.json"))
    return root


def runs(checkout: Path) -> list:
    return json.loads((checkout.parent / "standin_log.json").read_text())


def judge(frames: torch.Tensor):
    level = frames.float().mean(dim=(1, 2, 3)) / 255.0
    return level, level > 0.99, level > 0.99


def starts(n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).integers(60, 120, (n, 1, 32, 32, 3), dtype=np.uint8)


def test_a_chunk_of_12_bridge_actions_reaches_the_tool_scaled_by_20(checkout):
    model = Predict25WorldModel(checkout, frame_shape=(32, 32, 3), resolution="48,64")
    env = LearnedEnv(
        model,
        start_frames=starts(),
        reward_fn=judge,
        chunk_mode="chunk",
        action_low=ACTION_LOW,
        action_high=ACTION_HIGH,
    )
    assert env.action_space.shape == (12, 7)
    chunk = np.random.default_rng(1).uniform(ACTION_LOW, ACTION_HIGH, (12, 7)).astype(np.float32)
    chunk[:, 6] = np.round(chunk[:, 6])
    obs, _ = env.reset(seed=0)
    nxt, reward, _, _, info = env.step(chunk)
    [[received]] = runs(checkout)
    assert received["chunk_size"] == 12
    assert np.allclose(received["actions"], chunk * SCALE, atol=1e-5)  # motion ×20, gripper ×1
    assert nxt.shape == (32, 32, 3) and info["substeps"] == 12
    # The stand-in brightens frame k by k × the first scaled Δx: the last frame is the 12th.
    expected = np.clip(obs.astype(np.float64) + 12 * chunk[0, 0] * 20, 0, 255)
    assert abs(nxt.mean() - expected.mean()) < 2.0


def test_repeat_mode_holds_one_7d_action_for_the_12_sub_steps(checkout):
    model = Predict25WorldModel(checkout, frame_shape=(32, 32, 3), resolution=None)
    env = LearnedEnv(
        model,
        start_frames=starts(),
        reward_fn=judge,
        action_low=ACTION_LOW,
        action_high=ACTION_HIGH,
    )
    action = np.array([0.01, -0.02, 0.0, 0.0, 0.03, -0.01, 1.0], np.float32)
    env.reset(seed=0)
    env.step(action)
    [[received]] = runs(checkout)
    assert np.allclose(received["actions"], np.tile(action * SCALE, (12, 1)), atol=1e-5)


def test_all_lanes_of_a_vector_env_go_to_one_tool_run(checkout):
    model = Predict25WorldModel(
        checkout,
        frame_shape=(32, 32, 3),
        resolution=None,
        setup_args=["--experiment", "robot_action_cond"],
    )
    vec = LearnedVectorEnv(
        model,
        3,
        start_frames=starts(3),
        reward_fn=judge,
        action_low=ACTION_LOW,
        action_high=ACTION_HIGH,
    )
    vec.reset(seed=0)
    actions = np.zeros((3, 7), np.float32)
    actions[:, 0] = [0.01, 0.02, 0.03]
    obs, *_ = vec.step(actions)
    [run] = runs(checkout)
    assert [lane["name"] for lane in run] == ["lane_0000", "lane_0001", "lane_0002"]
    assert [round(lane["actions"][0][0], 4) for lane in run] == [0.2, 0.4, 0.6]
    assert run[0]["argv"][-2:] == ["--experiment", "robot_action_cond"]
    assert obs.shape == (3, 32, 32, 3)


def test_integrated_states_give_back_the_actions_under_the_tools_loader():
    from fakes.predict25_standin import relative_actions

    chunk = np.random.default_rng(2).uniform(-0.3, 0.3, (12, 7))
    states, gripper = integrate_actions(chunk)
    assert states.shape == (13, 6)
    assert np.allclose(relative_actions(states, gripper, 1.0, 1.0), chunk, atol=1e-9)


def test_not_a_checkout_missing_hf_home_and_tool_failures_are_clear(
    checkout, tmp_path, monkeypatch
):
    with pytest.raises(FileNotFoundError, match="not a cosmos-predict2.5 checkout"):
        Predict25WorldModel(tmp_path / "nowhere", frame_shape=(32, 32, 3))
    model = Predict25WorldModel(checkout, frame_shape=(32, 32, 3), resolution=None)
    state = model.start(torch.zeros(1, 1, 32, 32, 3, dtype=torch.uint8))
    with pytest.raises(WorldModelError, match=r"\[B, 12, 7\]"):
        model.step(state, torch.zeros(1, 12, 2))
    monkeypatch.setenv("STANDIN_FAIL", "1")
    with pytest.raises(Predict25Error, match="CUDA out of memory"):
        model.step(state, torch.zeros(1, 12, 7))
    monkeypatch.delenv("HF_HOME")
    with pytest.raises(Predict25Error, match="HF_HOME"):
        model.step(state, torch.zeros(1, 12, 7))


@pytest.mark.parametrize(
    "args",
    [["--disable-guardrails"], ["--seed", "1", "--disable_guardrails=True"]],
)
def test_setup_args_cannot_switch_the_tools_guardrails_off(checkout, args):
    with pytest.raises(WorldModelError, match="guardrail") as err:
        Predict25WorldModel(checkout, frame_shape=(32, 32, 3), setup_args=args)
    assert "setup_args" in str(err.value)
