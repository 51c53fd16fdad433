"""Seeded collection of PushCube-v0 episodes for training the embedded world model.

Every episode is recorded through the recorder (`PushCubeEnv(record_dir=...)` →
`EpisodeWriter`), then the episodes of each split are packed into one compact `.npz`
(frames compress to ~200 bytes each) that the training script reads.

Behaviours are mixed per episode so the model sees successes and failures: uniform random,
smooth random walks, scripted pushing at several noise levels, scripted pushing with random
actions mixed in, and near-misses that aim beside the goal; then `graze_episodes` more
near-misses that graze the goal's edge (packed with behaviour "near_miss"). Episode i of
split s is reset with seed `base_seed[s] + i` and draws its behaviour from a generator
seeded the same way, so a collection is reproducible worker count aside.

    python scripts/collect_pushcube.py --out runs/pushcube_data   # the shipped data
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cosmos_sim.envs.pushcube import CAMERA_NAME, PushCubeEnv
from cosmos_sim.envs.pushcube_policies import NoisyScripted
from cosmos_sim.episode import Episode

SPLIT_SEEDS = {"train": 0, "heldout": 10_000_000}
BEHAVIOURS = ("random", "random_walk", "scripted", "scripted_eps", "near_miss")
BEHAVIOUR_WEIGHTS = (0.12, 0.13, 0.45, 0.15, 0.15)


@dataclass
class CollectConfig:
    out: str = "runs/pushcube_data"
    """Folder for the recorded episodes (episodes/<split>/) and the packed <split>.npz."""
    train_episodes: int = 4000
    heldout_episodes: int = 300
    workers: int = 2
    """Worker processes; 0 collects in this process."""
    image_size: int = 64
    max_episode_steps: int = 60
    keep_episodes: bool = False
    """Keep the recorded episode folders after packing (they are ~10x the packed size)."""
    graze_episodes: int = 1500
    """Extra training episodes after the first `train_episodes`, all near-misses that graze
    the goal's edge (aimed 5-10 cm beside it), where a model trained without them
    over-credits success (MODEL_CARD.md). The first `train_episodes` do not depend on it."""


class RandomWalk:
    """Smoothly varying random actions (an Ornstein-Uhlenbeck walk): covers the table."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.action = rng, rng.uniform(-1, 1, 2)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        self.action = 0.8 * self.action + 0.5 * self.rng.normal(0, 1, 2)
        return np.clip(self.action, -1, 1).astype(np.float32)


def behaviour_policy(name: str, rng: np.random.Generator):
    """A policy for one episode of behaviour `name`, its noise drawn from `rng`."""
    seed = int(rng.integers(2**31))
    if name == "random":
        uniform = np.random.default_rng(seed)
        return lambda obs: uniform.uniform(-1, 1, 2).astype(np.float32)
    if name == "random_walk":
        return RandomWalk(np.random.default_rng(seed))
    if name == "scripted":
        return NoisyScripted(sigma=float(rng.choice([0.0, 0.3, 0.7, 1.0, 1.5, 2.5])), seed=seed)
    if name == "scripted_eps":
        return NoisyScripted(sigma=0.2, random_prob=float(rng.uniform(0.2, 0.8)), seed=seed)
    if name == "near_miss":
        offset = float(rng.uniform(0.045, 0.11)) * float(rng.choice([-1, 1]))
        return NoisyScripted(sigma=float(rng.uniform(0, 0.5)), aim_offset_m=offset, seed=seed)
    raise ValueError(f"behaviour {name!r} is not one of {BEHAVIOURS}")


def graze_policy(rng: np.random.Generator) -> NoisyScripted:
    """A near-miss aimed 5-10 cm beside the goal (either side), little action noise."""
    offset = float(rng.uniform(0.05, 0.10)) * float(rng.choice([-1, 1]))
    sigma = float(rng.uniform(0, 0.3))
    return NoisyScripted(sigma=sigma, aim_offset_m=offset, seed=int(rng.integers(2**31)))


def _collect_range(args: tuple[str, str, int, int, int, int, int]) -> list[str]:
    out, split, start, stop, image_size, max_steps, graze_from = args
    base = SPLIT_SEEDS[split]
    names = []
    for i in range(start, stop):
        seed = base + i
        rng = np.random.default_rng(seed)
        if i >= graze_from:
            behaviour, policy = "near_miss", graze_policy(rng)
        else:
            behaviour = str(rng.choice(BEHAVIOURS, p=BEHAVIOUR_WEIGHTS))
            policy = behaviour_policy(behaviour, rng)
        folder = Path(out) / "episodes" / split / f"{i:06d}"
        env = PushCubeEnv(image_size=image_size, max_episode_steps=max_steps, record_dir=folder)
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(policy(obs))
            done = terminated or truncated
        env.close()
        (folder / "behaviour.txt").write_text(behaviour)
        names.append(behaviour)
    return names


def pack(folder: Path, out_file: Path) -> dict[str, float]:
    """Pack recorded episodes (folder/<id>/episode_000000) into one compressed npz."""
    frames, actions, rewards, success, states, episode_index, behaviours = (
        [],
        [],
        [],
        [],
        [],
        [],
        [],
    )
    for k, ep_dir in enumerate(sorted(folder.iterdir())):
        episode = Episode(ep_dir / "episode_000000")
        ticks = list(episode)
        frames.append(np.stack([t.frames[CAMERA_NAME].rgb for t in ticks]))
        actions.append(np.stack([t.data["action"] for t in ticks]).astype(np.float32))
        rewards.append(np.array([t.data["reward"] for t in ticks], np.float32))
        success.append(np.array([t.data["success"] for t in ticks], bool))
        states.append(np.stack([t.data["state"] for t in ticks]).astype(np.float32))
        episode_index.append(np.full(len(ticks), k, np.int32))
        behaviours.append((ep_dir / "behaviour.txt").read_text())
    lengths = np.array([len(f) for f in frames], np.int32)
    np.savez_compressed(
        out_file,
        frames=np.concatenate(frames),
        actions=np.concatenate(actions),
        rewards=np.concatenate(rewards),
        success=np.concatenate(success),
        states=np.concatenate(states),
        episode_index=np.concatenate(episode_index),
        episode_lengths=lengths,
        behaviours=np.array(behaviours),
    )
    ep_success = np.array([s.any() for s in success])
    return {
        "episodes": len(lengths),
        "frames": int(lengths.sum()),
        "success_rate": float(ep_success.mean()),
        "mean_length": float(lengths.mean()),
        "megabytes": out_file.stat().st_size / 2**20,
    }


def collect(cfg: CollectConfig) -> dict[str, dict[str, float]]:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    splits = (
        ("train", cfg.train_episodes + cfg.graze_episodes, cfg.train_episodes),
        ("heldout", cfg.heldout_episodes, cfg.heldout_episodes),
    )
    for split, count, graze_from in splits:
        if count <= 0:
            continue
        t0 = time.time()
        bounds = np.linspace(0, count, max(cfg.workers, 1) * 8 + 1).astype(int)
        jobs = [
            (str(out), split, int(a), int(b), cfg.image_size, cfg.max_episode_steps, graze_from)
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            if b > a
        ]
        if cfg.workers > 0:
            with mp.get_context("spawn").Pool(cfg.workers) as pool:
                names = [n for chunk in pool.map(_collect_range, jobs) for n in chunk]
        else:
            names = [n for job in jobs for n in _collect_range(job)]
        stats = pack(out / "episodes" / split, out / f"{split}.npz")
        stats["seconds"] = time.time() - t0
        stats.update({f"share_{b}": names.count(b) / len(names) for b in BEHAVIOURS})
        summary[split] = stats
        print(f"[collect] {split}: {json.dumps(stats)}", flush=True)
        if not cfg.keep_episodes:
            shutil.rmtree(out / "episodes" / split)
    (out / "collect.json").write_text(json.dumps({"config": asdict(cfg), **summary}, indent=2))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for key, value in asdict(CollectConfig()).items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, action="store_true", default=value)
        else:
            parser.add_argument(flag, type=type(value), default=value)
    collect(CollectConfig(**vars(parser.parse_args())))


if __name__ == "__main__":
    main()
