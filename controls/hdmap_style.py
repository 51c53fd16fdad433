"""HD-map (world-scenario map) styling: Cosmos' colour tables, line widths and lane patterns.

Values are upstream's (cosmos-transfer2.5 `world_scenario/color_scheme/*.json`,
`utils/laneline_utils.py`, `rendering/tiled_multi_camera_renderer.py`; COSMOS_REFERENCE.md):

- **v3** (Transfer 2.5 AV, and the `wsm` control of Cosmos 3): element colours, 15 lane-line
  types with their patterns (any other type is drawn as OTHER), solid cuboids with a
  front→back gradient, traffic lights by state, fade to black at 200 m.
- **v1** (Transfer 1, CARLA's CosmosControlSensor): its own palette, every lane line one
  solid colour (no patterns, no double lines), 8 px lines (CARLA's `RoadLineThickness`),
  wireframe boxes, one traffic-light colour, fade to black at 122.5 m.

Line widths are the width at depth 0; the renderer scales them, and every colour, by
(1 − depth / fade distance), as upstream's shaders do.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from cosmos_sim.types import SpecError

VERSIONS = ("v3", "v1")
FADE_DISTANCE_M = {"v3": 200.0, "v1": 122.5}
LINE_WIDTH_PX = {"v3": 12, "v1": 8}
POLE_WIDTH_PX = {"v3": 5, "v1": 5}
BOX_EDGE_WIDTH_PX = 4
DUAL_OFFSET_M = 0.1
"""Each line of a double marking sits this far left / right of the marking's centre."""
RESAMPLE_M = 0.8
"""Polylines are cut into pieces of at most this length (upstream resamples every 0.8 m):
short pieces give the depth order, width taper and colour fade their resolution."""

Color = tuple[int, int, int]

#: Element colours, RGB (`config_color_hdmap.json`).
ELEMENT_COLORS: dict[str, dict[str, Color]] = {
    "v3": {
        "laneline": (98, 183, 249),
        "pole": (183, 69, 177),
        "road_boundary": (253, 1, 232),
        "wait_line": (108, 179, 59),
        "crosswalk": (139, 93, 255),
        "road_marking": (20, 254, 185),
        "traffic_sign": (8, 2, 255),
        "traffic_light": (100, 100, 100),
    },
    "v1": {
        "laneline": (98, 183, 249),
        "pole": (66, 40, 144),
        "road_boundary": (200, 36, 35),
        "wait_line": (185, 63, 34),
        "crosswalk": (206, 131, 63),
        "road_marking": (126, 204, 205),
        "traffic_sign": (131, 175, 155),
        "traffic_light": (252, 157, 155),
    },
}
#: v3 traffic lights by state (`config_color_traffic_light.json`, v2); v1 has one colour.
TRAFFIC_LIGHT_COLORS: dict[str, Color] = {
    "red": (240, 50, 50),
    "yellow": (255, 200, 0),
    "green": (130, 240, 132),
    "unknown": (100, 100, 100),
}
#: v3 solid boxes: colour at the front face -> colour at the back face.
BOX_GRADIENTS: dict[str, tuple[Color, Color]] = {
    "Car": ((0, 46, 136), (126, 206, 255)),
    "Truck": ((204, 55, 0), (255, 192, 64)),
    "Pedestrian": ((148, 0, 62), (255, 124, 171)),
    "Cyclist": ((0, 80, 66), (102, 208, 198)),
    "Others": ((53, 26, 20), (166, 136, 125)),
}
BOX_EDGE_COLOR: Color = (200, 200, 200)
#: v1 wireframe boxes.
BOX_WIREFRAME_COLORS: dict[str, Color] = {
    "Car": (255, 0, 0),
    "Truck": (0, 0, 255),
    "Pedestrian": (0, 255, 0),
    "Cyclist": (255, 255, 0),
    "Others": (255, 255, 255),
}

WHITE: Color = (255, 255, 255)
YELLOW: Color = (255, 255, 0)
OTHER_COLOR: Color = (181, 164, 71)


@dataclass(frozen=True)
class Pattern:
    """Dashes along the line: `on` metres drawn, then `off` metres skipped; `dot` > 0 cuts
    each dash into dots of that length every `dot_every` metres."""

    on: float
    off: float
    dot: float = 0.0
    dot_every: float = 0.0


#: Upstream's patterns (`laneline_utils.py`, on lines cut into 5 cm pieces): long dashes
#: 3 m / 9 m, short 1.5 / 1.5 m; dotted ("dotted_1_9") every 10th piece, a 5 cm dot every
#: 50 cm; dot-dashed every 3rd piece within 18 pieces (0.9 m), then 54 pieces (2.7 m) off.
PATTERNS: dict[str, Pattern | None] = {
    "solid": None,
    "long_dashed": Pattern(3.0, 9.0),
    "short_dashed": Pattern(1.5, 1.5),
    "dotted_1_9": Pattern(0.05, 0.45),
    "dot_dashed": Pattern(0.9, 2.7, dot=0.05, dot_every=0.15),
}


@dataclass(frozen=True)
class LaneLineStyle:
    color: Color
    patterns: tuple[str, ...]
    """One pattern for a single line; two (left, right of the direction of travel) for a
    double line."""
    thickness: float = 1.0
    """Multiplier on the base line width."""


#: Upstream's 15 lane-line types (`config_color_geometry_laneline.json`), names verbatim.
LANE_LINE_STYLES: dict[str, LaneLineStyle] = {
    "WHITE SOLID_SINGLE": LaneLineStyle(WHITE, ("solid",)),
    "WHITE LONG_DASHED_SINGLE": LaneLineStyle(WHITE, ("long_dashed",)),
    "WHITE SHORT_DASHED_SINGLE": LaneLineStyle(WHITE, ("short_dashed",)),
    "WHITE DOT_DASHED_SINGLE": LaneLineStyle(WHITE, ("dot_dashed",)),
    "WHITE OTHER": LaneLineStyle(WHITE, ("solid",), thickness=3.0),
    "WHITE SOLID_GROUP": LaneLineStyle(WHITE, ("solid", "solid")),
    "YELLOW DOT_SOLID_SINGLE": LaneLineStyle(YELLOW, ("dotted_1_9",)),
    "YELLOW DOT_SOLID_GROUP": LaneLineStyle(YELLOW, ("dotted_1_9", "dotted_1_9")),
    "YELLOW DASHED_SOLID": LaneLineStyle(YELLOW, ("solid", "long_dashed")),
    "YELLOW SOLID_DASHED": LaneLineStyle(YELLOW, ("long_dashed", "solid")),
    "YELLOW SOLID_SINGLE": LaneLineStyle(YELLOW, ("solid",)),
    "YELLOW SOLID_GROUP": LaneLineStyle(YELLOW, ("solid", "solid")),
    "YELLOW LONG_DASHED_SINGLE": LaneLineStyle(YELLOW, ("long_dashed",)),
    "YELLOW OTHER": LaneLineStyle(YELLOW, ("solid",), thickness=3.0),
    "OTHER": LaneLineStyle(OTHER_COLOR, ("solid",)),
}

_reported: set[str] = set()


def lane_line_style(kind: str, version: str = "v3") -> LaneLineStyle:
    """The style a lane-line type is drawn with: its table entry, else OTHER (as upstream),
    reported once per type. v1 draws every lane line solid in its one lane-line colour."""
    if version == "v1":
        return LaneLineStyle(ELEMENT_COLORS["v1"]["laneline"], ("solid",))
    style = LANE_LINE_STYLES.get(kind)
    if style is None:
        if kind not in _reported:
            _reported.add(kind)
            warnings.warn(
                f"hdmap: lane-line type {kind!r} is not in Cosmos' table; drawn as OTHER",
                stacklevel=2,
            )
        style = LANE_LINE_STYLES["OTHER"]
    return style


def check_version(version: str) -> str:
    if version not in VERSIONS:
        raise SpecError(
            f"hdmap version {version!r}: use 'v3' (Transfer 2.5 / Cosmos 3 wsm) or 'v1' "
            "(Transfer 1)"
        )
    return version
