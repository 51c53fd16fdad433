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
    args = parser.parse_args()
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
