"""Triton kernel behind `hdmap_control`: one program per 16×16 tile of one frame, walking the
primitives binned to that tile (`tiles_of`) in drawing order (far to near), compositing
colour · cover over the pixel, as the reference's cv2 drawing does."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from cosmos_sim.controls.hdmap_raster import MAX_VERTS
from cosmos_sim.kernels._triton_util import rint
from cosmos_sim.kernels.hdmap import tiles_of


@triton.jit
def _raster_kernel(
    prim_ids,
    offsets,
    verts,
    nvert,
    reach,
    rgb,
    out,
    H,
    W,
    tiles_x,
    tiles_y,
    V: tl.constexpr,
    TILE: tl.constexpr,
):
    tx = tl.program_id(0)
    ty = tl.program_id(1)
    t = tl.program_id(2)
    tile = (t * tiles_y + ty) * tiles_x + tx
    start = tl.load(offsets + tile)
    end = tl.load(offsets + tile + 1)
    r = ty * TILE + tl.arange(0, TILE)[:, None]
    c = tx * TILE + tl.arange(0, TILE)[None, :]
    py = r.to(tl.float32)
    px = c.to(tl.float32)
    acc0 = tl.zeros((TILE, TILE), tl.float32)
    acc1 = tl.zeros((TILE, TILE), tl.float32)
    acc2 = tl.zeros((TILE, TILE), tl.float32)
    k = start
    while k < end:  # a while loop: Triton's interpreter takes no loaded bounds in range()
        s = tl.load(prim_ids + k).to(tl.int64)
        n = tl.load(nvert + s)
        vb = verts + s * (2 * V)
        x0 = tl.load(vb)
        y0 = tl.load(vb + 1)
        if n == 2:  # a segment: distance to it
            dx = tl.load(vb + 2) - x0
            dy = tl.load(vb + 3) - y0
            length2 = dx * dx + dy * dy
            inv = tl.where(length2 > 0, 1.0 / tl.where(length2 > 0, length2, 1.0), 0.0)
            along = ((px - x0) * dx + (py - y0) * dy) * inv
            along = tl.minimum(tl.maximum(along, 0.0), 1.0)
            ex = px - x0 - along * dx
            ey = py - y0 - along * dy
            dist = tl.sqrt(ex * ex + ey * ey)
        else:  # a convex polygon: signed distance outside it
            area2 = 0.0
            lo_x = x0
            hi_x = x0
            lo_y = y0
            hi_y = y0
            for i in tl.static_range(V):
                j = (i + 1) % n
                ax = tl.load(vb + 2 * i)
                ay = tl.load(vb + 2 * i + 1)
                bx = tl.load(vb + 2 * j)
                by = tl.load(vb + 2 * j + 1)
                area2 += tl.where(i < n, ax * by - bx * ay, 0.0)
                lo_x = tl.where(i < n, tl.minimum(lo_x, ax), lo_x)
                hi_x = tl.where(i < n, tl.maximum(hi_x, ax), hi_x)
                lo_y = tl.where(i < n, tl.minimum(lo_y, ay), lo_y)
                hi_y = tl.where(i < n, tl.maximum(hi_y, ay), hi_y)
            orient = tl.where(area2 >= 0, 1.0, -1.0)
            # The bounding box bounds degenerate (flat) polygons; see coverage() in hdmap.py.
            dist = tl.maximum(tl.maximum(lo_x - px, px - hi_x), tl.maximum(lo_y - py, py - hi_y))
            for i in tl.static_range(V):
                j = (i + 1) % n
                ax = tl.load(vb + 2 * i)
                ay = tl.load(vb + 2 * i + 1)
                edge_x = tl.load(vb + 2 * j) - ax
                edge_y = tl.load(vb + 2 * j + 1) - ay
                length = tl.sqrt(edge_x * edge_x + edge_y * edge_y)
                ok = (i < n) & (length > 0)
                cross = edge_x * (py - ay) - edge_y * (px - ax)
                outside = -orient * cross / tl.where(ok, length, 1.0)
                dist = tl.where(ok, tl.maximum(dist, outside), dist)
        cover = tl.load(reach + s) - dist
        cover = tl.minimum(tl.maximum(cover, 0.0), 1.0)
        acc0 = acc0 + cover * (tl.load(rgb + 3 * s) - acc0)
        acc1 = acc1 + cover * (tl.load(rgb + 3 * s + 1) - acc1)
        acc2 = acc2 + cover * (tl.load(rgb + 3 * s + 2) - acc2)
        k += 1
    inside = (r < H) & (c < W)
    px_index = (t.to(tl.int64) * H + r) * W + c
    tl.store(out + 3 * px_index, rint(acc0).to(tl.uint8), mask=inside)
    tl.store(out + 3 * px_index + 1, rint(acc1).to(tl.uint8), mask=inside)
    tl.store(out + 3 * px_index + 2, rint(acc2).to(tl.uint8), mask=inside)


def raster(prims: dict[str, torch.Tensor], t: int, height: int, width: int, tile: int):
    """-> T×H×W×3 uint8 of the binned primitives."""
    device = prims["verts"].device
    out = torch.empty((t, height, width, 3), dtype=torch.uint8, device=device)
    prim_ids, offsets = tiles_of(prims, t, height, width, tile)
    tiles_x, tiles_y = triton.cdiv(width, tile), triton.cdiv(height, tile)
    _raster_kernel[(tiles_x, tiles_y, t)](
        prim_ids,
        offsets,
        prims["verts"],
        prims["nvert"],
        prims["reach"],
        prims["rgb"],
        out,
        height,
        width,
        tiles_x,
        tiles_y,
        V=MAX_VERTS,
        TILE=tile,
    )
    return out
