"""Triton kernels behind `lidar_control`: a fused project + z-buffer pass over the points,
and a fused dilate + scale + RGB pass over the pixels.

Z-buffer: one float64 projection per point (as the reference), then an atomic minimum on the
float32 depth's bit pattern: positive IEEE floats order like their int32 bits, so the
integer atomic is the float minimum, and it is order-free, so the result is exact.
Finish: per pixel, the dilate_px² window's nearest return, then the reference's float32
rounding of the "nearer is larger" code and of the grey value. Both are compiled without
mul+add fusion, so they round where numpy rounds.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from cosmos_sim.kernels._triton_util import rint

_INF_BITS = 0x7F800000


@triton.jit
def _zbuffer_kernel(
    pts,
    frame,
    n,
    pose,
    intr,
    zbits,
    H,
    W,
    min_m,
    BLOCK: tl.constexpr,
):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    f = tl.load(frame + i, mask=m, other=0).to(tl.int64)
    px = tl.load(pts + 3 * i, mask=m, other=0.0).to(tl.float64)
    py = tl.load(pts + 3 * i + 1, mask=m, other=0.0).to(tl.float64)
    pz = tl.load(pts + 3 * i + 2, mask=m, other=0.0).to(tl.float64)
    pb = pose + f * 12  # row-major R (9) then t (3), per frame
    dx = px - tl.load(pb + 9, mask=m, other=0.0)
    dy = py - tl.load(pb + 10, mask=m, other=0.0)
    dz = pz - tl.load(pb + 11, mask=m, other=0.0)
    # (p - t) @ R: camera axis k is sum_j d_j R[j, k]
    cx = dx * tl.load(pb + 0, mask=m) + dy * tl.load(pb + 3, mask=m) + dz * tl.load(pb + 6, mask=m)
    cy = dx * tl.load(pb + 1, mask=m) + dy * tl.load(pb + 4, mask=m) + dz * tl.load(pb + 7, mask=m)
    cz = dx * tl.load(pb + 2, mask=m) + dy * tl.load(pb + 5, mask=m) + dz * tl.load(pb + 8, mask=m)
    kb = intr + f * 9
    un = cx * tl.load(kb + 0, mask=m) + cy * tl.load(kb + 1, mask=m) + cz * tl.load(kb + 2, mask=m)
    vn = cx * tl.load(kb + 3, mask=m) + cy * tl.load(kb + 4, mask=m) + cz * tl.load(kb + 5, mask=m)
    keep = m & (cz >= min_m)
    safe_z = tl.where(keep, cz, 1.0)
    u = tl.floor(un / safe_z + 0.5)  # fp64 "/" is IEEE division (div.rn.f64)
    v = tl.floor(vn / safe_z + 0.5)
    keep = keep & (u >= 0) & (u < W) & (v >= 0) & (v < H)
    flat = (f * H + v.to(tl.int64)) * W + u.to(tl.int64)
    bits = cz.to(tl.float32).to(tl.int32, bitcast=True)
    tl.atomic_min(zbits + flat, bits, mask=keep)


@triton.jit
def _finish_kernel(
    zbits,
    out,
    n_px,
    H,
    W,
    code_top,
    top,
    scale,
    K: tl.constexpr,
    LO: tl.constexpr,
    BLOCK: tl.constexpr,
):
    start = tl.program_id(0).to(tl.int64) * BLOCK
    p = start + tl.arange(0, BLOCK)
    mask = p < n_px
    x = p % W
    y = (p // W) % H
    nearest = tl.full((BLOCK,), float("inf"), tl.float32)
    for a in tl.static_range(K):
        for b in tl.static_range(K):
            yy = y + (a - LO)
            xx = x + (b - LO)
            ok = mask & (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
            bits = tl.load(zbits + p + (a - LO) * W + (b - LO), mask=ok, other=0x7F800000)
            nearest = tl.minimum(nearest, bits.to(tl.float32, bitcast=True))
    hit = nearest < float("inf")
    depth = tl.minimum(nearest, top)
    if K > 1:
        # The reference dilates code = (max_m + 1) - min(depth, max_m) and decodes it back:
        # keep both float32 roundings.
        depth = code_top - (code_top - depth)
    value = rint(tl.minimum(depth, top) * scale)
    value = tl.where(hit, tl.minimum(tl.maximum(value, 1.0), 255.0), 0.0).to(tl.uint8)
    ch = tl.arange(0, 4)[None, :]
    rgb = tl.broadcast_to(value[:, None], (BLOCK, 4))
    tl.store(out + 3 * p[:, None] + ch, rgb, mask=mask[:, None] & (ch < 3))


_BLOCK = 1024


def zbuffer(
    pts: torch.Tensor,
    frame: torch.Tensor,
    poses: torch.Tensor,
    Ks: torch.Tensor,
    t: int,
    height: int,
    width: int,
    min_m: float,
) -> torch.Tensor:
    """-> T×H×W int32 bit patterns of the nearest float32 depth (+inf bits where none)."""
    zbits = torch.full((t, height, width), _INF_BITS, dtype=torch.int32, device=pts.device)
    packed = torch.cat([poses[:, :3, :3].reshape(t, 9), poses[:, :3, 3]], dim=1).contiguous()
    n = pts.shape[0]
    if n:
        _zbuffer_kernel[(triton.cdiv(n, _BLOCK),)](
            pts.contiguous(),
            frame.to(torch.int32).contiguous(),
            n,
            packed,
            Ks.reshape(t, 9).contiguous(),
            zbits,
            height,
            width,
            float(min_m),
            BLOCK=_BLOCK,
            enable_fp_fusion=False,
        )
    return zbits


def finish(
    zbits: torch.Tensor, dilate_px: int, code_top: float, top: float, scale: float
) -> torch.Tensor:
    """T×H×W depth bits -> T×H×W×3 uint8 control."""
    t, h, w = zbits.shape
    out = torch.empty((t, h, w, 3), dtype=torch.uint8, device=zbits.device)
    n_px = zbits.numel()
    k = max(dilate_px, 1)
    _finish_kernel[(triton.cdiv(n_px, _BLOCK),)](
        zbits,
        out,
        n_px,
        h,
        w,
        code_top,
        top,
        scale,
        K=k,
        LO=k // 2,
        BLOCK=_BLOCK,
        enable_fp_fusion=False,
    )
    return out
