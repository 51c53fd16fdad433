"""Triton kernels behind `vis_control`: the bilateral filter and the final enlargement.

Bilateral: one program per BH×BW tile of one frame; it walks the taps of the circular window
(a host-built list of offsets and spatial weights, so no tap outside the circle is visited)
and reads the three planes of the reflect-padded frame from L1. Per tap: three loads,
an L1 colour distance, one exp2, four multiply-adds. The loop is compute-bound (about 15
float ops and one special-function op per tap), not memory-bound.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from cosmos_sim.kernels._triton_util import rint

_LOG2E = 1.4426950408889634


@triton.jit
def _bilateral_kernel(
    src,
    tap_offset,
    tap_weight,
    dst,
    H,
    W,
    Hp,
    Wp,
    R,
    color_coeff2,
    N_TAPS: tl.constexpr,
    BH: tl.constexpr,
    BW: tl.constexpr,
):
    t = tl.program_id(2)
    r = tl.program_id(1) * BH + tl.arange(0, BH)[:, None]
    c = tl.program_id(0) * BW + tl.arange(0, BW)[None, :]
    inside = (r < H) & (c < W)
    rr = tl.minimum(r, H - 1)
    cc = tl.minimum(c, W - 1)
    plane = Hp * Wp
    base = src + t.to(tl.int64) * 3 * plane
    centre = (rr + R) * Wp + (cc + R)
    c0 = tl.load(base + centre)
    c1 = tl.load(base + plane + centre)
    c2 = tl.load(base + 2 * plane + centre)
    acc0 = tl.zeros((BH, BW), tl.float32)
    acc1 = tl.zeros((BH, BW), tl.float32)
    acc2 = tl.zeros((BH, BW), tl.float32)
    wsum = tl.zeros((BH, BW), tl.float32)
    for k in range(N_TAPS):
        o = centre + tl.load(tap_offset + k)
        sw = tl.load(tap_weight + k)
        v0 = tl.load(base + o)
        v1 = tl.load(base + plane + o)
        v2 = tl.load(base + 2 * plane + o)
        diff = tl.abs(v0 - c0) + tl.abs(v1 - c1) + tl.abs(v2 - c2)
        wt = tl.math.exp2(diff * diff * color_coeff2) * sw
        acc0 += wt * v0
        acc1 += wt * v1
        acc2 += wt * v2
        wsum += wt
    out = dst + t.to(tl.int64) * 3 * H * W + r * W + c
    tl.store(out, rint(tl.math.div_rn(acc0, wsum)), mask=inside)
    tl.store(out + H * W, rint(tl.math.div_rn(acc1, wsum)), mask=inside)
    tl.store(out + 2 * H * W, rint(tl.math.div_rn(acc2, wsum)), mask=inside)


BILATERAL_TILE = (2, 128)
BILATERAL_WARPS = 4


def bilateral(
    padded: torch.Tensor, h: int, w: int, radius: int, color_coeff: float, space: torch.Tensor
) -> torch.Tensor:
    """padded: T×3×(H+2r)×(W+2r) float32 -> T×3×H×W float32 rounded levels.

    `space` is the (2r+1)² spatial weight grid, 0 outside the circle; its non-zero taps become
    a list of (flat offset in the padded frame, weight) that the kernel walks.
    """
    t = padded.shape[0]
    padded = padded.contiguous()
    wp = w + 2 * radius
    dy, dx = torch.nonzero(space.cpu() > 0, as_tuple=True)
    offsets = ((dy - radius) * wp + (dx - radius)).to(torch.int32).to(padded.device)
    weights = space.cpu()[dy, dx].to(padded.device)
    dst = torch.empty((t, 3, h, w), dtype=torch.float32, device=padded.device)
    bh, bw = BILATERAL_TILE
    grid = (triton.cdiv(w, bw), triton.cdiv(h, bh), t)
    _bilateral_kernel[grid](
        padded,
        offsets,
        weights,
        dst,
        h,
        w,
        h + 2 * radius,
        wp,
        radius,
        color_coeff * _LOG2E,
        N_TAPS=offsets.numel(),
        BH=bh,
        BW=bw,
        num_warps=BILATERAL_WARPS,
    )
    return dst


@triton.jit
def _shrink_pad_kernel(
    rgb,
    out,
    H,
    W,
    hs,
    ws,
    Hp,
    Wp,
    R,
    F: tl.constexpr,
    BH: tl.constexpr,
    BW: tl.constexpr,
):
    """uint8 T×H×W×3 -> float T×3×(hs+2R)×(ws+2R): F×F area mean (rounded half up, as
    OpenCV's INTER_AREA on uint8), written straight into the reflect-101 padded planes."""
    t = tl.program_id(2)
    pr = tl.program_id(1) * BH + tl.arange(0, BH)[:, None]
    pc = tl.program_id(0) * BW + tl.arange(0, BW)[None, :]
    inside = (pr < Hp) & (pc < Wp)
    y = tl.abs(pr - R)
    y = tl.minimum(tl.where(y >= hs, 2 * (hs - 1) - y, y), hs - 1)
    x = tl.abs(pc - R)
    x = tl.minimum(tl.where(x >= ws, 2 * (ws - 1) - x, x), ws - 1)
    base = rgb + t.to(tl.int64) * H * W * 3
    acc0 = tl.zeros((BH, BW), tl.int32)
    acc1 = tl.zeros((BH, BW), tl.int32)
    acc2 = tl.zeros((BH, BW), tl.int32)
    for i in tl.static_range(F):
        for j in tl.static_range(F):
            o = ((y * F + i) * W + (x * F + j)) * 3
            acc0 += tl.load(base + o, mask=inside, other=0).to(tl.int32)
            acc1 += tl.load(base + o + 1, mask=inside, other=0).to(tl.int32)
            acc2 += tl.load(base + o + 2, mask=inside, other=0).to(tl.int32)
    half = (F * F) // 2
    plane = Hp * Wp
    dst = out + t.to(tl.int64) * 3 * plane + pr * Wp + pc
    tl.store(dst, ((acc0 + half) // (F * F)).to(tl.float32), mask=inside)
    tl.store(dst + plane, ((acc1 + half) // (F * F)).to(tl.float32), mask=inside)
    tl.store(dst + 2 * plane, ((acc2 + half) // (F * F)).to(tl.float32), mask=inside)


def shrink_pad(rgb: torch.Tensor, factor: int, radius: int) -> torch.Tensor:
    """T×H×W×3 uint8 (H, W multiples of factor) -> T×3×(H/f+2r)×(W/f+2r) float32."""
    t, h, w, _ = rgb.shape
    hs, ws = h // factor, w // factor
    hp, wp = hs + 2 * radius, ws + 2 * radius
    out = torch.empty((t, 3, hp, wp), dtype=torch.float32, device=rgb.device)
    bh, bw = 8, 64
    grid = (triton.cdiv(wp, bw), triton.cdiv(hp, bh), t)
    _shrink_pad_kernel[grid](
        rgb.contiguous(), out, h, w, hs, ws, hp, wp, radius, F=factor, BH=bh, BW=bw
    )
    return out


@triton.jit
def _enlarge_kernel(
    tiny,
    y0,
    wy,
    x0,
    wx,
    out,
    h_in,
    w_in,
    H,
    W,
    TY: tl.constexpr,
    TX: tl.constexpr,
    BH: tl.constexpr,
    BW: tl.constexpr,
):
    t = tl.program_id(2)
    r = tl.program_id(1) * BH + tl.arange(0, BH)
    c = tl.program_id(0) * BW + tl.arange(0, BW)
    rm = r < H
    cm = c < W
    ry = tl.load(y0 + r, mask=rm, other=0)
    cx = tl.load(x0 + c, mask=cm, other=0)
    base = tiny + t.to(tl.int64) * 3 * h_in * w_in
    acc0 = tl.zeros((BH, BW), tl.float32)
    acc1 = tl.zeros((BH, BW), tl.float32)
    acc2 = tl.zeros((BH, BW), tl.float32)
    for i in tl.static_range(TY):
        wyi = tl.load(wy + r * TY + i, mask=rm, other=0.0)
        yi = tl.minimum(ry + i, h_in - 1)
        for j in tl.static_range(TX):
            wxj = tl.load(wx + c * TX + j, mask=cm, other=0.0)
            xj = tl.minimum(cx + j, w_in - 1)
            wgt = wyi[:, None] * wxj[None, :]
            o = yi[:, None] * w_in + xj[None, :]
            acc0 += wgt * tl.load(base + o)
            acc1 += wgt * tl.load(base + h_in * w_in + o)
            acc2 += wgt * tl.load(base + 2 * h_in * w_in + o)
    mask = rm[:, None] & cm[None, :]
    px = (t.to(tl.int64) * H + r[:, None]) * W + c[None, :]
    v0 = tl.minimum(tl.maximum(rint(acc0), 0.0), 255.0).to(tl.uint8)
    v1 = tl.minimum(tl.maximum(rint(acc1), 0.0), 255.0).to(tl.uint8)
    v2 = tl.minimum(tl.maximum(rint(acc2), 0.0), 255.0).to(tl.uint8)
    tl.store(out + px * 3, v0, mask=mask)
    tl.store(out + px * 3 + 1, v1, mask=mask)
    tl.store(out + px * 3 + 2, v2, mask=mask)


def enlarge_to_rgb(
    tiny: torch.Tensor,
    h: int,
    w: int,
    band_y: tuple[torch.Tensor, torch.Tensor],
    band_x: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """tiny: T×3×h×w float levels -> T×H×W×3 uint8 through the banded resize weights."""
    t, _, h_in, w_in = tiny.shape
    (y0, wy), (x0, wx) = band_y, band_x
    out = torch.empty((t, h, w, 3), dtype=torch.uint8, device=tiny.device)
    bh, bw = 8, 64
    grid = (triton.cdiv(w, bw), triton.cdiv(h, bh), t)
    _enlarge_kernel[grid](
        tiny.contiguous(),
        y0,
        wy,
        x0,
        wx,
        out,
        h_in,
        w_in,
        h,
        w,
        TY=wy.shape[1],
        TX=wx.shape[1],
        BH=bh,
        BW=bw,
    )
    return out
