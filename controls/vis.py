"""Vis (blur) control: Cosmos Transfer 2.5's on-the-fly recipe for `preset_blur_strength`.

Order of operations, as `AddControlInputBlur` runs it at inference (use_random=False):
1. shrink by `pre_downscale` with area interpolation (W // f, H // f);
2. `cv2.bilateralFilter(d, sigmaColor, sigmaSpace)` once;
3. enlarge back to W×H with bilinear interpolation;
4. bicubic (antialiased, as torchvision's resize) down to (H / downup, W / downup), rounded to
   uint8, then bicubic back up to H×W, rounded to uint8.

Transfer 2.5 uses one bilateral setting (d=30, 150, 100) for every preset; the presets differ
in the two scale factors. Transfer 1's presets also changed the bilateral filter (low: 15,
100, 50; high: 50, 300, 150); `VIS_PRESETS_TRANSFER1` keeps those for reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cosmos_sim.imaging import as_rgb_frames
from cosmos_sim.types import SpecError


@dataclass(frozen=True)
class VisPreset:
    pre_downscale: int
    """Area shrink factor before the bilateral filter."""
    d: int
    """Bilateral filter diameter in pixels (at the shrunk size)."""
    sigma_color: float
    sigma_space: float
    downup: int
    """Bicubic down-and-up factor applied after the bilateral filter."""


VIS_PRESETS: dict[str, VisPreset] = {
    "very_low": VisPreset(1, 30, 150, 100, 4),
    "low": VisPreset(4, 30, 150, 100, 4),
    "medium": VisPreset(2, 30, 150, 100, 10),
    "high": VisPreset(1, 30, 150, 100, 16),
    "very_high": VisPreset(4, 30, 150, 100, 16),
}
"""Transfer 2.5 presets (cosmos_transfer2 control_input.AddControlInputBlur + blur.py)."""

VIS_PRESETS_TRANSFER1: dict[str, VisPreset] = {
    "very_low": VisPreset(1, 15, 100, 50, 4),
    "low": VisPreset(4, 15, 100, 50, 4),
    "medium": VisPreset(2, 30, 150, 100, 10),
    "high": VisPreset(1, 50, 300, 150, 16),
    "very_high": VisPreset(4, 50, 300, 150, 16),
}
"""Transfer 1 bilateral settings per preset (BilateralOnlyBlurAugmentorConfig)."""


def vis_control(rgb: np.ndarray, preset: str | VisPreset = "medium") -> np.ndarray:
    """uint8 RGB (H×W×3 or T×H×W×3) -> the blurred vis control, same shape."""
    if isinstance(preset, str):
        if preset not in VIS_PRESETS:
            raise SpecError(f"vis preset {preset!r} is not known; use one of {list(VIS_PRESETS)}")
        preset = VIS_PRESETS[preset]
    frames = as_rgb_frames(rgb)
    _, h, w, _ = frames.shape
    small = (max(1, w // preset.pre_downscale), max(1, h // preset.pre_downscale))
    blurred = np.empty_like(frames)
    for i, frame in enumerate(frames):
        img = np.ascontiguousarray(frame)
        if preset.pre_downscale > 1:
            img = cv2.resize(img, small, interpolation=cv2.INTER_AREA)
        img = cv2.bilateralFilter(img, preset.d, preset.sigma_color, preset.sigma_space)
        if preset.pre_downscale > 1:
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
        blurred[i] = img
    down = (max(1, int(h / preset.downup)), max(1, int(w / preset.downup)))
    out = _bicubic_aa(_bicubic_aa(blurred, down), (h, w))
    return out[0] if np.asarray(rgb).ndim == 3 else out


def _bicubic_aa(frames: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """torchvision-style antialiased bicubic resize of uint8 T×H×W×3, rounded back to uint8."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=size_hw, mode="bicubic", align_corners=False, antialias=True)
    return y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
