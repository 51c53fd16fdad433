"""OpenDRIVE maps through CARLA's own parser (`carla.Map(name, xodr)`, no server needed).

Loads a map with errors that name the file and quote CARLA; extracts the HD-map geometry
(lane lines by marking type and colour, road boundaries, crosswalks, wait lines, traffic
lights, signs, poles) in our world frame; and builds camera trajectories: the default one
drives the first driving lane's centre line at constant speed, following successors
through junctions, so any OpenDRIVE file gives a video.

Frames: OpenDRIVE is right-handed (x east, y north, z up) and so is our world frame;
CARLA's API works in UE4's left-handed frame (y flipped). Everything leaving this module is
in the OpenDRIVE/our frame.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_sim.bridges.carla import body_pose, import_carla
from cosmos_sim.bridges.carla_rig import body_from_ue, ue_transform_matrix
from cosmos_sim.controls.hdmap import MapGeometry, lane_line_type
from cosmos_sim.types import SpecError

#: OpenDRIVE signal types CARLA uses: traffic lights, and the stop line (German 294).
TRAFFIC_LIGHT_TYPE = "1000001"
STOP_LINE_TYPES = {"294"}
_LIGHT_DEPTH_M = 0.3
_SIGN_DEPTH_M = 0.05


class OpenDriveError(ValueError):
    """An OpenDRIVE file (or a trajectory on it) is unusable; the message names it and why."""


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
    """A `carla.Map` of an OpenDRIVE file; OpenDriveError names the file and CARLA's words."""
    carla = import_carla()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"OpenDRIVE file {path} does not exist")
    text = path.read_text(errors="replace")
    with _captured_stderr() as said:
        try:
            carla_map = carla.Map(path.stem, text)
            failure = None
        except RuntimeError as exc:
            carla_map, failure = None, exc
    carla_said = " ".join(s for s in said if s) or "nothing"
    if failure is not None:
        raise OpenDriveError(
            f"CARLA cannot parse OpenDRIVE file {path}: {failure} (CARLA said: {carla_said})"
            f"{_xml_hint(text)}; pass a valid .xodr file"
        )
    if not carla_map.generate_waypoints(5.0):
        root = _xml_root(text)
        raise OpenDriveError(
            f"OpenDRIVE file {path} has no driving lanes CARLA can use (root element "
            f"<{root}>, CARLA said: {carla_said}); pass a map with at least one road whose "
            "lanes have type='driving'"
        )
    return carla_map


def _xml_root(text: str) -> str:
    try:
        return ET.fromstring(text).tag
    except ET.ParseError:
        return "?"


def _xml_hint(text: str) -> str:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        return f"; as XML it is broken: {exc}"
    return "" if root.tag == "OpenDRIVE" else f"; its root element is <{root.tag}>, not <OpenDRIVE>"


# ------------------------------------------------------------------------- geometry


def _ours(location: Any) -> np.ndarray:
    return np.array([location.x, -location.y, location.z], dtype=np.float64)


def _edge_points(wps: list[Any], side: float) -> np.ndarray:
    """Points on a lane's left (side=−1) or right (+1) edge, in our frame."""
    out = np.empty((len(wps), 3))
    for i, wp in enumerate(wps):
        loc = wp.transform.location
        right = wp.transform.get_right_vector()
        half = side * wp.lane_width / 2.0
        out[i] = (loc.x + right.x * half, -(loc.y + right.y * half), loc.z + right.z * half)
    return out


def _runs(wps: list[Any], key: Any) -> Iterator[list[Any]]:
    """Consecutive waypoints that share `key(wp)` (a value of None ends a run)."""
    run: list[Any] = []
    current = None
    for wp in wps:
        k = key(wp)
        if k != current and run:
            if current is not None:
                yield run
            run = []
        current = k
        run.append(wp)
    if run and current is not None:
        yield run


def map_geometry(carla_map: Any, step_m: float = 1.0) -> MapGeometry:
    """Everything the HD-map control draws from the static map, in our world frame."""
    carla = import_carla()
    lanes: dict[tuple[int, int, int], list[Any]] = defaultdict(list)
    for wp in carla_map.generate_waypoints(step_m):
        lanes[(wp.road_id, wp.section_id, wp.lane_id)].append(wp)
    geometry = MapGeometry()
    driving = carla.LaneType.Driving
    for (_, _, lane_id), wps in sorted(lanes.items()):
        wps.sort(key=lambda w: w.s if lane_id < 0 else -w.s)
        wps = _extend_to_lane_end(wps, lane_id)
        if len(wps) < 2:
            continue
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
            edge = _edge_points(wps, side)

            def marking(wp: Any, attr: str = attr) -> str | None:
                m = getattr(wp, attr)
                return None if m is None else lane_line_type(str(m.type), str(m.color))

            kinds = [marking(wp) for wp in wps]
            for run in _runs(list(range(len(wps))), kinds.__getitem__):
                if len(run) > 1:
                    geometry.lane_lines.append((edge[run], kinds[run[0]]))
            if not neighbour_is_road and not probe.is_junction:
                geometry.road_boundaries.append(edge)
    _landmarks(carla_map, geometry)
    geometry.crosswalks.extend(_crosswalks(carla_map))
    return geometry


def _extend_to_lane_end(wps: list[Any], lane_id: int) -> list[Any]:
    """Add the lane's last point (generate_waypoints stops up to one step short of it)."""
    last = wps[-1]
    try:
        tail = last.next_until_lane_end(1.0)
    except RuntimeError:  # already at the end
        return wps
    return wps + [w for w in tail if w.road_id == last.road_id and w.lane_id == lane_id][-1:]


def _crosswalks(carla_map: Any) -> list[np.ndarray]:
    """carla.Map.get_crosswalks gives closed loops back to back; split them."""
    points = [_ours(loc) for loc in carla_map.get_crosswalks()]
    polygons, start = [], 0
    for i in range(1, len(points)):
        if i > start + 1 and np.allclose(points[i], points[start], atol=1e-3):
            polygons.append(np.array(points[start:i]))
            start = i + 1
    return [p for p in polygons if len(p) >= 3]


def _landmarks(carla_map: Any, geometry: MapGeometry) -> None:
    for lm in carla_map.get_all_landmarks():
        t = lm.transform
        bottom = _ours(t.location)
        ground = bottom - np.array([0.0, 0.0, lm.z_offset])
        yaw = -math.radians(t.rotation.yaw)
        height = max(float(lm.height), 0.1)
        width = max(float(lm.width), 0.1)
        if str(lm.type) in STOP_LINE_TYPES:
            line = _wait_line(carla_map, lm)
            if line is not None:
                geometry.wait_lines.append(line)
            continue
        cuboid = {
            "id": str(lm.id),
            "center": (bottom + [0.0, 0.0, height / 2]).tolist(),
            "yaw": yaw,
        }
        if str(lm.type) == TRAFFIC_LIGHT_TYPE:
            geometry.traffic_lights.append({**cuboid, "size": (_LIGHT_DEPTH_M, width, height)})
        else:
            geometry.traffic_signs.append({**cuboid, "size": (_SIGN_DEPTH_M, width, height)})
        if lm.z_offset > 0.2:
            geometry.poles.append(np.array([ground, bottom]))


def _wait_line(carla_map: Any, lm: Any) -> np.ndarray | None:
    """A stop line across the driving lane nearest the signal."""
    carla = import_carla()
    wp = carla_map.get_waypoint(
        lm.transform.location, project_to_road=True, lane_type=carla.LaneType.Driving
    )
    if wp is None:
        return None
    return np.array([_edge_points([wp], -1.0)[0], _edge_points([wp], 1.0)[0]])


# ----------------------------------------------------------------------- trajectories


@dataclass
class Trajectory:
    """Ego poses (4×4 body-to-world, x forward, y left, z up, our frame) at `fps`."""

    poses: list[np.ndarray]
    fps: float
    source: str = "default"


def _wp_pose(wp: Any) -> np.ndarray:
    return body_pose(wp.transform)


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


def default_trajectory(
    carla_map: Any, num_frames: int, fps: float, speed_mps: float = 8.0
) -> Trajectory:
    """Drive the first driving lane's centre line at constant speed, through junctions."""
    wp = first_driving_lane(carla_map)
    step = speed_mps / fps
    poses = [_wp_pose(wp)]
    yaw = wp.transform.rotation.yaw
    while len(poses) < num_frames:
        options = wp.next(step)
        if not options:
            options = _turn_around(wp, step)
            if not options:
                poses.append(poses[-1])  # a dead end with no way back: stand still
                continue
        same = [w for w in options if w.road_id == wp.road_id and w.lane_id == wp.lane_id]
        wp = (
            same[0]
            if same
            else min(options, key=lambda w: _yaw_change(yaw, w.transform.rotation.yaw))
        )
        yaw = wp.transform.rotation.yaw
        poses.append(_wp_pose(wp))
    return Trajectory(poses=poses, fps=fps, source="default: first driving lane centre line")


def _turn_around(wp: Any, step: float) -> list[Any]:
    carla = import_carla()
    other = wp.get_left_lane()
    if other is None or other.lane_type != carla.LaneType.Driving:
        return []
    return [other]


def _yaw_change(a_deg: float, b_deg: float) -> float:
    return abs((b_deg - a_deg + 180.0) % 360.0 - 180.0)


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


def check_on_road(carla_map: Any, trajectory: Trajectory, tolerance_m: float = 0.5) -> None:
    """OpenDriveError naming the first pose that is not on a road of the map."""
    carla = import_carla()
    for i, pose in enumerate(trajectory.poses):
        x, y, z = pose[:3, 3]
        loc = carla.Location(x=float(x), y=float(-y), z=float(z))
        wp = carla_map.get_waypoint(loc, project_to_road=False, lane_type=carla.LaneType.Any)
        if wp is not None:
            continue
        nearest = carla_map.get_waypoint(loc, project_to_road=True, lane_type=carla.LaneType.Any)
        gap = float("inf") if nearest is None else nearest.transform.location.distance(loc)
        if gap <= tolerance_m:
            continue
        raise OpenDriveError(
            f"trajectory {trajectory.source}: pose {i} at (x={x:.2f}, y={y:.2f}) leaves the road "
            f"(nearest lane {gap:.1f} m away); keep every pose on the map's lanes, in the "
            "OpenDRIVE frame (x east, y north)"
        )


# ------------------------------------------------------------------ the hdmap command


def write_hdmap_clip(
    xodr: str | Path,
    out: str | Path,
    *,
    rig: str | Path | None = None,
    trajectory: str | Path | None = None,
    seconds: float | None = None,
    version: str = "v3",
    progress: bool = True,
) -> dict[str, Any]:
    """Render the HD-map control of an OpenDRIVE map along a trajectory, with no server.

    Writes `hdmap.mp4` (one camera; a labelled grid of all views for a multi-camera rig,
    plus `hdmap_<camera>.mp4` each), `contact_sheet.png`, `poses.json` (per-frame ego and
    camera poses, K) and, for a 7-view or 6-view rig, the Transfer 2.5 / Transfer 1
    multiview spec. Single views are written at the Cosmos bucket size and 16 fps;
    multiview rigs at 10 fps (Transfer 2.5: 1280×720).
    """
    from tqdm import tqdm

    from cosmos_sim.bridges.carla_rig import Rig, default_rig, load_rig
    from cosmos_sim.controls import multiview as mv
    from cosmos_sim.controls.hdmap import compile_scene, render_hdmap
    from cosmos_sim.controls.spec import write_spec_json
    from cosmos_sim.episode import ensure_empty_dir, write_json_atomic
    from cosmos_sim.imaging import image_grid, save_png
    from cosmos_sim.video import (
        COSMOS_FPS,
        FRAMES_PER_CHUNK,
        VideoWriter,
        bucket_size,
        resample_indices,
        scale_intrinsics,
    )

    the_rig: Rig = default_rig() if rig is None else load_rig(rig)
    carla_map = load_opendrive(xodr)
    views = {cam.name: cam.view or cam.name for cam in the_rig.cameras}
    layout = mv.rig_views(views)
    fps = float(mv.TRANSFER25_MULTIVIEW_FPS if layout else COSMOS_FPS)
    if seconds is not None and seconds <= 0:
        raise SpecError(f"--seconds must be > 0, got {seconds}")
    default_frames = mv.TRANSFER1_FRAMES_PER_VIEW if layout else FRAMES_PER_CHUNK
    num_frames = default_frames if seconds is None else max(1, round(seconds * fps))
    if trajectory is None:
        traj = default_trajectory(carla_map, num_frames, fps)
    else:
        traj = load_trajectory(trajectory)
        check_on_road(carla_map, traj)
        picks = resample_indices(len(traj.poses), traj.fps, fps)
        if seconds is not None:
            picks = picks[:num_frames]
        traj = Trajectory([traj.poses[i] for i in picks], fps, traj.source)
    cameras = []
    for cam in the_rig.cameras:
        if layout == "transfer25":
            size = mv.TRANSFER25_MULTIVIEW_SIZE
        else:
            size = bucket_size(cam.width, cam.height)
        cameras.append((cam, scale_intrinsics(cam.K, (cam.width, cam.height), size), size))
    scene = compile_scene(map_geometry(carla_map), version)

    out = ensure_empty_dir(out, "hdmap output folder")
    single = len(cameras) == 1
    writers = {
        cam.name: VideoWriter(out / ("hdmap.mp4" if single else f"hdmap_{cam.name}.mp4"), fps)
        for cam, _, _ in cameras
    }
    grid_writer = None if single else VideoWriter(out / "hdmap.mp4", fps)
    sheet_at = set(np.linspace(0, len(traj.poses) - 1, min(4, len(traj.poses))).round().astype(int))
    sheet_rows, frames_json = [], []
    try:
        for index, ego_pose in enumerate(tqdm(traj.poses, desc="hdmap", disable=not progress)):
            images, cams_json = [], {}
            for cam, K, (w, h) in cameras:
                cam_to_world = ego_pose @ cam.cam_to_body
                image = render_hdmap(scene, K, cam_to_world, w, h)
                writers[cam.name].write(image)
                images.append(image)
                cams_json[cam.name] = {
                    "K": np.round(K, 6).tolist(),
                    "cam_to_world": np.round(cam_to_world, 6).tolist(),
                    "width": w,
                    "height": h,
                }
            if grid_writer is not None:
                grid_writer.write(_even(image_grid(_rows(images, 4), cell_width=480)))
            if index in sheet_at:
                sheet_rows.append(images)
            frames_json.append(
                {
                    "index": index,
                    "t": index / fps,
                    "ego_to_world": np.round(ego_pose, 6).tolist(),
                    "cameras": cams_json,
                }
            )
    finally:
        for writer in [*writers.values(), grid_writer]:
            if writer is not None:
                writer.close()
    names = [cam.name for cam, _, _ in cameras]
    sheet = image_grid(
        sheet_rows,
        col_labels=names,
        row_labels=[f"frame {i}" for i in sorted(sheet_at)],
        cell_width=480 if single else 320,
    )
    written: dict[str, Any] = {
        "video": out / "hdmap.mp4",
        "contact_sheet": save_png(out / "contact_sheet.png", sheet),
        "poses": out / "poses.json",
        "frames": len(traj.poses),
        "fps": fps,
    }
    write_json_atomic(
        out / "poses.json",
        {
            "map": str(xodr),
            "frame": "OpenDRIVE/world: right-handed, z up; cameras OpenCV (x right, y down, z fwd)",
            "fps": fps,
            "trajectory": traj.source,
            "version": version,
            "frames": frames_json,
        },
    )
    by_view = {views[name]: out / f"hdmap_{name}.mp4" for name in names}
    if layout == "transfer25":
        spec = mv.transfer25_multiview_spec(
            Path(xodr).stem, {v: by_view[v] for v in mv.TRANSFER25_VIEWS}, relative_to=out
        )
        mv.validate_transfer25_multiview(spec, out)
        written["spec"] = write_spec_json(spec, out / "multiview_spec.json")
    elif layout == "transfer1":  # its spec also needs the front RGB (view_condition_video)
        written["note"] = (
            "Transfer 1 six-view conditions on the front camera's RGB video: write its spec "
            "with controls.multiview.transfer1_multiview_spec(view_condition_video=...)"
        )
    return written


def _rows(images: list[np.ndarray], per_row: int) -> list[list[np.ndarray]]:
    return [images[i : i + per_row] for i in range(0, len(images), per_row)]


def _even(image: np.ndarray) -> np.ndarray:
    """yuv420p needs even sizes; grids have arbitrary ones."""
    h, w = image.shape[:2]
    return image[: h - h % 2, : w - w % 2]
