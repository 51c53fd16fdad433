"""Multiverse rollouts: branch the learned PushCube env into many futures from one state.

The shipped embedded world model samples each next frame from noise, so futures branched
from the same state with the same policy differ. This plays a few scripted steps, branches
`futures` ways (one batched model call per step for all of them), lets the scripted pushing
policy act in every future, and writes what happened:

    OUT/multiverse.png   futures × time grid
    OUT/multiverse.mp4   all futures tiled, one video frame per step
    OUT/summary.json     return and success per future

    python examples/multiverse.py --futures 8 --steps 30 --out runs/multiverse
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym

import cosmos_sim  # noqa: F401  (registers the cosmos_sim/ gymnasium ids)
from cosmos_sim.envs import rollout, write_multiverse
from cosmos_sim.envs.pushcube_policies import NoisyScripted


@dataclass
class Args:
    futures: int = 8
    """How many futures to branch."""
    steps: int = 30
    """Steps to roll every future forward."""
    warmup_steps: int = 5
    """Scripted steps taken before branching."""
    seed: int = 0
    device: str = "cpu"
    out: Path = Path("runs/multiverse")


def main(args: Args) -> dict:
    env = gym.make("cosmos_sim/LearnedPushCube-v0", device=args.device)
    policy = NoisyScripted(sigma=0.0, seed=args.seed)
    obs, _ = env.reset(seed=args.seed)
    for _ in range(args.warmup_steps):
        obs, *_ = env.step(policy(obs))

    futures, _, _ = env.unwrapped.branch(args.futures, seed=args.seed)
    result = rollout(futures, policy=policy, steps=args.steps)
    success = result["success"]

    args.out.mkdir(parents=True, exist_ok=True)
    written = write_multiverse(
        result["frames"], args.out / "multiverse.png", args.out / "multiverse.mp4", fps=10
    )
    summary = {
        "args": {k: str(v) for k, v in asdict(args).items()},
        "return": result["reward"].sum(axis=1).round(4).tolist(),
        "success": success.tolist(),
        "files": {k: str(v) for k, v in written.items()},
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{args.futures} futures, {args.steps} steps: success in {int(success.sum())}")
    for key, path in written.items():
        print(f"  {key:<4} {path}")
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name, default in asdict(Args()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    main(Args(**vars(parser.parse_args())))
