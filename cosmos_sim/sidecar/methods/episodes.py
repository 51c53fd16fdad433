"""Episode recording over the wire: open / append a tick / close, through EpisodeWriter.

Each tick is written atomically by the recorder, so a client or server that dies mid-run
leaves an episode that opens with every tick appended before the crash. Episodes live
under the server's data_dir; a client names a relative folder and cannot escape it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cosmos_sim.episode import EpisodeWriter
from cosmos_sim.sidecar.protocol import ErrorCode, ProtocolError
from cosmos_sim.sidecar.schema import Call, Method, Param, Result
from cosmos_sim.types import CameraSpec, LidarSpec, SensorFrame

KIND = "episode"
FRAME_FIELDS = {
    "rgb": "uint8 H×W×3",
    "depth_m": "float32 H×W",
    "instance_id": "int32 H×W",
    "class_id": "int32 H×W",
    "points_world": "float32 N×3",
}
SENSOR_KEYS = {"cam_to_world", "K", "ego_to_world", "extras"}


def episode_path(data_dir: Path, name: str, field: str = "params.path") -> Path:
    """`data_dir/name`, refusing absolute paths and anything that leaves data_dir."""
    candidate = Path(name) if isinstance(name, str) else None
    if (
        candidate is None
        or candidate.is_absolute()
        or ".." in candidate.parts
        or not (data_dir / candidate).resolve().is_relative_to(data_dir)
    ):
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            f"path {name!r} is not a relative folder inside the server's data_dir",
            field,
            "pass a relative name such as 'robot1/ep0001' (no '..', not absolute)",
        )
    return (data_dir / candidate).resolve()


def episode_open(call: Call) -> Result:
    p = call.params
    path = episode_path(call.server.data_dir, p["path"])
    cameras = [CameraSpec.from_dict(_map(c, f"cameras[{i}]")) for i, c in enumerate(p["cameras"])]
    lidars = [LidarSpec.from_dict(_map(s, f"lidars[{i}]")) for i, s in enumerate(p["lidars"])]
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
    fields: dict[str, dict[str, np.ndarray]] = {}
    data: dict[str, Any] = dict(p["data"])
    for name, arr in call.arrays.items():
        owner, _, key = name.partition("/")
        if owner == "data" and key:
            data[key] = arr
        elif key in FRAME_FIELDS and owner in p["sensors"]:
            fields.setdefault(owner, {})[key] = arr
        else:
            raise ProtocolError(
                ErrorCode.BAD_ARRAY,
                f"array {name!r} names no sensor field",
                f"arrays.{name}",
                "name arrays '<sensor>/<field>' with the sensor in params.sensors and field "
                f"one of {sorted(FRAME_FIELDS)}, or 'data/<key>'",
            )
    frames = []
    for sensor, info in p["sensors"].items():
        info = _map(info, f"sensors.{sensor}")
        unknown = set(info) - SENSOR_KEYS
        if unknown or "cam_to_world" not in info:
            raise ProtocolError(
                ErrorCode.BAD_PARAMS,
                f"sensors.{sensor} keys {sorted(info)}",
                f"params.sensors.{sensor}",
                "send cam_to_world (4×4 list) and optionally K, ego_to_world, extras",
            )
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
    return {"index": writer.append(frames, data)}, {}


def episode_close(call: Call) -> Result:
    p = call.params
    writer: EpisodeWriter = call.session.get(p["episode"], KIND, "episode")
    call.session.pop(p["episode"])
    writer.close(complete=p["complete"])
    return {"path": str(writer.path), "num_ticks": writer.num_ticks, "complete": p["complete"]}, {}


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
        "episode_close",
        episode_close,
        "Finish the episode (complete=false marks it as cut short).",
        params={"episode": Param(str), "complete": Param(bool, True)},
        stateful=True,
    ),
]
