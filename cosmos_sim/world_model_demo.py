"""The demo's fifth step: the embedded PushCube world model (ours, not Cosmos) beside the
real PyBullet env, with a few branched futures. Kept out of `cosmos_sim.envs`, which holds
the envs themselves; `cosmos-sim demo` calls `demo_rollout`."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def demo_rollout(
    out_dir: str | Path, seed: int = 3, steps: int = 24, futures: int = 4
) -> dict[str, Path]:
    """The demo's learned-env step: real PushCube-v0 frames beside the learned env's.

    Runs the scripted policy in the real env from `reset(seed=seed)`, replays its actions in
    LearnedPushCube-v0 started from the same first frame, and branches `futures` futures
    from the learned env's state after a quarter of the rollout. Writes
    `real_vs_learned.png` / `.mp4` (top row real, bottom row learned), `multiverse.png`
    (the real frames, then one row per future), `futures.png` and `multiverse.mp4` (the
    futures tiled side by side).
    """
    from cosmos_sim.envs.embedded import PushCubeWorldModel
    from cosmos_sim.envs.learned import LearnedEnv
    from cosmos_sim.envs.multiverse import rollout, write_multiverse
    from cosmos_sim.envs.pushcube import PushCubeEnv
    from cosmos_sim.envs.pushcube_policies import NoisyScripted
    from cosmos_sim.imaging import image_grid, save_png
    from cosmos_sim.video import write_video

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    real_env = PushCubeEnv()
    obs, _ = real_env.reset(seed=seed)
    policy = NoisyScripted(0.0)
    real_frames, actions = [obs], []
    for _ in range(steps):
        action = policy(obs)
        obs, _, terminated, truncated, _ = real_env.step(action)
        real_frames.append(obs)
        actions.append(action)
        if terminated or truncated:
            break
    real_env.close()
    actions_arr = np.stack(actions)
    learned = LearnedEnv(PushCubeWorldModel.load(), max_episode_steps=len(actions) + 1)
    obs, _ = learned.reset(seed=seed, options={"frames": real_frames[0][None]})
    learned_frames = [obs]
    branch_at = max(1, len(actions) // 4)
    multiverse = None
    for k, action in enumerate(actions_arr):
        if k == branch_at:
            multiverse = rollout(learned.branch(futures, seed=seed)[0], actions_arr[k:])["frames"]
        obs, *_ = learned.step(action)
        learned_frames.append(obs)
    real_arr, learned_arr = np.stack(real_frames), np.stack(learned_frames)
    columns = np.unique(np.linspace(0, len(real_arr) - 1, 12).round().astype(int))
    sheet = image_grid(
        [[real_arr[c] for c in columns], [learned_arr[c] for c in columns]],
        row_labels=["real", "learned"],
        col_labels=[f"t={c}" for c in columns],
        cell_width=96,
    )
    video = np.concatenate([real_arr, learned_arr], axis=2)
    video = np.repeat(np.repeat(video, 4, axis=1), 4, axis=2)
    paths = {
        "real_vs_learned_png": save_png(out / "real_vs_learned.png", sheet),
        "real_vs_learned_mp4": write_video(out / "real_vs_learned.mp4", video, fps=10),
    }
    assert multiverse is not None
    written = write_multiverse(multiverse, out / "futures.png", out / "multiverse.mp4", fps=10)
    real_tail = real_arr[branch_at:]
    columns = np.unique(np.linspace(0, len(real_tail) - 1, 12).round().astype(int))
    paths["multiverse_png"] = save_png(
        out / "multiverse.png",
        image_grid(
            [[real_tail[c] for c in columns]] + [[f[c] for c in columns] for f in multiverse],
            row_labels=["real"] + [f"future {i}" for i in range(len(multiverse))],
            col_labels=[f"t={branch_at + c}" for c in columns],
            cell_width=96,
        ),
    )
    paths["futures_png"], paths["multiverse_mp4"] = written["png"], written["mp4"]
    return paths
