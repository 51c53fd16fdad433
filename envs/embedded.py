"""The embedded PushCube world model: a few-step flow-matching model of the next frame.

`PushCubeWorldModel` implements `cosmos_sim.envs.world_model.WorldModel`, batched, on CPU or
GPU. It predicts frame t+1 from the last `context_frames` frames, the actions that led to
them and the action taken at t, in the style of DIAMOND: a small conditional UNet denoises
the next frame, starting from Gaussian noise, in `sampling_steps` (2 by default) Euler
steps of a rectified flow, so futures branched with different noise differ.

Design choices (see assets/world_model/MODEL_CARD.md):

- **Patch space, not a learned latent.** A 64×64 RGB frame is pixel-unshuffled into a
  16×16 grid of 4×4×3 = 48-channel cells. That is lossless (no autoencoder whose
  reconstruction error caps fidelity) and puts the UNet at 16×16 and 8×8, which is what
  makes ≥ 20 steps/s at batch 1 on two CPU cores possible.
- **Context encoded once per step.** The context frames and actions are encoded once; only
  the light denoiser runs per sampling step.
- **x-prediction as a residual of the last frame** (most cells do not change), with the
  loss weighted up on cells that do change (the pusher and the cube).
- **Heads on the predicted frame.** A small CNN reads the generated frame and predicts the
  pusher→cube and cube→goal distances and a success logit; reward is the real env's dense
  formula on those distances, termination is success. Judging success from the frame the
  policy sees keeps the learned env's outcomes consistent with its observations.

`make_learned_pushcube()` is the entry point of `cosmos_sim/LearnedPushCube-v0`: it loads the
shipped weights from `cosmos_sim.assets` (no download) and returns a `LearnedEnv`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cosmos_sim.envs.world_model import (
    StepResult,
    WorldModelError,
    WorldState,
    fit_context,
    push_context,
)

ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "world_model"
WEIGHTS_FILE = "pushcube_world_model.safetensors"
STARTS_FILE = "pushcube_starts.npz"


@dataclass(frozen=True)
class WorldModelConfig:
    """Architecture of `PushCubeWorldModel` (saved with the weights)."""

    image_size: int = 64
    patch: int = 4
    """Pixel-unshuffle factor: the UNet runs on an (image_size / patch)² grid."""
    context_frames: int = 4
    action_dim: int = 2
    channels: tuple[int, int] = (64, 128)
    """UNet widths at the patch grid and at half of it."""
    emb_dim: int = 128
    sampling_steps: int = 2
    head_channels: int = 48
    goal_radius_m: float = 0.04
    """Only used to document the success threshold the head was trained on."""
    success_logit_threshold: float = 0.0
    """Success when the head's logit exceeds this (raise it to trade recall for precision)."""

    @property
    def cell_channels(self) -> int:
        return 3 * self.patch * self.patch

    @property
    def grid(self) -> int:
        return self.image_size // self.patch


def _groups(channels: int) -> int:
    return 8 if channels % 8 == 0 else 1


class ResBlock(nn.Module):
    """Conv residual block with FiLM conditioning on an embedding."""

    def __init__(self, channels: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(channels), channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(_groups(channels), channels, affine=False)
        self.film = nn.Linear(emb_dim, 2 * channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return x + self.conv2(F.silu(h))


def _tau_features(tau: torch.Tensor, dim: int) -> torch.Tensor:
    freqs = torch.exp(torch.linspace(0, math.log(1000.0), dim // 2, device=tau.device))
    angles = tau[:, None].float() * freqs[None] * math.pi
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class PushCubeWorldModel(nn.Module):
    """Action-conditioned next-frame flow model with reward/success heads (see module doc)."""

    actions_per_call = 1

    def __init__(self, config: WorldModelConfig | None = None) -> None:
        super().__init__()
        cfg = config or WorldModelConfig()
        if cfg.image_size % (2 * cfg.patch):
            raise WorldModelError(
                f"WorldModelConfig: image_size {cfg.image_size} must be divisible by 2*patch"
            )
        self.config = cfg
        self.channels_last = False
        """Run in channels-last memory (set by `compile_step` on GPUs)."""
        c0, c1 = cfg.channels
        cell, emb = cfg.cell_channels, cfg.emb_dim
        act_in = (cfg.context_frames + 1) * cfg.action_dim
        self.action_mlp = nn.Sequential(
            nn.Linear(act_in, emb), nn.SiLU(), nn.Linear(emb, emb), nn.SiLU()
        )
        self.tau_mlp = nn.Sequential(nn.Linear(emb, emb), nn.SiLU(), nn.Linear(emb, emb))
        # Context encoder: runs once per env step.
        self.ctx_in = nn.Conv2d(cfg.context_frames * cell + act_in, c0, 3, padding=1)
        self.ctx_block = ResBlock(c0, emb)
        self.ctx_down = nn.Conv2d(c0, c1, 3, stride=2, padding=1)
        self.ctx_block2 = ResBlock(c1, emb)
        # Denoiser: runs once per sampling step.
        self.den_in = nn.Conv2d(cell, c0, 3, padding=1)
        self.den_hi = nn.ModuleList([ResBlock(c0, emb), ResBlock(c0, emb)])
        self.den_down = nn.Conv2d(c0, c1, 3, stride=2, padding=1)
        self.den_lo = nn.ModuleList([ResBlock(c1, emb), ResBlock(c1, emb)])
        self.den_up = nn.Conv2d(c1, c0, 3, padding=1)
        self.den_out_blocks = nn.ModuleList([ResBlock(c0, emb), ResBlock(c0, emb)])
        self.den_norm = nn.GroupNorm(_groups(c0), c0)
        self.den_out = nn.Conv2d(c0, cell, 3, padding=1)
        nn.init.zeros_(self.den_out.weight)
        nn.init.zeros_(self.den_out.bias)
        # Heads on a frame: [pusher->cube m, cube->goal m] (x10) and a success logit.
        h = cfg.head_channels
        self.head = nn.Sequential(
            nn.Conv2d(cell, h, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(h, 2 * h, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(2 * h, 2 * h, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(2 * h * (cfg.grid // 4) ** 2, 128),
            nn.SiLU(),
            nn.Linear(128, 3),
        )

    # -- WorldModel protocol attributes ----------------------------------------------------
    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (self.config.image_size, self.config.image_size, 3)

    @property
    def action_dim(self) -> int:
        return self.config.action_dim

    @property
    def context_frames(self) -> int:
        return self.config.context_frames

    @property
    def device(self) -> torch.device:
        return self.den_out.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.den_out.weight.dtype

    # -- tensors -----------------------------------------------------------------------------
    def to_cells(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [B, T, H, W, 3] -> float [B, T*48, h, w] in [-1, 1] (pixel-unshuffled)."""
        b, t, hgt, wid, _ = frames.shape
        x = frames.to(self.dtype).permute(0, 1, 4, 2, 3).reshape(b * t, 3, hgt, wid)
        x = F.pixel_unshuffle(x / 127.5 - 1.0, self.config.patch)
        return self._layout(x.reshape(b, t * x.shape[1], x.shape[2], x.shape[3]))

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        """Channels-last after `compile_step` on a GPU (see there), else unchanged."""
        if self.channels_last and x.is_cuda:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def to_frames(self, cells: torch.Tensor) -> torch.Tensor:
        """float [B, 48, h, w] -> uint8 [B, H, W, 3]."""
        x = F.pixel_shuffle(cells.float(), self.config.patch)
        x = ((x.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
        return x.permute(0, 2, 3, 1)

    def encode_context(
        self, ctx_cells: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ctx_cells [B, T*48, h, w]; actions [B, T+1, A] (context actions, then the new one)."""
        flat = actions.reshape(actions.shape[0], -1).to(ctx_cells.dtype)
        emb = self.action_mlp(flat)
        planes = flat[:, :, None, None].expand(-1, -1, *ctx_cells.shape[2:])
        hi = self.ctx_block(self.ctx_in(torch.cat([ctx_cells, planes], dim=1)), emb)
        lo = self.ctx_block2(self.ctx_down(F.silu(hi)), emb)
        return emb, hi, lo

    def denoise(
        self,
        x_tau: torch.Tensor,
        tau: torch.Tensor,
        last_cells: torch.Tensor,
        context: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """Predict the clean next frame (cells) from the noisy one at flow time tau."""
        act_emb, hi, lo = context
        emb = act_emb + self.tau_mlp(_tau_features(tau, self.config.emb_dim).to(x_tau.dtype))
        h = self.den_in(x_tau) + hi
        for block in self.den_hi:
            h = block(h, emb)
        d = self.den_down(F.silu(h)) + lo
        for block in self.den_lo:
            d = block(d, emb)
        u = self.den_up(F.interpolate(d, scale_factor=2.0, mode="nearest")) + h
        for block in self.den_out_blocks:
            u = block(u, emb)
        return last_cells + self.den_out(F.silu(self.den_norm(u)))

    def draw_noise(self, batch: int, generator: torch.Generator | None) -> torch.Tensor:
        """Standard normal next-frame cells [batch, 48, h, w], drawn on the generator's device
        (float32, so CPU and GPU generators give the same numbers) in the model's dtype."""
        cfg = self.config
        shape = (batch, cfg.cell_channels, cfg.grid, cfg.grid)
        device = generator.device if generator is not None else self.device
        noise = torch.randn(shape, generator=generator, device=device, dtype=torch.float32)
        return self._layout(noise.to(device=self.device, dtype=self.dtype))

    def integrate(
        self,
        ctx_cells: torch.Tensor,
        actions: torch.Tensor,
        noise: torch.Tensor,
        steps: int | None = None,
    ) -> torch.Tensor:
        """Next-frame cells [B, 48, h, w]: `steps` Euler steps of the rectified flow from
        `noise` (deterministic given the noise)."""
        steps = steps or self.config.sampling_steps
        context = self.encode_context(ctx_cells, actions)
        last = ctx_cells[:, -self.config.cell_channels :]
        x = noise
        for k in range(steps):
            tau = torch.full((x.shape[0],), k / steps, device=x.device)
            x1 = self.denoise(x, tau, last, context)
            if k == steps - 1:
                x = x1
            else:
                x = x + (x1 - x) / (steps - k)  # Euler step of v = (x1 - x) / (1 - tau)
        return x

    def sample(
        self,
        ctx_cells: torch.Tensor,
        actions: torch.Tensor,
        generator: torch.Generator | None = None,
        steps: int | None = None,
    ) -> torch.Tensor:
        """Next-frame cells [B, 48, h, w], noise drawn from `generator`."""
        noise = self.draw_noise(ctx_cells.shape[0], generator).to(ctx_cells.dtype)
        return self.integrate(ctx_cells, actions, noise, steps)

    def heads(self, cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(distances [B, 2] in metres: pusher->cube, cube->goal; success logit [B])."""
        out = self.head(cells).float()
        return out[:, :2] / 10.0, out[:, 2]

    @staticmethod
    def reward_from(distances: torch.Tensor, success: torch.Tensor) -> torch.Tensor:
        """PushCube-v0's dense reward on (pusher->cube, cube->goal) distances; 1 on success."""
        reach = 1.0 - torch.tanh(10.0 * distances[:, 0].clamp(min=0))
        place = 1.0 - torch.tanh(10.0 * distances[:, 1].clamp(min=0))
        return torch.where(success, torch.ones_like(reach), 0.25 * reach + 0.75 * place)

    # -- WorldModel protocol -------------------------------------------------------------------
    def start(self, frames: torch.Tensor, actions: torch.Tensor | None = None) -> WorldState:
        frames = torch.as_tensor(frames)
        if tuple(frames.shape[2:]) != self.frame_shape:
            raise WorldModelError(
                f"PushCubeWorldModel reads frames {self.frame_shape}, got "
                f"{tuple(frames.shape[2:])}; render PushCube-v0 at image_size="
                f"{self.config.image_size}"
            )
        frames = frames.to(self.device)
        actions = None if actions is None else torch.as_tensor(actions).to(self.device)
        frames, actions = fit_context(frames, actions, self.context_frames, self.action_dim)
        return WorldState(frames=frames, actions=actions)

    @torch.inference_mode()
    def step(
        self,
        state: WorldState,
        actions: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[WorldState, StepResult]:
        actions = torch.as_tensor(actions, dtype=torch.float32).to(self.device)
        want = (state.batch_size, 1, self.action_dim)
        if tuple(actions.shape) != want:
            raise WorldModelError(
                f"PushCubeWorldModel.step: actions must be [B, 1, A] = {list(want)}, got "
                f"{list(actions.shape)}"
            )
        actions = actions.clamp(-1.0, 1.0)
        all_actions = torch.cat([state.actions.to(self.device), actions], dim=1)
        noise = self.draw_noise(state.batch_size, generator)
        frame, reward, success = self._predict(state.frames, all_actions, noise)
        frames, acts = push_context(state.frames, state.actions, frame[:, None], actions)
        result = StepResult(
            frames=frame[:, None],
            reward=reward[:, None],
            terminated=success[:, None],
            success=success[:, None],
        )
        return WorldState(frames=frames, actions=acts), result

    def _predict(
        self, frames: torch.Tensor, all_actions: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(next frame uint8, reward, success) from context frames, actions and noise."""
        cells = self.integrate(self.to_cells(frames), all_actions, noise)
        distances, logit = self.heads(cells)
        success = logit > self.config.success_logit_threshold
        return self.to_frames(cells), self.reward_from(distances, success), success

    def compile_step(self, **kwargs: Any) -> PushCubeWorldModel:
        """Run the per-step computation through `torch.compile` (fuses norms and activations;
        benchmarks/RESULTS.md has the env steps/s with and without it). Static shapes by
        default: each batch size compiles once, on its first step. On a GPU the model also
        switches to channels-last memory: compiled, the norms then fuse without layout
        conversions (H100, bfloat16, batch 1024: +22 % env steps/s over compiled NCHW; eager
        GroupNorm would be slower in channels-last, so eager stays NCHW)."""
        if self.device.type == "cuda":
            self.channels_last = True
            self.to(memory_format=torch.channels_last)
        self._predict = torch.compile(self._predict, **{"dynamic": False, **kwargs})
        return self

    # -- weights ---------------------------------------------------------------------------------
    def save(self, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        meta = {"config": json.dumps(asdict(self.config)), **(metadata or {})}
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, str(path), metadata={k: str(v) for k, v in meta.items()})
        return path

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> PushCubeWorldModel:
        """Weights from a safetensors file (default: the shipped ones), in eval mode, on
        `device` in `dtype` (bfloat16 roughly doubles GPU throughput; frames stay uint8)."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = Path(path) if path is not None else ASSET_DIR / WEIGHTS_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"no world-model weights at {path}; train them with "
                "`python scripts/train_world_model.py` (in a cosmos-sim checkout) or reinstall "
                "cosmos-sim"
            )
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        raw = json.loads(meta.get("config", "{}"))
        if "channels" in raw:
            raw["channels"] = tuple(raw["channels"])
        model = cls(WorldModelConfig(**raw))
        model.load_state_dict(load_file(str(path)))
        model.metadata = meta
        return model.to(device=device, dtype=dtype).eval()


def shipped_start_frames() -> np.ndarray:
    """Real first frames of held-out PushCube-v0 episodes, shipped for resets: [N, 64, 64, 3]."""
    with np.load(ASSET_DIR / STARTS_FILE) as data:
        return data["frames"]


def make_learned_pushcube(
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    weights: str | Path | None = None,
    compile: bool = False,
    **kwargs: Any,
) -> Any:
    """`gymnasium.make("cosmos_sim/LearnedPushCube-v0")`: the shipped model as a LearnedEnv.

    `device` and `dtype` place the model (e.g. "cuda", "bfloat16"); `compile=True` runs its
    step through `torch.compile` (GPU, large batches). Resets start from real
    first frames of held-out PushCube-v0 episodes (shipped beside the weights) unless
    `start_frames` / `episodes` are given, or from `reset(options={"frames": ...})`. Other
    keyword arguments go to `LearnedEnv`.
    """
    from cosmos_sim.envs.learned import LearnedEnv

    if isinstance(dtype, str):
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise WorldModelError(f"dtype {dtype!r} is not a torch dtype; use e.g. 'bfloat16'")
        dtype = getattr(torch, dtype)
    model = PushCubeWorldModel.load(weights, device=device, dtype=dtype)
    if compile:
        model.compile_step()
    if kwargs.get("start_frames") is None and kwargs.get("episodes") is None:
        kwargs["start_frames"] = shipped_start_frames()[:, None]
    kwargs.setdefault("max_episode_steps", 60)
    return LearnedEnv(model, **kwargs)
