"""Multiverse rollouts: many futures branched from one world-model state, batched.

`branch(env, n, seed=)` copies the current state of a `LearnedEnv` (or one lane of a
`LearnedVectorEnv`) into a `LearnedVectorEnv` of n lanes. The futures share one torch
generator seeded from `seed`: with the same actions, a stochastic model gives n different
futures, and the same seed gives the same n futures again. Resetting the branched env
(or an autoreset lane) returns to the branch point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from cosmos_sim.envs.learned import LearnedCore
from cosmos_sim.envs.vector import LearnedVectorEnv
from cosmos_sim.envs.world_model import WorldModelError
from gymnasium.vector import AutoresetMode


def _core_of(env: Any) -> LearnedCore:
    core = getattr(getattr(env, "unwrapped", env), "core", None)
    if not isinstance(core, LearnedCore):
        raise WorldModelError(
            f"branch needs a LearnedEnv or LearnedVectorEnv (possibly wrapped), got "
            f"{type(env).__name__}"
        )
    return core


def branch(
    env: Any,
    n: int,
    *,
    seed: int | None = None,
    lane: int = 0,
    autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
) -> LearnedVectorEnv:
    """n futures of `env`'s current state (lane `lane` of a vector env), ready to step."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise WorldModelError(f"branch: n is the number of futures, an int >= 1; got {n!r}")
    core = _core_of(env)
    if core.state is None:
        raise WorldModelError("branch: call reset() on the env first (there is no state yet)")
    if not 0 <= lane < core.num_lanes:
        raise WorldModelError(f"branch: lane {lane} is not in 0..{core.num_lanes - 1}")
    futures = LearnedVectorEnv.from_core(
        core.spawn(int(n)),
        autoreset_mode=autoreset_mode,
        render_mode=getattr(env, "render_mode", None),
    )
    futures.core.root = (core.state.select([lane]), int(core.elapsed[lane]))
    futures.reset(seed=seed)
    return futures


def rollout(futures: LearnedVectorEnv, actions: np.ndarray) -> dict[str, np.ndarray]:
    """Step every future through `actions` ([T, *action] shared, or [T, n, *action]).

    Returns `frames` [n, T+1, H, W, 3] (the branch point first; a future that ended keeps
    showing its last frame), `reward` [n, T] (0 after the end) and `ended` [n] bool.
    """
    actions = np.asarray(actions, np.float32)
    single = futures.single_action_space.shape
    if actions.shape[1:] == single:
        actions = np.broadcast_to(actions[:, None], (len(actions), futures.num_envs, *single))
    if actions.ndim != len(single) + 2 or actions.shape[1:] != (futures.num_envs, *single):
        raise WorldModelError(
            f"rollout actions must be [T, {list(single)}] or [T, {futures.num_envs}, "
            f"{list(single)}], got {list(actions.shape)}"
        )
    obs = futures.core.observations()
    frames, rewards = [obs], []
    ended = np.zeros(futures.num_envs, bool)
    for step_actions in actions:
        obs, reward, terminated, truncated, _ = futures.step(step_actions)
        frames.append(np.where(ended[:, None, None, None], frames[-1], obs))
        rewards.append(np.where(ended, 0.0, reward))
        ended |= terminated | truncated
    return {
        "frames": np.stack(frames, axis=1),
        "reward": np.stack(rewards, axis=1) if rewards else np.zeros((futures.num_envs, 0)),
        "ended": ended,
    }


def grid_image(frames: np.ndarray, max_columns: int = 16, pad: int = 2) -> np.ndarray:
    """A futures × time contact sheet: row i is future i, columns are (subsampled) steps."""
    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise WorldModelError(f"frames must be [futures, T, H, W, 3], got {list(frames.shape)}")
    n, t, h, w, _ = frames.shape
    columns = np.unique(np.linspace(0, t - 1, min(t, max_columns)).round().astype(int))
    sheet = np.full((n * (h + pad) + pad, len(columns) * (w + pad) + pad, 3), 255, np.uint8)
    for row in range(n):
        for col, step in enumerate(columns):
            y, x = pad + row * (h + pad), pad + col * (w + pad)
            sheet[y : y + h, x : x + w] = frames[row, step]
    return sheet


def tile_futures(frames_at_t: np.ndarray, pad: int = 2) -> np.ndarray:
    """[n, H, W, 3] -> one near-square mosaic of the n futures at one time step."""
    n, h, w, _ = frames_at_t.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    mosaic = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        y, x = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        mosaic[y : y + h, x : x + w] = frames_at_t[i]
    return mosaic


def write_multiverse(
    frames: np.ndarray,
    png_path: str | Path,
    mp4_path: str | Path | None = None,
    *,
    fps: float = 10,
    scale: int = 1,
) -> dict[str, Path]:
    """Write the futures × time grid as PNG and, optionally, an mp4 of all futures tiled."""
    import cv2

    frames = np.asarray(frames)
    if scale > 1:
        frames = frames.repeat(scale, axis=2).repeat(scale, axis=3)
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(png_path), cv2.cvtColor(grid_image(frames), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {png_path}; check the folder is writable")
    written = {"png": png_path}
    if mp4_path is not None:
        mp4_path = Path(mp4_path)
        write_mp4([tile_futures(frames[:, t]) for t in range(frames.shape[1])], mp4_path, fps)
        written["mp4"] = mp4_path
    return written


def write_mp4(frames: list[np.ndarray], path: Path, fps: float) -> None:
    """H.264 mp4 (yuv420p; sides padded to even sizes) written through PyAV."""
    import av

    h, w = frames[0].shape[:2]
    even_h, even_w = h + h % 2, w + w % 2
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=int(round(fps)))
        stream.width, stream.height, stream.pix_fmt = even_w, even_h, "yuv420p"
        for frame in frames:
            padded = np.zeros((even_h, even_w, 3), np.uint8)
            padded[:h, :w] = frame
            for packet in stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
