"""The envs on the embedded PushCube world model's own class (tiny, randomly initialised)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from cosmos_sim.envs import LearnedEnv, LearnedVectorEnv, rollout

embedded = pytest.importorskip("cosmos_sim.envs.embedded")


@pytest.fixture
def model():
    torch.manual_seed(0)
    config = embedded.WorldModelConfig(
        image_size=32, channels=(8, 16), emb_dim=16, head_channels=8, context_frames=2
    )
    model = embedded.PushCubeWorldModel(config).eval()
    with torch.no_grad():  # random everywhere, so the sampled noise shows in the frames
        for param in model.parameters():
            param.normal_(0.0, 0.05)
    return model


def starts() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (3, 1, 32, 32, 3), dtype=np.uint8)


@pytest.mark.filterwarnings("ignore:.*not having a spec")
def test_check_env_passes_on_the_embedded_model_class(model):
    env = LearnedEnv(model, start_frames=starts(), max_episode_steps=10, render_mode="rgb_array")
    check_env(env, skip_render_check=False)


def test_vector_env_makes_one_model_call_per_step_on_the_embedded_class(model, monkeypatch):
    calls = []
    step = model.step
    monkeypatch.setattr(
        model, "step", lambda *a, **k: calls.append(a[0].batch_size) or step(*a, **k)
    )
    vec = LearnedVectorEnv(model, 6, start_frames=starts(), max_episode_steps=4)
    vec.reset(seed=0)
    for _ in range(9):  # crosses two truncations: autoreset keeps it one call per step
        vec.step(np.zeros((6, 2), np.float32))
    assert calls == [6] * 9


def test_branches_of_the_embedded_class_depend_on_the_seed(model):
    env = LearnedEnv(model, start_frames=starts())
    env.reset(seed=0)
    actions = np.tile(np.array([0.5, -0.5], np.float32), (3, 1))
    a = rollout(env.branch(3, seed=1)[0], actions)["frames"]
    b = rollout(env.branch(3, seed=1)[0], actions)["frames"]
    c = rollout(env.branch(3, seed=2)[0], actions)["frames"]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a[0], a[1])
