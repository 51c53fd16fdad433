"""HD-map control on the device: the reference's primitives, rasterised for a whole clip.

`cosmos_sim.controls.hdmap.render_hdmap` is the reference (`controls/hdmap_raster.py`). Its
cost is the map's line pieces: thousands per frame, drawn by cv2 run by run. Here every piece
of every frame goes through the same camera transform, near/far clipping, projection, 1 m
depth band, fade and width taper as the reference, in one batch; the frame's polygons and
objects (few: crosswalks, light heads, signs, boxes) come from the reference's own
`object_primitives`. Everything is sorted into the reference's drawing order and a tiled
rasteriser walks each 16×16 tile's primitives in that order, compositing colour · cover over
the pixel, as cv2 does.

Cover of a pixel centre: clamp(R − d, 0, 1), d its distance to a line piece (round caps
included) and R = ⌈thickness / 2⌉ + 1.23, which reproduces cv2's LINE_AA thick-line profile;
for a convex polygon d is the signed distance outside it and R = 1.23 (cv2's LINE_AA fill).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from cosmos_sim.controls.hdmap_geometry import LINE_LAYERS, DynamicState, HDMapScene
from cosmos_sim.controls.hdmap_raster import (
    BAND_M,
    MAX_VERTS,
    SUBPIXEL_BITS,
    TIER_LINE,
    TIER_RAISED,
    FramePrimitives,
    View,
    object_primitives,
)
from cosmos_sim.controls.hdmap_style import FADE_DISTANCE_M
from cosmos_sim.kernels._backend import Impl, use_triton
from cosmos_sim.types import SpecError

AA_REACH = 1.23  # cv2 LINE_AA: a pixel centre this far beyond the drawn edge gets 0 cover
TILE = 16
_POLE = LINE_LAYERS.index("pole")


def hdmap_control(
    scene: HDMapScene,
    K: torch.Tensor,
    cam_to_world: torch.Tensor,
    height: int,
    width: int,
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
    lines = line_primitives(scene, Ks, poses, height, width, near_m)
    objects = _object_primitives(scene, Ks, poses, height, width, dynamics, near_m)
    prims = in_drawing_order(lines, objects)
    if use_triton(poses, impl):
        from cosmos_sim.kernels._hdmap_triton import raster

        return raster(prims, t, height, width, TILE)
    return _raster_torch(prims, t, height, width)


def line_primitives(
    scene: HDMapScene, Ks: torch.Tensor, poses: torch.Tensor, height: int, width: int,
    near_m: float,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """Every visible line piece of every frame, as the reference's `line_primitives`."""
    device = poses.device
    far = FADE_DISTANCE_M[scene.version]
    a = torch.as_tensor(scene.seg_a, dtype=torch.float64, device=device)
    b = torch.as_tensor(scene.seg_b, dtype=torch.float64, device=device)
    world_to_cam = torch.linalg.inv(poses)
    rot, trans = world_to_cam[:, :3, :3], world_to_cam[:, None, :3, 3]
    ca = torch.einsum("tij,sj->tsi", rot, a) + trans  # T×S×3, as pts @ R.T + t
    cb = torch.einsum("tij,sj->tsi", rot, b) + trans
    ca, cb, keep = _clip_segments(ca, cb, near_m, far)
    depth = 0.5 * (ca[..., 2] + cb[..., 2])
    band = torch.floor(depth.clamp(min=0.0) / BAND_M)
    fade = (1.0 - (band + 0.5) * BAND_M / far).clamp(0.0, 1.0)
    base = torch.as_tensor(scene.seg_width, dtype=torch.float64, device=device)
    thickness = torch.round(base * fade).clamp(min=1.0)
    ua, ub = _project(ca, Ks), _project(cb, Ks)
    margin = thickness / 2 + 2
    lo = torch.minimum(ua, ub) - margin[..., None]
    hi = torch.maximum(ua, ub) + margin[..., None]
    on = (hi[..., 0] >= 0) & (lo[..., 0] <= width - 1) & (hi[..., 1] >= 0)
    on &= lo[..., 1] <= height - 1
    frame, seg = torch.nonzero(keep & on, as_tuple=True)
    color = torch.as_tensor(scene.seg_color, dtype=torch.float64, device=device)
    fade, thickness, band, depth = (x[frame, seg] for x in (fade, thickness, band, depth))
    rgb = torch.round(color[seg] * fade[:, None])
    layer = torch.as_tensor(scene.seg_layer.astype(np.int64), device=device)[seg]
    raised = layer == _POLE
    colour_key = (rgb[:, 0].long() << 16) | (rgb[:, 1].long() << 8) | rgb[:, 2].long()
    group = (layer << 32) | (thickness.long() << 24) | colour_key
    verts = torch.zeros((frame.numel(), MAX_VERTS, 2), dtype=torch.float64, device=device)
    verts[:] = ub[frame, seg][:, None]
    verts[:, 0] = ua[frame, seg]
    return {
        "frame": frame,
        "verts": verts,
        "nvert": torch.full_like(frame, 2),
        "thickness": thickness,
        "rgb": rgb,
        "tier": torch.where(raised, TIER_RAISED, TIER_LINE),
        "band": band,
        "group": torch.where(raised, 0, group),
        "depth": torch.where(raised, depth, 0.0),
        "obj": torch.where(raised, -1 - seg, 0),
    }


def _object_primitives(
    scene: HDMapScene, Ks: torch.Tensor, poses: torch.Tensor, height: int, width: int,
    dynamics: Sequence[DynamicState | None] | None, near_m: float,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """The reference's per-frame polygons and objects (few), moved to the device."""
    far = FADE_DISTANCE_M[scene.version]
    Ks_np, poses_np = Ks.cpu().numpy(), poses.cpu().numpy()
    parts: list[FramePrimitives] = []
    frames = []
    for i in range(poses.shape[0]):
        view = View(Ks_np[i], poses_np[i], height, width, near_m, far)
        part = object_primitives(scene, view, None if dynamics is None else dynamics[i])
        parts.append(part)
        frames.append(np.full(len(part.nvert), i))
    device = poses.device
    out = {
        key: torch.as_tensor(np.concatenate([getattr(p, key) for p in parts]), device=device)
        for key in ("verts", "nvert", "thickness", "rgb", "tier", "band", "group", "depth", "obj")
    }
    out["frame"] = torch.as_tensor(np.concatenate(frames), dtype=torch.int64, device=device)
    return out


def in_drawing_order(*parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Primitives of all frames sorted by (frame, the reference's `FramePrimitives.order`):
    float32 vertices, cover reach and colour, in the order the rasteriser composites them."""
    device = parts[0]["frame"].device
    merged = {
        k: torch.cat([p[k].to(device=device, dtype=parts[0][k].dtype) for p in parts])
        for k in parts[0]
    }
    # Line pieces come first within each frame in the reference's concatenation order, then
    # objects: the index tie-break must follow that frame-local order.
    n_lines = parts[0]["frame"].numel()
    local = torch.arange(merged["frame"].numel(), device=device)
    local = torch.where(local < n_lines, local, local + (1 << 40))
    first = (merged["tier"] != 0).long()
    keys = (local, merged["obj"], -merged["depth"], merged["group"], merged["tier"].long(),
            -merged["band"], first, merged["frame"])  # fmt: skip
    idx = torch.arange(merged["frame"].numel(), device=device)
    for key in keys:  # least significant first; stable sorts make a lexicographic order
        idx = idx[torch.sort(key[idx], stable=True).indices]
    nvert = merged["nvert"][idx]
    reach = torch.where(
        nvert == 2, torch.ceil(merged["thickness"][idx].double() / 2) + AA_REACH, AA_REACH
    )
    return {
        "frame": merged["frame"][idx],
        "verts": merged["verts"][idx].float().contiguous(),
        "nvert": nvert.to(torch.int32),
        "reach": reach.float(),
        "rgb": merged["rgb"][idx].float().contiguous(),
    }


def _clip_segments(
    a: torch.Tensor, b: torch.Tensor, near: float, far: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The reference's near/far clipping, on T×S×3 camera-space ends; returns a, b, kept."""
    keep = ~(((a[..., 2] < near) & (b[..., 2] < near)) | ((a[..., 2] > far) & (b[..., 2] > far)))
    for bound, sign in ((near, 1.0), (far, -1.0)):
        dz = b[..., 2] - a[..., 2]
        step = ((bound - a[..., 2]) / torch.where(dz.abs() < 1e-12, 1e-12, dz))[..., None]
        hit = a + step * (b - a)
        a_out = (sign * (a[..., 2] - bound) < 0)[..., None]
        b_out = (sign * (b[..., 2] - bound) < 0)[..., None]
        a, b = torch.where(a_out, hit, a), torch.where(b_out, hit, b)
    return a, b, keep


def _project(cam: torch.Tensor, Ks: torch.Tensor) -> torch.Tensor:
    uvw = torch.einsum("tsj,tij->tsi", cam, Ks)
    uv = uvw[..., :2] / uvw[..., 2:3]
    scale = 2**SUBPIXEL_BITS
    limit = 2**30 / scale
    return torch.round(uv.clamp(-limit, limit) * scale) / scale


def coverage(
    px: torch.Tensor, py: torch.Tensor, verts: torch.Tensor, nvert: torch.Tensor,
    reach: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """clamp(reach − s, 0, 1) of pixel centres against primitives (verts …×V×2, nvert and
    reach …, px/py broadcasting to …): s is the distance to a line piece (2 corners) or the
    signed distance outside a convex polygon."""
    nvert = nvert.long()
    x0, y0 = verts[..., 0, 0], verts[..., 0, 1]
    dx, dy = verts[..., 1, 0] - x0, verts[..., 1, 1] - y0
    length2 = dx * dx + dy * dy
    along = ((px - x0) * dx + (py - y0) * dy) / torch.where(length2 > 0, length2, 1.0)
    along = along.clamp(0, 1)
    ex, ey = px - x0 - along * dx, py - y0 - along * dy
    distance = torch.sqrt(ex * ex + ey * ey)
    idx = torch.arange(verts.shape[-2], device=verts.device)
    nxt = torch.remainder(idx + 1, nvert.clamp(min=1)[..., None])
    b = torch.gather(verts, -2, nxt[..., None].expand(*nxt.shape, 2))
    ax, ay = verts[..., 0], verts[..., 1]
    ex, ey = b[..., 0] - ax, b[..., 1] - ay  # …×V edges
    unused = idx >= nvert[..., None]
    area2 = (ax * b[..., 1] - b[..., 0] * ay).masked_fill(unused, 0)
    orient = torch.where(area2.sum(-1) >= 0, 1.0, -1.0)[..., None]
    length = torch.sqrt(ex * ex + ey * ey)
    edge_ok = ~unused & (length > 0)
    cross = ex * (py[..., None] - ay) - ey * (px[..., None] - ax)
    outside = -orient * cross / torch.where(edge_ok, length, 1.0)
    signed = outside.masked_fill(~edge_ok, float("-inf")).amax(-1)
    # The bounding box bounds degenerate (flat, far-away) polygons, whose edge lines alone
    # would not; for a proper convex polygon it never exceeds the edge distance inside.
    lo = torch.where(unused[..., None], float("inf"), verts).amin(-2)
    hi = torch.where(unused[..., None], float("-inf"), verts).amax(-2)
    box = torch.maximum(
        torch.maximum(lo[..., 0] - px, px - hi[..., 0]),
        torch.maximum(lo[..., 1] - py, py - hi[..., 1]),
    )
    s = torch.where(nvert == 2, distance, torch.maximum(signed, box))
    return (reach - s).clamp(0, 1)


def _raster_torch(prims: dict[str, torch.Tensor], t: int, height: int, width: int) -> torch.Tensor:
    """The Triton kernel's work in torch, many tiles per step: each pixel of a tile composites
    the tile's primitives in drawing order."""
    device = prims["verts"].device
    prim_ids, offsets = tiles_of(prims, t, height, width, TILE)
    tiles_x, tiles_y = math.ceil(width / TILE), math.ceil(height / TILE)
    counts = (offsets[1:] - offsets[:-1]).long()
    busy = torch.nonzero(counts).flatten()
    canvas = torch.zeros((t, tiles_y, tiles_x, TILE, TILE, 3), dtype=torch.float32, device=device)
    if busy.numel():
        longest = int(counts[busy].max())
        slot = torch.arange(longest, device=device)
        local = torch.arange(TILE, dtype=torch.float32, device=device)
        py, px = torch.meshgrid(local, local, indexing="ij")
        per_step = max(1, (1 << 24) // (TILE * TILE * longest * prims["verts"].shape[1]))
        for start in range(0, busy.numel(), per_step):
            tiles = busy[start : start + per_step]
            valid = slot[None] < counts[tiles][:, None]  # tiles × L
            at = (offsets[tiles].long()[:, None] + slot[None]).clamp(max=prim_ids.numel() - 1)
            ids = prim_ids.long()[at]
            rest = tiles % (tiles_x * tiles_y)
            ty, tx = (rest // tiles_x).float(), (rest % tiles_x).float()
            pys = (py[None] + ty[:, None, None] * TILE).reshape(len(tiles), -1, 1)
            pxs = (px[None] + tx[:, None, None] * TILE).reshape(len(tiles), -1, 1)
            cover = coverage(
                pxs, pys, prims["verts"][ids][:, None], prims["nvert"][ids][:, None],
                prims["reach"][ids][:, None],
            )  # fmt: skip
            cover = cover * valid[:, None]  # tiles × pixels × L
            # Sequential "over" in closed form: each primitive is dimmed by all later ones.
            later = torch.cumprod(torch.flip(1 - cover, [-1]), -1)
            keep_after = torch.flip(
                torch.cat([torch.ones_like(cover[..., :1]), later[..., :-1]], -1), [-1]
            )
            acc = torch.einsum("tpl,tlc->tpc", cover * keep_after, prims["rgb"][ids])
            frame = tiles // (tiles_x * tiles_y)
            canvas[frame, rest // tiles_x, rest % tiles_x] = acc.reshape(-1, TILE, TILE, 3)
    image = canvas.permute(0, 1, 3, 2, 4, 5).reshape(t, tiles_y * TILE, tiles_x * TILE, 3)
    return torch.round(image[:, :height, :width]).to(torch.uint8)


def tiles_of(
    prims: dict[str, torch.Tensor], t: int, height: int, width: int, tile: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin primitives into tile×tile tiles: (primitive ids by tile, in drawing order; per-tile
    offsets)."""
    device = prims["verts"].device
    tiles_x, tiles_y = math.ceil(width / tile), math.ceil(height / tile)
    verts, reach = prims["verts"], prims["reach"]
    used = torch.arange(verts.shape[1], device=device) < prims["nvert"][:, None].long()
    lo = torch.where(used[..., None], verts, float("inf")).amin(1) - reach[:, None]
    hi = torch.where(used[..., None], verts, float("-inf")).amax(1) + reach[:, None]
    tx0 = torch.clamp(torch.floor(lo[:, 0] / tile), 0, tiles_x - 1).long()
    tx1 = torch.clamp(torch.floor(hi[:, 0] / tile), 0, tiles_x - 1).long()
    ty0 = torch.clamp(torch.floor(lo[:, 1] / tile), 0, tiles_y - 1).long()
    ty1 = torch.clamp(torch.floor(hi[:, 1] / tile), 0, tiles_y - 1).long()
    nx, ny = tx1 - tx0 + 1, ty1 - ty0 + 1
    count = nx * ny
    total = int(count.sum())
    prim = torch.repeat_interleave(
        torch.arange(count.numel(), device=device), count, output_size=total
    )
    first = torch.cumsum(count, 0) - count
    within = torch.arange(total, device=device) - first[prim]
    tx = tx0[prim] + within % nx[prim]
    ty = ty0[prim] + within // nx[prim]
    tile_id = (prims["frame"][prim] * tiles_y + ty) * tiles_x + tx
    tile_id, order = torch.sort(tile_id, stable=True)
    n_tiles = t * tiles_y * tiles_x
    per_tile = torch.bincount(tile_id, minlength=n_tiles)
    offsets = torch.zeros(n_tiles + 1, dtype=torch.int64, device=device)
    offsets[1:] = torch.cumsum(per_tile, 0)
    return prim[order].to(torch.int32), offsets.to(torch.int32)
