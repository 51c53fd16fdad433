"""Does LearnedPushCube-v0 rank policies the way the real PushCube-v0 does?

Policies: the image-based scripted set of `cosmos_sim.envs.pushcube_policies.POLICIES`
(scripted pushing at several noise levels, random-action mixes, near-misses, shove-only,
random) plus PPO checkpoints at several training stages (trained here on the real env on
colour-detected features if `--ppo-dir` has none). Each policy runs the same episodes in
both envs — episode k starts in both from the real env's first frame after
`reset(seed=seed + k)` — through `cosmos_sim.envs.policy_eval.evaluate_policies`, which
prints success rates with bootstrap CIs, Pearson, Spearman and MMRV and writes a scatter
plot and report.json.

    python benchmarks/policy_ranking.py --episodes 100 --out runs/policy_ranking

On a machine without PyBullet (a GPU box), `--real-report` reuses the real env's
per-episode results of an earlier run (same policies, episodes and seed: the real env is
deterministic given the seed) and `--starts` its first frames (written by `--save-starts`
on a machine with PyBullet), and runs only the learned env.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def train_ppo(out: Path, checkpoints: list[int], seed: int = 0) -> list[Path]:
    """PPO on the real env's colour-detected features; saves a model at each checkpoint."""
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from cosmos_sim.envs.pushcube import PushCubeEnv
    from cosmos_sim.envs.pushcube_policies import features

    class Features(gym.ObservationWrapper):
        def __init__(self, env: gym.Env) -> None:
            super().__init__(env)
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (10,), np.float32)

        def observation(self, obs: np.ndarray) -> np.ndarray:
            return features(obs)

    class Saver(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps in checkpoints:
                self.model.save(out / f"ppo_{self.num_timesteps // 1000}k.zip")
            return True

    out.mkdir(parents=True, exist_ok=True)
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(lambda: Features(PushCubeEnv()), n_envs=4, seed=seed)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=256,
        batch_size=256,
        learning_rate=3e-4,
        gamma=0.97,
        seed=seed,
        device="cpu",
        verbose=0,
    )
    t0 = time.time()
    model.learn(total_timesteps=max(checkpoints), callback=Saver())
    print(f"[ppo] trained {max(checkpoints)} steps in {time.time() - t0:.0f} s")
    env.close()
    return sorted(out.glob("ppo_*k.zip"), key=lambda p: int(p.stem[4:-1]))


def save_starts(path: str, episodes: int, seed: int) -> None:
    from cosmos_sim.envs.policy_eval import first_frames
    from cosmos_sim.envs.pushcube import PushCubeEnv

    env = PushCubeEnv()
    np.savez_compressed(path, frames=first_frames(env, episodes, seed), seed=seed)
    env.close()
    print(f"[starts] {episodes} first frames from reset(seed={seed} + k) -> {path}")


def learned_only(policies: list, args: argparse.Namespace, learned_kwargs: dict) -> None:
    """The learned env's side only, against the real side of `args.real_report`."""
    import gymnasium

    import cosmos_sim.envs  # noqa: F401  (registers the ids)
    from cosmos_sim.envs.policy_eval import compare, run_episodes

    earlier = json.loads(Path(args.real_report).read_text())
    if (earlier["episodes"], earlier["seed"]) != (args.episodes, args.seed):
        raise SystemExit(
            f"--real-report has episodes={earlier['episodes']} seed={earlier['seed']}; pass "
            "the same --episodes and --seed"
        )
    real = {e["name"]: np.asarray(e["real"]["success"], float) for e in earlier["policies"]}
    missing = [p.name for p in policies if p.name not in real]
    if missing:
        raise SystemExit(f"--real-report has no real results for {missing}")
    with np.load(args.starts) as data:
        starts = data["frames"]
    env = gymnasium.make("cosmos_sim/LearnedPushCube-v0", **learned_kwargs)
    t0 = time.time()
    learned = {}
    for policy in policies:
        runs = run_episodes(
            env,
            policy,
            args.episodes,
            seed=args.seed,
            starts=starts,
            max_steps=60,
            num_envs=args.num_envs,
        )
        learned[policy.name] = runs.success.astype(float)
    env.close()
    print(
        f"{len(policies)} policies x {args.episodes} learned episodes in {time.time() - t0:.0f} s"
    )
    names = [p.name for p in policies]
    for name in names:
        print(f"{name:<20} real {real[name].mean():.2f}   learned {learned[name].mean():.2f}")
    metrics = compare(
        [real[n] for n in names],
        [learned[n] for n in names],
        np.random.default_rng(args.seed),
        1000,
        0.95,
    )
    print(json.dumps({"success_rate": metrics}, default=str))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"real_report": args.real_report, "learned": {n: learned[n].tolist() for n in names}}
    (out / "learned_only.json").write_text(json.dumps({**report, "metrics": metrics}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20_000_000, help="first reset seed")
    parser.add_argument("--num-envs", type=int, default=50, help="learned-env lanes")
    parser.add_argument("--ppo-dir", default="runs/ppo")
    parser.add_argument("--ppo-checkpoints", type=int, nargs="*", default=[8_192, 32_768, 131_072])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--weights", default=None, help="safetensors (default: shipped)")
    parser.add_argument("--out", default="runs/policy_ranking")
    parser.add_argument("--real-report", default=None, help="reuse this report's real results")
    parser.add_argument("--starts", default=None, help="npz of paired first frames")
    parser.add_argument("--save-starts", default=None, help="write the paired first frames")
    args = parser.parse_args()
    if args.save_starts:
        save_starts(args.save_starts, args.episodes, args.seed)
        return
    if args.threads:
        torch.set_num_threads(args.threads)

    from cosmos_sim.envs.policy_eval import Policy, evaluate_policies
    from cosmos_sim.envs.pushcube_policies import POLICIES, FeaturePPO

    policies = [
        Policy(name, f"cosmos_sim.envs.pushcube_policies:POLICIES[{name}]", act)
        for name, act in POLICIES.items()
    ]
    ppo_dir = Path(args.ppo_dir)
    if args.ppo_checkpoints:
        zips = sorted(ppo_dir.glob("ppo_*k.zip"), key=lambda p: int(p.stem[4:-1]))
        if not zips:
            zips = train_ppo(ppo_dir, args.ppo_checkpoints)
        policies += [Policy(z.stem, str(z), FeaturePPO(str(z))) for z in zips]
    learned_kwargs = {"device": args.device}
    if args.weights:
        learned_kwargs["weights"] = args.weights
    if args.real_report:
        learned_only(policies, args, learned_kwargs)
        return
    t0 = time.time()
    report = evaluate_policies(
        policies,
        real="cosmos_sim/PushCube-v0",
        learned="cosmos_sim/LearnedPushCube-v0",
        learned_kwargs=learned_kwargs,
        episodes=args.episodes,
        out=args.out,
        seed=args.seed,
        num_envs=args.num_envs,
        max_steps=60,
    )
    print(
        f"\n{len(policies)} policies x {args.episodes} paired episodes in {time.time() - t0:.0f} s"
    )
    print(f"{'policy':<20} {'real success [95% CI]':>26} {'learned success [95% CI]':>28}")
    for entry in report["policies"]:
        r, lrn = entry["real"], entry["learned"]
        print(
            f"{entry['name']:<20} {r['success_rate']:>8.2f} [{r['success_rate_ci'][0]:.2f}, "
            f"{r['success_rate_ci'][1]:.2f}]     {lrn['success_rate']:>8.2f} "
            f"[{lrn['success_rate_ci'][0]:.2f}, {lrn['success_rate_ci'][1]:.2f}]"
        )
    metrics = report["metrics"]["success_rate"]
    print(json.dumps({"success_rate": metrics}, indent=2, default=str))
    print(f"report: {report['files']}")


if __name__ == "__main__":
    main()
