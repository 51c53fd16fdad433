"""Train PPO inside the learned PushCube env, then test the policy in the real simulator.

stable-baselines3 runs on `cosmos_sim/LearnedPushCube-v0` (the shipped embedded world model):
its `n_envs` environments are lanes of one LearnedVectorEnv, so every PPO step is one
batched model call (`cosmos_sim.envs.sb3.SB3VecEnv`). The trained policy is then scored,
with scripted and random baselines, in both the learned env and the real PyBullet
`cosmos_sim/PushCube-v0` (paired starts, bootstrap CIs): does what it learned in the
world model transfer?

This shows the plumbing: SB3 on the learned env, then scoring in both envs. It trains on
the env's own dense reward, which pays for hovering beside the goal (benchmarks/RESULTS.md,
issue 21), so do not expect it to learn the task. A recipe that does, from training only in
the learned env (about 90 % real success after 400k steps, 37 s on one H200), is
benchmarks/ppo_pushcube.py.

    OUT/ppo_learned_pushcube.zip     the policy (loadable by `cosmos-sim eval-policies`)
    OUT/eval/report.json, scatter.png

    python examples/train_ppo_learned_env.py --total-timesteps 50000 --out runs/ppo
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

import cosmos_sim  # noqa: F401  (registers the cosmos_sim/ gymnasium ids)
from cosmos_sim.envs.policy_eval import evaluate_policies


@dataclass
class Args:
    total_timesteps: int = 50_000
    n_envs: int = 8
    """Learned envs PPO collects from, stepped in one batched model call."""
    n_steps: int = 128
    """PPO rollout length per env."""
    learning_rate: float = 3e-4
    eval_episodes: int = 20
    """Episodes per policy in each env for the final comparison."""
    seed: int = 0
    device: str = "cpu"
    out: Path = Path("runs/ppo_learned_pushcube")


def main(args: Args) -> dict:
    import gymnasium as gym
    from stable_baselines3 import PPO

    from cosmos_sim.envs.sb3 import SB3VecEnv

    train_env = SB3VecEnv(
        gym.make_vec(
            "cosmos_sim/LearnedPushCube-v0",
            num_envs=args.n_envs,
            vectorization_mode="vector_entry_point",
            device=args.device,
        )
    )
    train_env.seed(args.seed)
    agent = PPO(
        "CnnPolicy",
        train_env,
        n_steps=args.n_steps,
        batch_size=64,
        learning_rate=args.learning_rate,
        seed=args.seed,
        device=args.device,
        verbose=1,
    )
    agent.learn(total_timesteps=args.total_timesteps)
    args.out.mkdir(parents=True, exist_ok=True)
    policy_path = args.out / "ppo_learned_pushcube.zip"
    agent.save(policy_path)

    baselines = "cosmos_sim.envs.pushcube_policies"
    report = evaluate_policies(
        [f"ppo={policy_path}", f"{baselines}:scripted", f"{baselines}:random_policy"],
        real="cosmos_sim/PushCube-v0",
        learned="cosmos_sim/LearnedPushCube-v0",
        learned_kwargs={"device": args.device},
        episodes=args.eval_episodes,
        out=args.out / "eval",
        seed=args.seed + 10_000,  # starts the policy never trained from
    )
    print(f"{'policy':<16} {'real success':>13} {'learned success':>16}")
    for entry in report["policies"]:
        print(
            f"{entry['name']:<16} {entry['real']['success_rate']:>13.2f} "
            f"{entry['learned']['success_rate']:>16.2f}"
        )
    print(f"policy: {policy_path}\nreport: {report['files']['report']}")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name, default in asdict(Args()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    main(Args(**vars(parser.parse_args())))
