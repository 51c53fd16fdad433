"""OpenDRIVE maps -> HD-map geometry and ego trajectories, through CARLA's own parser.

`compile_map` is the entry point. It never runs CARLA's map code in the calling process:
libcarla can crash the whole process on awkward geometry (a segfault in
`Waypoint.next_until_lane_end` on lanes narrowing to zero width was seen on real maps), so a
child process (`python -m cosmos_sim.bridges.opendrive`) loads the map, extracts the elements
and builds the trajectory, reporting each road and lane as it goes; a crash becomes an
`OpenDriveError` naming the file and the road/lane it was on. The extraction itself also
avoids that API (lanes are sampled by `get_waypoint_xodr` between the section bounds read
from the file).

What is extracted, by meaning:
- lane lines per lane section, in the direction of travel, typed as Cosmos' lane-line table
  names ("WHITE SOLID_SINGLE", ...; combinations outside that table are passed on and fall
  back to OTHER when drawn); road boundaries at the outer edges of the driving lanes;
- signals: vehicle and pedestrian lights as light heads at their mounting height (a signal
  whose box spans the whole assembly keeps only its top as the head), with a pole under
  them; stop and wait lines across the lanes they govern (by the signal's orientation and
  lane validity, not by where it stands); crosswalk markings as polygons across the road;
  other static signals with a plate as signs. Anything else is reported, not drawn.

Frames: OpenDRIVE is right-handed (x east, y north, z up) and so is our world frame; CARLA's
API works in UE4's left-handed frame (y flipped). Everything leaving this module is in the
OpenDRIVE/our frame.

The default trajectory drives the first driving lane's centre line at constant speed through
junctions; at a dead end it **stops**: it brakes at 3 m/s² to stand still 5 m before the lane
end (so a forward camera still sees the road's end).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_sim.bridges.carla_rig import body_from_ue, ue_transform_matrix
from cosmos_sim.map_geometry import MapGeometry
from cosmos_sim.types import SpecError

#: OpenDRIVE signal types by meaning (OpenDRIVE catalogue 10000xx, German StVO numbers).
LIGHT_TYPES = {"1000001": "vehicle", "1000002": "pedestrian"}
STOP_LINE_TYPES = {"294", "341"}  # Haltlinie (stop line), Wartelinie (wait line)
CROSSWALK_TYPES = {"1000003", "293"}  # crosswalk road marking, Fußgängerüberweg marking
LIGHT_DEPTH_M = 0.3
SIGN_DEPTH_M = 0.05
HEAD_MAX_M = {"vehicle": 1.2, "pedestrian": 0.8}
"""Tallest plausible light head: a taller signal box is the whole assembly (pole and head)."""
CROSSWALK_DEPTH_M = 4.0
"""Along-road depth of a crosswalk drawn from a signal (signals carry no length)."""
BRAKE_MPS2 = 3.0
"""Deceleration of the default trajectory at a dead end."""
STOP_SHORT_M = 5.0
"""Where the default trajectory stands at a dead end: this far before the lane's end, so a
forward camera still sees the end of the road rather than nothing."""
SAMPLE_STEP_M = 1.0
WORKER_TIMEOUT_S = 600.0


class OpenDriveError(ValueError):
    """An OpenDRIVE file (or a trajectory on it) is unusable; the message names it and why."""


@dataclass
class CompiledMap:
    """What `compile_map` returns: the map's elements and, if asked, the ego trajectory."""

    geometry: MapGeometry
    poses: list[np.ndarray] | None = None
    """Ego body-to-world 4×4 poses (x forward, y left, z up) at the requested fps."""
    trajectory_source: str = ""
    unknown_signals: list[str] = field(default_factory=list)
    """Signal types that were neither drawn nor understood (reported once, not drawn)."""


# -------------------------------------------------------------------- the parent side


def compile_map(
    xodr: str | Path,
    *,
    frames: int | None = None,
    fps: float = 10.0,
    speed_mps: float = 8.0,
    check_poses: list[np.ndarray] | None = None,
    source: str = "the trajectory",
    step_m: float = SAMPLE_STEP_M,
) -> CompiledMap:
    """Parse an OpenDRIVE file in a child process; a crash there is an OpenDriveError.

    `frames` asks for the default trajectory (that many poses at `fps`); `check_poses` are
    ego poses to check against the map's roads (OpenDriveError names the first off-road).
    """
    path = Path(xodr)
    if not path.is_file():
        raise FileNotFoundError(f"OpenDRIVE file {path} does not exist; pass a .xodr file")
    with tempfile.TemporaryDirectory(prefix="cosmos_sim_xodr_") as tmp:
        request = Path(tmp) / "request.json"
        result = Path(tmp) / "result.json"
        progress = Path(tmp) / "progress.txt"
        request.write_text(
            json.dumps(
                {
                    "xodr": str(path.absolute()),
                    "frames": frames,
                    "fps": fps,
                    "speed_mps": speed_mps,
                    "step_m": step_m,
                    "check_poses": None
                    if check_poses is None
                    else [np.asarray(p, float).tolist() for p in check_poses],
                    "source": source,
                    "progress": str(progress),
                }
            )
        )
        cmd = [sys.executable, "-m", "cosmos_sim.bridges.opendrive", str(request), str(result)]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise OpenDriveError(
                f"OpenDRIVE file {path}: compiling it took over {WORKER_TIMEOUT_S:.0f} s "
                f"(last step: {_last_line(progress)}); split the map or simplify that road"
            ) from exc
        if run.returncode == 0 and result.is_file():
            return _compiled(json.loads(result.read_text()))
        if result.is_file():  # the worker caught the problem and explained it
            raise OpenDriveError(json.loads(result.read_text())["error"])
        how = (
            f"crashed with signal {-run.returncode}"
            if run.returncode < 0
            else f"exited with status {run.returncode}"
        )
        tail = " ".join(run.stderr.strip().splitlines()[-3:]) or "nothing"
        raise OpenDriveError(
            f"CARLA's OpenDRIVE code {how} on {path} while at {_last_line(progress)} "
            f"(it said: {tail}); that road's geometry is what libcarla cannot handle: fix or "
            "remove it (e.g. a lane of zero width), or report the file to CARLA"
        )


def _last_line(progress: Path) -> str:
    lines = progress.read_text().splitlines() if progress.is_file() else []
    return lines[-1] if lines else "loading the map"


def _compiled(data: dict[str, Any]) -> CompiledMap:
    poses = data.get("poses")
    return CompiledMap(
        geometry=MapGeometry.from_json(data["geometry"]),
        poses=None if poses is None else [np.asarray(p, float) for p in poses],
        trajectory_source=data.get("trajectory_source", ""),
        unknown_signals=list(data.get("unknown_signals", [])),
    )


# -------------------------------------------------------------------- the child side


def _import_carla() -> Any:
    from cosmos_sim.bridges.carla import import_carla

    return import_carla()


@contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """CARLA's C++ parser reports on fd 2; capture it so errors can quote it."""
    said: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            said.append(tmp.read().decode(errors="replace").strip())


def load_opendrive(path: str | Path) -> Any:
    """A `carla.Map` of an OpenDRIVE file, in this process (the worker's first step)."""
    carla = _import_carla()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"OpenDRIVE file {path} does not exist")
    text = path.read_text(errors="replace")
    hint = _xml_hint(text)
    if hint:  # CARLA's parser does not survive every broken file: check the XML first
        raise OpenDriveError(f"OpenDRIVE file {path} is not OpenDRIVE{hint}; pass a valid .xodr")
    with _captured_stderr() as said:
        try:
            carla_map = carla.Map(path.stem, text)
            failure = None
        except RuntimeError as exc:
            carla_map, failure = None, exc
    carla_said = " ".join(s for s in said if s) or "nothing"
    if failure is not None:
        raise OpenDriveError(
            f"CARLA cannot parse OpenDRIVE file {path}: {failure} (CARLA said: {carla_said}); "
            "pass a valid .xodr file"
        )
    if not carla_map.generate_waypoints(5.0):
        raise OpenDriveError(
            f"OpenDRIVE file {path} has no driving lanes CARLA can use (CARLA said: "
            f"{carla_said}); pass a map with at least one road whose lanes have type='driving'"
        )
    return carla_map


def _xml_hint(text: str) -> str:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        return f"; as XML it is broken: {exc}"
    return "" if root.tag == "OpenDRIVE" else f"; its root element is <{root.tag}>"


@dataclass(frozen=True)
class _Section:
    road_id: int
    s0: float
    s1: float
    lane_ids: tuple[int, ...]


def _sections(text: str) -> list[_Section]:
    """Lane sections with their s range and lane ids, read from the file itself."""
    out = []
    for road in ET.fromstring(text).iter("road"):
        length = float(road.get("length", 0.0))
        starts = [(float(sec.get("s", 0.0)), sec) for sec in road.iter("laneSection")]
        starts.sort(key=lambda item: item[0])
        for i, (s0, sec) in enumerate(starts):
            s1 = starts[i + 1][0] if i + 1 < len(starts) else length
            ids = tuple(int(lane.get("id", 0)) for lane in sec.iter("lane"))
            if s1 > s0:
                out.append(_Section(int(road.get("id")), s0, s1, tuple(i for i in ids if i)))
    return out


class _Progress:
    """Writes the current step to a file, flushed, so a crash can be located by the parent."""

    def __init__(self, path: str | None) -> None:
        self._file = open(path, "a") if path else None  # noqa: SIM115 - held for the run

    def __call__(self, step: str) -> None:
        if self._file is not None:
            self._file.write(step + "\n")
            self._file.flush()


def _ours(location: Any) -> np.ndarray:
    return np.array([location.x, -location.y, location.z], dtype=np.float64)


def _edge(wp: Any, side: float) -> np.ndarray:
    """The point on a lane's left (side=−1) or right (+1) edge, in our frame."""
    loc = wp.transform.location
    right = wp.transform.get_right_vector()
    half = side * wp.lane_width / 2.0
    return np.array([loc.x + right.x * half, -(loc.y + right.y * half), loc.z + right.z * half])


#: CARLA LaneMarkingType -> Cosmos lane-line style (None: not a painted line).
MARKING_STYLES = {
    "Solid": "SOLID_SINGLE",
    "Broken": "LONG_DASHED_SINGLE",
    "SolidSolid": "SOLID_GROUP",
    "SolidBroken": "SOLID_DASHED",
    "BrokenSolid": "DASHED_SOLID",
    "BrokenBroken": "DASHED_GROUP",
    "BottsDots": "DOT_SOLID_SINGLE",
    "Other": "OTHER",
    "NONE": None,
    "Grass": None,
    "Curb": None,
}
#: CARLA LaneMarkingColor -> Cosmos lane-line colour (None: the catch-all OTHER type).
MARKING_COLORS = {
    "Standard": "WHITE",
    "White": "WHITE",
    "Yellow": "YELLOW",
    "Blue": None,
    "Green": None,
    "Red": None,
    "Other": None,
}


def lane_line_type(marking_type: str, marking_color: str) -> str | None:
    """CARLA marking (type, colour) names -> a Cosmos lane-line type name, or None if unpainted.

    The name may lie outside Cosmos' 15-type table (e.g. "WHITE DASHED_GROUP"): the renderer
    draws those as OTHER, as upstream does.
    """
    if marking_type not in MARKING_STYLES:
        raise SpecError(
            f"lane marking type {marking_type!r} is not a CARLA LaneMarkingType; known: "
            f"{sorted(MARKING_STYLES)}"
        )
    style = MARKING_STYLES[marking_type]
    if style is None:
        return None
    color = MARKING_COLORS.get(marking_color)
    return "OTHER" if color is None else f"{color} {style}"


def _lane_samples(carla_map: Any, sec: _Section, lane_id: int, step_m: float) -> list[Any]:
    """Waypoints along one lane of one section, both ends included, in driving order."""
    n = max(2, int(math.ceil((sec.s1 - sec.s0) / step_m)) + 1)
    eps = min(1e-3, (sec.s1 - sec.s0) / 4)
    wps = []
    for s in np.linspace(sec.s0 + eps, sec.s1 - eps, n):
        wp = carla_map.get_waypoint_xodr(sec.road_id, lane_id, float(s))
        if wp is not None and wp.section_id == _section_of(wp, sec):
            wps.append(wp)
    return wps if lane_id < 0 else wps[::-1]


def _section_of(wp: Any, sec: _Section) -> int:
    """Samples must stay in their own section (CARLA snaps an s past the end to the next)."""
    return wp.section_id if sec.s0 - 1e-6 <= wp.s <= sec.s1 + 1e-6 else -1


def extract_geometry(
    carla_map: Any, text: str, progress: Any, step_m: float = SAMPLE_STEP_M
) -> tuple[MapGeometry, list[str]]:
    """Everything the HD-map control draws from the static map, in our frame; plus the
    signal types it did not understand."""
    carla = _import_carla()
    driving = carla.LaneType.Driving
    geometry = MapGeometry()
    for sec in _sections(text):
        for lane_id in sec.lane_ids:
            progress(f"road {sec.road_id} lane {lane_id} (s {sec.s0:.1f}-{sec.s1:.1f} m)")
            wps = _lane_samples(carla_map, sec, lane_id, step_m)
            if len(wps) < 2 or wps[0].lane_type != driving:
                continue
            _lane_edges(wps, lane_id, driving, geometry)
    progress("signals")
    unknown = _signals(carla_map, geometry)
    progress("crosswalks")
    geometry.crosswalks.extend(_crosswalk_objects(carla_map))
    return geometry, unknown


def _lane_edges(wps: list[Any], lane_id: int, driving: Any, geometry: MapGeometry) -> None:
    probe = wps[len(wps) // 2]
    left, right = probe.get_left_lane(), probe.get_right_lane()
    left_is_road = left is not None and left.lane_type == driving
    right_is_road = right is not None and right.lane_type == driving
    # Each shared edge once: every lane draws its right edge; the left edge only at the
    # road's outside or, for the centre line, from the lane with the negative id.
    sides = [(1.0, "right_lane_marking", right_is_road)]
    if not left_is_road or (lane_id < 0 and left.lane_id > 0):
        sides.append((-1.0, "left_lane_marking", left_is_road))
    for side, attr, neighbour_is_road in sides:
        edge = np.array([_edge(wp, side) for wp in wps])
        kinds = []
        for wp in wps:
            mark = getattr(wp, attr)
            kinds.append(None if mark is None else lane_line_type(str(mark.type), str(mark.color)))
        start = 0
        for i in range(1, len(wps) + 1):
            if i == len(wps) or kinds[i] != kinds[start]:
                if kinds[start] is not None and i - start > 1:
                    geometry.lane_lines.append((edge[start:i], kinds[start]))
                start = i
        if not neighbour_is_road and not probe.is_junction:
            geometry.road_boundaries.append(edge)


def _crosswalk_objects(carla_map: Any) -> list[np.ndarray]:
    """carla.Map.get_crosswalks gives closed loops back to back; split them."""
    points = [_ours(loc) for loc in carla_map.get_crosswalks()]
    polygons, start = [], 0
    for i in range(1, len(points)):
        if i > start + 1 and np.allclose(points[i], points[start], atol=1e-3):
            polygons.append(np.array(points[start:i]))
            start = i + 1
    return [p for p in polygons if len(p) >= 3]


def _signals(carla_map: Any, geometry: MapGeometry) -> list[str]:
    unknown: set[str] = set()
    for lm in carla_map.get_all_landmarks():
        kind = str(lm.type)
        if kind in STOP_LINE_TYPES:
            geometry.wait_lines.extend(_across_lanes(carla_map, lm, governed_only=True))
        elif kind in CROSSWALK_TYPES:
            geometry.crosswalks.extend(_crosswalk_from_signal(carla_map, lm))
        elif kind in LIGHT_TYPES:
            _light(carla_map, lm, LIGHT_TYPES[kind], geometry)
        elif not lm.is_dynamic and float(lm.height) > 0.05:
            _sign(carla_map, lm, geometry)
        else:
            unknown.add(f"{kind} ({lm.country or 'no country'}, {lm.name or 'unnamed'})")
    return sorted(unknown)


def _governed_lanes(lm: Any, lane_ids: list[int]) -> list[int]:
    """The lanes a stop line or light applies to: its orientation picks the side (+: traffic
    in +s, the lanes with negative ids in right-hand traffic), its validity narrows them."""
    orientation = str(lm.orientation)
    if orientation == "Positive":
        side = [i for i in lane_ids if i < 0]
    elif orientation == "Negative":
        side = [i for i in lane_ids if i > 0]
    else:
        side = list(lane_ids)
    valid = [
        i for i in side for lo, hi in lm.get_lane_validities() if min(lo, hi) <= i <= max(lo, hi)
    ]
    return sorted(set(valid)) or side  # a validity missing this side: the whole side


def _lanes_at(carla_map: Any, road_id: int, s: float) -> list[Any]:
    carla = _import_carla()
    out = []
    for lane_id in [i for i in range(-12, 13) if i]:
        wp = carla_map.get_waypoint_xodr(road_id, lane_id, s)
        if wp is not None and wp.lane_type == carla.LaneType.Driving:
            out.append(wp)
    return out


def _across_lanes(carla_map: Any, lm: Any, governed_only: bool) -> list[np.ndarray]:
    """A line across the lanes at the signal's s: the governed ones or all driving lanes."""
    lanes = _lanes_at(carla_map, int(lm.road_id), float(lm.s))
    if governed_only:
        keep = set(_governed_lanes(lm, [w.lane_id for w in lanes]))
        lanes = [w for w in lanes if w.lane_id in keep]
    if not lanes:
        return []
    lanes.sort(key=lambda w: -w.lane_id)  # from the leftmost (largest id) to the rightmost
    points = [_edge_across(lanes[0], outer_left=True)]
    points += [_edge_across(w, outer_left=False) for w in lanes]
    return [np.array(points)]


def _edge_across(wp: Any, outer_left: bool) -> np.ndarray:
    """A lane's edge on the road's left (+t) side or right (−t) side, whatever its direction:
    positive lanes face −s, so their 'right' is the road's left."""
    faces_plus_s = wp.lane_id < 0
    side = -1.0 if outer_left == faces_plus_s else 1.0
    return _edge(wp, side)


def _crosswalk_from_signal(carla_map: Any, lm: Any) -> list[np.ndarray]:
    """A crosswalk marking signal -> a rectangle across all driving lanes at its s."""
    lanes = _lanes_at(carla_map, int(lm.road_id), float(lm.s))
    lines = _across_lanes(carla_map, lm, governed_only=False)
    if not lanes or not lines:
        return []
    left, right = lines[0][0], lines[0][-1]
    fwd = lanes[0].transform.get_forward_vector()
    along = np.array([fwd.x, -fwd.y, 0.0]) * (1.0 if lanes[0].lane_id < 0 else -1.0)
    half = along / max(float(np.linalg.norm(along)), 1e-9) * CROSSWALK_DEPTH_M / 2
    return [np.array([left - half, right - half, right + half, left + half])]


def _ground_z(carla_map: Any, lm: Any) -> float:
    carla = _import_carla()
    wp = carla_map.get_waypoint(lm.transform.location, project_to_road=True,
                                lane_type=carla.LaneType.Any)  # fmt: skip
    return (
        float(lm.transform.location.z - lm.z_offset)
        if wp is None
        else float(wp.transform.location.z)
    )


def _light(carla_map: Any, lm: Any, kind: str, geometry: MapGeometry) -> None:
    """A light head at its height; the part of a too-tall signal box below the head is pole."""
    at = _ours(lm.transform.location)
    ground = _ground_z(carla_map, lm)
    height = max(float(lm.height), 0.2)
    top = at[2] + height
    head = min(height, HEAD_MAX_M[kind])
    bottom = top - head
    geometry.traffic_lights.append(
        {
            "id": str(lm.id),
            "kind": kind,
            "center": [at[0], at[1], bottom + head / 2],
            "size": [LIGHT_DEPTH_M, max(float(lm.width), 0.2), head],
            "yaw": -math.radians(lm.transform.rotation.yaw),
        }
    )
    if bottom - ground > 0.3:
        geometry.poles.append(np.array([[at[0], at[1], ground], [at[0], at[1], bottom]]))


def _sign(carla_map: Any, lm: Any, geometry: MapGeometry) -> None:
    at = _ours(lm.transform.location)
    ground = _ground_z(carla_map, lm)
    height = float(lm.height)
    geometry.traffic_signs.append(
        {
            "id": str(lm.id),
            "center": [at[0], at[1], at[2] + height / 2],
            "size": [SIGN_DEPTH_M, max(float(lm.width), 0.1), height],
            "yaw": -math.radians(lm.transform.rotation.yaw),
        }
    )
    if at[2] - ground > 0.3:
        geometry.poles.append(np.array([[at[0], at[1], ground], at]))


# ----------------------------------------------------------------------- trajectories


def first_driving_lane(carla_map: Any) -> Any:
    """The start of the first driving lane: lowest road id, right-hand lane -1 preferred."""
    wps = [w for w in carla_map.generate_waypoints(2.0) if not w.is_junction] or list(
        carla_map.generate_waypoints(2.0)
    )
    wps.sort(
        key=lambda w: (
            w.road_id,
            w.lane_id > 0,
            abs(w.lane_id),
            w.section_id,
            w.s if w.lane_id < 0 else -w.s,
        )
    )
    return wps[0]


def _yaw_change(a_deg: float, b_deg: float) -> float:
    return abs((b_deg - a_deg + 180.0) % 360.0 - 180.0)


def default_poses(
    carla_map: Any, frames: int, fps: float, speed_mps: float, progress: Any
) -> list[np.ndarray]:
    """Drive the first driving lane's centre line; brake to a stop at a dead end."""
    from cosmos_sim.bridges.carla import body_pose

    step = 0.5
    needed = speed_mps * frames / fps + 1.0
    wp = first_driving_lane(carla_map)
    route = [body_pose(wp.transform)]
    yaw = wp.transform.rotation.yaw
    dead_end = False
    while (len(route) - 1) * step < needed:
        progress(f"trajectory: road {wp.road_id} lane {wp.lane_id} s {wp.s:.1f}")
        options = wp.next(step)
        if not options:
            dead_end = True
            break
        same = [w for w in options if w.road_id == wp.road_id and w.lane_id == wp.lane_id]
        wp = same[0] if same else min(
            options, key=lambda w: _yaw_change(yaw, w.transform.rotation.yaw)
        )  # fmt: skip
        yaw = wp.transform.rotation.yaw
        route.append(body_pose(wp.transform))
    end_m = (len(route) - 1) * step
    if dead_end:
        end_m = max(0.0, end_m - STOP_SHORT_M)
    s_m, dt, poses = 0.0, 1.0 / fps, []
    for _ in range(frames):
        poses.append(_pose_at(route, s_m / step))
        speed = speed_mps
        if dead_end:  # v² = 2·a·(distance left): a smooth stop exactly at the lane end
            speed = min(speed, math.sqrt(2.0 * BRAKE_MPS2 * max(end_m - s_m, 0.0)))
        s_m = min(s_m + speed * dt, end_m)
    return poses


def _pose_at(route: list[np.ndarray], index: float) -> np.ndarray:
    """The route pose at a fractional index: position interpolated, rotation of the nearer."""
    i = min(int(index), len(route) - 1)
    j = min(i + 1, len(route) - 1)
    f = index - i
    pose = (route[i] if f < 0.5 else route[j]).copy()
    pose[:3, 3] = (1 - f) * route[i][:3, 3] + f * route[j][:3, 3]
    return pose


def check_on_road(carla_map: Any, poses: list[np.ndarray], source: str, tolerance_m: float = 0.5):
    """OpenDriveError naming the first pose that is not on a road of the map."""
    carla = _import_carla()
    for i, pose in enumerate(poses):
        x, y, z = pose[:3, 3]
        loc = carla.Location(x=float(x), y=float(-y), z=float(z))
        if carla_map.get_waypoint(loc, project_to_road=False, lane_type=carla.LaneType.Any):
            continue
        nearest = carla_map.get_waypoint(loc, project_to_road=True, lane_type=carla.LaneType.Any)
        gap = float("inf") if nearest is None else nearest.transform.location.distance(loc)
        if gap <= tolerance_m:
            continue
        raise OpenDriveError(
            f"trajectory {source}: pose {i} at (x={x:.2f}, y={y:.2f}) leaves the road "
            f"(nearest lane {gap:.1f} m away); keep every pose on the map's lanes, in the "
            "OpenDRIVE frame (x east, y north)"
        )


@dataclass
class Trajectory:
    """Ego poses (4×4 body-to-world, x forward, y left, z up, our frame) at `fps`."""

    poses: list[np.ndarray]
    fps: float
    source: str = "default"


def load_trajectory(path: str | Path) -> Trajectory:
    """A trajectory JSON: {"fps": F, "poses": [4×4 | {x, y, z, yaw_deg[, pitch_deg, roll_deg]}]}.

    Poses are the ego body (x forward, y left, z up) in the OpenDRIVE/world frame, z on the
    road surface; the rig's mounts are applied on top.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trajectory file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SpecError(f"trajectory {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or "poses" not in data:
        raise SpecError(f"trajectory {path}: expected an object with `fps` and a `poses` list")
    fps = data.get("fps", 10.0)
    if not isinstance(fps, int | float) or fps <= 0:
        raise SpecError(f"trajectory {path}: fps must be a number > 0, got {fps!r}")
    poses = []
    for i, pose in enumerate(data["poses"]):
        label = f"trajectory {path}: poses[{i}]"
        if isinstance(pose, dict):
            unknown = set(pose) - {"x", "y", "z", "yaw_deg", "pitch_deg", "roll_deg"}
            if unknown or not {"x", "y"} <= set(pose):
                raise SpecError(
                    f"{label}: give x, y[, z, yaw_deg, pitch_deg, roll_deg]; "
                    f"unknown {sorted(unknown)}"
                )
            # Our frame is right-handed: yaw counter-clockwise from x. Build it through the
            # UE4 matrix of the mirrored pose so the conversion is the bridge's one.
            m = ue_transform_matrix(
                pose["x"], -pose["y"], pose.get("z", 0.0),
                -pose.get("roll_deg", 0.0), pose.get("pitch_deg", 0.0), -pose.get("yaw_deg", 0.0),
            )  # fmt: skip
            poses.append(body_from_ue(m))
        else:
            arr = np.asarray(pose, dtype=np.float64)
            if arr.shape != (4, 4):
                raise SpecError(f"{label}: expected a 4×4 matrix or an {{x, y, yaw_deg}} object")
            poses.append(arr)
    if not poses:
        raise SpecError(f"trajectory {path}: `poses` is empty")
    return Trajectory(poses=poses, fps=float(fps), source=str(path))


def _work(request: dict[str, Any]) -> dict[str, Any]:
    progress = _Progress(request.get("progress"))
    path = Path(request["xodr"])
    progress("loading the map")
    carla_map = load_opendrive(path)
    text = path.read_text(errors="replace")
    geometry, unknown = extract_geometry(carla_map, text, progress, request["step_m"])
    out: dict[str, Any] = {"geometry": geometry.to_json(), "unknown_signals": unknown}
    if request.get("check_poses") is not None:
        progress("checking the trajectory")
        poses = [np.asarray(p, float) for p in request["check_poses"]]
        check_on_road(carla_map, poses, request.get("source", "the trajectory"))
    if request.get("frames"):
        poses = default_poses(
            carla_map, int(request["frames"]), float(request["fps"]),
            float(request["speed_mps"]), progress,
        )  # fmt: skip
        out["poses"] = [np.round(p, 6).tolist() for p in poses]
        out["trajectory_source"] = "default: first driving lane centre line (stops at a dead end)"
    return out


def main(argv: list[str]) -> int:
    """Worker entry: `python -m cosmos_sim.bridges.opendrive REQUEST.json RESULT.json`."""
    request_path, result_path = Path(argv[0]), Path(argv[1])
    try:
        result = _work(json.loads(request_path.read_text()))
    except (OpenDriveError, SpecError, FileNotFoundError) as exc:
        result_path.write_text(json.dumps({"error": str(exc)}))
        return 2
    result_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
