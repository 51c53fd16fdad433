"""HD-map control frames: map geometry and dynamic state drawn into a camera, Cosmos style.

Follows the Transfer 2.5 world-scenario renderer (colour version v3, COSMOS_REFERENCE.md):
lines of a fixed pixel width (12 px, poles 5 px) whose colour fades with camera depth
(colour × (1 − z/200)), filled crosswalk polygons, cuboids for traffic lights (by state)
and signs, solid 3D boxes with a per-class front→back gradient, all merged with a
per-pixel max across element layers. `version="v1"` gives Transfer 1's colours
(wireframe boxes, fade to black at 122.5 m).

Geometry is clipped against the near and far planes in camera space *before* projection,
so nothing behind the camera wraps around into the image. Work is vectorised with numpy
(transform, clip, project, fade for every segment at once) and drawn with one
`cv2.polylines` call per (colour level, width) group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from cosmos_sim.types import SpecError

# ---------------------------------------------------------------- Cosmos tables (v3/v1)

BASE_WIDTH_PX = 12
POLE_WIDTH_PX = 5
#: Half the distance between the two lines of a double marking. Cosmos' v3 code path
#: (`apply_laneline_pattern` -> `offset_line_segments`) offsets each line by 0.1 m.
DUAL_OFFSET_M = 0.1
FADE_DISTANCE_M = {"v3": 200.0, "v1": 122.5}

WHITE = (255, 255, 255)
YELLOW = (255, 255, 0)
OTHER_LANE_COLOR = (181, 164, 71)

#: Element colours, RGB.
ELEMENT_COLORS = {
    "v3": {
        "laneline": (98, 183, 249),
        "pole": (183, 69, 177),
        "road_boundary": (253, 1, 232),
        "wait_line": (108, 179, 59),
        "crosswalk": (139, 93, 255),
        "road_marking": (20, 254, 185),
        "traffic_sign": (8, 2, 255),
    },
    "v1": {
        "laneline": (98, 183, 249),
        "pole": (183, 69, 177),
        "road_boundary": (200, 36, 35),
        "wait_line": (108, 179, 59),
        "crosswalk": (206, 131, 63),
        "road_marking": (20, 254, 185),
        "traffic_sign": (8, 2, 255),
    },
}
TRAFFIC_LIGHT_COLORS = {
    "red": (240, 50, 50),
    "yellow": (255, 200, 0),
    "green": (130, 240, 132),
    "unknown": (100, 100, 100),
}
#: v3 solid boxes: colour at the front face -> colour at the back face.
BOX_GRADIENTS = {
    "Car": ((0, 46, 136), (126, 206, 255)),
    "Truck": ((204, 55, 0), (255, 192, 64)),
    "Pedestrian": ((148, 0, 62), (255, 124, 171)),
    "Cyclist": ((0, 80, 66), (102, 208, 198)),
    "Others": ((53, 26, 20), (166, 136, 125)),
}
BOX_EDGE_COLOR = (200, 200, 200)
#: v1 wireframe boxes.
BOX_WIREFRAME_COLORS = {
    "Car": (255, 0, 0),
    "Truck": (0, 0, 255),
    "Pedestrian": (0, 255, 0),
    "Cyclist": (255, 255, 0),
    "Others": (255, 255, 255),
}

#: Dash patterns in metres: (on, off) along the line.
PATTERNS = {
    "solid": None,
    "long_dashed": (3.0, 9.0),
    "short_dashed": (1.5, 1.5),
    "dotted": (0.3, 0.6),
    "dot_dashed": (0.9144, 2.7432),
}


@dataclass(frozen=True)
class LaneLineStyle:
    color: tuple[int, int, int]
    patterns: tuple[str, ...]
    """One pattern for a single line; two (left, right) for a double line."""
    thickness: float = 1.0
    """Multiplier on the 12 px base width."""


def _lane_styles() -> dict[str, LaneLineStyle]:
    styles: dict[str, LaneLineStyle] = {}
    for prefix, color in (("WHITE", WHITE), ("YELLOW", YELLOW)):
        styles[f"{prefix}_SOLID_SINGLE"] = LaneLineStyle(color, ("solid",))
        styles[f"{prefix}_LONG_DASHED_SINGLE"] = LaneLineStyle(color, ("long_dashed",))
        styles[f"{prefix}_SHORT_DASHED_SINGLE"] = LaneLineStyle(color, ("short_dashed",))
        styles[f"{prefix}_DOT_DASHED_SINGLE"] = LaneLineStyle(color, ("dot_dashed",))
        styles[f"{prefix}_DOTTED_SINGLE"] = LaneLineStyle(color, ("dotted",))
        styles[f"{prefix}_SOLID_GROUP"] = LaneLineStyle(color, ("solid", "solid"))
        styles[f"{prefix}_DASHED_GROUP"] = LaneLineStyle(color, ("long_dashed", "long_dashed"))
        styles[f"{prefix}_DASHED_SOLID"] = LaneLineStyle(color, ("long_dashed", "solid"))
        styles[f"{prefix}_SOLID_DASHED"] = LaneLineStyle(color, ("solid", "long_dashed"))
        styles[f"{prefix}_DOT_SOLID"] = LaneLineStyle(color, ("dotted", "solid"))
        styles[f"{prefix}_OTHER"] = LaneLineStyle(color, ("solid",), thickness=3.0)
    styles["OTHER"] = LaneLineStyle(OTHER_LANE_COLOR, ("solid",))
    return styles


LANE_LINE_STYLES = _lane_styles()

#: CARLA LaneMarkingType name -> the lane-line type suffix (None: not a painted line).
CARLA_MARKING_TYPES = {
    "Solid": "SOLID_SINGLE",
    "Broken": "LONG_DASHED_SINGLE",
    "SolidSolid": "SOLID_GROUP",
    "SolidBroken": "SOLID_DASHED",
    "BrokenSolid": "DASHED_SOLID",
    "BrokenBroken": "DASHED_GROUP",
    "BottsDots": "DOTTED_SINGLE",
    "Other": "OTHER",
    "NONE": None,
    "Grass": None,
    "Curb": None,
}
#: CARLA LaneMarkingColor name -> colour prefix (None: the catch-all OTHER colour).
CARLA_MARKING_COLORS = {
    "Standard": "WHITE",
    "White": "WHITE",
    "Yellow": "YELLOW",
    "Blue": None,
    "Green": None,
    "Red": None,
    "Other": None,
}


def lane_line_type(marking_type: str, marking_color: str) -> str | None:
    """CARLA marking (type, colour) names -> a LANE_LINE_STYLES key, or None if unpainted."""
    if marking_type not in CARLA_MARKING_TYPES:
        raise SpecError(
            f"lane marking type {marking_type!r} is not a CARLA LaneMarkingType; known: "
            f"{sorted(CARLA_MARKING_TYPES)}"
        )
    suffix = CARLA_MARKING_TYPES[marking_type]
    if suffix is None:
        return None
    prefix = CARLA_MARKING_COLORS.get(marking_color)
    return "OTHER" if prefix is None else f"{prefix}_{suffix}"


# ------------------------------------------------------------------- scene containers

_LAYERS = (
    "crosswalk",
    "road_marking",
    "road_boundary",
    "laneline",
    "wait_line",
    "pole",
    "traffic_sign",
    "traffic_light",
    "box",
)


@dataclass
class MapGeometry:
    """Static map elements in the world frame (right-handed, z up, metres)."""

    lane_lines: list[tuple[np.ndarray, str]] = field(default_factory=list)
    """(M×3 polyline, LANE_LINE_STYLES key)."""
    road_boundaries: list[np.ndarray] = field(default_factory=list)
    wait_lines: list[np.ndarray] = field(default_factory=list)
    poles: list[np.ndarray] = field(default_factory=list)
    """2×3 (bottom, top) vertical segments."""
    crosswalks: list[np.ndarray] = field(default_factory=list)
    """M×3 closed polygons (the last vertex need not repeat the first)."""
    road_markings: list[np.ndarray] = field(default_factory=list)
    traffic_lights: list[dict[str, Any]] = field(default_factory=list)
    """{"id": str, "center": xyz, "size": (length, width, height), "yaw": rad}."""
    traffic_signs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DynamicState:
    """Per-tick state: 3D boxes and traffic-light states (keyed by the light's map id)."""

    boxes: list[dict[str, Any]] = field(default_factory=list)
    """{"class": Car|Truck|Pedestrian|Cyclist|Others, "corners": 8×3} (actor_box order)."""
    light_states: dict[str, str] = field(default_factory=dict)
    """map id -> red|yellow|green|unknown."""

    @classmethod
    def from_tick_data(cls, data: Mapping[str, Any]) -> DynamicState:
        """From the `data` of a CARLA episode tick (see bridges.carla.world_state)."""
        lights = {
            str(light.get("opendrive_id") or light["id"]): str(light["state"])
            for light in data.get("traffic_lights", [])
        }
        return cls(boxes=list(data.get("boxes", [])), light_states=lights)


@dataclass
class HDMapScene:
    """Map geometry compiled once for rendering: pattern-split segments and polygons."""

    seg_a: np.ndarray
    seg_b: np.ndarray
    seg_layer: np.ndarray
    seg_color: np.ndarray
    seg_width: np.ndarray
    polygons: list[tuple[np.ndarray, str, tuple[int, int, int]]]
    traffic_lights: list[dict[str, Any]]
    traffic_signs: list[dict[str, Any]]
    version: str


def compile_scene(geometry: MapGeometry, version: str = "v3") -> HDMapScene:
    """Split lane lines into their dash patterns and pack every line into segment arrays."""
    colors = _element_colors(version)
    seg_a: list[np.ndarray] = []
    seg_b: list[np.ndarray] = []
    meta: list[tuple[int, tuple[int, int, int], int, int]] = []

    def add(segments: np.ndarray, layer: str, color: tuple[int, int, int], width: int) -> None:
        if len(segments):
            seg_a.append(segments[:, 0])
            seg_b.append(segments[:, 1])
            meta.append((_LAYERS.index(layer), color, width, len(segments)))

    for polyline, kind in geometry.lane_lines:
        style = LANE_LINE_STYLES.get(kind)
        if style is None:
            raise SpecError(f"lane line type {kind!r} is not in LANE_LINE_STYLES")
        width = round(BASE_WIDTH_PX * style.thickness)
        color = style.color if version == "v3" else colors["laneline"]
        if len(style.patterns) == 1:
            add(pattern_segments(polyline, style.patterns[0]), "laneline", color, width)
        else:
            left, right = offset_polyline(polyline, DUAL_OFFSET_M)
            add(pattern_segments(left, style.patterns[0]), "laneline", color, width)
            add(pattern_segments(right, style.patterns[1]), "laneline", color, width)
    for polyline in geometry.road_boundaries:
        add(
            pattern_segments(polyline, "solid"),
            "road_boundary",
            colors["road_boundary"],
            BASE_WIDTH_PX,
        )
    for polyline in geometry.wait_lines:
        add(pattern_segments(polyline, "solid"), "wait_line", colors["wait_line"], BASE_WIDTH_PX)
    for pole in geometry.poles:
        add(pattern_segments(pole, "solid"), "pole", colors["pole"], POLE_WIDTH_PX)
    if seg_a:
        a = np.concatenate(seg_a)
        b = np.concatenate(seg_b)
        counts = [m[3] for m in meta]
        layer = np.repeat([m[0] for m in meta], counts).astype(np.int16)
        color = np.repeat(np.array([m[1] for m in meta], np.float32), counts, axis=0)
        width = np.repeat([m[2] for m in meta], counts).astype(np.int16)
    else:
        a = b = np.zeros((0, 3))
        layer = width = np.zeros(0, np.int16)
        color = np.zeros((0, 3), np.float32)
    polygons = [
        (np.asarray(p, float), "crosswalk", colors["crosswalk"]) for p in geometry.crosswalks
    ]
    polygons += [
        (np.asarray(p, float), "road_marking", colors["road_marking"])
        for p in geometry.road_markings
    ]
    return HDMapScene(
        seg_a=a.astype(np.float64),
        seg_b=b.astype(np.float64),
        seg_layer=layer,
        seg_color=color,
        seg_width=width,
        polygons=polygons,
        traffic_lights=list(geometry.traffic_lights),
        traffic_signs=list(geometry.traffic_signs),
        version=version,
    )


def _element_colors(version: str) -> dict[str, tuple[int, int, int]]:
    if version not in ELEMENT_COLORS:
        raise SpecError(f"hdmap version {version!r}: use 'v3' (Transfer 2.5) or 'v1' (Transfer 1)")
    return ELEMENT_COLORS[version]


# ----------------------------------------------------------------- polyline patterns


def pattern_segments(polyline: np.ndarray, pattern: str) -> np.ndarray:
    """A polyline -> K×2×3 segments of `pattern` (dashes measured in metres of arc length)."""
    pts = np.asarray(polyline, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise SpecError(f"polyline: expected M×3 points, got shape {pts.shape}")
    if pattern not in PATTERNS:
        raise SpecError(f"line pattern {pattern!r}: use one of {sorted(PATTERNS)}")
    if len(pts) < 2:
        return np.zeros((0, 2, 3))
    step = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    keep = np.concatenate([[True], step > 1e-9])
    pts = pts[keep]
    if len(pts) < 2:
        return np.zeros((0, 2, 3))
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    spec = PATTERNS[pattern]
    if spec is None:
        return np.stack([pts[:-1], pts[1:]], axis=1)
    on, off = spec
    period = on + off
    n = int(np.ceil(s[-1] / period)) + 1
    starts = np.arange(n) * period
    marks = np.unique(np.concatenate([s, starts, starts + on]))
    marks = marks[(marks >= 0) & (marks <= s[-1])]
    samples = np.stack([np.interp(marks, s, pts[:, k]) for k in range(3)], axis=1)
    mid = 0.5 * (marks[:-1] + marks[1:])
    visible = (np.mod(mid, period) < on) & (np.diff(marks) > 1e-9)
    return np.stack([samples[:-1][visible], samples[1:][visible]], axis=1)


def offset_polyline(polyline: np.ndarray, offset_m: float) -> tuple[np.ndarray, np.ndarray]:
    """The polyline shifted `offset_m` to its left and to its right (in the ground plane)."""
    pts = np.asarray(polyline, dtype=np.float64)
    d = np.gradient(pts[:, :2], axis=0) if len(pts) > 1 else np.zeros((len(pts), 2))
    norm = np.linalg.norm(d, axis=1, keepdims=True)
    d = np.divide(d, norm, out=np.zeros_like(d), where=norm > 1e-9)
    left = np.zeros_like(pts)
    left[:, 0], left[:, 1] = -d[:, 1], d[:, 0]
    return pts + offset_m * left, pts - offset_m * left


def cuboid_corners(center: Sequence[float], size: Sequence[float], yaw: float) -> np.ndarray:
    """8×3 corners in actor_box order (x-major: −x−y−z, −x−y+z, −x+y−z, …; +x is the front)."""
    length, width, height = size
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    local = signs * np.array([length, width, height]) / 2.0
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return local @ rot.T + np.asarray(center, float)


# Faces of a cuboid in actor_box corner order; the first is the front (+x), the second the back.
_FACES = (
    (4, 5, 7, 6),
    (0, 1, 3, 2),
    (0, 1, 5, 4),
    (2, 3, 7, 6),
    (0, 2, 6, 4),
    (1, 3, 7, 5),
)
_EDGES = (
    (0, 1), (2, 3), (4, 5), (6, 7),
    (0, 2), (1, 3), (4, 6), (5, 7),
    (0, 4), (1, 5), (2, 6), (3, 7),
)  # fmt: skip


# ------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class _View:
    K: np.ndarray
    world_to_cam: np.ndarray
    width: int
    height: int
    near_m: float
    far_m: float

    def to_cam(self, pts: np.ndarray) -> np.ndarray:
        return pts @ self.world_to_cam[:3, :3].T + self.world_to_cam[:3, 3]

    def project(self, cam: np.ndarray) -> np.ndarray:
        uvw = cam @ self.K.T
        return uvw[..., :2] / uvw[..., 2:3]


def render_hdmap(
    scene: HDMapScene,
    K: np.ndarray,
    cam_to_world: np.ndarray,
    width: int,
    height: int,
    dynamic: DynamicState | None = None,
    *,
    near_m: float = 0.3,
    antialias: bool = True,
) -> np.ndarray:
    """One H×W×3 uint8 HD-map control frame of `scene` seen by an OpenCV camera."""
    K = np.asarray(K, dtype=np.float64)
    cam_to_world = np.asarray(cam_to_world, dtype=np.float64)
    if K.shape != (3, 3) or cam_to_world.shape != (4, 4):
        raise SpecError(
            f"hdmap: K must be 3×3 and cam_to_world 4×4, got {K.shape} and {cam_to_world.shape}"
        )
    fade_m = FADE_DISTANCE_M[scene.version]
    view = _View(K, np.linalg.inv(cam_to_world), int(width), int(height), near_m, fade_m)
    line_type = cv2.LINE_AA if antialias else cv2.LINE_8
    layers: dict[str, np.ndarray] = {}

    def canvas(layer: str) -> np.ndarray:
        if layer not in layers:
            layers[layer] = np.zeros((view.height, view.width, 3), np.uint8)
        return layers[layer]

    _draw_segments(scene, view, canvas, line_type)
    for polygon, layer, color in scene.polygons:
        _fill(canvas(layer), view, [(polygon, color)], line_type)
    colors = _element_colors(scene.version)
    states = {} if dynamic is None else dynamic.light_states
    light_faces = []
    for light in scene.traffic_lights:
        color = TRAFFIC_LIGHT_COLORS.get(states.get(str(light["id"]), "unknown"), (100, 100, 100))
        corners = cuboid_corners(light["center"], light["size"], light["yaw"])
        light_faces += [(corners[list(f)], color) for f in _FACES]
    _fill(canvas("traffic_light"), view, light_faces, line_type)
    sign_faces = []
    for sign in scene.traffic_signs:
        corners = cuboid_corners(sign["center"], sign["size"], sign["yaw"])
        sign_faces += [(corners[list(f)], colors["traffic_sign"]) for f in _FACES]
    _fill(canvas("traffic_sign"), view, sign_faces, line_type)
    if dynamic is not None and dynamic.boxes:
        _draw_boxes(canvas("box"), view, dynamic.boxes, scene.version, line_type)
    out = np.zeros((view.height, view.width, 3), np.uint8)
    for layer in layers.values():
        np.maximum(out, layer, out=out)
    return out


def render_hdmap_clip(
    scene: HDMapScene,
    Ks: Sequence[np.ndarray],
    cam_to_worlds: Sequence[np.ndarray],
    width: int,
    height: int,
    dynamics: Sequence[DynamicState | None] | None = None,
    *,
    near_m: float = 0.3,
) -> np.ndarray:
    """T×H×W×3 uint8: `render_hdmap` for each of T cameras (Ks[i], cam_to_worlds[i]) with
    dynamics[i]; the signature of the device version (`cosmos_sim.kernels.clip_backend`)."""
    if not len(Ks) == len(cam_to_worlds) or (dynamics is not None and len(dynamics) != len(Ks)):
        count = "no" if dynamics is None else len(dynamics)
        raise SpecError(
            f"hdmap: got {len(Ks)} K, {len(cam_to_worlds)} poses and {count} dynamic "
            "states; give one of each per output frame"
        )
    return np.stack([
        render_hdmap(scene, K, pose, width, height, None if dynamics is None else dynamics[i],
                     near_m=near_m)
        for i, (K, pose) in enumerate(zip(Ks, cam_to_worlds, strict=True))
    ])  # fmt: skip


def _clip_segments(
    a: np.ndarray, b: np.ndarray, near: float, far: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip camera-space segments to near <= z <= far; returns (a, b, kept mask)."""
    za, zb = a[:, 2], b[:, 2]
    keep = ~(((za < near) & (zb < near)) | ((za > far) & (zb > far)))
    a, b, za, zb = a[keep], b[keep], za[keep], zb[keep]
    dz = zb - za
    safe = np.where(np.abs(dz) < 1e-12, 1e-12, dz)
    for bound, outside in ((near, lambda z: z < near), (far, lambda z: z > far)):
        t = ((bound - za) / safe)[:, None]
        hit = a + t * (b - a)
        a = np.where(outside(a[:, 2])[:, None], hit, a)
        b = np.where(outside(b[:, 2])[:, None], hit, b)
        za, zb = a[:, 2], b[:, 2]
        dz = zb - za
        safe = np.where(np.abs(dz) < 1e-12, 1e-12, dz)
    return a, b, keep


_FADE_LEVELS = 64
_SHIFT = 3  # cv2 fixed-point bits: sub-pixel accurate line ends
_FIXED_LIMIT = 2**30 / 2**_SHIFT  # keep projected far-off points inside cv2's int range


def _fixed_point(uv: np.ndarray) -> np.ndarray:
    """Pixel coordinates -> cv2's int32 fixed point with _SHIFT fractional bits."""
    return np.round(np.clip(uv, -_FIXED_LIMIT, _FIXED_LIMIT) * (1 << _SHIFT)).astype(np.int32)


def _draw_segments(scene: HDMapScene, view: _View, canvas: Any, line_type: int) -> None:
    if not len(scene.seg_a):
        return
    cam_pos = np.linalg.inv(view.world_to_cam)[:3, 3]
    # Range cull before the transform: a segment goes when its nearest point to the camera
    # is beyond the fade distance (not its ends: a long one can pass right by the camera).
    ab = scene.seg_b - scene.seg_a
    length2 = np.einsum("ij,ij->i", ab, ab)
    t = np.einsum("ij,ij->i", cam_pos - scene.seg_a, ab) / np.maximum(length2, 1e-12)
    nearest = scene.seg_a + np.clip(t, 0.0, 1.0)[:, None] * ab
    near_idx = np.flatnonzero(np.linalg.norm(nearest - cam_pos, axis=1) < view.far_m + 1.0)
    a = view.to_cam(scene.seg_a[near_idx])
    b = view.to_cam(scene.seg_b[near_idx])
    a, b, keep = _clip_segments(a, b, view.near_m, view.far_m)
    idx = near_idx[keep]
    if not len(idx):
        return
    ua, ub = view.project(a), view.project(b)
    fade = 1.0 - 0.5 * (a[:, 2] + b[:, 2]) / view.far_m
    level = np.clip(np.ceil(fade * _FADE_LEVELS), 1, _FADE_LEVELS).astype(np.int32)
    # Drop segments entirely off one side of the image (widths are at most 36 px).
    margin = 64
    off = (
        ((ua[:, 0] < -margin) & (ub[:, 0] < -margin))
        | ((ua[:, 0] > view.width + margin) & (ub[:, 0] > view.width + margin))
        | ((ua[:, 1] < -margin) & (ub[:, 1] < -margin))
        | ((ua[:, 1] > view.height + margin) & (ub[:, 1] > view.height + margin))
    )
    on = ~off
    ua, ub, level, idx = ua[on], ub[on], level[on], idx[on]
    if not len(idx):
        return
    pts = _fixed_point(np.stack([ua, ub], axis=1))
    layer = scene.seg_layer[idx]
    width = scene.seg_width[idx]
    color = scene.seg_color[idx]
    # Group by (layer, colour, width, fade level); draw dim before bright so the brightest
    # wins where lines of one layer overlap (the per-pixel max for a single hue).
    color_key = (
        (color[:, 0].astype(np.int64) << 16)
        | (color[:, 1].astype(np.int64) << 8)
        | color[:, 2].astype(np.int64)
    )
    order = np.lexsort((color_key, width, level, layer))
    key = np.stack([layer, level, width, color_key], axis=1)[order]
    bounds = np.flatnonzero(np.any(np.diff(key, axis=0) != 0, axis=1)) + 1
    for group in np.split(order, bounds):
        g0 = group[0]
        rgb = tuple(float(v) for v in np.round(color[g0] * level[g0] / _FADE_LEVELS))
        cv2.polylines(
            canvas(_LAYERS[layer[g0]]),
            list(pts[group]),
            False,
            rgb,
            int(width[g0]),
            line_type,
            _SHIFT,
        )


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
            cin, nin = inside[i], inside[(i + 1) % len(poly)]
            if cin:
                out.append(cur)
            if cin != nin:
                t = (bound - cur[2]) / (nxt[2] - cur[2])
                out.append(cur + t * (nxt - cur))
        poly = np.array(out) if out else np.zeros((0, 3))
    return poly


def _fill(
    image: np.ndarray,
    view: _View,
    polygons: Sequence[tuple[np.ndarray, tuple[int, int, int]]],
    line_type: int,
) -> None:
    """Fill world-space polygons far to near (painter's order), each faded by its depth."""
    items = []
    for polygon, color in polygons:
        cam = clip_polygon(view.to_cam(np.asarray(polygon, float)), view.near_m, view.far_m)
        if len(cam) < 3:
            continue
        depth = float(cam[:, 2].mean())
        items.append((depth, cam, color))
    items.sort(key=lambda item: -item[0])
    for depth, cam, color in items:
        uv = view.project(cam)
        pts = _fixed_point(uv)
        fade = max(0.0, 1.0 - depth / view.far_m)
        cv2.fillPoly(image, [pts], tuple(float(c) * fade for c in color), line_type, _SHIFT)


def _draw_boxes(
    image: np.ndarray, view: _View, boxes: Sequence[Mapping[str, Any]], version: str, line_type: int
) -> None:
    if version == "v1":
        for box in boxes:
            corners = np.asarray(box["corners"], float)
            color = BOX_WIREFRAME_COLORS.get(str(box.get("class")), BOX_WIREFRAME_COLORS["Others"])
            segs = np.array([[corners[i], corners[j]] for i, j in _EDGES])
            _lines(image, view, segs, color, BASE_WIDTH_PX // 3, line_type)
        return
    faces = []
    edges = []
    for box in boxes:
        corners = np.asarray(box["corners"], float)
        front, back = BOX_GRADIENTS.get(str(box.get("class")), BOX_GRADIENTS["Others"])
        front_c, back_c = np.array(front, float), np.array(back, float)
        faces.append((corners[list(_FACES[0])], front))
        faces.append((corners[list(_FACES[1])], back))
        # Side faces run front to back: slice them so the gradient shows.
        slices = 4
        for face in _FACES[2:]:
            quad = corners[list(face)]  # two back corners (x−) then two front (x+)
            back_edge, front_edge = quad[:2], quad[[3, 2]]
            for k in range(slices):
                t0, t1 = k / slices, (k + 1) / slices
                e0 = back_edge + t0 * (front_edge - back_edge)
                e1 = back_edge + t1 * (front_edge - back_edge)
                tc = (t0 + t1) / 2
                rgb = tuple(np.round(back_c + tc * (front_c - back_c)).astype(int).tolist())
                faces.append((np.array([e0[0], e0[1], e1[1], e1[0]]), rgb))
        edges.append(np.array([[corners[i], corners[j]] for i, j in _EDGES]))
    _fill(image, view, faces, line_type)
    if edges:
        _lines(image, view, np.concatenate(edges), BOX_EDGE_COLOR, 2, line_type)


def _lines(
    image: np.ndarray,
    view: _View,
    segments: np.ndarray,
    color: tuple[int, int, int],
    width: int,
    line_type: int,
) -> None:
    a, b, _ = _clip_segments(
        view.to_cam(segments[:, 0]), view.to_cam(segments[:, 1]), view.near_m, view.far_m
    )
    if not len(a):
        return
    pts = _fixed_point(np.stack([view.project(a), view.project(b)], axis=1))
    fade = np.clip(1.0 - 0.5 * (a[:, 2] + b[:, 2]) / view.far_m, 0, 1)
    for p, f in zip(pts, fade, strict=True):
        cv2.line(
            image,
            tuple(p[0]),
            tuple(p[1]),
            tuple(float(c) * f for c in color),
            width,
            line_type,
            _SHIFT,
        )
