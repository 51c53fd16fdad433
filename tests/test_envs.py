"""Learned envs: LearnedEnv, the batched LearnedVectorEnv, multiverse branches, registration."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from fakes.tiny_world_model import TinyWorldModel, start_clips
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import cosmos_sim  # noqa: F401  (registers the gymnasium ids)
from cosmos_sim import CameraSpec, EpisodeWriter, SensorFrame
from cosmos_sim.envs import (
    LearnedEnv,
    LearnedVectorEnv,
    branch,
    rollout,
    vectorize,
    write_multiverse,
)
from cosmos_sim.envs.world_model import (
    StepResult,
    WorldModelError,
    WorldState,
    fold_chunk,
    outcome,
)
from cosmos_sim.video import read_video


def make_env(**kwargs) -> LearnedEnv:
    model = kwargs.pop("model", None) or TinyWorldModel()
    return LearnedEnv(model, start_frames=start_clips(), **kwargs)


def make_vec(num_envs=4, **kwargs) -> LearnedVectorEnv:
    model = kwargs.pop("model", None) or TinyWorldModel()
    return LearnedVectorEnv(model, num_envs, start_frames=start_clips(), **kwargs)


@pytest.mark.filterwarnings("ignore:.*not having a spec")
@pytest.mark.parametrize(
    "model, chunk_mode",
    [
        (TinyWorldModel(), "repeat"),
        (TinyWorldModel(noise=8.0), "repeat"),
        (TinyWorldModel(actions_per_call=3, noise=8.0), "chunk"),
        (TinyWorldModel(actions_per_call=3), "repeat"),
    ],
)
def test_learned_env_passes_check_env(model, chunk_mode):
    env = make_env(
        model=model, chunk_mode=chunk_mode, render_mode="rgb_array", max_episode_steps=20
    )
    check_env(env, skip_render_check=False)
    k = model.actions_per_call
    assert env.action_space.shape == ((2,) if chunk_mode == "repeat" else (k, 2))
    assert env.observation_space == gym.spaces.Box(0, 255, (16, 16, 3), np.uint8)


def test_registered_learned_id_builds_from_any_model():
    env = gym.make(
        "cosmos_sim/Learned-v0",
        model=TinyWorldModel(),
        start_frames=start_clips(),
        render_mode="rgb_array",
    )
    check_env(env.unwrapped, skip_render_check=False)
    obs, _ = env.reset(seed=0)
    assert env.render().shape == obs.shape == (16, 16, 3)
    vec = gym.make_vec(
        "cosmos_sim/Learned-v0",
        num_envs=3,
        vectorization_mode="vector_entry_point",
        model=TinyWorldModel(),
        start_frames=start_clips(),
    )
    assert isinstance(vec, LearnedVectorEnv) and vec.reset(seed=0)[0].shape == (3, 16, 16, 3)


def test_a_time_limit_from_gymnasium_make_holds_in_vectors_and_branches():
    env = gym.make(
        "cosmos_sim/Learned-v0",
        model=TinyWorldModel(),
        start_frames=start_clips(),
        max_episode_steps=3,  # gymnasium.make's own: a TimeLimit wrapper
    )
    env.reset(seed=0)
    env.step(np.zeros(2, np.float32))
    still = np.zeros((4, 2), np.float32)
    vec = vectorize(env, 4, autoreset_mode="Disabled")
    vec.reset(seed=0)
    truncated = [vec.step(still)[3] for _ in range(3)]
    assert [t.all() for t in truncated] == [False, False, True]
    futures, _, _ = branch(env, 4, seed=0)  # one step taken: two left
    assert [futures.step(still)[3].all() for _ in range(2)] == [False, True]
    assert vectorize(make_env(max_episode_steps=2), 2).core.max_episode_steps == 2


def test_importing_cosmos_sim_registers_ids_without_torch_or_pybullet():
    code = (
        "import sys, cosmos_sim, gymnasium as gym\n"
        "ids = [i for i in gym.registry if i.startswith('cosmos_sim/')]\n"
        "print(sorted(ids), 'torch' in sys.modules, 'pybullet' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == (
        "['cosmos_sim/Learned-v0', 'cosmos_sim/LearnedPushCube-v0', "
        "'cosmos_sim/PushCube-v0'] False False"
    )


def test_gymnasium_module_prefix_imports_cosmos_sim_for_the_user():
    # gymnasium does not import a namespace by itself: `make("cosmos_sim/...")` needs
    # `import cosmos_sim` first, or the "module:id" form, which imports it.
    code = (
        "import gymnasium as gym\n"
        "try:\n    gym.make('cosmos_sim/PushCube-v0')\nexcept gym.error.Error:\n"
        "    print('needs import')\n"
        "env = gym.make('cosmos_sim:cosmos_sim/PushCube-v0', image_size=32)\n"
        "print(env.reset(seed=0)[0].shape)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[-2:] == ["needs import", "(32, 32, 3)"]


def test_step_moves_the_frame_by_the_model_and_reports_its_reward():
    env = make_env(model=TinyWorldModel(done_above=0.99))
    obs, info = env.reset(seed=3)
    nxt, reward, terminated, truncated, info = env.step(np.array([0.5, 0.0], np.float32))
    expected = np.clip(obs.astype(np.float32) + 20.0, 0, 255).round()
    assert np.array_equal(nxt, expected.astype(np.uint8))
    assert reward == pytest.approx(nxt.mean() / 255.0, rel=1e-5)
    assert not terminated and not truncated and info["success"] is False


def test_resets_start_from_recorded_episode_frames(tmp_path):
    cam = CameraSpec("top", 16, 16)
    clips = start_clips(n=2, length=5)
    for e, clip in enumerate(clips):
        with EpisodeWriter(tmp_path / f"ep{e}", cameras=[cam], fps=10, simulator="test") as w:
            for t, rgb in enumerate(clip):
                frame = SensorFrame(
                    sensor="top",
                    frame_index=t,
                    sim_time_s=t / 10,
                    cam_to_world=np.eye(4),
                    camera=cam,
                    rgb=rgb,
                )
                w.append([frame], {"action": np.full(2, 0.1 * t, np.float32)})
    paths = [tmp_path / "ep0", tmp_path / "ep1"]
    env = LearnedEnv(TinyWorldModel(context_frames=3), episodes=paths)
    firsts = {env.reset(seed=s)[0].tobytes() for s in range(8)}
    assert firsts == {clips[0, 0].tobytes(), clips[1, 0].tobytes()}
    anywhere = LearnedEnv(TinyWorldModel(context_frames=3), episodes=paths, start_anywhere=True)
    anywhere.reset(seed=0)
    state = anywhere.core.state
    # The context window ends at the drawn tick and carries the actions that led to it.
    end = next(t for c in clips for t in range(5) if np.array_equal(c[t], state.last_frame[0]))
    want = [0.1 * max(t, 0) if t >= 0 else 0.0 for t in range(end - 2, end + 1)]
    assert np.allclose(state.actions[0, :, 0].numpy(), want)


def test_resets_start_from_episodes_the_real_pushcube_env_recorded(tmp_path):
    from cosmos_sim.envs.pushcube import PushCubeEnv
    from cosmos_sim.envs.pushcube_policies import scripted

    real = PushCubeEnv(max_episode_steps=4, record_dir=tmp_path)
    frames, taken = [real.reset(seed=3)[0]], []
    for _ in range(4):
        taken.append(scripted(frames[-1]))
        frames.append(real.step(taken[-1])[0])
    real.close()
    episodes = sorted(tmp_path.iterdir())
    model = TinyWorldModel(frame_shape=(64, 64, 3), context_frames=3)
    assert np.array_equal(LearnedEnv(model, episodes=episodes).reset(seed=0)[0], frames[0])
    # Anywhere: a window ending at tick t carries the actions that led to ticks t-2..t.
    led_to = [np.zeros(2, np.float32), *taken]
    anywhere = LearnedEnv(model, episodes=episodes, start_anywhere=True)
    ends = set()
    for seed in range(12):
        anywhere.reset(seed=seed)
        state = anywhere.core.state
        t = next(k for k, f in enumerate(frames) if np.array_equal(f, state.last_frame[0]))
        want = [led_to[k] if k >= 0 else np.zeros(2) for k in (t - 2, t - 1, t)]
        assert np.allclose(state.actions[0].numpy(), want)
        ends.add(t)
    assert len(ends) > 2


def test_reset_from_frames_in_options_and_reward_from_a_user_function():
    frame = np.full((16, 16, 3), 100, np.uint8)

    def bright_enough(frames: torch.Tensor):
        level = frames.float().mean(dim=(1, 2, 3)) / 255.0
        return level, level > 0.5, level > 0.5

    env = LearnedEnv(TinyWorldModel(predicts_reward=False), reward_fn=bright_enough)
    obs, _ = env.reset(seed=0, options={"frames": frame})
    assert np.array_equal(obs, frame)
    _, reward, terminated, _, info = env.step(np.array([1.0, 0.0], np.float32))
    assert reward == pytest.approx(140 / 255) and terminated and info["success"]


def test_chunk_that_terminates_midway_ends_at_that_frame():
    frames = torch.arange(3, dtype=torch.uint8).reshape(1, 3, 1, 1, 1).expand(1, 3, 2, 2, 3)
    result = StepResult(
        frames, torch.tensor([[1.0, 2.0, 4.0]]), torch.tensor([[False, True, True]]), None
    )
    folded = fold_chunk(outcome(result, None))
    assert folded.obs[0, 0, 0, 0] == 1 and folded.reward[0] == 3.0
    assert folded.terminated[0] and folded.success[0] and folded.substeps[0] == 2


def test_env_stops_at_the_sub_step_where_a_chunk_terminates():
    model = TinyWorldModel(actions_per_call=3, done_above=0.6)
    env = make_env(model=model, chunk_mode="chunk", render_mode="rgb_array")
    obs, _ = env.reset(options={"frames": np.full((16, 16, 3), 100, np.uint8)})
    nxt, reward, terminated, _, info = env.step(np.ones((3, 2), np.float32))
    # Sub-steps brighten 100 -> 140 -> 180 -> 220; 180/255 > 0.6 ends the chunk at sub-step 1.
    assert terminated and info["substeps"] == 2 and nxt.mean() == 180
    assert reward == pytest.approx((140 + 180) / 255) and np.array_equal(env.render(), nxt)


def test_vector_env_steps_all_envs_in_one_model_call():
    model = TinyWorldModel(noise=4.0, done_above=0.6)
    vec = make_vec(8, model=model, max_episode_steps=5)
    vec.reset(seed=0)
    vec.action_space.seed(0)
    steps, ended = 20, 0
    start_calls = model.start_calls
    for _ in range(steps):
        _, _, terminated, truncated, _ = vec.step(vec.action_space.sample())
        ended += int((terminated | truncated).any())
    assert model.step_calls == steps
    assert set(model.step_batch_sizes) == {8}
    assert ended > 0 and model.start_calls - start_calls <= ended


def test_vector_lanes_match_single_envs_for_a_deterministic_model():
    vec = make_vec(3, max_episode_steps=50)
    obs, _ = vec.reset(options={"frames": start_clips(n=3)})
    singles = [make_env() for _ in range(3)]
    single_obs = [
        e.reset(options={"frames": start_clips(n=3)[i]})[0] for i, e in enumerate(singles)
    ]
    assert np.array_equal(obs, np.stack(single_obs))
    actions = np.array([[0.2, 0], [-0.3, 0.1], [0.05, 0.9]], np.float32)
    obs, reward, *_ = vec.step(actions)
    for i, env in enumerate(singles):
        o, r, *_ = env.step(actions[i])
        assert np.array_equal(obs[i], o) and reward[i] == pytest.approx(r)


def test_next_step_autoreset_restarts_an_ended_lane_on_the_following_step():
    vec = make_vec(2, model=TinyWorldModel(done_above=0.7), autoreset_mode="NextStep")
    vec.reset(seed=1)
    push = np.array([[1.0, 0.0], [-1.0, 0.0]], np.float32)
    terminated = np.zeros(2, bool)
    while not terminated[0]:
        obs, reward, terminated, truncated, info = vec.step(push)
    assert not terminated[1]
    obs, reward, terminated, truncated, _ = vec.step(push)
    assert reward[0] == 0.0 and not terminated[0] and not truncated[0]
    assert obs[0].mean() < 150  # a fresh start frame, not the bright terminal one
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP


def test_gymnasium_vector_wrappers_read_the_autoreset_mode():
    vec = gym.wrappers.vector.RecordEpisodeStatistics(make_vec(4, max_episode_steps=3))
    vec.reset(seed=0)
    for _ in range(3):
        *_, truncated, info = vec.step(np.zeros((4, 2), np.float32))
    assert truncated.all() and info["episode"]["l"].tolist() == [3, 3, 3, 3]


def test_same_step_autoreset_returns_the_final_observation_in_info():
    vec = make_vec(2, model=TinyWorldModel(done_above=0.7), autoreset_mode="SameStep")
    vec.reset(seed=1)
    push = np.array([[1.0, 0.0], [-1.0, 0.0]], np.float32)
    while True:
        obs, _, terminated, _, info = vec.step(push)
        if terminated[0]:
            break
    assert info["_final_obs"].tolist() == [True, False]
    assert info["final_obs"][0].mean() > 0.7 * 255 and obs[0].mean() < 150


def test_disabled_autoreset_restarts_only_masked_lanes():
    vec = make_vec(3, autoreset_mode=AutoresetMode.DISABLED)
    before, _ = vec.reset(seed=0)
    moved, *_ = vec.step(np.full((3, 2), 0.5, np.float32))
    obs, _ = vec.reset(options={"reset_mask": np.array([False, True, False])})
    assert np.array_equal(obs[0], moved[0]) and np.array_equal(obs[2], moved[2])
    assert not np.array_equal(obs[1], moved[1])


def test_branch_futures_differ_across_seeds_and_repeat_with_the_same_seed():
    env = make_env(model=TinyWorldModel(noise=10.0))
    env.reset(seed=0)
    now, *_ = env.step(np.array([0.1, 0.0], np.float32))
    actions = np.tile(np.array([0.05, 0.0], np.float32), (6, 1))
    a = rollout(env.branch(4, seed=1)[0], actions)["frames"]
    b = rollout(env.branch(4, seed=1)[0], actions)["frames"]
    c = rollout(env.branch(4, seed=2)[0], actions)["frames"]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a[0], a[1])  # futures of one branch differ from each other
    assert (a[:, 0] == now).all()  # every future starts at the branch point


def test_branch_starts_from_the_current_state_and_resets_back_to_it():
    env = make_env(model=TinyWorldModel(noise=10.0))
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(np.array([0.3, 0.0], np.float32))
    futures, _, _ = env.branch(3, seed=5)
    assert np.array_equal(futures.reset(seed=5)[0], np.stack([obs] * 3))
    futures.step(np.full((3, 2), 0.2, np.float32))
    assert np.array_equal(futures.reset()[0], np.stack([obs] * 3))
    deterministic = make_env()
    deterministic.reset(seed=0)
    d = rollout(deterministic.branch(2, seed=1)[0], np.full((3, 2), 0.1, np.float32))
    assert np.array_equal(d["frames"][0], d["frames"][1])


def test_branch_returns_the_futures_with_their_first_observations_and_info():
    env = make_env(model=TinyWorldModel(noise=10.0))
    env.reset(seed=0)
    now, *_ = env.step(np.array([0.3, 0.0], np.float32))
    futures, obs, info = env.branch(3, seed=5)
    assert isinstance(futures, LearnedVectorEnv) and futures.num_envs == 3
    assert np.array_equal(obs, np.stack([now] * 3))
    assert info["success"].shape == (3,) and not info["success"].any()


def test_branch_of_a_vector_env_lane():
    vec = make_vec(3, model=TinyWorldModel(noise=5.0))
    obs, _ = vec.reset(seed=0)
    futures, _, _ = vec.branch(2, seed=0, lane=2)
    assert np.array_equal(futures.reset(seed=0)[0], np.stack([obs[2]] * 2))
    with pytest.raises(WorldModelError, match="lane 3"):
        vec.branch(2, lane=3)


def test_rollout_with_a_policy_acts_on_each_future_and_reports_success():
    env = make_env(model=TinyWorldModel(noise=10.0))
    env.reset(seed=0)
    fixed = rollout(env.branch(3, seed=4)[0], np.full((5, 2), 0.1, np.float32))
    seen = []

    def policy(obs):
        seen.append(obs)
        return np.full(2, 0.1, np.float32)

    acted = rollout(env.branch(3, seed=4)[0], policy=policy, steps=5)
    assert len(seen) == 3 * 5 and seen[0].shape == (16, 16, 3)
    assert np.array_equal(acted["frames"], fixed["frames"])  # same actions, same futures
    assert not acted["success"].any()
    pushed = rollout(env.branch(3, seed=4)[0], policy=lambda obs: np.ones(2, np.float32), steps=6)
    assert pushed["success"].all() and pushed["ended"].all()  # bright frames end the task
    assert np.array_equal(pushed["frames"][:, -1], pushed["frames"][:, -2])  # held after the end
    with pytest.raises(WorldModelError, match="actions=.*or policy="):
        rollout(env.branch(3, seed=4)[0])
    with pytest.raises(WorldModelError, match="steps"):
        rollout(env.branch(3, seed=4)[0], policy=policy)


def test_multiverse_grid_writes_png_and_mp4(tmp_path):
    env = make_env(model=TinyWorldModel(noise=10.0))
    env.reset(seed=0)
    out = rollout(env.branch(3, seed=0)[0], np.full((5, 2), 0.1, np.float32))
    assert out["frames"].shape == (3, 6, 16, 16, 3) and out["reward"].shape == (3, 5)
    written = write_multiverse(out["frames"], tmp_path / "grid.png", tmp_path / "grid.mp4")
    video, _ = read_video(written["mp4"])
    assert written["png"].stat().st_size > 0 and len(video) == 6


def test_state_select_repeat_and_cat_keep_lanes_aligned():
    state = WorldState(
        torch.arange(3, dtype=torch.uint8).reshape(3, 1, 1, 1, 1).expand(3, 2, 2, 2, 3).clone(),
        torch.zeros(3, 2, 2),
        {"h": torch.arange(3.0)},
    )
    assert state.repeat(2).extra["h"].tolist() == [0, 0, 1, 1, 2, 2]
    joined = WorldState.cat([state.select([2]), state.select([0])])
    assert joined.last_frame[:, 0, 0, 0].tolist() == [2, 0] and joined.extra["h"].tolist() == [2, 0]


# -- bad input ------------------------------------------------------------------------


def test_actions_out_of_space_or_of_the_wrong_shape_are_refused():
    env = make_env()
    env.reset(seed=0)
    with pytest.raises(WorldModelError, match="shape"):
        env.step(np.zeros(3, np.float32))
    with pytest.raises(WorldModelError, match="outside the action space"):
        env.step(np.array([1.5, 0.0], np.float32))
    with pytest.raises(WorldModelError, match="not finite"):
        env.step(np.array([np.nan, 0.0], np.float32))
    vec = make_vec(2)
    vec.reset(seed=0)
    with pytest.raises(WorldModelError, match="one action per sub-env"):
        vec.step(np.zeros((3, 2), np.float32))


def test_reset_before_a_model_is_loaded_names_the_fix():
    env = LearnedEnv(frame_shape=(16, 16, 3), action_dim=2, start_frames=start_clips())
    assert env.observation_space.shape == (16, 16, 3)
    with pytest.raises(WorldModelError, match="load_model"):
        env.reset()
    env.load_model(TinyWorldModel())
    assert env.reset(seed=0)[0].shape == (16, 16, 3)
    with pytest.raises(WorldModelError, match="needs model="):
        gym.make("cosmos_sim/Learned-v0")


def test_model_frame_size_not_matching_the_space_is_refused():
    with pytest.raises(WorldModelError, match=r"reads frames \(32, 32, 3\)"):
        LearnedEnv(TinyWorldModel(frame_shape=(32, 32, 3)), frame_shape=(16, 16, 3))
    with pytest.raises(WorldModelError, match="resize them"):
        LearnedEnv(TinyWorldModel(frame_shape=(32, 32, 3)), start_frames=start_clips())
    env = make_env()
    with pytest.raises(WorldModelError, match=r"options\['frames'\]"):
        env.reset(options={"frames": np.zeros((8, 8, 3), np.uint8)})
    with pytest.raises(WorldModelError, match="not a world model"):
        LearnedEnv(object())


@pytest.mark.parametrize("n", [0, -2, 1.5])
def test_branch_of_zero_or_negative_futures_is_refused(n):
    env = make_env()
    env.reset(seed=0)
    with pytest.raises(WorldModelError, match="int >= 1"):
        env.branch(n)


def test_branch_or_step_before_reset_is_refused():
    env = make_env()
    with pytest.raises(WorldModelError, match="reset"):
        env.branch(2)
    with pytest.raises(WorldModelError, match="reset"):
        env.step(np.zeros(2, np.float32))


def test_model_without_reward_needs_a_reward_function():
    env = make_env(model=TinyWorldModel(predicts_reward=False))
    env.reset(seed=0)
    with pytest.raises(WorldModelError, match="reward_fn"):
        env.step(np.zeros(2, np.float32))


def test_a_reward_function_of_the_wrong_length_is_named():
    def one_value(frames):
        return torch.zeros(1), torch.zeros(1, dtype=torch.bool), torch.zeros(1, dtype=torch.bool)

    env = make_env(model=TinyWorldModel(actions_per_call=3), reward_fn=one_value)
    env.reset(seed=0)
    with pytest.raises(WorldModelError, match=r"reward_fn returned .* N = 3"):
        env.step(np.zeros(2, np.float32))
