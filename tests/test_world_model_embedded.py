"""The embedded PushCube world model: smoke training, shipped weights, stochastic branches."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import cosmos_sim.envs  # noqa: F401  (registers the ids)
from cosmos_sim.envs.embedded import (
    PushCubeWorldModel,
    WorldModelConfig,
    shipped_start_frames,
)
from cosmos_sim.envs.world_model import WorldModelError, check_model


def load_script(name: str) -> ModuleType:
    """A script of scripts/ as a module (the scripts are not in the installed package)."""
    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).parents[1] / "scripts" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


collect_pushcube = load_script("collect_pushcube")
train_world_model = load_script("train_world_model")
CollectConfig, collect = collect_pushcube.CollectConfig, collect_pushcube.collect
Args, main = train_world_model.Args, train_world_model.main


@pytest.fixture(scope="module")
def shipped() -> PushCubeWorldModel:
    return PushCubeWorldModel.load()


def test_cpu_smoke_training_reduces_its_loss(tmp_path):
    collect(
        CollectConfig(
            out=str(tmp_path / "data"),
            train_episodes=8,
            graze_episodes=0,
            heldout_episodes=2,
            workers=0,
        )
    )
    metrics = main(Args(data=str(tmp_path / "data"), out=str(tmp_path / "run"), smoke=True))
    losses = [entry["flow_loss"] for entry in metrics["history"]]  # steps 1, 2-10, ..., 31-40
    assert sum(losses[-2:]) < 0.85 * sum(losses[:2])
    assert (tmp_path / "run" / "pushcube_world_model.safetensors").is_file()
    reloaded = PushCubeWorldModel.load(tmp_path / "run" / "pushcube_world_model.safetensors")
    assert reloaded.config.channels == (16, 32)


def test_graze_episodes_extend_the_shipped_recipe(tmp_path):
    """The extra near-miss episodes come after the first train_episodes, which stay the
    episodes (same seeds, same behaviours) the recipe without them records."""
    plain, graze = tmp_path / "plain", tmp_path / "graze"
    collect(
        CollectConfig(
            out=str(plain), train_episodes=3, graze_episodes=0, heldout_episodes=0, workers=0
        )
    )
    collect(
        CollectConfig(
            out=str(graze), train_episodes=3, graze_episodes=2, heldout_episodes=0, workers=0
        )
    )
    with np.load(plain / "train.npz") as a, np.load(graze / "train.npz") as b:
        assert list(b["behaviours"]) == [*a["behaviours"], "near_miss", "near_miss"]
        first = a["episode_lengths"].sum()
        assert np.array_equal(a["frames"], b["frames"][:first])
        assert np.array_equal(a["actions"], b["actions"][:first])


def test_shipped_weights_load_offline_and_step(shipped):
    check_model(shipped)
    starts = torch.from_numpy(shipped_start_frames()[:3])[:, None]
    state = shipped.start(starts)
    state, result = shipped.step(state, torch.zeros(3, 1, 2), torch.Generator().manual_seed(0))
    assert result.frames.shape == (3, 1, 64, 64, 3) and result.frames.dtype == torch.uint8
    assert result.reward.shape == (3, 1) and ((result.reward >= 0) & (result.reward <= 1)).all()
    assert result.terminated.dtype == torch.bool
    assert state.frames.shape == (3, shipped.context_frames, 64, 64, 3)


def test_learned_pushcube_is_a_registered_env_that_passes_check_env():
    env = gymnasium.make("cosmos_sim/LearnedPushCube-v0")
    check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(np.array([0.5, -0.5], np.float32))
    assert obs.shape == (64, 64, 3) and "success" in info
    env.close()


def test_branch_futures_differ_under_different_seeds(shipped):
    start = torch.from_numpy(shipped_start_frames()[:1])[:, None]
    actions = torch.tensor([[[1.0, 0.3]]])

    def future(seed: int) -> torch.Tensor:
        state, generator = shipped.start(start), torch.Generator().manual_seed(seed)
        frames = []
        for _ in range(4):
            state, result = shipped.step(state, actions, generator)
            frames.append(result.frames)
        return torch.cat(frames, dim=1)

    assert torch.equal(future(0), future(0))
    assert not torch.equal(future(0), future(1))


def test_wrong_frame_size_and_action_shape_name_the_fix():
    model = PushCubeWorldModel(WorldModelConfig(channels=(8, 16), head_channels=8))
    with pytest.raises(WorldModelError, match="image_size=64"):
        model.start(torch.zeros(1, 1, 32, 32, 3, dtype=torch.uint8))
    state = model.start(torch.zeros(2, 1, 64, 64, 3, dtype=torch.uint8))
    with pytest.raises(WorldModelError, match=r"\[B, 1, A\]"):
        model.step(state, torch.zeros(2, 2))


def test_real_env_still_renders_the_frames_the_model_was_trained_on():
    # The shipped starts are PushCube-v0's first frames for reset seeds 10_000_000 + i at
    # collection time; a change to the camera or renderer would put the model out of
    # distribution, and shows here first.
    from cosmos_sim.envs.pushcube import PushCubeEnv

    env = PushCubeEnv()
    frames = [env.reset(seed=10_000_000 + i)[0] for i in range(3)]
    env.close()
    assert np.array_equal(np.stack(frames), shipped_start_frames()[:3])
