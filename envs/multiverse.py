"""Multiverse rollouts: many futures branched from one world-model state, batched.

`futures, obs, info = branch(env, n, seed=)` copies the current state of a `LearnedEnv` (or
one lane of a `LearnedVectorEnv`) into a `LearnedVectorEnv` of n lanes, reset there: like
Gymnasium's `reset`, it also returns the futures' first observations and info. The futures
share one torch generator seeded from `seed`: with the same actions, a stochastic model
gives n different futures, and the same seed gives the same n futures again. Resetting the
branched env (or an autoreset lane) returns to the branch point.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

from cosmos_sim.envs.vector import LearnedVectorEnv, core_of, spawn_core
from cosmos_sim.envs.world_model import WorldModelError
from cosmos_sim.imaging import image_grid, save_png
from cosmos_sim.video import write_video


def branch(
    env: Any,
    n: int,
    *,
    seed: int | None = None,
    lane: int = 0,
    autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
) -> tuple[LearnedVectorEnv, np.ndarray, dict[str, Any]]:
    """(futures, obs [n, H, W, 3], info): n futures of `env`'s current state (lane `lane`
    of a vector env), reset and ready to step. `env.branch(n, seed=)` is this function.

    Pass the env as `gymnasium.make` returned it (not `.unwrapped`): a step limit given to
    `gymnasium.make` then holds in the futures too.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise WorldModelError(f"branch: n is the number of futures, an int >= 1; got {n!r}")
    core = core_of(env)
    if core.state is None:
        raise WorldModelError("branch: call reset() on the env first (there is no state yet)")
    if not 0 <= lane < core.num_lanes:
        raise WorldModelError(f"branch: lane {lane} is not in 0..{core.num_lanes - 1}")
    futures = LearnedVectorEnv.from_core(
        spawn_core(env, int(n)),
        autoreset_mode=autoreset_mode,
        render_mode=getattr(env, "render_mode", None),
    )
    futures.core.root = (core.state.select([lane]), int(core.elapsed[lane]))
    obs, info = futures.reset(seed=seed)
    return futures, obs, info


def rollout(
    futures: LearnedVectorEnv,
    actions: np.ndarray | None = None,
    *,
    policy: Callable[[np.ndarray], np.ndarray] | None = None,
    steps: int | None = None,
) -> dict[str, np.ndarray]:
    """Step every future through `actions` ([T, *action] shared, or [T, n, *action]), or
    `steps` times with `policy(obs [H, W, 3]) -> action` acting in each future.

    Returns `frames` [n, T+1, H, W, 3] (the branch point first; a future that ended keeps
    showing its last frame, which is also what the policy then sees), `reward` [n, T]
    (0 after the end), `success` [n] (at any step before the end) and `ended` [n] bool.
    """
    single = futures.single_action_space.shape
    if (actions is None) == (policy is None):
        raise WorldModelError("rollout: pass actions=[T, ...] or policy=fn with steps=T")
    if policy is not None:
        if steps is None or isinstance(steps, bool) or steps < 0:
            raise WorldModelError(f"rollout: steps must be an int >= 0 with policy, got {steps!r}")
    else:
        actions = np.asarray(actions, np.float32)
        if actions.shape[1:] == single:
            actions = np.broadcast_to(actions[:, None], (len(actions), futures.num_envs, *single))
        if actions.ndim != len(single) + 2 or actions.shape[1:] != (futures.num_envs, *single):
            raise WorldModelError(
                f"rollout actions must be [T, {list(single)}] or [T, {futures.num_envs}, "
                f"{list(single)}], got {list(actions.shape)}"
            )
        steps = len(actions)
    frames, rewards = [futures.core.observations()], []
    ended = np.zeros(futures.num_envs, bool)
    success = np.zeros(futures.num_envs, bool)
    for t in range(steps):
        if policy is None:
            step_actions = actions[t]
        else:
            step_actions = np.stack([policy(obs) for obs in frames[-1]])
        obs, reward, terminated, truncated, info = futures.step(step_actions)
        frames.append(np.where(ended[:, None, None, None], frames[-1], obs))
        rewards.append(np.where(ended, 0.0, reward))
        success |= info["success"] & ~ended
        ended |= terminated | truncated
    return {
        "frames": np.stack(frames, axis=1),
        "reward": np.stack(rewards, axis=1) if rewards else np.zeros((futures.num_envs, 0)),
        "success": success,
        "ended": ended,
    }


def grid_image(frames: np.ndarray, max_columns: int = 16, cell_width: int = 96) -> np.ndarray:
    """A futures × time contact sheet: row i is future i, columns are (subsampled) steps."""
    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise WorldModelError(
            f"frames must be uint8 [futures, T, H, W, 3], got {frames.dtype} {list(frames.shape)}"
        )
    n, t = frames.shape[:2]
    steps = np.unique(np.linspace(0, t - 1, min(t, max_columns)).round().astype(int))
    return image_grid(
        [[frames[row, step] for step in steps] for row in range(n)],
        row_labels=[f"future {row}" for row in range(n)],
        col_labels=[f"t={step}" for step in steps],
        cell_width=cell_width,
    )


def write_multiverse(
    frames: np.ndarray,
    png_path: str | Path,
    mp4_path: str | Path | None = None,
    *,
    fps: float = 10,
    max_columns: int = 16,
    cell_width: int = 96,
) -> dict[str, Path]:
    """Write the futures × time grid as PNG and, optionally, an mp4 with all futures tiled
    side by side (one video frame per time step)."""
    frames = np.asarray(frames)
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    written = {"png": save_png(png_path, grid_image(frames, max_columns, cell_width))}
    if mp4_path is not None:
        n = frames.shape[0]
        cols = int(np.ceil(np.sqrt(n)))
        tiles = []
        for t in range(frames.shape[1]):
            cells = list(frames[:, t])
            tile = image_grid(
                [cells[r : r + cols] for r in range(0, n, cols)], cell_width=cell_width
            )
            tiles.append(np.pad(tile, ((0, tile.shape[0] % 2), (0, tile.shape[1] % 2), (0, 0))))
        mp4_path = Path(mp4_path)
        mp4_path.parent.mkdir(parents=True, exist_ok=True)
        written["mp4"] = write_video(mp4_path, np.stack(tiles), fps)
    return written
