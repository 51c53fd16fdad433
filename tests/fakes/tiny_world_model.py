"""A tiny torch world model implementing cosmos_sim.envs.world_model.WorldModel (tests only).

Each sub-step brightens the frame by the action's first component, adds generator noise
when `noise > 0`, and carries a small latent in `extra` so lane bookkeeping is exercised.
Reward is the mean brightness in [0, 1]; a frame brighter than `done_above` terminates.
It counts its `start` and `step` calls so tests can assert one batched call per env step.
"""

from __future__ import annotations

import torch

from cosmos_sim.envs.world_model import StepResult, WorldState, fit_context, push_context


class TinyWorldModel(torch.nn.Module):
    def __init__(
        self,
        frame_shape: tuple[int, int, int] = (16, 16, 3),
        action_dim: int = 2,
        context_frames: int = 2,
        actions_per_call: int = 1,
        noise: float = 0.0,
        done_above: float = 0.9,
        predicts_reward: bool = True,
    ) -> None:
        super().__init__()
        self.frame_shape = frame_shape
        self.action_dim = action_dim
        self.context_frames = context_frames
        self.actions_per_call = actions_per_call
        self.noise = noise
        self.done_above = done_above
        self.predicts_reward = predicts_reward
        self.mix = torch.nn.Linear(action_dim, 4)
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.start_calls = 0
        self.step_calls = 0
        self.step_batch_sizes: list[int] = []

    def start(self, frames: torch.Tensor, actions: torch.Tensor | None = None) -> WorldState:
        self.start_calls += 1
        frames, actions = fit_context(frames, actions, self.context_frames, self.action_dim)
        latent = frames.float().mean(dim=(1, 2, 3, 4)).unsqueeze(1).expand(-1, 4).clone()
        return WorldState(frames, actions, {"latent": latent})

    @torch.no_grad()
    def step(
        self, state: WorldState, actions: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[WorldState, StepResult]:
        self.step_calls += 1
        self.step_batch_sizes.append(state.batch_size)
        frame = state.last_frame.float()
        latent = state.extra["latent"]
        frames = []
        for k in range(self.actions_per_call):
            action = actions[:, k]
            frame = frame + 40.0 * action[:, :1, None, None]
            if self.noise > 0:
                frame = frame + self.noise * torch.randn(
                    frame.shape, generator=generator, device=frame.device
                )
            frame = frame.clamp(0, 255)
            latent = 0.5 * latent + 0.5 * torch.tanh(self.mix(action))
            frames.append(frame.round().to(torch.uint8))
        frames = torch.stack(frames, dim=1)
        brightness = frames.float().mean(dim=(2, 3, 4)) / 255.0
        ctx_frames, ctx_actions = push_context(state.frames, state.actions, frames, actions)
        new_state = WorldState(ctx_frames, ctx_actions, {"latent": latent})
        if not self.predicts_reward:
            return new_state, StepResult(frames)
        terminated = brightness > self.done_above
        return new_state, StepResult(frames, brightness, terminated, terminated)


def start_clips(n: int = 3, length: int = 4, frame_shape=(16, 16, 3), seed: int = 0):
    """n short uint8 clips [n, length, H, W, 3] of mid-grey noise to reset from."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(
        60, 140, (n, length, *frame_shape), generator=gen, dtype=torch.uint8
    ).numpy()
