"""DeviceVectorEnv (torch in, torch out, autoreset on the device) and the PPO pixel policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fakes.tiny_world_model import TinyWorldModel, start_clips

from cosmos_sim.envs.device_vector import DeviceVectorEnv, GraphedStep, where_lanes
from cosmos_sim.envs.learned import LearnedEnv, StartFrames
from cosmos_sim.envs.pixel_policy import (
    PixelActorCritic,
    PolicyConfig,
    colour_features,
    load_agent,
    save_policy,
)
from cosmos_sim.envs.policy_eval import PolicySpecError, load_policies
from cosmos_sim.envs.world_model import WorldModelError, WorldState


def make_device_env(num_envs=4, max_episode_steps=5, **kwargs) -> DeviceVectorEnv:
    model = kwargs.pop("model", None) or TinyWorldModel()
    env = LearnedEnv(
        model, start_frames=start_clips(), max_episode_steps=max_episode_steps, **kwargs
    )
    return DeviceVectorEnv.from_env(env, num_envs)


def test_device_env_steps_all_lanes_in_one_model_call_and_returns_tensors():
    env = make_device_env(num_envs=3)
    obs = env.reset(seed=0)
    assert isinstance(obs, torch.Tensor) and obs.dtype == torch.uint8
    assert obs.shape == (3, 16, 16, 3)
    calls = env.core.model.step_calls
    obs, reward, terminated, truncated, success = env.step(torch.zeros(3, 2))
    assert env.core.model.step_calls == calls + 1
    assert [t.shape for t in (reward, terminated, truncated, success)] == [(3,)] * 4
    assert reward.dtype == torch.float32 and terminated.dtype == torch.bool
    assert all(isinstance(t, torch.Tensor) for t in (obs, reward, truncated))


def test_reset_draws_first_frames_of_the_start_clips_and_a_seed_repeats_them():
    env = make_device_env(num_envs=6)
    firsts = torch.from_numpy(start_clips()[:, 0])
    obs = env.reset(seed=3)
    assert all(any(torch.equal(o, f) for f in firsts) for o in obs)
    assert torch.equal(env.reset(seed=3), obs)


def test_lanes_truncate_at_the_step_limit_and_restart_in_the_same_step():
    env = make_device_env(num_envs=2, max_episode_steps=3)
    env.reset(seed=0)
    firsts = torch.from_numpy(start_clips()[:, 0])
    for _ in range(2):
        obs, _, _, truncated, _ = env.step(torch.zeros(2, 2))
        assert not truncated.any()
    obs, _, terminated, truncated, _ = env.step(torch.zeros(2, 2))
    assert truncated.all() and not terminated.any()
    assert all(any(torch.equal(o, f) for f in firsts) for o in obs)
    assert env.elapsed.tolist() == [0, 0]


def test_a_terminated_lane_restarts_while_the_others_keep_going():
    env = make_device_env(num_envs=2, max_episode_steps=50)
    env.reset(seed=0)
    brighten = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    for _ in range(10):
        obs, reward, terminated, truncated, success = env.step(brighten)
        if terminated[0]:
            break
    assert terminated.tolist() == [True, False] and success[0]
    assert reward[0] > 0.9  # the reward of the step that ended, not of the fresh start
    assert obs[0].float().mean() < 150  # lane 0 shows its next episode's first frame
    assert env.elapsed.tolist()[0] == 0 and env.elapsed.tolist()[1] > 0


def test_actions_are_clipped_to_the_space_and_a_wrong_shape_is_refused():
    env = make_device_env(num_envs=2)
    env.reset(seed=0)
    env.step(torch.full((2, 2), 5.0))  # clipped to 1, no error
    with pytest.raises(WorldModelError, match="one action per lane"):
        env.step(torch.zeros(3, 2))


def test_device_env_needs_start_frames_and_a_step_limit():
    with pytest.raises(WorldModelError, match="start frames"):
        DeviceVectorEnv.from_env(LearnedEnv(TinyWorldModel(), max_episode_steps=5), 2)
    with pytest.raises(WorldModelError, match="step limit"):
        DeviceVectorEnv.from_env(LearnedEnv(TinyWorldModel(), start_frames=start_clips()), 2)
    with pytest.raises(WorldModelError, match="reset"):
        make_device_env().step(torch.zeros(4, 2))


def test_where_lanes_takes_each_lane_from_the_state_its_mask_names():
    a = WorldState(torch.zeros(3, 2, 4, 4, 3, dtype=torch.uint8), torch.zeros(3, 2, 2))
    b = WorldState(torch.ones(3, 2, 4, 4, 3, dtype=torch.uint8), torch.ones(3, 2, 2))
    mixed = where_lanes(torch.tensor([True, False, True]), a, b)
    assert mixed.frames[:, 0, 0, 0, 0].tolist() == [0, 1, 0]
    assert mixed.actions[:, 0, 0].tolist() == [0.0, 1.0, 0.0]


def test_start_windows_list_every_start_a_reset_can_draw():
    clips = start_clips(n=2, length=3)
    actions = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    starts = StartFrames.from_arrays(clips, actions, anywhere=True)
    frames, acts = starts.windows(context=2, action_dim=2)
    assert frames.shape == (6, 2, 16, 16, 3) and acts.shape == (6, 2, 2)
    # the window ending at clip 1, frame 2 holds frames 1..2 and the actions that led there
    assert np.array_equal(frames[5], clips[1, 1:3]) and np.array_equal(acts[5], actions[1, 1:3])
    # a window ending at a clip's first frame pads with that frame and a zero action
    assert np.array_equal(frames[0], clips[0, [0, 0]])
    assert np.array_equal(acts[0], [[0.0, 0.0], actions[0, 0]])
    first_only = StartFrames.from_arrays(clips).windows(context=2, action_dim=2)[0]
    assert first_only.shape == (2, 2, 16, 16, 3)


def test_colour_features_find_the_objects_where_the_colour_detector_does():
    from cosmos_sim.envs.pushcube import PushCubeEnv
    from cosmos_sim.envs.pushcube_policies import detect

    env = PushCubeEnv()
    try:
        frames = np.stack([env.reset(seed=s)[0] for s in range(4)])
    finally:
        env.close()
    feats = colour_features(torch.from_numpy(frames)).numpy()
    assert feats.shape == (4, 13)
    for frame, f in zip(frames, feats, strict=True):
        pusher, cube, goal = detect(frame)
        np.testing.assert_allclose(f[0:2] * 0.2, pusher, atol=1e-5)
        np.testing.assert_allclose(f[2:4] * 0.2, cube, atol=1e-5)
        np.testing.assert_allclose(f[4:6] * 0.2, goal, atol=1e-5)
        np.testing.assert_allclose(f[8:10], f[4:6] - f[2:4], atol=1e-6)
        assert f[10:13].tolist() == [1.0, 1.0, 1.0]
    blank = colour_features(torch.zeros(1, 64, 64, 3, dtype=torch.uint8))
    assert not blank.any()  # nothing seen: zero coordinates and zero flags


@pytest.mark.parametrize("encoder", ["colour", "cnn"])
def test_a_saved_policy_loads_with_its_architecture_and_acts_the_same(tmp_path, encoder):
    torch.manual_seed(0)
    agent = PixelActorCritic(PolicyConfig(encoder=encoder, hidden=32))
    with torch.no_grad():
        agent.actor.weight.normal_()  # a non-trivial mean action
    obs = torch.randint(0, 255, (5, 64, 64, 3), dtype=torch.uint8)
    x = agent.observe(obs)
    action, logp, entropy, value = agent.act(x)
    assert action.shape == (5, 2) and logp.shape == entropy.shape == value.shape == (5,)
    path = save_policy(agent, tmp_path / "policy.pt", meta={"steps": 7})
    loaded = load_agent(path)
    assert loaded.config == agent.config and loaded.meta == {"steps": 7}
    with torch.no_grad():
        assert torch.allclose(loaded.mean_action(obs), agent.mean_action(obs))
    (policy,) = load_policies([f"ppo={path}"])
    act = policy.act(obs[0].numpy())
    assert act.dtype == np.float32 and act.shape == (2,)
    np.testing.assert_allclose(act, agent.mean_action(obs[:1])[0].detach().numpy(), atol=1e-6)


def test_a_bad_policy_file_is_named(tmp_path):
    with pytest.raises(PolicySpecError, match="no policy file"):
        load_policies([str(tmp_path / "missing.pt")])
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(PolicySpecError, match="not a policy saved"):
        load_policies([str(tmp_path / "other.pt")])
    with pytest.raises(ValueError, match="encoder"):
        PixelActorCritic(PolicyConfig(encoder="vit"))


def test_a_step_limit_given_to_gymnasium_make_holds_in_the_device_env():
    import gymnasium as gym

    import cosmos_sim  # noqa: F401  (registers the ids)

    env = gym.make(
        "cosmos_sim/Learned-v0",
        model=TinyWorldModel(),
        start_frames=start_clips(),
        max_episode_steps=2,
    )
    device_env = DeviceVectorEnv.from_env(env, 3)
    device_env.reset(seed=0)
    truncated = [device_env.step(torch.zeros(3, 2))[3].all().item() for _ in range(2)]
    assert truncated == [False, True]


def test_a_step_keeps_the_state_in_the_same_buffers():
    env = make_device_env(num_envs=2, max_episode_steps=2)
    env.reset(seed=0)
    assert env.state is not None
    buffers = (env.state.frames, env.state.actions, env.elapsed, *env.state.extra.values())
    for _ in range(3):  # crosses an autoreset
        env.step(torch.full((2, 2), 0.5))
    env.reset(seed=1)
    now = (env.state.frames, env.state.actions, env.elapsed, *env.state.extra.values())
    assert all(a is b for a, b in zip(buffers, now, strict=True))


def test_a_graphed_step_runs_eagerly_off_a_gpu():
    model_kwargs = {"noise": 0.1}
    direct = make_device_env(num_envs=2, model=TinyWorldModel(**model_kwargs))
    wrapped = make_device_env(num_envs=2, model=TinyWorldModel(**model_kwargs))
    step = GraphedStep(wrapped.step, generators=wrapped.generators)
    direct.reset(seed=0)
    wrapped.reset(seed=0)
    for _ in range(7):  # past the step limit of 5
        want, got = direct.step(torch.full((2, 2), 0.1)), step(torch.full((2, 2), 0.1))
        assert all(torch.equal(w, g) for w, g in zip(want, got, strict=True))
    assert step.graph is None and step.calls == 0
    with pytest.raises(ValueError, match="inputs"):
        step()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_a_graphed_step_gives_the_eager_steps_numbers_on_a_gpu():
    import gymnasium as gym

    import cosmos_sim  # noqa: F401  (registers the ids)

    def make() -> DeviceVectorEnv:
        return DeviceVectorEnv.from_env(
            gym.make("cosmos_sim/LearnedPushCube-v0", device="cuda"), num_envs=8
        )

    eager, graphed = make(), make()
    step = GraphedStep(graphed.step, generators=graphed.generators, warmup=2)
    eager.reset(seed=1)
    graphed.reset(seed=1)
    actions = torch.Generator(device="cuda").manual_seed(0)
    for _ in range(70):  # past the 60-step limit: autoresets inside the graph
        a = torch.rand(8, 2, generator=actions, device="cuda") * 2 - 1
        want, got = eager.step(a), step(a)
        names = ("obs", "reward", "terminated", "truncated", "success")
        for name, w, g in zip(names, want, got, strict=True):
            assert torch.equal(w, g), name
    assert step.graph is not None
