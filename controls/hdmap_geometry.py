"""HD-map geometry compiled for rendering: styled world-space primitives in flat arrays.

`compile_scene` turns a `MapGeometry` (plain polylines, polygons, cuboids from a bridge) into
an `HDMapScene` once per map: lane lines split into their dash patterns and double lines,
every polyline cut into pieces of at most 0.8 m (each piece gets its own depth, width and
fade when drawn), polygons made convex with at most `MAX_POLY_VERTS` corners, cuboids as
8 corners with their colour. Per-frame work (`hdmap_raster`) then only transforms arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from cosmos_sim.controls.hdmap_style import (
    DUAL_OFFSET_M,
    ELEMENT_COLORS,
    LINE_WIDTH_PX,
    PATTERNS,
    POLE_WIDTH_PX,
    RESAMPLE_M,
    check_version,
    lane_line_style,
)
from cosmos_sim.map_geometry import MapGeometry
from cosmos_sim.types import SpecError

MAX_POLY_VERTS = 6
"""Corners of a compiled polygon: with the two clip planes (near, far) a polygon gains at
most two, so a clipped one fits the device rasteriser's 8."""

#: Line layers: the draw order of coplanar ground lines (later wins where they overlap).
LINE_LAYERS = ("laneline", "road_boundary", "wait_line", "pole")
POLYGON_LAYERS = ("crosswalk", "road_marking")


@dataclass
class HDMapScene:
    """A map compiled for rendering (world frame). Segments: S pieces of line; polygons: P
    convex ground polygons padded to MAX_POLY_VERTS; cuboids: C static boxes (lights, signs)."""

    seg_a: np.ndarray
    seg_b: np.ndarray
    seg_color: np.ndarray
    """S×3 float32 RGB at depth 0."""
    seg_width: np.ndarray
    """S float32: width in px at depth 0."""
    seg_layer: np.ndarray
    """S int16: index into LINE_LAYERS (poles stand up: drawn as raised objects)."""
    poly_verts: np.ndarray
    """P×MAX_POLY_VERTS×3; rows past poly_count repeat the last corner."""
    poly_count: np.ndarray
    poly_color: np.ndarray
    poly_layer: np.ndarray
    cuboids: np.ndarray
    """C×8×3 corners in `cuboid_corners` order."""
    cuboid_color: np.ndarray
    cuboid_light: list[str | None] = field(default_factory=list)
    """The map id of a traffic light (coloured by its state each frame), None for a sign."""
    version: str = "v3"


# ----------------------------------------------------------------- polyline patterns


def _on_intervals(pattern: str) -> tuple[float, list[tuple[float, float]]] | None:
    """(period, drawn intervals within a period) of a pattern; None for solid."""
    if pattern not in PATTERNS:
        raise SpecError(f"line pattern {pattern!r}: use one of {sorted(PATTERNS)}")
    spec = PATTERNS[pattern]
    if spec is None:
        return None
    if not spec.dot:
        return spec.on + spec.off, [(0.0, spec.on)]
    starts = np.arange(0.0, spec.on - 1e-9, spec.dot_every)
    return spec.on + spec.off, [(float(s), float(s) + spec.dot) for s in starts]


def pattern_segments(polyline: np.ndarray, pattern: str) -> np.ndarray:
    """A polyline -> K×2×3 pieces of `pattern` (measured in metres of arc length from its
    start), none longer than RESAMPLE_M."""
    pts = np.asarray(polyline, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise SpecError(f"polyline: expected M×3 points, got shape {pts.shape}")
    spec = _on_intervals(pattern)
    if len(pts) >= 2:
        pts = pts[np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-9])]
    if len(pts) < 2:
        return np.zeros((0, 2, 3))
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    marks = [s, np.linspace(0.0, s[-1], int(np.ceil(s[-1] / RESAMPLE_M)) + 1)]
    if spec is not None:
        period, intervals = spec
        starts = np.arange(int(np.ceil(s[-1] / period)) + 1) * period
        for lo, hi in intervals:
            marks += [starts + lo, starts + hi]
    cuts = np.unique(np.clip(np.concatenate(marks), 0.0, s[-1]))
    mid = 0.5 * (cuts[:-1] + cuts[1:])
    keep = np.diff(cuts) > 1e-9
    if spec is not None:
        phase = np.mod(mid, period)
        keep &= np.any([(phase >= lo) & (phase < hi) for lo, hi in intervals], axis=0)
    samples = np.stack([np.interp(cuts, s, pts[:, k]) for k in range(3)], axis=1)
    return np.stack([samples[:-1][keep], samples[1:][keep]], axis=1)


def offset_polyline(polyline: np.ndarray, offset_m: float) -> tuple[np.ndarray, np.ndarray]:
    """The polyline shifted `offset_m` to its left (counter-clockwise of its direction, in
    the ground plane) and to its right."""
    pts = np.asarray(polyline, dtype=np.float64)
    d = np.gradient(pts[:, :2], axis=0) if len(pts) > 1 else np.zeros((len(pts), 2))
    norm = np.linalg.norm(d, axis=1, keepdims=True)
    d = np.divide(d, norm, out=np.zeros_like(d), where=norm > 1e-9)
    left = np.zeros_like(pts)
    left[:, 0], left[:, 1] = -d[:, 1], d[:, 0]
    return pts + offset_m * left, pts - offset_m * left


def cuboid_corners(center: Sequence[float], size: Sequence[float], yaw: float) -> np.ndarray:
    """8×3 corners, x-major (−x−y−z, −x−y+z, −x+y−z, …): +x is the front (length, width,
    height = size; yaw counter-clockwise about z)."""
    length, width, height = size
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    local = signs * np.array([length, width, height]) / 2.0
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return local @ rot.T + np.asarray(center, float)


def convex_polygon(polygon: np.ndarray) -> np.ndarray:
    """At most MAX_POLY_VERTS corners of a ground polygon's convex hull (in x, y; z kept by
    the nearest input corner). Crosswalks are convex; a painted symbol becomes its outline."""
    pts = np.asarray(polygon, float)
    hull = cv2.convexHull(pts[:, :2].astype(np.float32)).reshape(-1, 2)
    epsilon = 0.01
    while len(hull) > MAX_POLY_VERTS:
        hull = cv2.approxPolyDP(hull.reshape(-1, 1, 2), epsilon, True).reshape(-1, 2)
        epsilon *= 2
    nearest = np.argmin(np.linalg.norm(pts[None, :, :2] - hull[:, None, :], axis=2), axis=1)
    return np.column_stack([hull.astype(float), pts[nearest, 2]])


# --------------------------------------------------------------------------- compile


def compile_scene(geometry: MapGeometry, version: str = "v3") -> HDMapScene:
    """Styled primitives of a map for `version` ("v3": Transfer 2.5 / Cosmos 3 wsm, "v1":
    Transfer 1)."""
    check_version(version)
    colors = ELEMENT_COLORS[version]
    base = LINE_WIDTH_PX[version]
    pieces: list[tuple[np.ndarray, tuple[int, int, int], float, int]] = []

    def add(segments: np.ndarray, layer: str, color: tuple[int, int, int], width: float):
        if len(segments):
            pieces.append((segments, color, width, LINE_LAYERS.index(layer)))

    for polyline, kind in geometry.lane_lines:
        style = lane_line_style(kind, version)
        width = base * style.thickness
        if len(style.patterns) == 1:
            add(pattern_segments(polyline, style.patterns[0]), "laneline", style.color, width)
        else:
            left, right = offset_polyline(polyline, DUAL_OFFSET_M)
            add(pattern_segments(left, style.patterns[0]), "laneline", style.color, width)
            add(pattern_segments(right, style.patterns[1]), "laneline", style.color, width)
    for layer, polylines in (
        ("road_boundary", geometry.road_boundaries),
        ("wait_line", geometry.wait_lines),
    ):
        for polyline in polylines:
            add(pattern_segments(polyline, "solid"), layer, colors[layer], base)
    for pole in geometry.poles:
        add(np.asarray(pole, float).reshape(1, 2, 3), "pole", colors["pole"],
            POLE_WIDTH_PX[version])  # fmt: skip
    if pieces:
        counts = [len(p[0]) for p in pieces]
        segments = np.concatenate([p[0] for p in pieces])
        seg_color = np.repeat(np.array([p[1] for p in pieces], np.float32), counts, axis=0)
        seg_width = np.repeat(np.array([p[2] for p in pieces], np.float32), counts)
        seg_layer = np.repeat(np.array([p[3] for p in pieces], np.int16), counts)
    else:
        segments = np.zeros((0, 2, 3))
        seg_color = np.zeros((0, 3), np.float32)
        seg_width = np.zeros(0, np.float32)
        seg_layer = np.zeros(0, np.int16)
    polygons = [(p, "crosswalk") for p in geometry.crosswalks]
    polygons += [(p, "road_marking") for p in geometry.road_markings]
    poly_verts = np.zeros((len(polygons), MAX_POLY_VERTS, 3))
    poly_count = np.zeros(len(polygons), np.int32)
    for i, (polygon, _) in enumerate(polygons):
        hull = convex_polygon(polygon)
        poly_verts[i, : len(hull)] = hull
        poly_verts[i, len(hull) :] = hull[-1]
        poly_count[i] = len(hull)
    cuboids, cuboid_color, cuboid_light = [], [], []
    for light in geometry.traffic_lights:
        cuboids.append(cuboid_corners(light["center"], light["size"], light["yaw"]))
        cuboid_color.append(colors["traffic_light"])
        cuboid_light.append(str(light["id"]))
    for sign in geometry.traffic_signs:
        cuboids.append(cuboid_corners(sign["center"], sign["size"], sign["yaw"]))
        cuboid_color.append(colors["traffic_sign"])
        cuboid_light.append(None)
    return HDMapScene(
        seg_a=segments[:, 0].copy(),
        seg_b=segments[:, 1].copy(),
        seg_color=seg_color,
        seg_width=seg_width,
        seg_layer=seg_layer,
        poly_verts=poly_verts,
        poly_count=poly_count,
        poly_color=np.array([colors[layer] for _, layer in polygons], np.float32).reshape(-1, 3),
        poly_layer=np.array([POLYGON_LAYERS.index(layer) for _, layer in polygons], np.int16),
        cuboids=np.array(cuboids, float).reshape(-1, 8, 3),
        cuboid_color=np.array(cuboid_color, np.float32).reshape(-1, 3),
        cuboid_light=cuboid_light,
        version=version,
    )


@dataclass
class DynamicState:
    """Per-tick state: 3D boxes and traffic-light states (keyed by the light's map id)."""

    boxes: list[dict[str, Any]] = field(default_factory=list)
    """{"class": Car|Truck|Pedestrian|Cyclist|Others, "corners": 8×3} (cuboid_corners order)."""
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
