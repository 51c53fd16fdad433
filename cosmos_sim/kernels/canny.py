"""Canny edges as cv2.Canny computes them (aperture 3, L1 gradient), batched over frames.

cv2.Canny has no Gaussian pre-blur: it takes 3×3 Sobel derivatives of each channel (border
replicated), keeps per pixel the channel with the largest |dx|+|dy| (the first on ties),
suppresses non-maxima along the gradient direction quantised with tan(22.5°) in 15-bit fixed
point, marks pixels above `high` as strong and above `low` as weak, and keeps weak pixels
8-connected to a strong one. Both paths here follow that integer arithmetic, so they agree
with OpenCV pixel for pixel on the interior and at the borders.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cosmos_sim.controls.edge import EDGE_PRESETS
from cosmos_sim.kernels._backend import Impl, use_triton
from cosmos_sim.types import SpecError

_CANNY_SHIFT = 15
_TG22 = int(0.4142135623730950488016887242097 * (1 << _CANNY_SHIFT) + 0.5)

WEAK, STRONG = 1, 2
"""Values of the per-pixel state between suppression and hysteresis (0: not an edge)."""


def canny(rgb: torch.Tensor, low: float, high: float, *, impl: Impl = "auto") -> torch.Tensor:
    """T×H×W×C (or T×H×W) uint8 -> T×H×W bool edge map, equal to cv2.Canny(frame, low, high)."""
    frames = _as_frames(rgb)
    low_i, high_i = int(low // 1), int(high // 1)  # cvFloor
    if low_i > high_i:
        low_i, high_i = high_i, low_i
    if use_triton(frames, impl):
        from cosmos_sim.kernels import _canny_triton

        return _canny_triton.canny(frames, low_i, high_i)
    state = _suppress_torch(frames, low_i, high_i)
    return hysteresis_torch(state)


def edge_control(rgb: torch.Tensor, preset: str = "medium", *, impl: Impl = "auto") -> torch.Tensor:
    """T×H×W×3 uint8 RGB -> T×H×W×3 uint8 Cosmos edge control (white edges on black)."""
    if preset not in EDGE_PRESETS:
        raise SpecError(f"edge preset {preset!r} is not known; use one of {list(EDGE_PRESETS)}")
    edges = canny(rgb, *EDGE_PRESETS[preset], impl=impl)
    return (edges.to(torch.uint8) * 255).unsqueeze(-1).expand(*edges.shape, 3).contiguous()


def _as_frames(rgb: torch.Tensor) -> torch.Tensor:
    if rgb.dtype != torch.uint8:
        raise SpecError(f"rgb: expected uint8, got {rgb.dtype}")
    if rgb.ndim == 3:
        rgb = rgb.unsqueeze(-1)
    if rgb.ndim != 4:
        raise SpecError(f"rgb: expected T×H×W×C or T×H×W, got shape {tuple(rgb.shape)}")
    return rgb.contiguous()


def _suppress_torch(frames: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """Sobel, channel choice, non-maximum suppression, double threshold -> uint8 state."""
    t, h, w, c = frames.shape
    x = frames.permute(0, 3, 1, 2).reshape(t * c, 1, h, w).float()
    x = F.pad(x, (1, 1, 1, 1), mode="replicate")
    sobel_x = torch.tensor([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=x.dtype, device=x.device)
    kernels = torch.stack([sobel_x, sobel_x.T]).unsqueeze(1)
    # Integer-valued float32 convolution is exact here (|sum| <= 1020 << 2**24).
    grad = F.conv2d(x, kernels).to(torch.int32).reshape(t, c, 2, h, w)
    dx, dy = grad[:, :, 0], grad[:, :, 1]
    mag_c = dx.abs() + dy.abs()
    best = mag_c.argmax(dim=1, keepdim=True)  # first maximum, as OpenCV's strict '>' scan
    dx = dx.gather(1, best)[:, 0]
    dy = dy.gather(1, best)[:, 0]
    mag = mag_c.gather(1, best)[:, 0]

    padded = F.pad(mag, (1, 1, 1, 1))  # magnitude outside the image is 0

    def at(oy: int, ox: int) -> torch.Tensor:
        return padded[:, 1 + oy : 1 + oy + h, 1 + ox : 1 + ox + w]

    ax = dx.abs()
    ay = dy.abs() << _CANNY_SHIFT
    tg22x = ax * _TG22
    tg67x = tg22x + (ax << (_CANNY_SHIFT + 1))
    s = torch.where((dx ^ dy) < 0, -1, 1)
    horizontal = (mag > at(0, -1)) & (mag >= at(0, 1))
    vertical = (mag > at(-1, 0)) & (mag >= at(1, 0))
    # Diagonal neighbours: (row-1, col-s) and (row+1, col+s).
    diag = torch.where(
        s < 0,
        (mag > at(-1, 1)) & (mag > at(1, -1)),
        (mag > at(-1, -1)) & (mag > at(1, 1)),
    )
    is_max = torch.where(ay < tg22x, horizontal, torch.where(ay > tg67x, vertical, diag))
    keep = is_max & (mag > low)
    state = keep.to(torch.uint8) + (keep & (mag > high)).to(torch.uint8)
    return state


def hysteresis_torch(state: torch.Tensor, check_every: int = 8) -> torch.Tensor:
    """Keep WEAK pixels 8-connected to STRONG ones: T×H×W uint8 state -> T×H×W bool."""
    weak = (state == WEAK).unsqueeze(1)
    edge = (state == STRONG).unsqueeze(1).to(torch.float16 if state.is_cuda else torch.float32)
    weak_f = weak.to(edge.dtype)
    while True:
        before = edge
        for _ in range(check_every):
            grown = F.max_pool2d(edge, 3, stride=1, padding=1) * weak_f
            edge = torch.maximum(edge, grown)
        if torch.equal(edge, before):
            return edge[:, 0].bool()
