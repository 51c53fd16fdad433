"""stable-baselines3 trains on a learned env as it is, with no wrapper of ours."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from fakes.tiny_world_model import TinyWorldModel, start_clips

import cosmos_sim  # noqa: F401  (registers the gymnasium ids)


def test_sb3_ppo_runs_a_few_hundred_steps_on_the_learned_env():
    from stable_baselines3 import PPO

    env = gym.make(
        "cosmos_sim/Learned-v0",
        model=TinyWorldModel(noise=4.0),
        start_frames=start_clips(),
        max_episode_steps=32,
    )
    agent = PPO(
        "MlpPolicy",
        env,
        n_steps=64,
        batch_size=32,
        n_epochs=1,
        seed=0,
        policy_kwargs={"net_arch": [16]},
        device="cpu",
    )
    agent.learn(total_timesteps=256)
    assert agent.num_timesteps == 256
    obs, _ = env.reset(seed=0)
    action, _ = agent.predict(obs, deterministic=True)
    assert env.action_space.contains(np.asarray(action, np.float32))
