"""A world model as a `gymnasium.Env`: reset from real frames, step with actions.

`LearnedEnv` and `LearnedVectorEnv` (envs/vector.py) share one engine, `LearnedCore`, which
holds the model, the batched `WorldState`, the torch generator and the step counters, and
does exactly one `model.step` call per env step for all lanes. The single env is that
engine with one lane and no autoreset.

Resets start from real frames: the first tick of a recorded episode (`episodes=`), a window
of an in-memory clip (`start_frames=`), or frames passed as `reset(options={"frames": ...})`.
Episode convention (the recorder's, see envs/pushcube.py): tick t holds frame t and, in
`data[action_key]`, the action that led from frame t-1 to frame t (zeros at tick 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from cosmos_sim.envs.world_model import (
    CHUNK_MODES,
    ChunkMode,
    FoldedStep,
    RewardFn,
    WorldModel,
    WorldModelError,
    WorldState,
    check_model,
    expand_actions,
    fit_context,
    fold_chunk,
    outcome,
)
from cosmos_sim.episode import Episode, EpisodeError


@dataclass
class StartFrames:
    """Real clips that resets draw their context windows from."""

    clips: list[tuple[np.ndarray, np.ndarray]]
    """Per clip: frames [L, H, W, 3] uint8 and the actions [L, A] float32 that led to each."""
    anywhere: bool = False
    """False: windows end at each clip's first frame; True: at any frame of any clip."""

    @classmethod
    def from_arrays(
        cls, frames: np.ndarray, actions: np.ndarray | None = None, anywhere: bool = False
    ) -> StartFrames:
        """`frames` [N, L, H, W, 3] (N clips) or [L, H, W, 3] (one); `actions` [N, L, A]."""
        frames = np.asarray(frames)
        if frames.ndim == 4:
            frames = frames[None]
            actions = None if actions is None else np.asarray(actions)[None]
        if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise WorldModelError(
                f"start_frames must be uint8 [N, L, H, W, 3] or [L, H, W, 3] RGB, got "
                f"{frames.dtype} {list(frames.shape)}"
            )
        if actions is None:
            return cls([(clip, np.zeros((len(clip), 0), np.float32)) for clip in frames], anywhere)
        return cls(
            [(f, np.asarray(a, np.float32)) for f, a in zip(frames, actions, strict=True)], anywhere
        )

    @classmethod
    def from_episodes(
        cls,
        paths: Sequence[str | Path | Episode],
        *,
        camera: str | None = None,
        action_key: str = "action",
        anywhere: bool = False,
    ) -> StartFrames:
        """Frames of `camera` (the episode's only camera when None) and recorded actions."""
        if isinstance(paths, str | Path | Episode):
            paths = [paths]
        if not paths:
            raise WorldModelError("episodes: pass at least one episode folder")
        clips = []
        for item in paths:
            episode = item if isinstance(item, Episode) else Episode(item)
            name = camera
            if name is None:
                if len(episode.cameras) != 1:
                    raise EpisodeError(
                        f"{episode.path} has cameras {sorted(episode.cameras)}; pass camera=NAME"
                    )
                name = next(iter(episode.cameras))
            ticks = list(episode) if anywhere else [episode[0]]
            frames, led_to = [], []
            for tick in ticks:
                frame = tick.frames.get(name)
                if frame is None or frame.rgb is None:
                    raise EpisodeError(f"tick {tick.index} of {episode.path} has no {name}.rgb")
                frames.append(frame.rgb)
                action = tick.data.get(action_key)
                led_to.append(
                    np.zeros(0, np.float32)
                    if action is None
                    else np.asarray(action, np.float32).reshape(-1)
                )
            width = max(len(a) for a in led_to)
            if any(len(a) != width for a in led_to):
                raise EpisodeError(
                    f"{episode.path}: data[{action_key!r}] changes width across "
                    "ticks; record one action width per episode"
                )
            led_to = np.stack(led_to)
            clips.append((np.stack(frames), led_to))
        return cls(clips, anywhere)

    def check(self, frame_shape: tuple[int, ...], action_dim: int) -> None:
        for frames, actions in self.clips:
            if tuple(frames.shape[1:]) != tuple(frame_shape):
                raise WorldModelError(
                    f"start frames are {tuple(frames.shape[1:])} (H, W, 3) but the model "
                    f"reads {tuple(frame_shape)}; record or resize them to the model's size"
                )
            if actions.shape[1] not in (0, action_dim):
                raise WorldModelError(
                    f"recorded actions are {actions.shape[1]}-D but the model takes "
                    f"{action_dim}-D actions; pick the matching action_key or episodes"
                )

    def _ends(self) -> list[tuple[int, int]]:
        """(clip, last frame) of every window a reset may start from."""
        if self.anywhere:
            return [(c, t) for c, (f, _) in enumerate(self.clips) for t in range(len(f))]
        return [(c, 0) for c in range(len(self.clips))]

    def sample(
        self, rng: np.random.Generator, n: int, context: int, action_dim: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """n windows [n, context, H, W, 3] and their actions [n, context, A]."""
        starts = self._ends()
        return self._windows(
            [starts[i] for i in rng.integers(len(starts), size=n)], context, action_dim
        )

    def windows(self, context: int, action_dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Every start window, in order: [S, context, H, W, 3] and actions [S, context, A]
        (what a device-resident env samples from without going back to the host)."""
        return self._windows(self._ends(), context, action_dim)

    def _windows(
        self, ends: list[tuple[int, int]], context: int, action_dim: int
    ) -> tuple[np.ndarray, np.ndarray]:
        frames, actions = [], []
        for clip, end in ends:
            clip_frames, clip_actions = self.clips[clip]
            index = np.clip(np.arange(end - context + 1, end + 1), 0, None)
            window_actions = np.zeros((context, action_dim), np.float32)
            if clip_actions.shape[1]:
                window_actions = clip_actions[index].copy()
            window_actions[np.arange(end - context + 1, end + 1) < 0] = 0.0
            frames.append(clip_frames[index])
            actions.append(window_actions)
        return np.stack(frames), np.stack(actions)


def make_action_space(
    model_action_dim: int,
    actions_per_call: int,
    chunk_mode: ChunkMode,
    low: float | np.ndarray,
    high: float | np.ndarray,
) -> gym.spaces.Box:
    if chunk_mode not in CHUNK_MODES:
        raise WorldModelError(f"chunk_mode must be one of {CHUNK_MODES}, got {chunk_mode!r}")
    shape = (model_action_dim,) if chunk_mode == "repeat" else (actions_per_call, model_action_dim)
    low_arr = np.broadcast_to(np.asarray(low, np.float32), shape).copy()
    high_arr = np.broadcast_to(np.asarray(high, np.float32), shape).copy()
    return gym.spaces.Box(low_arr, high_arr, shape, np.float32)


class LearnedCore:
    """The batched engine under LearnedEnv and LearnedVectorEnv (one model call per step)."""

    def __init__(
        self,
        model: WorldModel | None,
        *,
        num_lanes: int,
        frame_shape: tuple[int, int, int] | None,
        action_dim: int | None,
        actions_per_call: int | None,
        chunk_mode: ChunkMode,
        action_low: float | np.ndarray,
        action_high: float | np.ndarray,
        reward_fn: RewardFn | None,
        max_episode_steps: int | None,
        starts: StartFrames | None,
    ) -> None:
        if model is not None:
            check_model(model)
            frame_shape = frame_shape or tuple(model.frame_shape)
            action_dim = action_dim or model.action_dim
            actions_per_call = actions_per_call or model.actions_per_call
        if frame_shape is None or action_dim is None:
            raise WorldModelError(
                "a learned env needs model=... (or frame_shape=(H, W, 3) and action_dim=A to "
                "build the spaces before the model is loaded with env.load_model(model))"
            )
        if max_episode_steps is not None and max_episode_steps < 1:
            raise WorldModelError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        self.num_lanes = num_lanes
        self.frame_shape = tuple(int(v) for v in frame_shape)
        self.action_dim = int(action_dim)
        self.actions_per_call = int(actions_per_call or 1)
        self.chunk_mode = chunk_mode
        self.reward_fn = reward_fn
        self.max_episode_steps = max_episode_steps
        self.starts = starts
        self.observation_space = gym.spaces.Box(0, 255, self.frame_shape, np.uint8)
        self.action_space = make_action_space(
            self.action_dim, self.actions_per_call, chunk_mode, action_low, action_high
        )
        self.model: WorldModel | None = None
        self.generator: torch.Generator | None = None
        self.state: WorldState | None = None
        self.obs: torch.Tensor | None = None
        self.root: tuple[WorldState, int] | None = None
        """A branch point (one lane, its step count): resets return there."""
        self.elapsed = np.zeros(num_lanes, np.int64)
        if model is not None:
            self.load_model(model)

    def spawn(self, num_lanes: int) -> LearnedCore:
        """A fresh engine with this one's model, spaces and settings, for `num_lanes` lanes."""
        return LearnedCore(
            self.model,
            num_lanes=num_lanes,
            frame_shape=self.frame_shape,
            action_dim=self.action_dim,
            actions_per_call=self.actions_per_call,
            chunk_mode=self.chunk_mode,
            action_low=self.action_space.low,
            action_high=self.action_space.high,
            reward_fn=self.reward_fn,
            max_episode_steps=self.max_episode_steps,
            starts=self.starts,
        )

    def load_model(self, model: WorldModel) -> None:
        check_model(model)
        expected = (self.frame_shape, self.action_dim, self.actions_per_call)
        got = (tuple(model.frame_shape), model.action_dim, model.actions_per_call)
        if got != expected:
            raise WorldModelError(
                f"{type(model).__name__} reads frames {got[0]}, takes {got[1]}-D actions, "
                f"{got[2]} per call, but the env's spaces were built for {expected[0]}, "
                f"{expected[1]}-D, {expected[2]} per call; build the env from this model or "
                "pass a model of the env's size"
            )
        if self.starts is not None:
            self.starts.check(self.frame_shape, self.action_dim)
        self.model = model
        self.generator = torch.Generator(device=model.device)
        self.state = self.obs = None

    def require_model(self) -> WorldModel:
        if self.model is None:
            raise WorldModelError(
                "no world model is loaded; pass model=... when building the env or call "
                "env.load_model(model) before reset()"
            )
        return self.model

    def seed(self, rng: np.random.Generator) -> None:
        """Seed the model's noise from the env's numpy generator (so `reset(seed=)` fixes it)."""
        assert self.generator is not None
        self.generator.manual_seed(int(rng.integers(2**62)))

    def initial_state(
        self, n: int, rng: np.random.Generator, options: dict[str, Any] | None
    ) -> tuple[WorldState, np.ndarray]:
        """Fresh state for n lanes and their step counters: from `options["frames"]` (and
        `"actions"`), else the branch root, else windows drawn from the start frames."""
        model = self.require_model()
        options = options or {}
        if "frames" in options:
            frames = np.asarray(options["frames"])
            actions = options.get("actions")
            if frames.ndim == 3:
                frames = frames[None]
            if frames.ndim == 4:  # one window for every lane
                frames = np.broadcast_to(frames, (n, *frames.shape))
                if actions is not None:
                    actions = np.broadcast_to(
                        np.asarray(actions, np.float32), (n, *np.shape(actions))
                    )
            if (
                frames.dtype != np.uint8
                or frames.ndim != 5
                or frames.shape[0] != n
                or tuple(frames.shape[2:]) != self.frame_shape
            ):
                raise WorldModelError(
                    f"options['frames'] must be uint8 [H, W, 3], [T, H, W, 3] or "
                    f"[{n}, T, H, W, 3] with (H, W, 3) = {self.frame_shape}; got "
                    f"{frames.dtype} {list(frames.shape)}"
                )
            elapsed = np.zeros(n, np.int64)
        elif self.root is not None:
            root, root_elapsed = self.root
            return root.repeat(n), np.full(n, root_elapsed, np.int64)
        elif self.starts is not None:
            frames, actions = self.starts.sample(rng, n, model.context_frames, self.action_dim)
            elapsed = np.zeros(n, np.int64)
        else:
            raise WorldModelError(
                "reset needs real frames: build the env with episodes=[folders] or "
                "start_frames=array, or pass reset(options={'frames': uint8 [T, H, W, 3]})"
            )
        # torch.tensor copies: broadcast option arrays are read-only views.
        frames_t = torch.tensor(frames, device=model.device)
        actions_t = (
            None
            if actions is None
            else torch.tensor(actions, dtype=torch.float32, device=model.device)
        )
        frames_t, actions_t = fit_context(
            frames_t, actions_t, model.context_frames, self.action_dim
        )
        return model.start(frames_t, actions_t), elapsed

    def reset_lanes(
        self, lanes: np.ndarray, rng: np.random.Generator, options: dict[str, Any] | None = None
    ) -> None:
        """Restart the lanes in the boolean mask `lanes` (all lanes on the first reset)."""
        fresh, elapsed = self.initial_state(int(lanes.sum()), rng, options)
        if self.state is None or lanes.all():
            self.state = fresh
            self.obs = fresh.last_frame.clone()
        else:
            index = torch.from_numpy(np.flatnonzero(lanes))
            self.state = replace_lanes(self.state, index, fresh)
            self.obs = self.obs.index_put((index.to(self.obs.device),), fresh.last_frame)
        self.elapsed[lanes] = elapsed

    def to_model_actions(self, actions: Any, batched: bool) -> torch.Tensor:
        """Check env actions against the action space and shape them [B, K, A]."""
        space = self.action_space
        array = np.array(actions, dtype=np.float32)  # a copy: torch needs a writable buffer
        want = (self.num_lanes, *space.shape) if batched else space.shape
        if array.shape != want:
            raise WorldModelError(
                f"action has shape {list(array.shape)}, the action space wants {list(want)}"
                + (" (one action per sub-env)" if batched else "")
            )
        bad = ~np.isfinite(array) | (array < space.low - 1e-6) | (array > space.high + 1e-6)
        if bad.any():
            raise WorldModelError(
                f"action {array[bad][:4].tolist()} is outside the action space "
                f"[{float(space.low.min())}, {float(space.high.max())}] (or not finite); "
                "clip it to action_space.low/high"
            )
        model = self.require_model()
        tensor = torch.from_numpy(array if batched else array[None]).to(model.device)
        return expand_actions(tensor, self.chunk_mode, self.actions_per_call)

    def step(self, model_actions: torch.Tensor) -> FoldedStep:
        """One batched model call for all lanes."""
        model = self.require_model()
        if self.state is None:
            raise WorldModelError("call reset() before step()")
        state, result = model.step(self.state, model_actions, self.generator)
        expected = (self.num_lanes, self.actions_per_call, *self.frame_shape)
        if tuple(result.frames.shape) != expected or result.frames.dtype != torch.uint8:
            raise WorldModelError(
                f"{type(model).__name__}.step returned frames {result.frames.dtype} "
                f"{list(result.frames.shape)}; the interface wants uint8 {list(expected)}"
            )
        self.state = state
        self.elapsed += 1
        folded = fold_chunk(outcome(result, self.reward_fn))
        self.obs = folded.obs
        return folded

    def truncated(self) -> np.ndarray:
        if self.max_episode_steps is None:
            return np.zeros(self.num_lanes, bool)
        return self.elapsed >= self.max_episode_steps

    def observations(self) -> np.ndarray:
        """[B, H, W, 3]: each lane's current observation (a chunk that terminated midway
        shows the frame it ended on, not the model's last frame)."""
        assert self.obs is not None
        return to_numpy(self.obs)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A numpy copy that shares no memory with the engine's tensors (safe to keep)."""
    return tensor.to("cpu", copy=True).numpy()


def replace_lanes(state: WorldState, lanes: torch.Tensor, fresh: WorldState) -> WorldState:
    """`state` with lanes `lanes` (int indices) replaced by the lanes of `fresh`, in order."""
    index = torch.arange(state.batch_size)
    index[lanes] = state.batch_size + torch.arange(len(lanes))
    return WorldState.cat([state, fresh]).select(index.to(state.frames.device))


class CoreBacked:
    """What LearnedEnv and LearnedVectorEnv share: their model, seeding and render guard."""

    core: LearnedCore
    render_mode: str | None
    np_random: np.random.Generator

    @property
    def model(self) -> WorldModel | None:
        return self.core.model

    def load_model(self, model: WorldModel) -> None:
        """Attach (or swap) the world model; the next reset starts from fresh frames."""
        self.core.load_model(model)

    def _seed_core(self, seed: int | None) -> None:
        """After `super().reset(seed=)`: reseed the model's noise on a seed or a first reset."""
        self.core.require_model()
        if seed is not None or self.core.state is None:
            self.core.seed(self.np_random)

    def _render_frames(self) -> np.ndarray | None:
        """[B, H, W, 3] current frames for render_mode "rgb_array", else None."""
        if self.render_mode != "rgb_array":
            return None
        if self.core.state is None:
            raise WorldModelError("call reset() before render()")
        return self.core.observations()


class LearnedEnv(CoreBacked, gym.Env):
    """A world model as a single Gymnasium env with an exact image observation space.

    Observation: the current frame, uint8 (H, W, 3). Action: float32 Box of the model's
    action width (`chunk_mode="repeat"`, held for the model's K sub-steps) or a whole chunk
    [K, A] (`chunk_mode="chunk"`); see cosmos_sim.envs.world_model. Reward and termination
    come from the model or `reward_fn(frames) -> (reward, terminated, success)`; `success`
    is in `info`. `branch(n, seed=)` returns (futures, obs, info): a LearnedVectorEnv of n
    futures from here, reset, and their first observations.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        model: WorldModel | None = None,
        *,
        episodes: Sequence[str | Path | Episode] | str | Path | None = None,
        start_frames: np.ndarray | StartFrames | None = None,
        camera: str | None = None,
        action_key: str = "action",
        start_anywhere: bool = False,
        chunk_mode: ChunkMode = "repeat",
        action_low: float | np.ndarray = -1.0,
        action_high: float | np.ndarray = 1.0,
        reward_fn: RewardFn | None = None,
        max_episode_steps: int | None = None,
        frame_shape: tuple[int, int, int] | None = None,
        action_dim: int | None = None,
        actions_per_call: int | None = None,
        render_mode: str | None = None,
        render_fps: float | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise WorldModelError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        if render_fps is not None:
            self.metadata = {**self.metadata, "render_fps": render_fps}
        self.core = LearnedCore(
            model,
            num_lanes=1,
            chunk_mode=chunk_mode,
            action_low=action_low,
            action_high=action_high,
            reward_fn=reward_fn,
            max_episode_steps=max_episode_steps,
            frame_shape=frame_shape,
            action_dim=action_dim,
            actions_per_call=actions_per_call,
            starts=build_starts(episodes, start_frames, camera, action_key, start_anywhere),
        )
        self.observation_space = self.core.observation_space
        self.action_space = self.core.action_space

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._seed_core(seed)
        self.core.reset_lanes(np.ones(1, bool), self.np_random, options)
        return self.core.observations()[0], {"success": False}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        folded = self.core.step(self.core.to_model_actions(action, batched=False))
        info = {"success": bool(folded.success[0]), "substeps": int(folded.substeps[0])}
        return (
            to_numpy(folded.obs[0]),
            float(folded.reward[0]),
            bool(folded.terminated[0]),
            bool(self.core.truncated()[0]),
            info,
        )

    def render(self) -> np.ndarray | None:
        frames = self._render_frames()
        return None if frames is None else frames[0]

    def branch(self, n: int, seed: int | None = None) -> tuple[Any, np.ndarray, dict[str, Any]]:
        """(futures, obs, info): `n` futures from this env's current state (see
        `cosmos_sim.envs.multiverse.branch`)."""
        from cosmos_sim.envs.multiverse import branch

        return branch(self, n, seed=seed)


def build_starts(
    episodes: Sequence[str | Path | Episode] | str | Path | None,
    start_frames: np.ndarray | StartFrames | None,
    camera: str | None,
    action_key: str,
    anywhere: bool,
) -> StartFrames | None:
    pools = []
    if episodes is not None:
        pools.append(
            StartFrames.from_episodes(
                episodes, camera=camera, action_key=action_key, anywhere=anywhere
            )
        )
    if isinstance(start_frames, StartFrames):
        pools.append(start_frames)
    elif start_frames is not None:
        pools.append(StartFrames.from_arrays(start_frames, anywhere=anywhere))
    if len(pools) < 2:
        return pools[0] if pools else None
    return StartFrames([clip for pool in pools for clip in pool.clips], anywhere)


def make_learned_env(model: WorldModel | None = None, **kwargs: Any) -> LearnedEnv:
    """Entry point of `gymnasium.make("cosmos_sim/Learned-v0", model=..., ...)`."""
    if model is None and kwargs.get("frame_shape") is None:
        raise WorldModelError(
            'gymnasium.make("cosmos_sim/Learned-v0") needs model=... (any object implementing '
            "cosmos_sim.envs.world_model.WorldModel)"
        )
    return LearnedEnv(model, **kwargs)
