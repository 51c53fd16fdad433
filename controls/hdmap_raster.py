"""HD-map rendering: one frame buffer, every element in depth order, OpenCV rasterisation.

Upstream draws all elements into one OpenGL frame buffer with a depth test. Here each frame
becomes a list of 2D primitives (line pieces and convex polygons, `FramePrimitives`) drawn
far to near, so nearer geometry covers farther (the painter's algorithm; pieces are at most
0.8 m long, so their order is the depth test's answer):

1. ground polygons (crosswalks, road markings) first, far to near: they lie on the road and
   can hide nothing but each other, and coplanar lines win over them, as upstream's line pass
   (drawn before its triangles under a LESS depth test) does;
2. then, in 1 m depth bands from far to near, the ground lines of the band (lane lines, then
   road boundaries, then wait lines: later wins where they overlap) and then the raised
   objects of the band (poles, light heads, signs, 3D boxes), each object far to near with
   its visible faces (back faces culled) and then its edges.

Each primitive's colour and line width scale with (1 − band depth / fade distance) as
upstream's shaders do (`width × (1 − z/200)`); lines have round caps (cv2's thick lines).
Geometry is clipped against the near and far planes in camera space before projection, so
nothing behind the camera wraps into the image. The device kernel (`kernels.hdmap`) draws
the same primitives in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from cosmos_sim.controls.hdmap_geometry import LINE_LAYERS, DynamicState, HDMapScene
from cosmos_sim.controls.hdmap_style import (
    BOX_EDGE_COLOR,
    BOX_EDGE_WIDTH_PX,
    BOX_GRADIENTS,
    BOX_WIREFRAME_COLORS,
    FADE_DISTANCE_M,
    TRAFFIC_LIGHT_COLORS,
)
from cosmos_sim.types import SpecError

MAX_VERTS = 8
SUBPIXEL_BITS = 3  # cv2 fixed point: ends and corners at 1/8 px
BAND_M = 1.0
GRADIENT_SLICES = 4  # side faces of a v3 box, sliced so the front→back gradient shows
TIER_GROUND, TIER_LINE, TIER_RAISED = 0, 1, 2
_POLE = LINE_LAYERS.index("pole")

#: Faces of a cuboid in `cuboid_corners` order: front (+x), back, then the four sides, each
#: side listed back edge first (two −x corners, then the matching +x corners).
FACES = ((4, 5, 7, 6), (0, 1, 3, 2), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5))
EDGES = ((0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6),
         (3, 7))  # fmt: skip
_EDGE_FACES = [
    tuple(f for f, face in enumerate(FACES) if a in face and b in face) for a, b in EDGES
]


@dataclass(frozen=True)
class View:
    """An OpenCV pinhole camera (x right, y down, z forward) and its image size."""

    K: np.ndarray
    cam_to_world: np.ndarray
    height: int
    width: int
    near_m: float
    far_m: float

    @cached_property
    def world_to_cam(self) -> np.ndarray:
        return np.linalg.inv(self.cam_to_world)

    def to_cam(self, pts: np.ndarray) -> np.ndarray:
        w2c = self.world_to_cam
        return pts @ w2c[:3, :3].T + w2c[:3, 3]

    def project(self, cam: np.ndarray) -> np.ndarray:
        uvw = cam @ self.K.T
        uv = uvw[..., :2] / uvw[..., 2:3]
        limit = 2**30 / 2**SUBPIXEL_BITS  # inside cv2's int32 fixed point
        return np.round(np.clip(uv, -limit, limit) * 2**SUBPIXEL_BITS) / 2**SUBPIXEL_BITS


@dataclass
class FramePrimitives:
    """One frame's 2D primitives, unsorted: a line piece has 2 vertices, a polygon 3..8."""

    verts: np.ndarray  # N×MAX_VERTS×2 px (unused rows repeat the last vertex)
    nvert: np.ndarray  # N
    thickness: np.ndarray  # N int px (lines; 0 for polygons)
    rgb: np.ndarray  # N×3, faded and rounded
    tier: np.ndarray  # N: TIER_GROUND, TIER_LINE, TIER_RAISED
    band: np.ndarray  # N: depth band (0 for ground polygons: they come first)
    group: np.ndarray  # N int64: ground lines' (layer, colour, width); 0 otherwise
    depth: np.ndarray  # N: depth of the polygon or object (0 for ground lines)
    obj: np.ndarray  # N: object of a raised primitive

    def order(self) -> np.ndarray:
        """The drawing order (see the module doc)."""
        first = np.where(self.tier == TIER_GROUND, 0, 1)
        index = np.arange(len(self.tier))
        return np.lexsort((index, self.obj, -self.depth, self.group, self.tier, -self.band, first))


def fade_of(depth: np.ndarray, far_m: float) -> tuple[np.ndarray, np.ndarray]:
    """(band, fade) of depths: the 1 m band and the colour/width factor at its middle."""
    band = np.floor(np.maximum(depth, 0.0) / BAND_M)
    return band, np.clip(1.0 - (band + 0.5) * BAND_M / far_m, 0.0, 1.0)


def line_thickness(width_px: np.ndarray, fade: np.ndarray) -> np.ndarray:
    return np.maximum(1, np.round(width_px * fade)).astype(np.int32)


def clip_segments(
    a: np.ndarray, b: np.ndarray, near: float, far: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip camera-space segments to near <= z <= far; returns (a, b, kept mask)."""
    keep = ~(((a[:, 2] < near) & (b[:, 2] < near)) | ((a[:, 2] > far) & (b[:, 2] > far)))
    a, b = a[keep], b[keep]
    for bound, sign in ((near, 1.0), (far, -1.0)):
        dz = b[:, 2] - a[:, 2]
        t = ((bound - a[:, 2]) / np.where(np.abs(dz) < 1e-12, 1e-12, dz))[:, None]
        hit = a + t * (b - a)
        a_out = (sign * (a[:, 2] - bound) < 0)[:, None]
        b_out = (sign * (b[:, 2] - bound) < 0)[:, None]
        a, b = np.where(a_out, hit, a), np.where(b_out, hit, b)
    return a, b, keep


def clip_polygon(cam_pts: np.ndarray, near: float, far: float) -> np.ndarray:
    """Sutherland–Hodgman clip of a camera-space polygon to near <= z <= far."""
    poly = np.asarray(cam_pts, dtype=np.float64)
    for bound, sign in ((near, 1.0), (far, -1.0)):
        if not len(poly):
            break
        inside = sign * (poly[:, 2] - bound) >= 0
        if inside.all():
            continue
        out = []
        for i in range(len(poly)):
            cur, nxt = poly[i], poly[(i + 1) % len(poly)]
            if inside[i]:
                out.append(cur)
            if inside[i] != inside[(i + 1) % len(poly)]:
                out.append(cur + (bound - cur[2]) / (nxt[2] - cur[2]) * (nxt - cur))
        poly = np.array(out) if out else np.zeros((0, 3))
    return poly


class _Builder:
    """Collects primitives of one frame."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def add(self, uv, thickness, rgb, tier, band, group, depth, obj) -> None:
        self.rows.append((uv, thickness, rgb, tier, band, group, depth, obj))

    def build(self) -> FramePrimitives:
        n = len(self.rows)
        verts = np.zeros((n, MAX_VERTS, 2))
        nvert = np.zeros(n, np.int32)
        for i, row in enumerate(self.rows):
            uv = row[0]
            verts[i, : len(uv)] = uv
            verts[i, len(uv) :] = uv[-1]
            nvert[i] = len(uv)
        return FramePrimitives(
            verts=verts,
            nvert=nvert,
            thickness=np.array([r[1] for r in self.rows], np.int32),
            rgb=np.array([r[2] for r in self.rows], float).reshape(-1, 3),
            tier=np.array([r[3] for r in self.rows], np.int32),
            band=np.array([r[4] for r in self.rows], float),
            group=np.array([r[5] for r in self.rows], np.int64),
            depth=np.array([r[6] for r in self.rows], float),
            obj=np.array([r[7] for r in self.rows], np.int64),
        )


def _on_screen(uv: np.ndarray, margin: np.ndarray, view: View) -> np.ndarray:
    lo, hi = uv.min(axis=1) - margin[:, None], uv.max(axis=1) + margin[:, None]
    return (
        (hi[:, 0] >= 0)
        & (lo[:, 0] <= view.width - 1)
        & (hi[:, 1] >= 0)
        & (lo[:, 1] <= view.height - 1)
    )


def line_primitives(scene: HDMapScene, view: View) -> FramePrimitives:
    """The map's line pieces in this view (vectorised)."""
    a, b, keep = clip_segments(
        view.to_cam(scene.seg_a), view.to_cam(scene.seg_b), view.near_m, view.far_m
    )
    idx = np.flatnonzero(keep)
    depth = 0.5 * (a[:, 2] + b[:, 2])
    band, fade = fade_of(depth, view.far_m)
    thickness = line_thickness(scene.seg_width[idx], fade)
    uv = np.stack([view.project(a), view.project(b)], axis=1)
    on = _on_screen(uv, thickness / 2 + 2, view)
    idx, depth, band, fade, thickness, uv = (x[on] for x in (idx, depth, band, fade, thickness, uv))
    rgb = np.round(scene.seg_color[idx] * fade[:, None])
    layer = scene.seg_layer[idx].astype(np.int64)
    raised = layer == _POLE
    colour_key = (
        (rgb[:, 0].astype(np.int64) << 16)
        | (rgb[:, 1].astype(np.int64) << 8)
        | rgb[:, 2].astype(np.int64)
    )
    group = np.where(raised, 0, (layer << 32) | (thickness.astype(np.int64) << 24) | colour_key)
    n = len(idx)
    verts = np.repeat(uv[:, -1:], MAX_VERTS, axis=1)
    verts[:, :2] = uv
    return FramePrimitives(
        verts=verts,
        nvert=np.full(n, 2, np.int32),
        thickness=thickness,
        rgb=rgb,
        tier=np.where(raised, TIER_RAISED, TIER_LINE).astype(np.int32),
        band=band,
        group=group,
        depth=np.where(raised, depth, 0.0),
        obj=np.where(raised, -1 - idx, 0),  # poles: one object each, apart from cuboids
    )


def object_primitives(
    scene: HDMapScene, view: View, dynamic: DynamicState | None = None
) -> FramePrimitives:
    """The frame's polygons and objects: ground polygons, light heads, signs, 3D boxes."""
    out = _Builder()
    for verts, count, color in zip(scene.poly_verts, scene.poly_count, scene.poly_color,
                                   strict=True):  # fmt: skip
        cam = clip_polygon(view.to_cam(verts[:count]), view.near_m, view.far_m)
        if len(cam) < 3:
            continue
        depth = float(cam[:, 2].mean())
        _, fade = fade_of(np.array([depth]), view.far_m)
        uv = view.project(cam)
        if _on_screen(uv[None], np.array([2.0]), view)[0]:
            out.add(uv, 0, np.round(color * fade[0]), TIER_GROUND, 0.0, 0, depth, 0)
    cam_pos = view.cam_to_world[:3, 3]
    states = {} if dynamic is None else dynamic.light_states
    objects: list[tuple[np.ndarray, list[tuple[tuple[int, ...], np.ndarray]], str | None]] = []
    for corners, color, light in zip(scene.cuboids, scene.cuboid_color, scene.cuboid_light,
                                     strict=True):  # fmt: skip
        if light is not None and scene.version == "v3":
            state = states.get(light, "unknown")
            color = np.array(TRAFFIC_LIGHT_COLORS.get(state, TRAFFIC_LIGHT_COLORS["unknown"]))
        objects.append((corners, [(face, color) for face in FACES], None))
    for box in [] if dynamic is None else dynamic.boxes:
        objects.append(_box_object(box, scene.version))
    for obj, (corners, faces, wire) in enumerate(objects):
        _add_object(out, view, cam_pos, obj, np.asarray(corners, float), faces, wire)
    return out.build()


def frame_primitives(
    scene: HDMapScene, view: View, dynamic: DynamicState | None = None
) -> FramePrimitives:
    """Every primitive of one frame: map lines, ground polygons, cuboids and boxes."""
    return concat([line_primitives(scene, view), object_primitives(scene, view, dynamic)])


def concat(parts: Sequence[FramePrimitives]) -> FramePrimitives:
    return FramePrimitives(
        **{k: np.concatenate([getattr(p, k) for p in parts]) for k in parts[0].__dict__}
    )


def _box_object(box: dict, version: str) -> tuple[np.ndarray, list, str | None]:
    corners = np.asarray(box["corners"], float)
    if corners.shape != (8, 3):
        raise SpecError(f"hdmap box corners: expected 8×3, got {corners.shape}")
    kind = str(box.get("class", "Others"))
    if version == "v1":
        color = BOX_WIREFRAME_COLORS.get(kind, BOX_WIREFRAME_COLORS["Others"])
        return corners, [], color
    front, back = (np.array(c, float) for c in BOX_GRADIENTS.get(kind, BOX_GRADIENTS["Others"]))
    faces: list[tuple[tuple[int, ...], np.ndarray]] = [(FACES[0], front), (FACES[1], back)]
    for face in FACES[2:]:
        faces.append((face, np.stack([back, front])))  # sliced back -> front below
    return corners, faces, "edges"


def _add_object(out: _Builder, view: View, cam_pos: np.ndarray, obj: int, corners: np.ndarray,
                faces: list, wire) -> None:  # fmt: skip
    cam_corners = view.to_cam(corners)
    depth = float(cam_corners[:, 2].mean())
    band, fade = fade_of(np.array([depth]), view.far_m)
    band, fade = float(band[0]), float(fade[0])
    centre = corners.mean(axis=0)
    visible = []
    for face in FACES:
        face_centre = corners[list(face)].mean(axis=0)
        visible.append(float(np.dot(face_centre - centre, cam_pos - face_centre)) > 1e-9)

    def polygon(world: np.ndarray, color: np.ndarray) -> None:
        cam = clip_polygon(view.to_cam(world), view.near_m, view.far_m)
        if len(cam) >= 3:
            out.add(view.project(cam), 0, np.round(color * fade), TIER_RAISED, band, 0, depth, obj)

    for face, color in faces:
        if not visible[FACES.index(face)]:
            continue
        quad = corners[list(face)]
        if np.ndim(color) == 1:
            polygon(quad, color)
            continue
        back_edge, front_edge = quad[:2], quad[[3, 2]]
        for k in range(GRADIENT_SLICES):
            t0, t1 = k / GRADIENT_SLICES, (k + 1) / GRADIENT_SLICES
            e0 = back_edge + t0 * (front_edge - back_edge)
            e1 = back_edge + t1 * (front_edge - back_edge)
            tc = (t0 + t1) / 2
            polygon(np.array([e0[0], e0[1], e1[1], e1[0]]), color[0] + tc * (color[1] - color[0]))
    if wire is None:
        return
    color = np.array(BOX_EDGE_COLOR if wire == "edges" else wire, float)
    for (i, j), adjacent in zip(EDGES, _EDGE_FACES, strict=True):
        if wire == "edges" and not any(visible[f] for f in adjacent):
            continue
        a, b, keep = clip_segments(cam_corners[[i]], cam_corners[[j]], view.near_m, view.far_m)
        if keep[0]:
            uv = np.stack([view.project(a[0]), view.project(b[0])])
            thickness = int(line_thickness(np.array([BOX_EDGE_WIDTH_PX]), np.array([fade]))[0])
            out.add(uv, thickness, np.round(color * fade), TIER_RAISED, band, 0, depth, obj)


def draw(prims: FramePrimitives, height: int, width: int, antialias: bool = True) -> np.ndarray:
    """H×W×3 uint8: the primitives drawn in `prims.order()` onto black."""
    image = np.zeros((height, width, 3), np.uint8)
    line_type = cv2.LINE_AA if antialias else cv2.LINE_8
    order = prims.order()
    pts = np.round(prims.verts[order] * 2**SUBPIXEL_BITS).astype(np.int32)
    nvert, thickness, rgb = prims.nvert[order], prims.thickness[order], prims.rgb[order]
    # Runs of line pieces of one colour and thickness are drawn by one call; polygons alone.
    polygon = nvert > 2
    change = polygon[1:] | polygon[:-1] | (thickness[1:] != thickness[:-1])
    change |= (rgb[1:] != rgb[:-1]).any(axis=1)
    bounds = np.concatenate([[0], np.flatnonzero(change) + 1, [len(order)]])
    for i, j in zip(bounds[:-1], bounds[1:], strict=True):
        if i == j:
            continue
        color = tuple(float(c) for c in rgb[i])
        if polygon[i]:
            cv2.fillPoly(image, [pts[i, : nvert[i]]], color, line_type, SUBPIXEL_BITS)
        else:
            cv2.polylines(image, list(pts[i:j, :2]), False, color, int(thickness[i]), line_type,
                          SUBPIXEL_BITS)  # fmt: skip
    return image


def render_view(
    scene: HDMapScene,
    K: np.ndarray,
    cam_to_world: np.ndarray,
    height: int,
    width: int,
    dynamic: DynamicState | None = None,
    *,
    near_m: float = 0.3,
    antialias: bool = True,
) -> np.ndarray:
    """One H×W×3 uint8 HD-map frame of `scene` seen by an OpenCV pinhole camera."""
    K = np.asarray(K, dtype=np.float64)
    cam_to_world = np.asarray(cam_to_world, dtype=np.float64)
    if K.shape != (3, 3) or cam_to_world.shape != (4, 4):
        raise SpecError(
            f"hdmap: K must be 3×3 and cam_to_world 4×4, got {K.shape} and {cam_to_world.shape}"
        )
    if int(height) <= 0 or int(width) <= 0:
        raise SpecError(f"hdmap: height and width must be > 0, got {height}×{width}")
    view = View(K, cam_to_world, int(height), int(width), near_m,
                FADE_DISTANCE_M[scene.version])  # fmt: skip
    return draw(frame_primitives(scene, view, dynamic), view.height, view.width, antialias)


def render_views(
    scene: HDMapScene,
    Ks: Sequence[np.ndarray],
    cam_to_worlds: Sequence[np.ndarray],
    height: int,
    width: int,
    dynamics: Sequence[DynamicState | None] | None = None,
    *,
    near_m: float = 0.3,
) -> np.ndarray:
    """T×H×W×3 uint8: `render_view` for each of T cameras with dynamics[i]."""
    if len(Ks) != len(cam_to_worlds) or (dynamics is not None and len(dynamics) != len(Ks)):
        count = "no" if dynamics is None else len(dynamics)
        raise SpecError(
            f"hdmap: got {len(Ks)} K, {len(cam_to_worlds)} poses and {count} dynamic "
            "states; give one of each per output frame"
        )
    if not len(Ks):
        return np.zeros((0, int(height), int(width), 3), np.uint8)
    return np.stack([
        render_view(scene, K, pose, height, width, None if dynamics is None else dynamics[i],
                    near_m=near_m)
        for i, (K, pose) in enumerate(zip(Ks, cam_to_worlds, strict=True))
    ])  # fmt: skip
