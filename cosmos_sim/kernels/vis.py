"""Vis (blur) control on the device: the Cosmos recipe of `cosmos_sim.controls.vis_control`.

Steps, as the CPU function runs them: area shrink by `pre_downscale`, OpenCV's bilateral
filter (circular window of radius d // 2, colour distance = sum of |channel differences|,
reflect-101 border), bilinear back to H×W, antialiased bicubic down by `downup` and back up.

Two changes of evaluation order, same function up to rounding:
- the bilinear enlargement and the bicubic reduction are both linear and separable, so they
  are folded into one small matrix per axis (built by running torch's own resize on an
  identity basis) and the full-size intermediate frame is never made;
- the final bicubic enlargement reads its 4×4 taps from the tiny image and writes uint8 RGB
  directly (Triton), instead of a float frame, a rounding pass and a layout copy.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from cosmos_sim.controls.vis import VIS_PRESETS, VisPreset
from cosmos_sim.kernels._backend import Impl, use_triton
from cosmos_sim.types import SpecError


def vis_control(
    rgb: torch.Tensor, preset: str | VisPreset = "medium", *, impl: Impl = "auto"
) -> torch.Tensor:
    """T×H×W×3 uint8 RGB -> T×H×W×3 uint8 vis control, on rgb's device."""
    if isinstance(preset, str):
        if preset not in VIS_PRESETS:
            raise SpecError(f"vis preset {preset!r} is not known; use one of {list(VIS_PRESETS)}")
        preset = VIS_PRESETS[preset]
    if rgb.dtype != torch.uint8 or rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise SpecError(f"rgb: expected uint8 T×H×W×3, got {rgb.dtype} {tuple(rgb.shape)}")
    triton_ok = use_triton(rgb, impl)
    _, h, w, _ = rgb.shape
    f = preset.pre_downscale
    small_hw = (max(1, h // f), max(1, w // f))
    radius, color_coeff, space = _bilateral_params(
        preset.d, preset.sigma_color, preset.sigma_space, small_hw
    )
    if triton_ok and h % f == 0 and w % f == 0:
        from cosmos_sim.kernels._vis_triton import bilateral, shrink_pad

        padded = shrink_pad(rgb, f, radius)  # shrink, pad and go planar in one pass
        x = bilateral(padded, *small_hw, radius, color_coeff, space.to(rgb.device))
    else:
        x = rgb.permute(0, 3, 1, 2).float()  # T×3×H×W
        if f > 1:
            x = _area_shrink(x, small_hw)
        x = bilateral_filter(x, preset.d, preset.sigma_color, preset.sigma_space, triton=triton_ok)
    down_hw = (max(1, int(h / preset.downup)), max(1, int(w / preset.downup)))
    my = _shrink_matrix(small_hw[0], h, down_hw[0], f > 1, x.device)
    mx = _shrink_matrix(small_hw[1], w, down_hw[1], f > 1, x.device)
    tiny = torch.einsum("yh,tchw,xw->tcyx", my, x, mx).round_().clamp_(0, 255)
    if triton_ok:
        from cosmos_sim.kernels._vis_triton import enlarge_to_rgb

        return enlarge_to_rgb(
            tiny, h, w, _band(down_hw[0], h, x.device), _band(down_hw[1], w, x.device)
        )
    uy = _resize_matrix(down_hw[0], h, x.device)
    ux = _resize_matrix(down_hw[1], w, x.device)
    out = torch.einsum("yh,tchw,xw->tyxc", uy, tiny, ux)
    return out.round_().clamp_(0, 255).to(torch.uint8).contiguous()


def _area_shrink(x: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """cv2.INTER_AREA to uint8 levels (round half up, as OpenCV's fixed-point averaging)."""
    h, w = x.shape[-2:]
    if h % size_hw[0] == 0 and w % size_hw[1] == 0:
        y = F.avg_pool2d(x, (h // size_hw[0], w // size_hw[1]))
    else:
        y = F.interpolate(x, size=size_hw, mode="area")
    return torch.floor(y + 0.5)


def bilateral_filter(
    x: torch.Tensor, d: int, sigma_color: float, sigma_space: float, *, triton: bool = False
) -> torch.Tensor:
    """cv2.bilateralFilter on T×C×H×W float frames holding uint8 levels; rounded levels out."""
    h, w = x.shape[-2:]
    radius, color_coeff, space = _bilateral_params(d, sigma_color, sigma_space, (h, w))
    padded = F.pad(x, (radius,) * 4, mode="reflect")  # torch "reflect" is BORDER_REFLECT_101
    if triton:
        from cosmos_sim.kernels._vis_triton import bilateral

        return bilateral(padded, h, w, radius, color_coeff, space.to(x.device))
    acc = torch.zeros_like(x)
    wsum = torch.zeros_like(x[:, :1])
    centre = x.unsqueeze(-2)  # T×C×H×1×W, against the K taps of one window row
    for dy in range(-radius, radius + 1):
        half = math.isqrt(radius * radius - dy * dy)
        band = padded[..., radius + dy : radius + dy + h, :]
        taps = band.unfold(-1, w, 1)[..., radius - half : radius + half + 1, :]  # T×C×H×K×W
        sw = space[dy + radius, radius - half : radius + half + 1].to(x.device)
        diff = (taps - centre).abs_().sum(dim=1, keepdim=True)
        wt = torch.exp(diff * diff * color_coeff) * sw[:, None]
        acc += (wt * taps).sum(dim=-2)
        wsum += wt.sum(dim=-2)
    return torch.round(acc / wsum)


def _bilateral_params(
    d: int, sigma_color: float, sigma_space: float, size_hw: tuple[int, int]
) -> tuple[int, float, torch.Tensor]:
    """OpenCV's radius, colour coefficient and spatial weights for bilateralFilter."""
    radius = max(round(sigma_space * 1.5) if d <= 0 else d // 2, 1)
    if radius >= min(size_hw):
        raise SpecError(
            f"vis: frame {size_hw[0]}×{size_hw[1]} is too small for a bilateral radius of "
            f"{radius} px (reflect-101 padding needs radius < each side)"
        )
    sigma_color = sigma_color if sigma_color > 0 else 1.0
    space = _space_weights(radius, sigma_space if sigma_space > 0 else 1.0)
    return radius, -0.5 / (sigma_color * sigma_color), space


@lru_cache(maxsize=16)
def _space_weights(radius: int, sigma_space: float) -> torch.Tensor:
    """OpenCV's float32 spatial weights on the (2r+1)² grid, 0 outside the circle."""
    coeff = -0.5 / (sigma_space * sigma_space)
    grid = np.zeros((2 * radius + 1, 2 * radius + 1), np.float32)
    for i in range(-radius, radius + 1):
        for j in range(-radius, radius + 1):
            r = math.sqrt(i * i + j * j)
            if r <= radius:
                grid[i + radius, j + radius] = np.float32(math.exp(r * r * coeff))
    return torch.from_numpy(grid)


@lru_cache(maxsize=64)
def _resize_matrix_cpu(n_in: int, n_out: int, mode: str) -> torch.Tensor:
    """n_out × n_in matrix of torch's 1-D resize (align_corners=False, antialias for bicubic)."""
    eye = torch.eye(n_in, dtype=torch.float64).reshape(n_in, 1, 1, n_in)
    kw = {"antialias": True} if mode == "bicubic" else {}
    out = F.interpolate(eye, size=(1, n_out), mode=mode, align_corners=False, **kw)
    return out.reshape(n_in, n_out).T.contiguous()


@lru_cache(maxsize=64)
def _resize_matrix(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
    return _resize_matrix_cpu(n_in, n_out, "bicubic").to(device, torch.float32)


@lru_cache(maxsize=64)
def _shrink_matrix(
    n_small: int, n_full: int, n_down: int, enlarge_first: bool, device: torch.device
) -> torch.Tensor:
    """Bilinear small -> full (if the frame was shrunk), then antialiased bicubic full -> down."""
    m = _resize_matrix_cpu(n_full, n_down, "bicubic")
    if enlarge_first:
        m = m @ _resize_matrix_cpu(n_small, n_full, "bilinear")
    return m.to(device, torch.float32)


@lru_cache(maxsize=64)
def _band(n_in: int, n_out: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The resize matrix as (first tap index n_out int32, weights n_out × taps float32)."""
    m = _resize_matrix_cpu(n_in, n_out, "bicubic")
    nz = m != 0
    first = nz.float().argmax(dim=1)
    last = n_in - 1 - nz.flip(1).float().argmax(dim=1)
    taps = int((last - first).max()) + 1
    idx = first.unsqueeze(1) + torch.arange(taps)
    weights = torch.where(
        idx <= last.unsqueeze(1),
        m.gather(1, idx.clamp(max=n_in - 1)),
        torch.zeros((), dtype=m.dtype),
    )
    return first.to(device, torch.int32), weights.to(device, torch.float32).contiguous()
