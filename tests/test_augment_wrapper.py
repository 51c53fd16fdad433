"""The Gymnasium wrapper that augments PushCube's frames (real PyBullet, 64×64)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from cosmos_sim.envs.augment_wrapper import AugmentObservation
from cosmos_sim.types import SpecError


@pytest.fixture()
def env():
    env = gym.make("cosmos_sim/PushCube-v0", max_episode_steps=5)
    yield env
    env.close()


def test_observation_mode_gives_this_steps_augmented_frame(env):
    wrapped = AugmentObservation(env, mode="observation", prompt="night")
    obs, info = wrapped.reset(seed=0)
    assert wrapped.observation_space.contains(obs)
    assert info["augmented_lag_steps"] == 0 and info["augmented_tick"] == 0
    assert np.abs(obs.astype(int) - info["sim_observation"]).mean() > 10  # restyled
    for step in range(1, 4):
        obs, _, _, _, info = wrapped.step(np.array([0.5, 0.0], np.float32))
        assert info["augmented_tick"] == step and info["augmented_lag_steps"] == 0
        assert obs is info["augmented"] and obs.shape == (64, 64, 3)
    # a new episode starts again at tick 0 with the same backend
    _, info = wrapped.reset(seed=1)
    assert info["augmented_tick"] == 0
    wrapped.close()


def test_info_mode_keeps_the_sim_observation_and_states_the_lag(env):
    wrapped = AugmentObservation(env, mode="info")
    obs, info = wrapped.reset(seed=0)
    assert obs is not info.get("augmented")
    ticks = []
    for _ in range(4):
        obs, _, _, _, info = wrapped.step(np.zeros(2, np.float32))
        assert obs.shape == (64, 64, 3)
        if info["augmented"] is not None:
            assert info["augmented_lag_steps"] == wrapped.step_index - info["augmented_tick"] >= 0
            ticks.append(info["augmented_tick"])
    assert ticks == sorted(ticks)
    wrapped.close()


def test_info_mode_with_wait_has_no_lag(env):
    wrapped = AugmentObservation(env, mode="info", wait=True)
    wrapped.reset(seed=0)
    _, _, _, _, info = wrapped.step(np.zeros(2, np.float32))
    assert info["augmented_tick"] == 1 and info["augmented_lag_steps"] == 0
    wrapped.close()


def test_bad_options_are_refused(env):
    with pytest.raises(SpecError, match="mode"):
        AugmentObservation(env, mode="replace")
    with pytest.raises(SpecError, match="waits"):
        AugmentObservation(env, mode="observation", wait=False)
    wrapped = AugmentObservation(gym.make("CartPole-v1"))
    with pytest.raises(SpecError, match="last_frame"):
        wrapped.reset(seed=0)
    wrapped.close()
