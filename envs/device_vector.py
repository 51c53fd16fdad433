"""A learned env's lanes as torch tensors that never leave the model's device.

`LearnedVectorEnv` speaks Gymnasium's numpy API, so every step copies observations, rewards
and flags to the host and autoresets from a numpy mask. For GPU training loops (PPO at
batch 1024 on one H200) that copy and the sync it forces cost more than the model call.
`DeviceVectorEnv` is the same engine (`LearnedCore`: model, start frames, step limit,
reward function) behind a torch-in, torch-out API:

    env = DeviceVectorEnv.from_env(gym.make("cosmos_sim/LearnedPushCube-v0", device="cuda"),
                                   num_envs=1024)
    obs = env.reset(seed=0)                       # uint8 [B, H, W, 3] on the device
    obs, reward, terminated, truncated, success = env.step(actions)   # actions [B, A]

Autoreset is SAME_STEP and branch-free: every step draws a fresh start window for every lane
on the device and `torch.where` keeps it only for lanes that ended, so nothing is read back
to the host (no `.item()`, no numpy mask) and the batch keeps its shape. The returned
observation of an ended lane is its first frame of the next episode (CleanRL's convention:
the step's reward and flags still belong to the episode that ended).

The lanes' state (context window, step counters) lives in fixed buffers that every step
updates in place, and every random draw comes from the env's own device generators, so one
step, or a training loop's whole step (policy, env, reward), can be captured once in a CUDA
graph and replayed: `GraphedStep` does that, one graph launch instead of one per op (at 32
lanes the eager step is launch-bound: benchmarks/RESULTS.md, issue 21).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from cosmos_sim.envs.learned import LearnedCore
from cosmos_sim.envs.world_model import (
    WorldModelError,
    WorldState,
    expand_actions,
    fold_chunk,
    outcome,
)


def where_lanes(mask: torch.Tensor, fresh: WorldState, state: WorldState) -> WorldState:
    """Lane-wise `fresh if mask else state` for every tensor of two same-shaped states."""

    def pick(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(mask.view(-1, *([1] * (a.ndim - 1))).to(a.device), a, b)

    if set(fresh.extra) != set(state.extra):
        raise WorldModelError("where_lanes: the two states carry different `extra` keys")
    return WorldState(
        frames=pick(fresh.frames, state.frames),
        actions=pick(fresh.actions, state.actions),
        extra={k: pick(fresh.extra[k], state.extra[k]) for k in state.extra},
    )


class DeviceVectorEnv:
    """`num_envs` lanes of a `LearnedCore`, stepped and autoreset on the model's device."""

    def __init__(self, core: LearnedCore) -> None:
        model = core.require_model()
        if core.starts is None:
            raise WorldModelError(
                "DeviceVectorEnv resets from start frames: build the learned env with "
                "start_frames=... or episodes=..."
            )
        if core.max_episode_steps is None:
            raise WorldModelError(
                "DeviceVectorEnv needs a step limit: build the learned env with max_episode_steps=N"
            )
        self.core = core
        self.num_envs = core.num_lanes
        self.device = torch.device(model.device)
        frames, actions = core.starts.windows(model.context_frames, core.action_dim)
        self.start_frames = torch.from_numpy(frames).to(self.device)
        """[S, T_ctx, H, W, 3] uint8: every start window, resident on the device."""
        self.start_actions = torch.from_numpy(actions).to(self.device)
        self.max_episode_steps = int(core.max_episode_steps)
        space = core.action_space
        self.action_low = torch.as_tensor(space.low, device=self.device)
        self.action_high = torch.as_tensor(space.high, device=self.device)
        self.elapsed = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self.generator = torch.Generator(device=self.device)
        self.state: WorldState | None = None
        """The lanes' state: buffers allocated by the first reset, then updated in place."""

    @classmethod
    def from_env(cls, env: Any, num_envs: int) -> DeviceVectorEnv:
        """A device env of `num_envs` lanes with the model and settings of a LearnedEnv
        (or LearnedVectorEnv), keeping a step limit given to `gymnasium.make`."""
        from cosmos_sim.envs.vector import spawn_core

        if not isinstance(num_envs, int) or num_envs < 1:
            raise WorldModelError(f"num_envs must be an int >= 1, got {num_envs!r}")
        return cls(spawn_core(env, num_envs))

    @property
    def single_action_space(self) -> Any:
        return self.core.action_space

    @property
    def single_observation_space(self) -> Any:
        return self.core.observation_space

    @property
    def generators(self) -> tuple[torch.Generator, ...]:
        """The device generators a step draws from (start picks, model noise): a CUDA graph
        that captures `step` registers them (`GraphedStep(..., generators=env.generators)`)."""
        assert self.core.generator is not None
        return (self.generator, self.core.generator)

    def _store(self, state: WorldState) -> None:
        """Keep `state` in the env's buffers: copied in place once they exist, so their
        addresses (which a captured CUDA graph reads) never change."""
        if self.state is None:
            self.state = WorldState(
                frames=state.frames.clone(),
                actions=state.actions.clone(),
                extra={k: v.clone() for k, v in state.extra.items()},
            )
            return
        self.state.frames.copy_(state.frames)
        self.state.actions.copy_(state.actions)
        for key, value in self.state.extra.items():
            value.copy_(state.extra[key])

    def _fresh(self, n: int) -> WorldState:
        pick = torch.randint(
            len(self.start_frames), (n,), generator=self.generator, device=self.device
        )
        model = self.core.require_model()
        return model.start(self.start_frames[pick], self.start_actions[pick])

    @torch.inference_mode()
    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Restart every lane from a random start window; uint8 [B, H, W, 3] on the device."""
        if seed is not None:
            starts_seed, noise_seed = np.random.default_rng(seed).integers(2**62, size=2)
            self.generator.manual_seed(int(starts_seed))
            assert self.core.generator is not None
            self.core.generator.manual_seed(int(noise_seed))
        self._store(self._fresh(self.num_envs))
        self.elapsed.zero_()
        assert self.state is not None
        return self.state.last_frame.clone()

    @torch.inference_mode()
    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One batched model call: (obs uint8 [B, H, W, 3], reward float32 [B], terminated,
        truncated, success bool [B]), all on the device. Actions are clipped to the space."""
        if self.state is None:
            raise WorldModelError("call reset() before step()")
        want = (self.num_envs, *self.core.action_space.shape)
        if tuple(actions.shape) != want:
            raise WorldModelError(
                f"actions have shape {list(actions.shape)}, the env wants {list(want)} "
                "(one action per lane)"
            )
        actions = actions.to(self.device, torch.float32)
        actions = torch.maximum(torch.minimum(actions, self.action_high), self.action_low)
        core = self.core
        model_actions = expand_actions(actions, core.chunk_mode, core.actions_per_call)
        state, result = core.require_model().step(self.state, model_actions, core.generator)
        folded = fold_chunk(outcome(result, core.reward_fn))
        self.elapsed += 1
        terminated = folded.terminated.to(self.device)
        truncated = (self.elapsed >= self.max_episode_steps) & ~terminated
        ended = terminated | truncated
        fresh = self._fresh(self.num_envs)
        self._store(where_lanes(ended, fresh, state))
        self.elapsed.masked_fill_(ended, 0)
        obs = torch.where(ended[:, None, None, None], fresh.last_frame, folded.obs)
        reward = folded.reward.to(self.device, torch.float32)
        return obs, reward, terminated, truncated, folded.success.to(self.device)


class GraphedStep:
    """`fn(*tensors) -> tuple of tensors`, run from a CUDA graph after a few eager calls.

    The first `warmup` calls run `fn` eagerly on a side stream (lazy library set-up must
    happen outside a capture); the next one captures `fn` once on copies of its inputs and
    every call from then on copies the inputs in and replays the graph: one graph launch
    (plus a copy per input) instead of one launch per op. The outputs are the graph's own
    tensors, overwritten by the next call (copy what you keep). `fn` must not read tensors
    back to the host or rebind state it keeps between calls (a `DeviceVectorEnv` updates its
    state in place), and every generator it draws from other than torch's default one goes
    in `generators`. Off a CUDA device, `fn` just runs.
    """

    def __init__(
        self,
        fn: Callable[..., tuple[torch.Tensor, ...]],
        generators: Sequence[torch.Generator] = (),
        warmup: int = 3,
    ) -> None:
        self.fn, self.generators, self.warmup = fn, tuple(generators), warmup
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.side_stream: torch.cuda.Stream | None = None
        self.inputs: list[torch.Tensor] = []
        self.outputs: tuple[torch.Tensor, ...] = ()

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not inputs:
            raise ValueError("GraphedStep: pass fn's inputs as tensors (at least one)")
        if self.graph is None:
            if not inputs[0].is_cuda:
                return self.fn(*inputs)
            if self.calls < self.warmup:
                self.calls += 1
                if self.side_stream is None:
                    self.side_stream = torch.cuda.Stream()
                self.side_stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(self.side_stream):
                    outputs = self.fn(*inputs)
                torch.cuda.current_stream().wait_stream(self.side_stream)
                return outputs
            self.inputs = [x.clone() for x in inputs]
            self.graph = torch.cuda.CUDAGraph()
            for generator in self.generators:
                self.graph.register_generator_state(generator)
            with torch.cuda.graph(self.graph):
                self.outputs = self.fn(*self.inputs)
        for static, x in zip(self.inputs, inputs, strict=True):
            static.copy_(x)
        self.graph.replay()
        return self.outputs
