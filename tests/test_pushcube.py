"""PushCube-v0: the real PyBullet task the embedded world model learns."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from cosmos_sim.envs.pushcube import PushCubeEnv
from cosmos_sim.envs.pushcube_policies import NoisyScripted, detect
from cosmos_sim.episode import Episode
from cosmos_sim.types import SpecError


@pytest.fixture
def env():
    env = PushCubeEnv(render_mode="rgb_array")
    yield env
    env.close()


def test_check_env_passes(env):
    check_env(env, skip_render_check=False)


def test_seeded_resets_are_reproducible(env):
    first, info_a = env.reset(seed=7)
    env.step(np.array([1.0, -0.5], np.float32))
    again, info_b = env.reset(seed=7)
    other, _ = env.reset(seed=8)
    assert np.array_equal(first, again)
    assert np.array_equal(info_a["state"], info_b["state"])
    assert not np.array_equal(first, other)


def test_observation_is_a_configurable_top_down_rgb_frame():
    env = PushCubeEnv(image_size=32)
    obs, info = env.reset(seed=0)
    env.close()
    assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8
    pusher, cube, goal = detect(obs)
    # The colour detector recovers the true positions to within about a pixel.
    state = info["state"]
    assert np.allclose(pusher, state[0:2], atol=0.02)
    assert np.allclose(cube, state[2:4], atol=0.02)
    assert np.allclose(goal, state[5:7], atol=0.02)


def test_scripted_push_succeeds_and_terminates(env):
    policy = NoisyScripted(0.0)
    obs, _ = env.reset(seed=3)
    for _ in range(env.max_episode_steps):
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        if terminated or truncated:
            break
    assert terminated and not truncated
    assert info["success"] and reward == 1.0
    assert info["cube_to_goal_m"] < env.goal_radius_m


def test_truncates_at_the_step_limit_without_success():
    env = PushCubeEnv(max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(np.zeros(2, np.float32))[2:4] for _ in range(3)]
    env.close()
    assert flags == [(False, False), (False, False), (False, True)]


def test_dense_reward_grows_as_the_pusher_nears_the_cube(env):
    obs, info = env.reset(seed=1)
    policy = NoisyScripted(0.0)
    _, r0, *_ = env.step(np.zeros(2, np.float32))
    for _ in range(5):
        obs, r1, *_ = env.step(policy(obs))
    assert 0.0 <= r0 < 1.0 and r1 > r0


def test_bad_actions_name_the_problem(env):
    env.reset(seed=0)
    with pytest.raises(SpecError, match="shape"):
        env.step(np.zeros(3, np.float32))
    with pytest.raises(SpecError, match="NaN"):
        env.step(np.array([np.nan, 0.0], np.float32))


def test_recording_writes_an_episode_with_actions(tmp_path):
    env = PushCubeEnv(record_dir=tmp_path, max_episode_steps=4)
    obs0, _ = env.reset(seed=2)
    actions = [np.array([0.5, -0.25 * i], np.float32) for i in range(4)]
    frames = [obs0] + [env.step(a)[0] for a in actions]
    env.close()
    episode = Episode(tmp_path / "episode_000000")
    assert episode.complete and len(episode) == 5
    assert np.array_equal(episode.stack("top", "rgb"), np.stack(frames))
    recorded = [tick.data["action"] for tick in episode]
    assert np.array_equal(recorded[0], np.zeros(2, np.float32))
    assert all(np.array_equal(r, a) for r, a in zip(recorded[1:], actions, strict=True))
    assert episode[4].data["truncated"] and not episode[4].data["terminated"]
    assert episode.manifest["seed"] == 2
