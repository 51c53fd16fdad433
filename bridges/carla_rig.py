"""Sensor rigs for CARLA (and the server-free HD-map renderer) from a small YAML/TOML file.

A rig names cameras and LiDARs mounted on the ego vehicle. Mount poses are written the way
CARLA users write them, in the vehicle's UE4 frame (x forward, y right, z up, metres;
roll/pitch/yaw in degrees), and converted once into our right-handed frame here. Camera
`fov_deg` is CARLA's *horizontal* field of view.

```yaml
fps: 20                          # simulator ticks per second (fixed delta = 1/fps)
ego: {blueprint: vehicle.lincoln.mkz_2020, autopilot: true, spawn_point: 0}
sensors:
  - {name: front, type: camera, outputs: [rgb, depth, semantic, instance],
     width: 1280, height: 704, fov_deg: 90, transform: {x: 1.5, z: 1.7}}
  - {name: lidar, type: lidar, channels: 64, range_m: 75, transform: {z: 2.0}}
```
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_sim.types import CameraSpec, LidarSpec, SpecError, intrinsics_from_fov

#: UE4 (left-handed, y right) <-> ours (right-handed, y left): flip y. Its own inverse.
FLIP_Y = np.diag([1.0, -1.0, 1.0, 1.0])
#: Columns: the OpenCV camera axes (x right, y down, z forward) written in UE4's camera
#: frame (x forward, y right, z up).
CV_TO_UE_CAMERA = np.array(
    [[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)

CAMERA_OUTPUTS = {
    "rgb": "sensor.camera.rgb",
    "depth": "sensor.camera.depth",
    "semantic": "sensor.camera.semantic_segmentation",
    "instance": "sensor.camera.instance_segmentation",
}
LIDAR_BLUEPRINT = "sensor.lidar.ray_cast"

_TRANSFORM_KEYS = {"x", "y", "z", "roll", "pitch", "yaw"}
_CAMERA_KEYS = {"name", "type", "outputs", "width", "height", "fov_deg", "transform", "view"}
_LIDAR_KEYS = {
    "name",
    "type",
    "channels",
    "range_m",
    "points_per_second",
    "rotation_hz",
    "upper_fov_deg",
    "lower_fov_deg",
    "transform",
}
_EGO_KEYS = {"blueprint", "autopilot", "spawn_point"}
_TOP_KEYS = {"fps", "ego", "sensors", "name"}


@dataclass(frozen=True)
class Mount:
    """A pose in CARLA's UE4 convention relative to the ego vehicle."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0

    def ue_matrix(self) -> np.ndarray:
        """4×4 sensor-to-vehicle in UE4 axes, the same matrix `carla.Transform.get_matrix`
        gives (UE4 rotation order: roll about x, then pitch about y, then yaw about z)."""
        return ue_transform_matrix(self.x, self.y, self.z, self.roll, self.pitch, self.yaw)


def ue_transform_matrix(
    x: float, y: float, z: float, roll: float, pitch: float, yaw: float
) -> np.ndarray:
    cr, sr = math.cos(math.radians(roll)), math.sin(math.radians(roll))
    cp, sp = math.cos(math.radians(pitch)), math.sin(math.radians(pitch))
    cy, sy = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
    return np.array(
        [
            [cp * cy, cy * sp * sr - sy * cr, -cy * sp * cr - sy * sr, x],
            [cp * sy, sy * sp * sr + cy * cr, -sy * sp * cr + cy * sr, y],
            [sp, -cp * sr, cp * cr, z],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def body_from_ue(ue_matrix: np.ndarray) -> np.ndarray:
    """A UE4 body/sensor pose (x fwd, y right, z up) -> ours (x fwd, y left, z up)."""
    return FLIP_Y @ ue_matrix @ FLIP_Y


def camera_from_ue(ue_matrix: np.ndarray) -> np.ndarray:
    """A UE4 camera pose -> the OpenCV camera's pose in our right-handed frame."""
    return FLIP_Y @ ue_matrix @ CV_TO_UE_CAMERA


@dataclass(frozen=True)
class RigCamera:
    name: str
    """Sensor name (the clip folder)."""
    width: int
    height: int
    fov_deg: float
    """Horizontal field of view in degrees (CARLA's `fov` attribute)."""
    mount: Mount
    outputs: tuple[str, ...] = ("rgb", "depth", "semantic", "instance")
    """Which CARLA camera sensors to spawn at this pose."""
    view: str | None = None
    """Multiview role (e.g. front_wide); defaults to the name."""

    @property
    def K(self) -> np.ndarray:
        """CARLA renders a symmetric frustum whose `fov` spans the width edge to edge."""
        return intrinsics_from_fov(self.width, self.height, self.fov_deg, axis="horizontal")

    @property
    def cam_to_body(self) -> np.ndarray:
        return camera_from_ue(self.mount.ue_matrix())

    def spec(self, near_m: float = 0.1, far_m: float = 1000.0) -> CameraSpec:
        return CameraSpec(
            self.name,
            self.width,
            self.height,
            K=self.K,
            cam_to_body=self.cam_to_body,
            near_m=near_m,
            far_m=far_m,
        )


@dataclass(frozen=True)
class RigLidar:
    name: str
    mount: Mount
    channels: int = 32
    range_m: float = 75.0
    points_per_second: int = 600_000
    rotation_hz: float = 10.0
    upper_fov_deg: float = 10.0
    lower_fov_deg: float = -30.0

    def spec(self) -> LidarSpec:
        per_channel = max(1, round(self.points_per_second / self.rotation_hz / self.channels))
        return LidarSpec(
            name=self.name,
            channels=self.channels,
            points_per_channel=per_channel,
            range_m=self.range_m,
            fov_up_deg=self.upper_fov_deg,
            fov_down_deg=self.lower_fov_deg,
            hz=self.rotation_hz,
            lidar_to_body=body_from_ue(self.mount.ue_matrix()),
        )


@dataclass(frozen=True)
class Rig:
    cameras: tuple[RigCamera, ...]
    lidars: tuple[RigLidar, ...] = ()
    fps: float = 20.0
    """Simulator ticks per second; CARLA's fixed_delta_seconds is 1/fps."""
    ego_blueprint: str = "vehicle.lincoln.mkz_2020"
    autopilot: bool = True
    spawn_point: int = 0
    name: str = "rig"
    source: str = "<default>"
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def sensor_names(self) -> list[str]:
        return [c.name for c in self.cameras] + [lidar.name for lidar in self.lidars]


def default_rig() -> Rig:
    """One forward camera at the Cosmos 16:9 bucket size plus a roof LiDAR."""
    return Rig(
        cameras=(RigCamera("front", 1280, 704, 90.0, Mount(x=1.5, z=1.7)),),
        lidars=(RigLidar("lidar", Mount(z=2.0)),),
        name="default",
    )


def load_rig(path: str | Path) -> Rig:
    """Read and validate a rig file (.yaml/.yml/.toml); errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"rig file {path} does not exist; see examples/rigs/ for samples")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise SpecError(f"rig file {path}: use a .yaml, .yml or .toml file")
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        if isinstance(exc, SpecError):
            raise
        raise SpecError(f"rig file {path} is not valid {path.suffix[1:].upper()}: {exc}") from exc
    except Exception as exc:  # yaml.YAMLError, imported lazily above
        raise SpecError(f"rig file {path} is not valid YAML: {exc}") from exc
    return rig_from_dict(data, source=str(path))


def rig_from_dict(data: Any, source: str = "<dict>") -> Rig:
    where = f"rig {source}"
    if not isinstance(data, dict):
        raise SpecError(f"{where}: the top level must be a mapping with a `sensors` list")
    _check_keys(data, _TOP_KEYS, where)
    sensors = data.get("sensors")
    if not isinstance(sensors, list) or not sensors:
        raise SpecError(f"{where}: `sensors` must be a non-empty list of camera/lidar entries")
    cameras: list[RigCamera] = []
    lidars: list[RigLidar] = []
    names: set[str] = set()
    for index, entry in enumerate(sensors):
        label = f"{where}: sensors[{index}]"
        if not isinstance(entry, dict):
            raise SpecError(f"{label} must be a mapping")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise SpecError(f"{label}: give each sensor a non-empty `name`")
        label = f"{where}: sensor {name!r}"
        if name in names:
            raise SpecError(f"{label}: duplicate name; sensor names must be unique")
        names.add(name)
        kind = entry.get("type")
        if kind == "camera":
            cameras.append(_camera(entry, label))
        elif kind == "lidar":
            lidars.append(_lidar(entry, label))
        else:
            raise SpecError(
                f"{label}: unknown sensor type {kind!r}; use 'camera' (outputs "
                f"{sorted(CAMERA_OUTPUTS)}) or 'lidar'"
            )
    ego = data.get("ego") or {}
    if not isinstance(ego, dict):
        raise SpecError(f"{where}: `ego` must be a mapping with keys {sorted(_EGO_KEYS)}")
    _check_keys(ego, _EGO_KEYS, f"{where}: ego")
    fps = _number(data.get("fps", 20.0), f"{where}: fps", positive=True)
    return Rig(
        cameras=tuple(cameras),
        lidars=tuple(lidars),
        fps=fps,
        ego_blueprint=str(ego.get("blueprint", "vehicle.lincoln.mkz_2020")),
        autopilot=bool(ego.get("autopilot", True)),
        spawn_point=int(ego.get("spawn_point", 0)),
        name=str(data.get("name", Path(source).stem)),
        source=source,
        raw=data,
    )


def _camera(entry: dict[str, Any], label: str) -> RigCamera:
    _check_keys(entry, _CAMERA_KEYS, label)
    outputs = entry.get("outputs", list(CAMERA_OUTPUTS))
    if isinstance(outputs, str):
        outputs = [outputs]
    unknown = [o for o in outputs if o not in CAMERA_OUTPUTS]
    if unknown or not outputs:
        raise SpecError(
            f"{label}: unknown camera output(s) {unknown or outputs}; choose from "
            f"{sorted(CAMERA_OUTPUTS)}"
        )
    width = _int(entry.get("width", 1280), f"{label}: width")
    height = _int(entry.get("height", 704), f"{label}: height")
    fov = _number(entry.get("fov_deg", 90.0), f"{label}: fov_deg", positive=True)
    if fov >= 180:
        raise SpecError(f"{label}: fov_deg must be below 180 (horizontal FOV), got {fov}")
    return RigCamera(
        name=entry["name"],
        width=width,
        height=height,
        fov_deg=fov,
        mount=_mount(entry.get("transform"), label),
        outputs=tuple(dict.fromkeys(outputs)),
        view=entry.get("view"),
    )


def _lidar(entry: dict[str, Any], label: str) -> RigLidar:
    _check_keys(entry, _LIDAR_KEYS, label)
    lidar = RigLidar(
        name=entry["name"],
        mount=_mount(entry.get("transform"), label),
        channels=_int(entry.get("channels", 32), f"{label}: channels"),
        range_m=_number(entry.get("range_m", 75.0), f"{label}: range_m", positive=True),
        points_per_second=_int(
            entry.get("points_per_second", 600_000), f"{label}: points_per_second"
        ),
        rotation_hz=_number(entry.get("rotation_hz", 10.0), f"{label}: rotation_hz", True),
        upper_fov_deg=_number(entry.get("upper_fov_deg", 10.0), f"{label}: upper_fov_deg"),
        lower_fov_deg=_number(entry.get("lower_fov_deg", -30.0), f"{label}: lower_fov_deg"),
    )
    lidar.spec()  # LidarSpec validates the field of view and ranges
    return lidar


def _mount(value: Any, label: str) -> Mount:
    if value is None:
        return Mount()
    if not isinstance(value, dict):
        raise SpecError(f"{label}: transform must be a mapping with keys {sorted(_TRANSFORM_KEYS)}")
    _check_keys(value, _TRANSFORM_KEYS, f"{label}: transform")
    return Mount(**{k: _number(v, f"{label}: transform.{k}") for k, v in value.items()})


def _check_keys(data: dict[str, Any], known: set[str], label: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(f"{label}: unknown field(s) {unknown}; known fields are {sorted(known)}")


def _number(value: Any, label: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(f"{label}: must be a number, got {value!r}")
    if positive and value <= 0:
        raise SpecError(f"{label}: must be > 0, got {value}")
    return float(value)


def _int(value: Any, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SpecError(f"{label}: must be a positive integer, got {value!r}")
    return int(value)
