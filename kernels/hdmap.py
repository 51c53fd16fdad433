"""HD-map control on the device: the map's lines and polygons, rasterised for a whole clip.

`cosmos_sim.controls.hdmap.render_hdmap` is the reference. Its cost is the lines: thousands of
12 px anti-aliased segments per frame drawn one `cv2.polylines` group at a time. Here every
segment of every frame goes through the same camera transform, near/far clipping, projection
and 64-level depth fade as the reference, in one batch, and a tiled rasteriser draws them:
each 16×16 tile walks only the segments whose bounding box touches it.

A segment covers a pixel by a = clamp(R − d, 0, 1), d the distance from the pixel centre to
the segment and R = ⌈width / 2⌉ + 1.23, which reproduces cv2's LINE_AA thick-line profile
(full out to ⌈width / 2⌉ px, a ~1 px ramp beyond, round ends). As in the reference, segments
of one layer are composited in its drawing order (colour · a over the pixel), and layers
merge by per-pixel maximum.

Polygons (crosswalks, road markings) go through the reference's near/far clipping
(Sutherland–Hodgman, vectorised), depth fade by their mean depth and far-to-near order; a
pixel is covered by clamp(1.23 − s, 0, 1), s its signed distance outside the polygon (cv2's
LINE_AA fill), which holds for convex polygons (crosswalks are). Traffic lights, signs and
boxes are few and per-frame: the reference renderer draws them (a copy of the scene without
lines and polygons) and they merge by the same maximum.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch

from cosmos_sim.controls.hdmap import _LAYERS as _LAYER_NAMES  # the reference's layer order
from cosmos_sim.controls.hdmap import (
    FADE_DISTANCE_M,
    DynamicState,
    HDMapScene,
    render_hdmap,
)
from cosmos_sim.kernels._backend import Impl, use_triton
from cosmos_sim.types import SpecError

FADE_LEVELS = 64  # the reference quantises the depth fade to 64 levels (controls/hdmap.py)
_SUBPIXEL = 8  # cv2 fixed point with shift=3
_AA_REACH = 1.23  # cv2 LINE_AA: a pixel centre this far beyond the drawn edge gets 0 cover
TILE = 16
MAX_VERTS = 8  # polygon corners after clipping (a quad gains at most one per clip plane)


def hdmap_control(
    scene: HDMapScene,
    K: torch.Tensor,
    cam_to_world: torch.Tensor,
    width: int,
    height: int,
    dynamics: Sequence[DynamicState | None] | None = None,
    *,
    near_m: float = 0.3,
    impl: Impl = "auto",
) -> torch.Tensor:
    """T×H×W×3 uint8 HD-map control for T camera poses (K 3×3 or T×3×3, cam_to_world T×4×4).

    On cam_to_world's device; `dynamics` gives each frame's boxes and light states.
    """
    poses = torch.as_tensor(cam_to_world, dtype=torch.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise SpecError(f"hdmap: cam_to_world must be T×4×4, got {tuple(poses.shape)}")
    t = poses.shape[0]
    Ks = torch.as_tensor(K, dtype=torch.float64, device=poses.device)
    if Ks.shape == (3, 3):
        Ks = Ks.expand(t, 3, 3)
    if Ks.shape != (t, 3, 3):
        raise SpecError(f"hdmap: K must be 3×3 or T×3×3, got {tuple(Ks.shape)}")
    if dynamics is not None and len(dynamics) != t:
        raise SpecError(f"hdmap: got {len(dynamics)} dynamic states for {t} poses")
    prims = _merge_in_drawing_order(
        line_primitives(scene, Ks, poses, width, height, near_m),
        polygon_primitives(scene, Ks, poses, width, height, near_m),
    )
    if use_triton(poses, impl):
        from cosmos_sim.kernels._hdmap_triton import raster

        out = raster(prims, t, height, width, TILE)
    else:
        out = _raster_torch(prims, t, height, width)
    rest = dataclasses.replace(_without_lines(scene), polygons=[])
    has_dynamic = dynamics is not None and any(d is not None for d in dynamics)
    if rest.traffic_lights or rest.traffic_signs or has_dynamic:
        Ks_np, poses_np = Ks.cpu().numpy(), poses.cpu().numpy()
        frames = np.stack([
            render_hdmap(rest, Ks_np[i], poses_np[i], width, height,
                         None if dynamics is None else dynamics[i], near_m=near_m)
            for i in range(t)
        ])  # fmt: skip
        out = torch.maximum(out, torch.from_numpy(frames).to(out.device))
    return out


def line_primitives(
    scene: HDMapScene,
    Ks: torch.Tensor,
    poses: torch.Tensor,
    width: int,
    height: int,
    near_m: float,
) -> dict[str, torch.Tensor]:
    """Every visible segment of every frame: frame, ends (px), cover radius, faded colour."""
    device = poses.device
    far = FADE_DISTANCE_M[scene.version]
    a = torch.as_tensor(scene.seg_a, dtype=torch.float64, device=device)
    b = torch.as_tensor(scene.seg_b, dtype=torch.float64, device=device)
    world_to_cam = torch.linalg.inv(poses)
    rot, trans = world_to_cam[:, :3, :3], world_to_cam[:, None, :3, 3]
    ca = torch.einsum("tij,sj->tsi", rot, a) + trans  # T×S×3, as pts @ R.T + t
    cb = torch.einsum("tij,sj->tsi", rot, b) + trans
    ca, cb, keep = _clip_segments(ca, cb, near_m, far)
    ua, ub = _project(ca, Ks), _project(cb, Ks)
    fade = 1.0 - 0.5 * (ca[..., 2] + cb[..., 2]) / far
    level = torch.clamp(torch.ceil(fade * FADE_LEVELS), 1, FADE_LEVELS)
    color = torch.as_tensor(scene.seg_color, dtype=torch.float64, device=device)
    rgb = torch.round(color * level[..., None] / FADE_LEVELS)
    limit = 2**30 / _SUBPIXEL
    ua = torch.round(ua.clamp(-limit, limit) * _SUBPIXEL) / _SUBPIXEL
    ub = torch.round(ub.clamp(-limit, limit) * _SUBPIXEL) / _SUBPIXEL
    seg_width = torch.as_tensor(scene.seg_width.astype(np.float64), device=device)
    reach = torch.ceil(seg_width / 2) + _AA_REACH
    lo = torch.minimum(ua, ub) - reach[:, None]
    hi = torch.maximum(ua, ub) + reach[:, None]
    on_screen = (hi[..., 0] >= 0) & (lo[..., 0] <= width - 1)
    on_screen &= (hi[..., 1] >= 0) & (lo[..., 1] <= height - 1)
    frame, seg = torch.nonzero(keep & on_screen, as_tuple=True)
    rgb = rgb[frame, seg]
    # The reference draws a layer's segments grouped by (fade level, width, colour), later
    # over earlier: that order is the key within the layer.
    colour_key = (rgb[:, 0].long() << 16) | (rgb[:, 1].long() << 8) | rgb[:, 2].long()
    order_key = ((level[frame, seg].long() * 256 + seg_width[seg].long()) << 24) | colour_key
    verts = torch.zeros((frame.numel(), MAX_VERTS, 2), dtype=torch.float64, device=device)
    verts[:, 0], verts[:, 1] = ua[frame, seg], ub[frame, seg]
    return {
        "frame": frame,
        "verts": verts,
        "nvert": torch.full_like(frame, 2),
        "reach": reach[seg],
        "rgb": rgb,
        "layer": torch.as_tensor(scene.seg_layer.astype(np.int64), device=device)[seg],
        "order": order_key,
    }


def polygon_primitives(
    scene: HDMapScene,
    Ks: torch.Tensor,
    poses: torch.Tensor,
    width: int,
    height: int,
    near_m: float,
) -> dict[str, torch.Tensor]:
    """Every visible polygon of every frame, clipped, projected and faded as the reference."""
    device = poses.device
    far = FADE_DISTANCE_M[scene.version]
    t = poses.shape[0]
    if not scene.polygons:
        return _no_primitives(device)
    n_in = max(len(p) for p, _, _ in scene.polygons)
    if n_in + 4 > MAX_VERTS:  # each of the two clip planes adds at most one vertex... twice
        raise SpecError(f"hdmap: polygons of more than {MAX_VERTS - 4} vertices are CPU-only")
    world = torch.zeros((len(scene.polygons), n_in, 3), dtype=torch.float64)
    counts = torch.tensor([len(p) for p, _, _ in scene.polygons])
    for i, (polygon, _, _) in enumerate(scene.polygons):
        world[i, : len(polygon)] = torch.as_tensor(np.asarray(polygon, float))
    world, counts = world.to(device), counts.to(device)
    layer_of = {name: i for i, name in enumerate(_LAYER_NAMES)}
    layer = torch.tensor([layer_of[name] for _, name, _ in scene.polygons], device=device)
    colour = torch.tensor([c for _, _, c in scene.polygons], dtype=torch.float64, device=device)
    world_to_cam = torch.linalg.inv(poses)
    cam = torch.einsum("tij,pvj->tpvi", world_to_cam[:, :3, :3], world)
    cam = cam + world_to_cam[:, None, None, :3, 3]  # T×P×V×3
    cam = cam.reshape(-1, n_in, 3)
    n = counts.repeat(t)
    for bound, sign in ((near_m, 1.0), (far, -1.0)):
        cam, n = _clip_polygons(cam, n, bound, sign)
    valid = torch.arange(cam.shape[1], device=device) < n[:, None]
    depth = (cam[..., 2] * valid).sum(1) / n.clamp(min=1)
    uvw = torch.einsum("nvj,nij->nvi", cam, Ks.repeat_interleave(len(scene.polygons), 0))
    uv = uvw[..., :2] / torch.where(valid, uvw[..., 2], 1.0)[..., None]
    limit = 2**30 / _SUBPIXEL
    uv = torch.round(uv.clamp(-limit, limit) * _SUBPIXEL) / _SUBPIXEL
    uv = torch.where(valid[..., None], uv, uv[:, :1])  # padding repeats the first vertex
    fade = torch.clamp(1.0 - depth / far, min=0.0)
    rgb = torch.round(colour.repeat(t, 1) * fade[:, None])  # cv2 rounds a float colour
    lo = torch.where(valid[..., None], uv, float("inf")).amin(1) - _AA_REACH
    hi = torch.where(valid[..., None], uv, float("-inf")).amax(1) + _AA_REACH
    on_screen = (n >= 3) & (hi[:, 0] >= 0) & (lo[:, 0] <= width - 1)
    on_screen &= (hi[:, 1] >= 0) & (lo[:, 1] <= height - 1)
    keep = torch.nonzero(on_screen).flatten()
    verts = torch.zeros((keep.numel(), MAX_VERTS, 2), dtype=torch.float64, device=device)
    verts[:, : uv.shape[1]] = uv[keep]
    # Far to near within a layer (the reference's painter's order): the key rises as the
    # depth falls.
    order = torch.argsort(torch.argsort(-depth[keep], stable=True), stable=True)
    return {
        "frame": keep // len(scene.polygons),
        "verts": verts,
        "nvert": n[keep],
        "reach": torch.full((keep.numel(),), _AA_REACH, dtype=torch.float64, device=device),
        "rgb": rgb[keep],
        "layer": layer.repeat(t)[keep],
        "order": order,
    }


def _clip_polygons(
    poly: torch.Tensor, n: torch.Tensor, bound: float, sign: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Sutherland–Hodgman pass (the reference's `clip_polygon`) over N padded polygons:
    keep sign·(z − bound) >= 0. N×V×3 with counts -> N×(V+1)×3 with counts."""
    count, v = poly.shape[:2]
    idx = torch.arange(v, device=poly.device)
    valid = idx < n[:, None]
    nxt_idx = torch.remainder(idx + 1, n.clamp(min=1)[:, None])
    nxt = torch.gather(poly, 1, nxt_idx[..., None].expand(-1, -1, 3))
    cin = sign * (poly[..., 2] - bound) >= 0
    nin = sign * (nxt[..., 2] - bound) >= 0
    step = (bound - poly[..., 2]) / torch.where(
        nxt[..., 2] == poly[..., 2], 1.0, nxt[..., 2] - poly[..., 2]
    )
    hit = poly + step[..., None] * (nxt - poly)
    # Each edge emits its start (if inside) then the crossing (if it crosses), in order.
    cand = torch.stack([poly, hit], 2).reshape(count, 2 * v, 3)
    emit = torch.stack([valid & cin, valid & (cin != nin)], 2).reshape(count, 2 * v)
    slot = torch.cumsum(emit, 1) - 1
    out = torch.zeros((count, v + 1, 3), dtype=poly.dtype, device=poly.device)
    rows = torch.arange(count, device=poly.device)[:, None].expand_as(slot)
    keep = emit & (slot <= v)
    out[rows[keep], slot[keep]] = cand[keep]
    return out, emit.sum(1).clamp(max=v + 1)


def _no_primitives(device: torch.device) -> dict[str, torch.Tensor]:
    empty = torch.zeros(0, dtype=torch.int64, device=device)
    return {
        "frame": empty,
        "verts": torch.zeros((0, MAX_VERTS, 2), dtype=torch.float64, device=device),
        "nvert": empty,
        "reach": torch.zeros(0, dtype=torch.float64, device=device),
        "rgb": torch.zeros((0, 3), dtype=torch.float64, device=device),
        "layer": empty,
        "order": empty,
    }


def _merge_in_drawing_order(*parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Concatenate primitive sets and sort by (layer, order within the layer): float32 ends,
    int32 layer, in the order the rasteriser composites them."""
    merged = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    # order keys stay below 2**48, layers below 16: one int64 key.
    key = (merged["layer"] << 48) | merged["order"]
    idx = torch.sort(key, stable=True).indices
    return {
        "frame": merged["frame"][idx],
        "verts": merged["verts"][idx].float().contiguous(),
        "nvert": merged["nvert"][idx].to(torch.int32),
        "reach": merged["reach"][idx].float(),
        "rgb": merged["rgb"][idx].float().contiguous(),
        "layer": merged["layer"][idx].to(torch.int32),
    }


def _clip_segments(
    a: torch.Tensor, b: torch.Tensor, near: float, far: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The reference's near/far clipping, on T×S×3 camera-space ends; returns a, b, kept."""
    za, zb = a[..., 2], b[..., 2]
    keep = ~(((za < near) & (zb < near)) | ((za > far) & (zb > far)))

    def safe(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        dz = b[..., 2] - a[..., 2]
        return torch.where(dz.abs() < 1e-12, 1e-12, dz)

    for bound, outside in ((near, lambda z: z < near), (far, lambda z: z > far)):
        step = ((bound - a[..., 2]) / safe(a, b))[..., None]
        hit = a + step * (b - a)
        a, b = (
            torch.where(outside(a[..., 2])[..., None], hit, a),
            torch.where(outside(b[..., 2])[..., None], hit, b),
        )
    return a, b, keep


def _project(cam: torch.Tensor, Ks: torch.Tensor) -> torch.Tensor:
    uvw = torch.einsum("tsj,tij->tsi", cam, Ks)
    return uvw[..., :2] / uvw[..., 2:3]


def _without_lines(scene: HDMapScene) -> HDMapScene:
    empty = np.zeros((0, 3))
    return dataclasses.replace(
        scene,
        seg_a=empty,
        seg_b=empty,
        seg_layer=np.zeros(0, np.int16),
        seg_color=np.zeros((0, 3), np.float32),
        seg_width=np.zeros(0, np.int16),
    )


def coverage(px: torch.Tensor, py: torch.Tensor, prims: dict[str, torch.Tensor]) -> torch.Tensor:
    """clamp(reach − s, 0, 1) of pixel centres (…×1) against primitives (n): s is the distance
    to a segment (2 corners) or the signed distance outside a convex polygon."""
    verts, nvert, reach = prims["verts"], prims["nvert"].long(), prims["reach"]
    x0, y0 = verts[:, 0, 0], verts[:, 0, 1]
    dx, dy = verts[:, 1, 0] - x0, verts[:, 1, 1] - y0
    length2 = dx * dx + dy * dy
    along = ((px - x0) * dx + (py - y0) * dy) / torch.where(length2 > 0, length2, 1.0)
    along = along.clamp(0, 1)
    ex, ey = px - x0 - along * dx, py - y0 - along * dy
    distance = torch.sqrt(ex * ex + ey * ey)
    idx = torch.arange(verts.shape[1], device=verts.device)
    nxt = torch.remainder(idx + 1, nvert.clamp(min=1)[:, None])
    a, b = verts, torch.gather(verts, 1, nxt[..., None].expand(-1, -1, 2))
    ex, ey = b[..., 0] - a[..., 0], b[..., 1] - a[..., 1]  # n×V edges
    area2 = (a[..., 0] * b[..., 1] - b[..., 0] * a[..., 1]).masked_fill(idx >= nvert[:, None], 0)
    orient = torch.where(area2.sum(1) >= 0, 1.0, -1.0)[:, None]
    length = torch.sqrt(ex * ex + ey * ey)
    edge_ok = (idx < nvert[:, None]) & (length > 0)
    cross = ex * (py[..., None] - a[..., 1]) - ey * (px[..., None] - a[..., 0])
    outside = -orient * cross / torch.where(edge_ok, length, 1.0)
    signed = outside.masked_fill(~edge_ok, float("-inf")).amax(-1)
    # The bounding box bounds degenerate (flat, far-away) polygons, whose edge lines alone
    # would not; for a proper convex polygon it never exceeds the edge distance inside.
    used = (idx < nvert[:, None])[..., None]
    lo = torch.where(used, verts, float("inf")).amin(1)
    hi = torch.where(used, verts, float("-inf")).amax(1)
    box = torch.maximum(
        torch.maximum(lo[:, 0] - px, px - hi[:, 0]), torch.maximum(lo[:, 1] - py, py - hi[:, 1])
    )
    s = torch.where(nvert == 2, distance, torch.maximum(signed, box))
    return (reach - s).clamp(0, 1)


def _raster_torch(lines: dict[str, torch.Tensor], t: int, height: int, width: int) -> torch.Tensor:
    device = lines["verts"].device
    out = torch.zeros((t, height, width, 3), dtype=torch.float32, device=device)
    py, px = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=device),
        torch.arange(width, dtype=torch.float32, device=device),
        indexing="ij",
    )
    chunk = max(1, (1 << 22) // (height * width))
    for i in range(t):
        for layer in torch.unique(lines["layer"][lines["frame"] == i]).tolist():
            mine = torch.nonzero((lines["frame"] == i) & (lines["layer"] == layer)).flatten()
            acc = torch.zeros((height, width, 3), dtype=torch.float32, device=device)
            for start in range(0, mine.numel(), chunk):
                idx = mine[start : start + chunk]
                a = coverage(px[..., None], py[..., None], {k: v[idx] for k, v in lines.items()})
                # Sequential "over" in closed form: each segment is dimmed by all later ones.
                later = torch.cumprod(torch.flip(1 - a, [-1]), -1)
                keep_after = torch.flip(
                    torch.cat([torch.ones_like(a[..., :1]), later[..., :-1]], -1), [-1]
                )
                acc = acc * later[..., -1:] + torch.einsum(
                    "hwn,nc->hwc", a * keep_after, lines["rgb"][idx]
                )
            out[i] = torch.maximum(out[i], acc)
    return torch.round(out).to(torch.uint8)


def tiles_of(
    lines: dict[str, torch.Tensor], t: int, height: int, width: int, tile: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin segments into tile×tile tiles: (segment ids ordered by tile, per-tile offsets)."""
    device = lines["verts"].device
    tiles_x, tiles_y = math.ceil(width / tile), math.ceil(height / tile)
    verts, reach = lines["verts"], lines["reach"]
    used = torch.arange(verts.shape[1], device=device) < lines["nvert"][:, None].long()
    lo = torch.where(used[..., None], verts, float("inf")).amin(1) - reach[:, None]
    hi = torch.where(used[..., None], verts, float("-inf")).amax(1) + reach[:, None]
    lo_x, lo_y, hi_x, hi_y = lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1]
    tx0 = torch.clamp(torch.floor(lo_x / tile), 0, tiles_x - 1).long()
    tx1 = torch.clamp(torch.floor(hi_x / tile), 0, tiles_x - 1).long()
    ty0 = torch.clamp(torch.floor(lo_y / tile), 0, tiles_y - 1).long()
    ty1 = torch.clamp(torch.floor(hi_y / tile), 0, tiles_y - 1).long()
    nx, ny = tx1 - tx0 + 1, ty1 - ty0 + 1
    count = nx * ny
    total = int(count.sum())
    seg = torch.repeat_interleave(
        torch.arange(count.numel(), device=device), count, output_size=total
    )
    first = torch.cumsum(count, 0) - count
    within = torch.arange(total, device=device) - first[seg]
    tx = tx0[seg] + within % nx[seg]
    ty = ty0[seg] + within // nx[seg]
    tile_id = (lines["frame"][seg] * tiles_y + ty) * tiles_x + tx
    tile_id, order = torch.sort(tile_id, stable=True)
    n_tiles = t * tiles_y * tiles_x
    per_tile = torch.bincount(tile_id, minlength=n_tiles)
    offsets = torch.zeros(n_tiles + 1, dtype=torch.int64, device=device)
    offsets[1:] = torch.cumsum(per_tile, 0)
    return seg[order].to(torch.int32), offsets.to(torch.int32)
