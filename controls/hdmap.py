"""HD-map control (Cosmos' world-scenario map; Cosmos 3 calls it `wsm`): the public entry.

Map geometry from a bridge (`MapGeometry`, e.g. `bridges.opendrive.compile_map`) is compiled
once (`compile_scene`, module `hdmap_geometry`), styled by Cosmos' tables (`hdmap_style`:
colour version "v3" for Transfer 2.5 / Cosmos 3, "v1" for Transfer 1) and drawn per camera
into one depth-ordered frame (`hdmap_raster`). `render_hdmap_clip` has the signature of the
device kernel (`cosmos_sim.kernels.hdmap`).
"""

from __future__ import annotations

from cosmos_sim.controls.hdmap_geometry import (
    DynamicState,
    HDMapScene,
    compile_scene,
    cuboid_corners,
    offset_polyline,
    pattern_segments,
)
from cosmos_sim.controls.hdmap_raster import render_view as render_hdmap
from cosmos_sim.controls.hdmap_raster import render_views as render_hdmap_clip
from cosmos_sim.controls.hdmap_style import (
    BOX_GRADIENTS,
    ELEMENT_COLORS,
    FADE_DISTANCE_M,
    LANE_LINE_STYLES,
    PATTERNS,
    TRAFFIC_LIGHT_COLORS,
    lane_line_style,
)
from cosmos_sim.map_geometry import MapGeometry

__all__ = [
    "BOX_GRADIENTS",
    "ELEMENT_COLORS",
    "FADE_DISTANCE_M",
    "LANE_LINE_STYLES",
    "PATTERNS",
    "TRAFFIC_LIGHT_COLORS",
    "DynamicState",
    "HDMapScene",
    "MapGeometry",
    "compile_scene",
    "cuboid_corners",
    "lane_line_style",
    "offset_polyline",
    "pattern_segments",
    "render_hdmap",
    "render_hdmap_clip",
]
