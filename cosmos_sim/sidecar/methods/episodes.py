"""Episode recording over the wire: open / append a tick / close, through EpisodeWriter.

Each tick is written atomically by the recorder, so a client or server that dies mid-run
leaves an episode that opens with every tick appended before the crash. Episodes live
under the server's data_dir; a client names a relative folder and cannot escape it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cosmos_sim.episode import Episode, EpisodeWriter
from cosmos_sim.sidecar.budget import is_matrix
from cosmos_sim.sidecar.protocol import ErrorCode, ProtocolError
from cosmos_sim.sidecar.schema import ArraySpec, Call, Method, Param, Result, check_arrays
from cosmos_sim.types import CameraSpec, LidarSpec, SensorFrame, SpecError

KIND = "episode"
#: field -> (dtype, shape pattern; H and W are the camera's declared size).
FRAME_FIELDS: dict[str, tuple[str, tuple]] = {
    "rgb": ("uint8", ("H", "W", 3)),
    "depth_m": ("float32", ("H", "W")),
    "instance_id": ("int32", ("H", "W")),
    "class_id": ("int32", ("H", "W")),
    "points_world": ("float32", (None, 3)),
}
SENSOR_KEYS = {"cam_to_world", "K", "ego_to_world", "extras"}
MAX_PATH = 1024
"""Longest relative path a client may name (folder names: 255 bytes, as on Linux)."""
#: pose matrices of params.sensors entries: key -> (rows, cols).
SENSOR_MATRICES = {"cam_to_world": (4, 4), "ego_to_world": (4, 4), "K": (3, 3)}


def episode_path(data_dir: Path, name: str, field: str = "params.path") -> Path:
    """`data_dir/name`, refusing absolute paths and anything that leaves data_dir."""
    candidate = Path(name) if isinstance(name, str) and 0 < len(name) <= MAX_PATH else None
    try:
        inside = (
            candidate is not None
            and not candidate.is_absolute()
            and ".." not in candidate.parts
            and all(len(part.encode()) <= 255 for part in candidate.parts)
            and (data_dir / candidate).resolve().is_relative_to(data_dir)
        )
    except (OSError, ValueError):  # e.g. a NUL byte, or a symlink loop
        inside = False
    if not inside:
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            f"path {name!r} is not a relative folder inside the server's data_dir",
            field,
            f"pass a relative name such as 'robot1/ep0001' (no '..', not absolute, at most "
            f"{MAX_PATH} characters and 255 bytes per folder name)",
        )
    return (data_dir / candidate).resolve()


def episode_open(call: Call) -> Result:
    p = call.params
    path = episode_path(call.server.data_dir, p["path"])
    cameras = [_spec(CameraSpec, c, f"cameras[{i}]") for i, c in enumerate(p["cameras"])]
    lidars = [_spec(LidarSpec, s, f"lidars[{i}]") for i, s in enumerate(p["lidars"])]
    if not cameras and not lidars:
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            "the rig has no sensors",
            "params.cameras",
            "declare at least one camera (CameraSpec fields) or lidar",
        )
    class_names = {}
    for key, value in p["class_names"].items():
        if not key.lstrip("-").isdigit() or not isinstance(value, str):
            raise ProtocolError(
                ErrorCode.BAD_PARAMS,
                f"class_names[{key!r}]",
                "params.class_names",
                "map class ids as strings to names",
            )
        class_names[int(key)] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = EpisodeWriter(
        path,
        cameras=cameras,
        lidars=lidars,
        fps=p["fps"],
        simulator=p["simulator"],
        scene=p["scene"],
        seed=p["seed"],
        class_names=class_names,
        meta=p["meta"],
    )
    handle = call.session.add(KIND, writer, lambda: writer.close(complete=False))
    return {"episode": handle, "path": str(writer.path)}, {}


def episode_append(call: Call) -> Result:
    p = call.params
    writer: EpisodeWriter = call.session.get(p["episode"], KIND, "episode")
    index = writer.num_ticks
    if p["index"] is not None and p["index"] != index:
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            f"params.index is {p['index']} but the next tick is {index}",
            "params.index",
            "append ticks in order; omit index to let the server count",
        )
    rig = sorted(writer.cameras) + sorted(writer.lidars)
    for sensor, info in p["sensors"].items():
        _check_sensor(sensor, _map(info, f"sensors.{sensor}"), rig)
    fields: dict[str, dict[str, np.ndarray]] = {}
    data: dict[str, Any] = dict(p["data"])
    for name, arr in call.arrays.items():
        owner, _, key = name.partition("/")
        if owner == "data" and key:
            data[key] = arr
            continue
        if key not in FRAME_FIELDS or owner not in p["sensors"]:
            raise ProtocolError(
                ErrorCode.BAD_ARRAY,
                f"array {name!r} names no sensor field of this tick",
                f"arrays.{name}",
                "name arrays '<sensor>/<field>' with the sensor listed in params.sensors and "
                f"field one of {sorted(FRAME_FIELDS)}, or 'data/<key>'",
            )
        fields.setdefault(owner, {})[key] = arr
    for sensor, arrays in fields.items():
        _check_frame_arrays(sensor, arrays, writer.cameras.get(sensor))
    frames = []
    for sensor, info in p["sensors"].items():
        try:
            frames.append(
                SensorFrame(
                    sensor=sensor,
                    frame_index=index,
                    sim_time_s=p["sim_time_s"],
                    cam_to_world=np.asarray(info["cam_to_world"], dtype=np.float64),
                    camera=writer.cameras.get(sensor),
                    lidar=writer.lidars.get(sensor),
                    K=None if info.get("K") is None else np.asarray(info["K"], dtype=np.float64),
                    ego_to_world=None
                    if info.get("ego_to_world") is None
                    else np.asarray(info["ego_to_world"], dtype=np.float64),
                    extras=_map(info.get("extras", {}), f"sensors.{sensor}.extras"),
                    **fields.get(sensor, {}),
                )
            )
        except SpecError as exc:  # rigid poses, finite depth: named as the client sent them
            message = str(exc).replace(f"SensorFrame[{sensor}].", f"params.sensors.{sensor}.")
            head = message.split(":", 1)[0]
            field = head if head.startswith("params.") else f"params.sensors.{sensor}"
            if ".depth_m" in head:
                message = message.replace(f"params.sensors.{sensor}.", f"arrays.{sensor}/")
                field = f"arrays.{sensor}/depth_m"
            raise ProtocolError(
                ErrorCode.BAD_PARAMS, message, field, "fix the named field as the message says"
            ) from None
    return {"index": writer.append(frames, data)}, {}


def _check_sensor(sensor: str, info: dict[str, Any], rig: list[str]) -> None:
    """One params.sensors entry: a sensor of the rig with a pose and only known keys."""
    where = f"params.sensors.{sensor}"
    if sensor not in rig:
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            f"sensor {sensor!r} is not in this episode's rig",
            where,
            f"use the sensors declared in episode_open: {rig}",
        )
    unknown = sorted(set(info) - SENSOR_KEYS)
    if unknown or "cam_to_world" not in info:
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            f"{where} has keys {sorted(info)}",
            f"{where}.{unknown[0]}" if unknown else f"{where}.cam_to_world",
            "send cam_to_world (4×4, the sensor-to-world pose: for a LiDAR, LiDAR-to-world) "
            "and optionally K, ego_to_world, extras",
        )
    for key, (rows, cols) in SENSOR_MATRICES.items():
        if info.get(key) is not None and not is_matrix(info[key], rows, cols):
            raise ProtocolError(
                ErrorCode.BAD_PARAMS,
                f"{where}.{key} is not a {rows}×{cols} matrix of numbers",
                f"{where}.{key}",
                f"send {rows} lists of {cols} numbers (row-major)",
            )


def _check_frame_arrays(
    sensor: str, arrays: dict[str, np.ndarray], camera: CameraSpec | None
) -> None:
    """A sensor's arrays against FRAME_FIELDS (and its camera's size), named as sent."""
    spec = {}
    for key, (dtype, shape) in FRAME_FIELDS.items():
        if camera is not None:
            shape = tuple({"H": camera.height, "W": camera.width}.get(d, d) for d in shape)
        elif key != "points_world":
            shape = None  # a LiDAR has no images: refused below
        spec[f"{sensor}/{key}"] = ArraySpec((dtype,), shape)
    if camera is None:
        images = sorted(k for k in arrays if k != "points_world")
        if images:
            raise ProtocolError(
                ErrorCode.BAD_ARRAY,
                f"{sensor!r} is a LiDAR: it has no {images[0]}",
                f"arrays.{sensor}/{images[0]}",
                f"send only {sensor}/points_world for a LiDAR",
            )
    check_arrays(spec, {f"{sensor}/{k}": v for k, v in arrays.items()})


def episode_read(call: Call) -> Result:
    """Ticks [start, start+count) of an episode under data_dir, as values and arrays."""
    p = call.params
    limits = call.server.limits
    path = episode_path(call.server.data_dir, p["path"])
    if not path.is_dir():
        raise ProtocolError(
            ErrorCode.NOT_FOUND,
            f"no episode folder {p['path']!r} under the server's data_dir",
            "params.path",
            "pass the path given to episode_open (or a `cosmos-sim capture` folder)",
        )
    episode = Episode(path)
    paths = episode.tick_paths()
    start = p["start"]
    count = len(paths) - start if p["count"] is None else p["count"]
    if start > len(paths) or start + count > len(paths):
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            f"ticks [{start}, {start + count}) of {len(paths)}",
            "params.start",
            f"ask for ticks within 0..{len(paths)} (the episode has {len(paths)} now)",
        )
    ticks, arrays, nbytes = [], {}, 0
    for index in range(start, start + count):
        tick = episode[index]
        sensors = {}
        for name, frame in tick.frames.items():
            if p["sensors"] is not None and name not in p["sensors"]:
                continue
            sensors[name] = {
                "cam_to_world": frame.cam_to_world.tolist(),
                "K": None if frame.K is None else frame.K.tolist(),
                "ego_to_world": None if frame.ego_to_world is None else frame.ego_to_world.tolist(),
                "extras": frame.extras,
            }
            for key in FRAME_FIELDS:
                value = getattr(frame, key)
                if value is not None:
                    arrays[f"{index}/{name}/{key}"] = value
        values = {}
        for key, value in tick.data.items():
            if isinstance(value, np.ndarray):
                arrays[f"{index}/data/{key}"] = value
            else:
                values[key] = value
        ticks.append(
            {"index": index, "sim_time_s": tick.sim_time_s, "sensors": sensors, "data": values}
        )
        nbytes = sum(a.nbytes for a in arrays.values())
        if (
            len(arrays) > limits.max_arrays
            or nbytes > limits.max_message_bytes
            or any(a.nbytes > limits.max_array_bytes for a in arrays.values())
        ):
            fits = index - start
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"ticks [{start}, {index + 1}) hold {len(arrays)} arrays of {nbytes} bytes, "
                f"over max_arrays={limits.max_arrays} or max_message_bytes="
                f"{limits.max_message_bytes} (or one array over max_array_bytes)",
                "params.count",
                f"ask for at most {fits} ticks per call" if fits else "ask for fewer sensors",
            )
    manifest = episode.manifest
    result = {
        "path": str(path),
        "num_ticks": len(paths),
        "complete": episode.complete,
        "fps": episode.fps,
        "ticks": ticks,
        "cameras": manifest.get("cameras", []),
        "lidars": manifest.get("lidars", []),
    }
    return result, arrays


def episode_close(call: Call) -> Result:
    p = call.params
    writer: EpisodeWriter = call.session.get(p["episode"], KIND, "episode")
    call.session.pop(p["episode"])
    writer.close(complete=p["complete"])
    return {"path": str(writer.path), "num_ticks": writer.num_ticks, "complete": p["complete"]}, {}


def _spec(cls: type, value: Any, where: str) -> Any:
    """A CameraSpec or LidarSpec from its map; its own checks name the param."""
    try:
        return cls.from_dict(_map(value, where))
    except (SpecError, TypeError, ValueError, KeyError) as exc:
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            f"params.{where}: {exc}",
            f"params.{where}",
            "send the fields PROTOCOL.md lists for episode_open's cameras and lidars",
        ) from None


def _map(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            f"{where} is a {type(value).__name__}",
            f"params.{where}",
            "send a map",
        )
    return value


METHODS = [
    Method(
        "episode_open",
        episode_open,
        "Start recording an episode under the server's data_dir; returns its handle.",
        params={
            "path": Param(str, doc="new folder relative to the server's data_dir"),
            "cameras": Param(
                list,
                [],
                doc="CameraSpec maps (name, width, height, fov_deg|K, cam_to_body, near_m, far_m)",
            ),
            "lidars": Param(list, [], doc="LidarSpec maps"),
            "fps": Param(float, doc="simulator ticks per second"),
            "simulator": Param(str, doc="name of the simulator, e.g. 'isaac-sim'"),
            "scene": Param(str, ""),
            "seed": Param((int, type(None)), None),
            "class_names": Param(dict, {}, doc="class id (as a string) -> name"),
            "meta": Param(dict, {}, doc="anything else to keep in the manifest"),
        },
        stateful=True,
    ),
    Method(
        "episode_append",
        episode_append,
        "Write one tick atomically. Arrays are named '<sensor>/<field>' (field: rgb, "
        "depth_m, instance_id, class_id, points_world) or 'data/<key>'.",
        params={
            "episode": Param(str, doc="handle from episode_open"),
            "sim_time_s": Param(float, doc="simulator time of the tick"),
            "sensors": Param(
                dict,
                doc="sensor name -> {cam_to_world, K?, ego_to_world?, "
                "extras?}; 4×4/3×3 matrices as nested lists",
            ),
            "data": Param(dict, {}, doc="per-tick task data (actions, rewards) as values"),
            "index": Param((int, type(None)), None, doc="expected tick index (checked)"),
        },
        arrays=None,
        stateful=True,
    ),
    Method(
        "episode_read",
        episode_read,
        "Read ticks [start, start+count) of an episode folder under data_dir (one being "
        "recorded included): poses and data as values, images as arrays "
        "'<index>/<sensor>/<field>' and '<index>/data/<key>'.",
        params={
            "path": Param(str, doc="episode folder relative to the server's data_dir"),
            "start": Param(int, 0, doc="first tick"),
            "count": Param((int, type(None)), 1, doc="ticks to read; null: to the end"),
            "sensors": Param((list, type(None)), None, doc="sensor names; null: all"),
        },
        idempotent=True,
    ),
    Method(
        "episode_close",
        episode_close,
        "Finish the episode (complete=false marks it as cut short).",
        params={"episode": Param(str), "complete": Param(bool, True)},
        stateful=True,
    ),
]
