"""stable-baselines3 trains on a learned env as it is, with no wrapper of ours."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from fakes.tiny_world_model import TinyWorldModel, start_clips

import cosmos_sim  # noqa: F401  (registers the gymnasium ids)


def small_ppo(env, n_steps: int):
    """SB3 PPO with a tiny MLP, one epoch per update, on the CPU."""
    from stable_baselines3 import PPO

    return PPO(
        "MlpPolicy",
        env,
        n_steps=n_steps,
        batch_size=32,
        n_epochs=1,
        seed=0,
        policy_kwargs={"net_arch": [16]},
        device="cpu",
    )


def test_sb3_ppo_runs_a_few_hundred_steps_on_the_learned_env():
    env = gym.make(
        "cosmos_sim/Learned-v0",
        model=TinyWorldModel(noise=4.0),
        start_frames=start_clips(),
        max_episode_steps=32,
    )
    agent = small_ppo(env, n_steps=64)
    agent.learn(total_timesteps=256)
    assert agent.num_timesteps == 256
    obs, _ = env.reset(seed=0)
    action, _ = agent.predict(obs, deterministic=True)
    assert env.action_space.contains(np.asarray(action, np.float32))


def test_sb3_trains_on_a_vector_env_with_one_model_call_per_step():
    from cosmos_sim.envs import LearnedVectorEnv
    from cosmos_sim.envs.sb3 import SB3VecEnv

    model = TinyWorldModel(noise=4.0)
    venv = SB3VecEnv(LearnedVectorEnv(model, 4, start_frames=start_clips(), max_episode_steps=8))
    agent = small_ppo(venv, n_steps=32)
    agent.learn(total_timesteps=256)
    assert agent.num_timesteps == 256
    assert model.step_calls == 256 // 4 and set(model.step_batch_sizes) == {4}


def test_sb3_vec_env_reports_terminal_observations_and_time_limits():
    from cosmos_sim.envs import LearnedVectorEnv
    from cosmos_sim.envs.sb3 import SB3VecEnv

    venv = SB3VecEnv(  # one start clip: every restart shows the same first frame
        LearnedVectorEnv(TinyWorldModel(), 2, start_frames=start_clips(n=1), max_episode_steps=2)
    )
    venv.seed(0)
    first = venv.reset()
    venv.step(np.full((2, 2), 0.5, np.float32))
    obs, reward, dones, infos = venv.step(np.full((2, 2), 0.5, np.float32))
    assert dones.all() and all(info["TimeLimit.truncated"] for info in infos)
    # SB3 gets the restarted lane and, in the info, the frame the episode ended on.
    assert np.array_equal(obs, first)
    assert all(info["terminal_observation"].mean() > first.mean() + 30 for info in infos)
