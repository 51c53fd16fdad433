"""Triton kernels for the per-pixel controls: one read of the input, one write of RGB.

Each program takes BLOCK pixels as a BLOCK×4 tile (the 4th column masked off): a pixel's
input is loaded once and its three output bytes are stored by one thread, next to its
neighbours', so loads and stores are both coalesced. Kernels whose output must match numpy
bit for bit are compiled without mul+add fusion (an FMA rounds once where numpy rounds twice).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from cosmos_sim.kernels._triton_util import rint

_BLOCK = 1024


@triton.jit
def _depth_grey_kernel(depth, out, bad, n_px, lo, hi, offset, scale, BLOCK: tl.constexpr):
    start = tl.program_id(0).to(tl.int64) * BLOCK
    px = tl.arange(0, BLOCK)
    mask = px < n_px - start
    d = tl.load(depth + start + px, mask=mask, other=1.0).to(tl.float32)
    finite = (d == d) & (tl.abs(d) < float("inf"))
    if tl.max((mask & ~finite).to(tl.int32)) > 0:
        tl.atomic_max(bad, 1)
    d = tl.minimum(tl.maximum(d, lo), hi)
    inv = tl.math.div_rn(1.0, d)
    grey = rint((inv - offset) * scale)
    grey = tl.minimum(tl.maximum(grey, 0.0), 255.0).to(tl.uint8)
    ch = tl.arange(0, 4)[None, :]
    rgb = tl.broadcast_to(grey[:, None], (BLOCK, 4))
    tl.store(out + 3 * start + 3 * px[:, None] + ch, rgb, mask=mask[:, None] & (ch < 3))


def depth_to_grey_rgb(
    depth: torch.Tensor, lo: float, hi: float, offset: float, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (…×3 uint8, 1-element int32 flag: some depth was NaN/inf)."""
    depth = depth.contiguous()
    out = torch.empty((*depth.shape, 3), dtype=torch.uint8, device=depth.device)
    bad = torch.zeros(1, dtype=torch.int32, device=depth.device)
    n_px = depth.numel()
    _depth_grey_kernel[(triton.cdiv(n_px, _BLOCK),)](
        depth, out, bad, n_px, lo, hi, offset, scale, BLOCK=_BLOCK, enable_fp_fusion=False
    )
    return out, bad


@triton.jit
def _lut_rgb_kernel(ids, lut, out, missing, n_px, lut_size, BLOCK: tl.constexpr):
    start = tl.program_id(0).to(tl.int64) * BLOCK
    px = tl.arange(0, BLOCK)
    mask = px < n_px - start
    key = tl.load(ids + start + px, mask=mask, other=0).to(tl.int64)
    known = (key >= 0) & (key < lut_size)
    # The LUT packs an id's colour as 0x00BBGGRR, or -1 where the palette has no colour.
    packed = tl.load(lut + key, mask=mask & known, other=-1)
    bad = mask & (packed < 0)
    if tl.max(bad.to(tl.int32)) > 0:
        tl.atomic_max(missing, 1)
    packed = tl.where(bad, 0, packed)
    ch = tl.arange(0, 4)[None, :]
    colour = (packed[:, None] >> (ch * 8)) & 255
    tl.store(
        out + 3 * start + 3 * px[:, None] + ch, colour.to(tl.uint8), mask=mask[:, None] & (ch < 3)
    )


def lut_rgb(ids: torch.Tensor, lut: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (any int dtype) -> (…×3 uint8 colours, 1-element int32 flag: some id had none)."""
    ids = ids.contiguous()
    out = torch.empty((*ids.shape, 3), dtype=torch.uint8, device=ids.device)
    missing = torch.zeros(1, dtype=torch.int32, device=ids.device)
    n_px = ids.numel()
    _lut_rgb_kernel[(triton.cdiv(n_px, _BLOCK),)](
        ids, lut, out, missing, n_px, lut.numel(), BLOCK=_BLOCK
    )
    return out, missing
