"""Policy evaluation: learned env vs real env, SIMPLER's MMRV, correlations, the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fakes.tiny_world_model import TinyWorldModel
from typer.testing import CliRunner

from cosmos_sim.cli import app
from cosmos_sim.envs.learned import LearnedEnv
from cosmos_sim.envs.policy_eval import (
    Policy,
    PolicySpecError,
    _run_sequential,
    average_ranks,
    evaluate_policies,
    load_policies,
    mmrv,
    pearson,
    run_episodes,
    spearman,
)
from cosmos_sim.envs.pushcube import PushCubeEnv

POLICIES = "cosmos_sim.envs.pushcube_policies"


def test_mmrv_matches_a_hand_checked_example():
    # i=0: learned puts 0 below 1 but real has 0 above 1 -> violation |0.9 - 0.5| = 0.4.
    # i=1: the same pair -> 0.4.  i=2: ordered right against both -> 0.  Mean 0.8 / 3.
    assert mmrv([0.2, 0.6, 0.1], [0.9, 0.5, 0.1]) == pytest.approx(0.8 / 3)
    # SIMPLER's comparisons are strict: a tie in the learned env against an order in the
    # real one is a violation for the better policy only (0.6 > 0.2 but not 0.5 > 0.5).
    assert mmrv([0.5, 0.5], [0.2, 0.6]) == pytest.approx(0.2)
    assert mmrv([0.1, 0.2, 0.3], [0.5, 0.6, 0.9]) == 0.0
    assert mmrv([0.3, 0.2, 0.1], [0.1, 0.2, 0.3]) == pytest.approx((0.2 + 0.1 + 0.2) / 3)


def test_spearman_and_pearson_match_hand_checked_values():
    # Ranks of y are [1, 2, 4, 3]: rho = 1 - 6 * (0 + 0 + 1 + 1) / (4 * 15) = 0.8.
    assert spearman([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(0.8)
    # Ties share the average rank: x ranks [1, 2.5, 2.5, 4]; rho = 4.5 / sqrt(4.5 * 5).
    assert average_ranks([1, 2, 2, 3]).tolist() == [1, 2.5, 2.5, 4]
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / np.sqrt(22.5))
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 7])[0, 1])
    assert pearson([1, 1, 1], [1, 2, 3]) is None  # undefined, not a made-up number


def test_policy_specs_resolve_functions_dicts_classes_and_labels():
    [to_cube] = load_policies(f"{POLICIES}:to_cube")
    assert to_cube.name == "to_cube" and callable(to_cube.act)
    every = load_policies(f"{POLICIES}:POLICIES")
    assert "scripted" in [p.name for p in every] and len(every) >= 5
    [mine] = load_policies(f"mine={POLICIES}:RandomPolicy")
    assert mine.name == "mine" and mine.act(np.zeros((8, 8, 3), np.uint8)).shape == (2,)


def test_a_policy_with_its_own_rng_is_reseeded_per_episode():
    [noisy] = load_policies(f"{POLICIES}:random_policy")
    obs = np.zeros((8, 8, 3), np.uint8)
    assert np.array_equal(noisy.for_episode(3)(obs), noisy.for_episode(3)(obs))
    assert not np.array_equal(noisy.for_episode(3)(obs), noisy.for_episode(4)(obs))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no_such_module_xyz:policy", "module 'no_such_module_xyz' does not import"),
        (f"{POLICIES}:nope", "has no attribute 'nope'"),
        (f"{POLICIES}:MAX_STEP_M", "not a callable"),
        ("just_a_name", "neither module:function nor a saved SB3 model"),
        ("missing/model.zip", "no such SB3 model file"),
        (f"{POLICIES}:to_cube,{POLICIES}:to_cube", "repeat"),
        ("", "empty"),
    ],
)
def test_bad_policy_specs_name_the_spec_and_the_fix(spec, message):
    with pytest.raises(PolicySpecError, match=message):
        load_policies(spec)


def test_a_saved_sb3_model_is_a_policy(tmp_path):
    from stable_baselines3 import PPO

    env = PushCubeEnv(image_size=16, max_episode_steps=4)
    PPO(
        "MlpPolicy",
        env,
        n_steps=8,
        batch_size=8,
        n_epochs=1,
        device="cpu",
        policy_kwargs={"net_arch": [8]},
    ).save(tmp_path / "ppo.zip")
    [policy] = load_policies(str(tmp_path / "ppo.zip"))
    obs, _ = env.reset(seed=0)
    action = policy.act(obs)
    env.close()
    assert policy.name == "ppo" and env.action_space.contains(action.astype(np.float32))


def _tiny_learned_env() -> LearnedEnv:
    def judge(frames: torch.Tensor):
        level = frames.float().mean(dim=(1, 2, 3)) / 255.0
        return level, level > 0.75, level > 0.75

    return LearnedEnv(
        TinyWorldModel(frame_shape=(64, 64, 3), context_frames=1),
        reward_fn=judge,
        max_episode_steps=6,
    )


def test_batched_learned_episodes_equal_episode_by_episode_runs():
    starts = np.random.default_rng(0).integers(0, 200, (7, 64, 64, 3), dtype=np.uint8)
    [policy] = load_policies(f"{POLICIES}:random_policy")
    batched = run_episodes(_tiny_learned_env(), policy, 7, seed=5, starts=starts, num_envs=3)
    one_by_one = _run_sequential(_tiny_learned_env(), policy, 7, 5, starts, 1000, None)
    assert np.array_equal(batched.returns, one_by_one.returns)
    assert np.array_equal(batched.lengths, one_by_one.lengths)
    assert np.array_equal(batched.success, one_by_one.success)


def test_report_end_to_end_with_a_tiny_learned_model(tmp_path):
    policies = [f"{POLICIES}:scripted", f"{POLICIES}:random_policy", f"{POLICIES}:to_cube"]
    report = evaluate_policies(
        policies,
        real="cosmos_sim/PushCube-v0",
        learned=_tiny_learned_env(),
        episodes=4,
        out=tmp_path / "eval",
        real_kwargs={"max_episode_steps": 6},
        bootstrap_samples=200,
    )
    saved = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert (tmp_path / "eval" / "scatter.png").stat().st_size > 10_000
    assert [p["name"] for p in saved["policies"]] == ["scripted", "random_policy", "to_cube"]
    for entry in saved["policies"]:
        for env in ("real", "learned"):
            stats = entry[env]
            assert len(stats["success"]) == len(stats["returns"]) == 4
            lo, hi = stats["mean_return_ci"]
            assert lo <= stats["mean_return"] <= hi
    for key in ("success_rate", "mean_return"):
        assert set(saved["metrics"][key]) >= {"pearson", "spearman", "mmrv", "mmrv_ci"}
        assert saved["metrics"][key]["mmrv"] >= 0
    assert report["metrics"] == saved["metrics"] and saved["paired_starts"] is True


def test_the_real_env_against_itself_ranks_perfectly(tmp_path):
    # Same env, same seeds, reseeded policies: every episode repeats, so MMRV is 0 and the
    # returns correlate perfectly. This pins that episodes are paired across the two envs.
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "eval-policies",
            "--policies",
            f"{POLICIES}:scripted,{POLICIES}:random_policy,{POLICIES}:to_cube",
            "--real",
            "cosmos_sim/PushCube-v0",
            "--learned",
            "cosmos_sim/PushCube-v0",
            "--episodes",
            "3",
            "--out",
            str(tmp_path / "self"),
            "--real-kwargs",
            '{"max_episode_steps": 5}',
            "--learned-kwargs",
            '{"max_episode_steps": 5}',
            "--bootstrap",
            "50",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "self" / "report.json").read_text())
    for entry in report["policies"]:
        assert entry["real"]["returns"] == entry["learned"]["returns"]
    assert report["paired_starts"] is False  # PushCube takes no frames: seeds pair them
    assert report["metrics"]["mean_return"]["mmrv"] == 0.0
    assert report["metrics"]["mean_return"]["pearson"] == pytest.approx(1.0)
    assert "mean_return: pearson 1.000" in result.output


def test_cli_reports_a_policy_that_does_not_import(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "eval-policies",
            "--policies",
            "not_a_module_abc:act",
            "--out",
            str(tmp_path / "x"),
            "--episodes",
            "1",
        ],
    )
    assert result.exit_code == 2
    assert "module 'not_a_module_abc' does not import" in result.output


def test_paired_starts_need_one_image_size_in_both_envs(tmp_path):
    with pytest.raises(ValueError, match="no-paired-starts"):
        evaluate_policies(
            f"{POLICIES}:to_cube",
            real="cosmos_sim/PushCube-v0",
            learned=_tiny_learned_env(),
            episodes=1,
            out=tmp_path / "o",
            real_kwargs={"image_size": 32},
        )


def test_unknown_env_id_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="--learned 'cosmos_sim/Nope-v0'"):
        evaluate_policies(
            [Policy("p", "p", lambda obs: np.zeros(2, np.float32))],
            real="cosmos_sim/PushCube-v0",
            learned="cosmos_sim/Nope-v0",
            episodes=1,
            out=tmp_path / "o",
        )
