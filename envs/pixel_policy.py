"""A PPO actor-critic that reads PushCube's 64×64 RGB frames, batched on any device.

Two encoders of the uint8 frame [B, H, W, 3]:

- `"colour"` (default): the red pusher, blue cube and green goal found by colour (the
  thresholds of `pushcube_policies.detect`, as batched torch ops), their centroids in
  metres, the two offsets that matter (cube − pusher, goal − cube) and a seen-flag per
  object: 13 numbers into an MLP. It costs a few
  element-wise ops per frame, so PPO on the real env's 2-core CPU budget spends its time in
  the simulator, not the network; and it reads the same thing in the real env's and the
  world model's frames (the scripted policy built on `detect` scores the same in both), so
  what it learns transfers if the dynamics do.
- `"cnn"`: a small strided CNN with two coordinate channels (for GPU budgets).

`PixelActorCritic` is a Gaussian policy (state-independent log-std) with a value head;
`save_policy` / `load_policy` keep weights and architecture in one small `.pt` file, and
`load_policy(path)` returns a deterministic `obs -> action` callable that
`cosmos_sim.envs.policy_eval` (and `cosmos-sim eval-policies`) runs like any other policy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

HALF_VIEW_M = 0.2
"""PushCube-v0's camera sees [-HALF_VIEW_M, HALF_VIEW_M]² (envs/pushcube.py, no pybullet
import here: the learned env's GPU machine has none)."""
ENCODERS = ("colour", "cnn")
COLOUR_FEATURES = 13


@dataclass(frozen=True)
class PolicyConfig:
    """Architecture of `PixelActorCritic` (saved with the weights)."""

    image_size: int = 64
    action_dim: int = 2
    encoder: str = "colour"
    """"colour" (object centroids by colour) or "cnn" (see module doc)."""
    hidden: int = 256
    log_std_init: float = -0.5


def colour_features(obs: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] top-down frames -> float [B, 13]: pusher, cube, goal xy / 0.2 m,
    cube − pusher and goal − cube (/ 0.2 m), and three seen-flags (0 where fewer than 2
    pixels match; that object's coordinates are then 0)."""
    if obs.ndim != 4 or obs.shape[-1] != 3 or obs.dtype != torch.uint8:
        raise ValueError(
            f"colour_features: want uint8 [B, H, W, 3], got {obs.dtype} {list(obs.shape)}"
        )
    rgb = obs.to(torch.int16)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    masks = torch.stack(
        [
            (r > 150) & (g < 110) & (b < 110),  # pusher (red)
            (b > 150) & (r < 110) & (g < 150),  # cube (blue)
            (g > 110) & (r < 110) & (b < 110),  # goal (green)
        ],
        dim=1,
    ).float()  # [B, 3, H, W]
    size = obs.shape[1]
    centres = (torch.arange(size, device=obs.device, dtype=torch.float32) + 0.5) / size
    xs = (2 * centres - 1) * HALF_VIEW_M  # column -> world x
    ys = (1 - 2 * centres) * HALF_VIEW_M  # row -> world y (image up = +y)
    count = masks.sum(dim=(2, 3))
    seen = (count >= 2).float()
    denom = count.clamp(min=1.0)
    x = (masks.sum(dim=2) * xs).sum(dim=2) / denom * seen
    y = (masks.sum(dim=3) * ys).sum(dim=2) / denom * seen
    xy = torch.stack([x, y], dim=2) / HALF_VIEW_M  # [B, 3, 2]
    pusher, cube, goal = xy[:, 0], xy[:, 1], xy[:, 2]
    return torch.cat([pusher, cube, goal, cube - pusher, goal - cube, seen], dim=1)


class CnnEncoder(nn.Module):
    """Strided CNN over RGB + two coordinate channels -> a flat feature vector."""

    def __init__(self, image_size: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(5, 32, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * (image_size // 8) ** 2, hidden),
            nn.ReLU(),
        )
        lin = torch.linspace(-1, 1, image_size)
        self.register_buffer(
            "coords", torch.stack(torch.meshgrid(lin, lin, indexing="ij"))[None], persistent=False
        )

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return self.net(torch.cat([x, self.coords.expand(len(x), -1, -1, -1)], dim=1))


def _layer(inp: int, out: int, std: float = 2**0.5) -> nn.Linear:
    layer = nn.Linear(inp, out)
    nn.init.orthogonal_(layer.weight, std)
    nn.init.zeros_(layer.bias)
    return layer


class PixelActorCritic(nn.Module):
    """Gaussian actor and value critic on a shared frame encoder (CleanRL-style init)."""

    def __init__(self, config: PolicyConfig | None = None) -> None:
        super().__init__()
        cfg = config or PolicyConfig()
        if cfg.encoder not in ENCODERS:
            raise ValueError(f"PolicyConfig.encoder: one of {ENCODERS}, got {cfg.encoder!r}")
        if cfg.image_size % 8:
            raise ValueError(f"PolicyConfig.image_size: a multiple of 8, got {cfg.image_size}")
        self.config = cfg
        h = cfg.hidden
        if cfg.encoder == "colour":
            self.encoder: nn.Module = nn.Sequential(
                _layer(COLOUR_FEATURES, h), nn.Tanh(), _layer(h, h), nn.Tanh()
            )
        else:
            self.encoder = CnnEncoder(cfg.image_size, h)
        self.actor = _layer(h, cfg.action_dim, std=0.01)
        self.critic = _layer(h, 1, std=1.0)
        self.log_std = nn.Parameter(torch.full((cfg.action_dim,), cfg.log_std_init))

    def observe(self, obs: torch.Tensor) -> torch.Tensor:
        """The network's input from uint8 frames [B, H, W, 3]: colour features [B, 13]
        (fixed, so a rollout buffer keeps these instead of frames) or the frames as they are."""
        return colour_features(obs) if self.config.encoder == "colour" else obs

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """Value of `observe(obs)`."""
        return self.critic(self.encoder(x)).squeeze(-1)

    def act(
        self, x: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, log-prob, entropy, value) at `observe(obs)`; samples unless given one."""
        hidden = self.encoder(x)
        mean = self.actor(hidden)
        scale = self.log_std.exp().expand_as(mean)
        # No argument validation, and sampling as mean + scale·ε: both the validation and
        # `dist.sample()` (torch.normal checks its std) read tensors back to the host, a sync
        # per step on a GPU that a CUDA graph cannot hold. scale = exp(.) is positive.
        dist = torch.distributions.Normal(mean, scale, validate_args=False)
        if action is None:
            action = (mean + scale * torch.randn_like(mean)).detach()
        value = self.critic(hidden).squeeze(-1)
        return action, dist.log_prob(action).sum(-1), dist.entropy().sum(-1), value

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action (the Gaussian's mean) for uint8 frames, clipped to [-1, 1]."""
        return self.actor(self.encoder(self.observe(obs))).clamp(-1.0, 1.0)


def save_policy(
    agent: PixelActorCritic, path: str | Path, meta: dict[str, Any] | None = None
) -> Path:
    """Weights (float32, CPU) and architecture in one `.pt` file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().cpu() for k, v in agent.state_dict().items()}
    torch.save({"config": asdict(agent.config), "state_dict": state, "meta": meta or {}}, path)
    return path


def load_agent(path: str | Path, device: str | torch.device = "cpu") -> PixelActorCritic:
    """The `PixelActorCritic` saved by `save_policy`, in eval mode on `device`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no policy file at {path}; train one with benchmarks/ppo_pushcube.py"
        )
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or "config" not in blob or "state_dict" not in blob:
        raise ValueError(
            f"{path} is not a policy saved by cosmos_sim.envs.pixel_policy.save_policy"
        )
    agent = PixelActorCritic(PolicyConfig(**blob["config"]))
    agent.load_state_dict(blob["state_dict"])
    agent.meta = blob.get("meta", {})
    return agent.to(device).eval()


class TorchPolicy:
    """A saved `PixelActorCritic` as a deterministic numpy `obs [H, W, 3] -> action [A]`."""

    def __init__(self, agent: PixelActorCritic) -> None:
        self.agent = agent

    @torch.no_grad()
    def __call__(self, obs: np.ndarray) -> np.ndarray:
        frame = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.uint8))[None]
        return self.agent.mean_action(frame)[0].numpy().astype(np.float32)


def load_policy(path: str | Path) -> TorchPolicy:
    """`obs -> action` (the policy's mean action, on CPU) from a `.pt` file of `save_policy`."""
    return TorchPolicy(load_agent(path))
