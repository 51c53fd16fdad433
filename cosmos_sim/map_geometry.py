"""Static HD-map elements as plain arrays: what a bridge extracts and the HD-map control draws.

A bridge (`bridges.opendrive` for OpenDRIVE maps) fills a `MapGeometry`; `controls.hdmap`
compiles it for rendering. Everything is in the world frame (right-handed, z up, metres).
It travels between processes as JSON (`to_json` / `from_json`): map compilation runs in a
child process so a crash inside a simulator library cannot take the caller down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cosmos_sim.types import SpecError

LIGHT_KINDS = ("vehicle", "pedestrian")


@dataclass
class MapGeometry:
    """Static map elements in the world frame (right-handed, z up, metres)."""

    lane_lines: list[tuple[np.ndarray, str]] = field(default_factory=list)
    """(M×3 polyline, lane-line type such as "WHITE SOLID_SINGLE"); the polyline runs in the
    lane's direction of travel (a double line's first pattern lies on its left)."""
    road_boundaries: list[np.ndarray] = field(default_factory=list)
    """M×3 polylines along the outer edges of the drivable road."""
    wait_lines: list[np.ndarray] = field(default_factory=list)
    """M×3 polylines across the lanes a stop or wait line governs."""
    poles: list[np.ndarray] = field(default_factory=list)
    """2×3 (bottom, top) vertical segments."""
    crosswalks: list[np.ndarray] = field(default_factory=list)
    """M×3 closed polygons on the road (the last vertex need not repeat the first)."""
    road_markings: list[np.ndarray] = field(default_factory=list)
    """M×3 closed polygons of painted symbols (arrows, text)."""
    traffic_lights: list[dict[str, Any]] = field(default_factory=list)
    """The light heads: {"id": str, "kind": vehicle|pedestrian, "center": xyz,
    "size": (depth, width, height), "yaw": rad}."""
    traffic_signs: list[dict[str, Any]] = field(default_factory=list)
    """Sign plates: {"id": str, "center": xyz, "size": (depth, width, height), "yaw": rad}."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (arrays as nested lists)."""

        def rows(arrays: list[np.ndarray]) -> list[list[list[float]]]:
            return [np.round(np.asarray(a, float), 4).tolist() for a in arrays]

        return {
            "lane_lines": [[kind, *rows([pts])] for pts, kind in self.lane_lines],
            "road_boundaries": rows(self.road_boundaries),
            "wait_lines": rows(self.wait_lines),
            "poles": rows(self.poles),
            "crosswalks": rows(self.crosswalks),
            "road_markings": rows(self.road_markings),
            "traffic_lights": [_cuboid_json(c) for c in self.traffic_lights],
            "traffic_signs": [_cuboid_json(c) for c in self.traffic_signs],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MapGeometry:
        """The inverse of `to_json`; SpecError names a malformed field."""
        try:

            def arrays(key: str) -> list[np.ndarray]:
                return [np.asarray(a, float).reshape(-1, 3) for a in data.get(key, [])]

            return cls(
                lane_lines=[
                    (np.asarray(pts, float).reshape(-1, 3), str(kind))
                    for kind, pts in data.get("lane_lines", [])
                ],
                road_boundaries=arrays("road_boundaries"),
                wait_lines=arrays("wait_lines"),
                poles=arrays("poles"),
                crosswalks=arrays("crosswalks"),
                road_markings=arrays("road_markings"),
                traffic_lights=list(data.get("traffic_lights", [])),
                traffic_signs=list(data.get("traffic_signs", [])),
            )
        except (TypeError, ValueError) as exc:
            raise SpecError(f"map geometry JSON is malformed: {exc}") from exc

    def counts(self) -> dict[str, int]:
        """How many of each element: for reports and checks."""
        return {
            "lane_lines": len(self.lane_lines),
            "road_boundaries": len(self.road_boundaries),
            "wait_lines": len(self.wait_lines),
            "poles": len(self.poles),
            "crosswalks": len(self.crosswalks),
            "road_markings": len(self.road_markings),
            "traffic_lights": len(self.traffic_lights),
            "traffic_signs": len(self.traffic_signs),
        }


def _cuboid_json(cuboid: dict[str, Any]) -> dict[str, Any]:
    return {
        **cuboid,
        "center": [round(float(v), 4) for v in cuboid["center"]],
        "size": [round(float(v), 4) for v in cuboid["size"]],
        "yaw": round(float(cuboid["yaw"]), 6),
    }
