"""The batched world-model interface every learned env runs on.

A world model is a simulator on torch tensors: `start` turns real context frames (and the
actions that led to them) into a `WorldState`, `step` takes one chunk of actions per lane
and returns the next frames plus, when the model predicts them, reward, termination and
success. Everything is batched on dim 0 and lives on `model.device`; lanes are independent,
so envs can gather (`select`), copy (`repeat`) and join (`WorldState.cat`) them freely —
that is all autoreset and multiverse branching need.

Action chunking is handled once, here (`ChunkMode`, `expand_actions`, `fold_chunk`), not in
each env. A model that predicts `actions_per_call = K > 1` frames per call (Cosmos Predict
2.5: 12) is exposed in one of two ways:

- ``"repeat"`` (default): the env action is one action of the model's width; it is held for
  the K sub-steps of the call (action repeat, like Atari's frame skip). One env step is one
  model call, policies written for the real env run unchanged, the observation is the
  chunk's last frame.
- ``"chunk"``: the env action is a whole chunk `[K, A]` (action-chunking policies such as
  ACT or diffusion policy); one env step is one model call.

In both, a chunk that terminates at sub-step k ends there: the observation is frame k,
the reward is the sum over sub-steps 0..k. Buffering actions until a chunk is full was
rejected because the policy would act K-1 times on a stale frame; padding one action with
K-1 dummies and discarding K-1 predicted frames was rejected because it costs K model calls
per K env steps of real time for the same result as "repeat".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import torch

ChunkMode = Literal["repeat", "chunk"]
CHUNK_MODES: tuple[str, ...] = ("repeat", "chunk")

RewardFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
"""`fn(frames [N, H, W, 3] uint8) -> (reward [N] float, terminated [N] bool, success [N] bool)`,
reward and termination computed from observations when the model predicts none (or to
override what it predicts). Runs on the model's device, batched over all lanes and sub-steps."""


class WorldModelError(ValueError):
    """A world model or its inputs do not fit the interface; the message says what and how."""


@dataclass
class WorldState:
    """The state of B independent lanes of a world model, batched on dim 0."""

    frames: torch.Tensor
    """[B, T_ctx, H, W, 3] uint8 context window, most recent frame last."""
    actions: torch.Tensor
    """[B, T_ctx, A] float32: the action that led to each context frame (zeros for the first)."""
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    """Model-specific latent state; every tensor batched on dim 0."""

    @property
    def batch_size(self) -> int:
        return int(self.frames.shape[0])

    @property
    def last_frame(self) -> torch.Tensor:
        """[B, H, W, 3] uint8: the current observation of each lane."""
        return self.frames[:, -1]

    def select(self, index: torch.Tensor | list[int]) -> WorldState:
        """Lanes `index` (a 1-D int tensor or list; repeats allowed), in that order."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.frames.device)
        return WorldState(
            frames=self.frames.index_select(0, index),
            actions=self.actions.index_select(0, index.to(self.actions.device)),
            extra={k: v.index_select(0, index.to(v.device)) for k, v in self.extra.items()},
        )

    def repeat(self, n: int) -> WorldState:
        """`n` consecutive copies of each lane: lane i becomes lanes i*n .. i*n+n-1."""
        if n < 1:
            raise WorldModelError(f"WorldState.repeat: n must be >= 1, got {n}")
        index = torch.arange(self.batch_size, device=self.frames.device).repeat_interleave(n)
        return self.select(index)

    @staticmethod
    def cat(states: list[WorldState]) -> WorldState:
        """Join states lane-wise (all from the same model)."""
        if not states:
            raise WorldModelError("WorldState.cat: pass at least one state")
        keys = set(states[0].extra)
        if any(set(s.extra) != keys for s in states):
            raise WorldModelError("WorldState.cat: states carry different `extra` keys")
        return WorldState(
            frames=torch.cat([s.frames for s in states]),
            actions=torch.cat([s.actions for s in states]),
            extra={k: torch.cat([s.extra[k] for s in states]) for k in keys},
        )


@dataclass
class StepResult:
    """What one `WorldModel.step` call predicts for B lanes and K sub-steps."""

    frames: torch.Tensor
    """[B, K, H, W, 3] uint8, the frames after each of the K actions."""
    reward: torch.Tensor | None = None
    """[B, K] float32, or None when the model does not predict reward."""
    terminated: torch.Tensor | None = None
    """[B, K] bool, or None when the model does not predict termination."""
    success: torch.Tensor | None = None
    """[B, K] bool, or None when the model does not predict success."""


@runtime_checkable
class WorldModel(Protocol):
    """An action-conditioned world model, batched on torch tensors.

    Contract: lanes are independent (lane i of `step` depends only on lane i of `state` and
    `actions`, and on noise drawn from `generator`), so the same state stepped with the same
    actions and an identically seeded generator gives the same frames.
    """

    frame_shape: tuple[int, int, int]
    """(H, W, 3) of every frame the model reads and writes."""
    action_dim: int
    """A, the width of one action."""
    context_frames: int
    """T_ctx, the frames (and actions) a state carries."""
    actions_per_call: int
    """K, the actions consumed (and frames predicted) by one `step` call."""
    device: torch.device
    dtype: torch.dtype
    """Compute dtype of the network (frames stay uint8, actions float32)."""

    def start(self, frames: torch.Tensor, actions: torch.Tensor | None = None) -> WorldState:
        """State from real frames [B, T, H, W, 3] uint8 (any T >= 1; see `fit_context`) and
        the actions [B, T, A] that led to them (None: zeros)."""
        ...

    def step(
        self,
        state: WorldState,
        actions: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[WorldState, StepResult]:
        """Advance every lane by `actions` [B, K, A] float32; noise comes from `generator`."""
        ...


def check_model(model: object) -> WorldModel:
    """Raise a WorldModelError naming what is missing or malformed; return the model."""
    missing = [
        name
        for name in (
            "frame_shape",
            "action_dim",
            "context_frames",
            "actions_per_call",
            "device",
            "dtype",
            "start",
            "step",
        )
        if not hasattr(model, name)
    ]
    if missing:
        raise WorldModelError(
            f"{type(model).__name__} is not a world model: it lacks {missing}; implement "
            "cosmos_sim.envs.world_model.WorldModel (frame_shape, action_dim, context_frames, "
            "actions_per_call, device, dtype, start, step)"
        )
    shape = tuple(model.frame_shape)
    if len(shape) != 3 or shape[2] != 3 or min(shape) < 1:
        raise WorldModelError(
            f"{type(model).__name__}.frame_shape is {shape}; it must be (H, W, 3) RGB"
        )
    for name in ("action_dim", "context_frames", "actions_per_call"):
        value = getattr(model, name)
        if not isinstance(value, int) or value < 1:
            raise WorldModelError(
                f"{type(model).__name__}.{name} must be an int >= 1, got {value!r}"
            )
    return model  # type: ignore[return-value]


def fit_context(
    frames: torch.Tensor, actions: torch.Tensor | None, context_frames: int, action_dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Trim or left-pad a [B, T, H, W, 3] window (and its [B, T, A] actions) to
    `context_frames`: keep the most recent frames; pad by repeating the oldest frame with
    zero actions (a scene that stood still before the recording began)."""
    if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise WorldModelError(
            f"context frames must be uint8 [B, T, H, W, 3], got {frames.dtype} {list(frames.shape)}"
        )
    batch, length = frames.shape[:2]
    if length < 1:
        raise WorldModelError("context frames: pass at least one frame (T >= 1)")
    if actions is None:
        actions = frames.new_zeros((batch, length, action_dim), dtype=torch.float32)
    actions = actions.to(device=frames.device, dtype=torch.float32)
    if actions.shape != (batch, length, action_dim):
        raise WorldModelError(
            f"context actions must be [B, T, A] = {[batch, length, action_dim]} to match the "
            f"frames, got {list(actions.shape)}"
        )
    if length >= context_frames:
        return frames[:, -context_frames:], actions[:, -context_frames:]
    pad = context_frames - length
    frames = torch.cat([frames[:, :1].expand(-1, pad, -1, -1, -1), frames], dim=1)
    actions = torch.cat([actions.new_zeros((batch, pad, action_dim)), actions], dim=1)
    return frames, actions


def push_context(
    state_frames: torch.Tensor,
    state_actions: torch.Tensor,
    new_frames: torch.Tensor,
    new_actions: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slide a context window: append [B, K, ...] frames/actions, keep the last T_ctx."""
    keep = state_frames.shape[1]
    frames = torch.cat([state_frames, new_frames], dim=1)[:, -keep:]
    actions = torch.cat([state_actions, new_actions.to(state_actions.dtype)], dim=1)[:, -keep:]
    return frames, actions


def expand_actions(actions: torch.Tensor, mode: ChunkMode, actions_per_call: int) -> torch.Tensor:
    """Env actions ([B, A] for "repeat", [B, K, A] for "chunk") -> model actions [B, K, A]."""
    if mode == "repeat":
        return actions.unsqueeze(1).expand(-1, actions_per_call, -1).contiguous()
    if mode == "chunk":
        return actions
    raise WorldModelError(f"chunk mode {mode!r} is not one of {CHUNK_MODES}")


@dataclass
class FoldedStep:
    """One env step per lane, folded from a model call's K sub-steps."""

    obs: torch.Tensor
    """[B, H, W, 3] uint8: the frame at the last sub-step that ran."""
    reward: torch.Tensor
    """[B] float32: reward summed over the sub-steps that ran."""
    terminated: torch.Tensor
    """[B] bool."""
    success: torch.Tensor
    """[B] bool: success at any sub-step that ran."""
    substeps: torch.Tensor
    """[B] int64: sub-steps that ran (K, or k+1 when the chunk terminated at sub-step k)."""


def outcome(result: StepResult, reward_fn: RewardFn | None) -> StepResult:
    """Fill reward / terminated / success from `reward_fn` (which wins) or the model."""
    batch, k = result.frames.shape[:2]
    if reward_fn is not None:
        flat = result.frames.reshape(batch * k, *result.frames.shape[2:])
        values = reward_fn(flat)
        if not isinstance(values, tuple) or len(values) != 3:
            raise WorldModelError(
                "reward_fn must return (reward, terminated, success), each of length N = "
                f"{batch * k}; got {type(values).__name__}"
            )
        device = result.frames.device
        tensors = [torch.as_tensor(v, device=device) for v in values]
        if any(t.numel() != batch * k for t in tensors):
            raise WorldModelError(
                f"reward_fn returned {[list(t.shape) for t in tensors]} for {batch * k} frames; "
                f"return (reward, terminated, success), each of length N = {batch * k}"
            )
        reward, terminated, success = (t.reshape(batch, k) for t in tensors)
        return StepResult(result.frames, reward.float(), terminated.bool(), success.bool())
    if result.reward is None or result.terminated is None:
        raise WorldModelError(
            "this world model predicts no reward/termination; pass reward_fn=fn(frames) -> "
            "(reward, terminated, success) to the env"
        )
    success = result.success if result.success is not None else result.terminated
    return StepResult(
        result.frames, result.reward.float(), result.terminated.bool(), success.bool()
    )


def fold_chunk(result: StepResult) -> FoldedStep:
    """Fold K sub-steps into one env step, stopping each lane at its first termination."""
    batch, k = result.frames.shape[:2]
    assert result.reward is not None and result.terminated is not None
    assert result.success is not None
    steps = torch.arange(k, device=result.frames.device)
    terminated = result.terminated.to(result.frames.device)
    first_end = torch.where(terminated, steps, torch.full_like(steps, k)).amin(dim=1)
    last = first_end.clamp(max=k - 1)
    ran = (steps.unsqueeze(0) <= last.unsqueeze(1)).to(result.reward.device)
    lanes = torch.arange(batch, device=result.frames.device)
    return FoldedStep(
        obs=result.frames[lanes, last],
        reward=(result.reward * ran).sum(dim=1),
        terminated=first_end < k,
        success=(result.success & ran.bool().to(result.success.device)).any(dim=1),
        substeps=last + 1,
    )
