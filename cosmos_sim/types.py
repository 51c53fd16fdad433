"""Sensor declarations and the per-tick frame that carries its own calibration.

Conventions (DESIGN.md): metres, seconds, radians; images H×W×3 uint8 RGB; depth float32
metres along the optical axis; ids int32. K is 3×3; extrinsics are 4×4 camera-to-world in
the OpenCV camera frame (x right, y down, z forward); the world frame is right-handed, z up.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


class SpecError(ValueError):
    """Bad input: the message names the field and the fix.

    `field` and `fix`, when given, carry the same as attributes so the CLI and the sidecar
    report them without parsing the message.
    """

    def __init__(self, message: str, *, field: str | None = None, fix: str | None = None):
        super().__init__(message)
        self.field = field
        self.fix = fix


SENSOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Sensor names become folder and file names: letters, digits, `_`, `.`, `-`; no path parts."""


def check_sensor_name(name: Any, field: str) -> str:
    """`name` if it is a safe sensor name (SENSOR_NAME), else a SpecError naming `field`."""
    if not isinstance(name, str) or not SENSOR_NAME.match(name) or ".." in name:
        raise SpecError(
            f"{field}: {name!r} is not a usable sensor name; it becomes a folder name, so use "
            "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
            field=field,
            fix="rename the sensor, e.g. 'front' or 'cam_left'",
        )
    return name


def check_positive_int(value: Any, field: str) -> int:
    """`value` if it is a positive int (not a bool), else a SpecError naming `field`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise SpecError(
            f"{field}: must be a positive int, got {value!r}", field=field, fix="pass e.g. 1280"
        )
    return int(value)


def intrinsics_from_fov(
    width: int, height: int, fov_deg: float, *, axis: str = "vertical"
) -> np.ndarray:
    """The one pinhole K of this project from a field of view (every bridge uses it).

    `fov_deg` spans the image edge to edge along `axis` ("vertical": height, as in
    ManiSkill / PyBullet; "horizontal": width, as CARLA's `fov`). Pixels are square and the
    principal point is the image centre. Pixel centres sit at integer coordinates (OpenCV),
    so the edges are at −0.5 and W − 0.5 and the centre is ((W − 1) / 2, (H − 1) / 2).
    """
    if axis not in ("vertical", "horizontal"):
        raise SpecError(f"axis={axis!r}: use 'vertical' or 'horizontal'", field="axis")
    if not (isinstance(fov_deg, int | float | np.floating) and 0 < fov_deg < 180):
        raise SpecError(
            f"fov_deg: give 0 < fov_deg < 180 degrees, got {fov_deg!r}", field="fov_deg"
        )
    span = height if axis == "vertical" else width
    f = 0.5 * span / math.tan(math.radians(fov_deg) / 2)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def check_intrinsics(value: Any, name: str) -> np.ndarray:
    """A finite 3×3 pinhole K with positive focal lengths and last row [0, 0, 1]."""
    K = _matrix(value, (3, 3), name)
    if not (K[0, 0] > 0 and K[1, 1] > 0) or not np.allclose(K[2], [0, 0, 1]):
        raise SpecError(
            f"{name}: not a pinhole K (fx={K[0, 0]}, fy={K[1, 1]}, last row {K[2].tolist()}); "
            "need fx, fy > 0 and last row [0, 0, 1]",
            field=name,
            fix="pass [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] in pixels",
        )
    return K


def _matrix(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise SpecError(f"{name}: expected shape {shape}, got {arr.shape}", field=name)
    if not np.all(np.isfinite(arr)):
        raise SpecError(f"{name}: contains NaN or inf; pass finite values", field=name)
    return arr


def _rigid(value: Any, name: str) -> np.ndarray:
    arr = _matrix(value, (4, 4), name)
    if not np.allclose(arr[3], [0, 0, 0, 1]):
        raise SpecError(f"{name}: last row must be [0, 0, 0, 1] (a rigid 4×4 transform)")
    rot = arr[:3, :3]
    if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-4) or np.linalg.det(rot) < 0:
        raise SpecError(f"{name}: upper-left 3×3 must be a rotation (orthonormal, det +1)")
    return arr


@dataclass(frozen=True)
class CameraSpec:
    """A pinhole camera mounted on a body (or fixed in the world)."""

    name: str
    """Unique sensor name; used as the clip folder name."""
    width: int
    """Image width in pixels."""
    height: int
    """Image height in pixels."""
    fov_deg: float | None = 60.0
    """Vertical field of view in degrees (`intrinsics_from_fov`); ignored when K is given."""
    K: tuple[tuple[float, ...], ...] | None = None
    """Optional 3×3 intrinsics (pixels); overrides fov_deg."""
    cam_to_body: tuple[tuple[float, ...], ...] = tuple(map(tuple, np.eye(4)))
    """4×4 pose of the OpenCV camera frame in the body (or world) frame it is mounted on."""
    near_m: float = 0.05
    """Near clip plane in metres (depth below it is not measured)."""
    far_m: float = 100.0
    """Far clip plane in metres (depth beyond it reads as far_m)."""

    def __post_init__(self) -> None:
        check_sensor_name(self.name, "CameraSpec.name")
        for key in ("width", "height"):
            object.__setattr__(
                self, key, check_positive_int(getattr(self, key), f"CameraSpec.{key}")
            )
        if self.K is None:
            if self.fov_deg is None or not 0 < self.fov_deg < 180:
                raise SpecError(
                    "CameraSpec.fov_deg: give 0 < fov_deg < 180 or pass K",
                    field="CameraSpec.fov_deg",
                )
        else:
            object.__setattr__(self, "K", _as_tuple(check_intrinsics(self.K, "CameraSpec.K")))
        object.__setattr__(
            self, "cam_to_body", _as_tuple(_rigid(self.cam_to_body, "CameraSpec.cam_to_body"))
        )
        if not (math.isfinite(self.far_m) and 0 < self.near_m < self.far_m):
            raise SpecError(
                f"CameraSpec.near_m/far_m: need 0 < near_m < far_m, got {self.near_m}, {self.far_m}"
            )

    @property
    def intrinsics(self) -> np.ndarray:
        """3×3 K in pixels: `K`, else `intrinsics_from_fov` of the vertical `fov_deg`."""
        if self.K is not None:
            return np.array(self.K, dtype=np.float64)
        return intrinsics_from_fov(self.width, self.height, self.fov_deg, axis="vertical")

    @property
    def cam_to_body_matrix(self) -> np.ndarray:
        return np.array(self.cam_to_body, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CameraSpec:
        return cls(**_known_fields(cls, data))


@dataclass(frozen=True)
class LidarSpec:
    """A spinning LiDAR: `channels` rings between fov_down and fov_up, swept 360°."""

    name: str = "lidar"
    """Unique sensor name."""
    channels: int = 32
    """Number of laser rings (elevation samples)."""
    points_per_channel: int = 1024
    """Azimuth samples per ring per sweep."""
    range_m: float = 75.0
    """Maximum range in metres; rays that hit nothing within it return no point."""
    fov_up_deg: float = 10.0
    """Elevation of the highest ring in degrees (positive is up)."""
    fov_down_deg: float = -30.0
    """Elevation of the lowest ring in degrees."""
    hz: float = 10.0
    """Sweeps per second."""
    lidar_to_body: tuple[tuple[float, ...], ...] = tuple(map(tuple, np.eye(4)))
    """4×4 pose of the sensor frame (x forward, y left, z up) in the body frame."""

    def __post_init__(self) -> None:
        check_sensor_name(self.name, "LidarSpec.name")
        for key in ("channels", "points_per_channel"):
            check_positive_int(getattr(self, key), f"LidarSpec.{key}")
        if not (self.range_m > 0 and math.isfinite(self.range_m)):
            raise SpecError(f"LidarSpec.range_m: must be > 0, got {self.range_m}")
        if not -90 <= self.fov_down_deg < self.fov_up_deg <= 90:
            raise SpecError("LidarSpec.fov_down_deg/fov_up_deg: need -90 <= down < up <= 90")
        if not (self.hz > 0 and math.isfinite(self.hz)):
            raise SpecError(f"LidarSpec.hz: must be > 0, got {self.hz}")
        object.__setattr__(
            self, "lidar_to_body", _as_tuple(_rigid(self.lidar_to_body, "LidarSpec.lidar_to_body"))
        )

    @property
    def num_rays(self) -> int:
        return self.channels * self.points_per_channel

    def ray_directions(self) -> np.ndarray:
        """(channels·points_per_channel, 3) unit rays in the sensor frame, ring-major."""
        elev = np.radians(np.linspace(self.fov_down_deg, self.fov_up_deg, self.channels))
        azim = np.linspace(0, 2 * np.pi, self.points_per_channel, endpoint=False)
        el, az = np.meshgrid(elev, azim, indexing="ij")
        dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)
        return dirs.reshape(-1, 3)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LidarSpec:
        return cls(**_known_fields(cls, data))


@dataclass
class SensorFrame:
    """One tick of one sensor, with its calibration attached so nothing downstream guesses.

    Camera frames fill `camera`, `K`, `cam_to_world` and any of rgb/depth_m/instance_id/
    class_id. LiDAR frames fill `lidar`, `cam_to_world` (the sensor pose) and `points_world`.
    """

    sensor: str
    """Sensor name (CameraSpec.name or LidarSpec.name)."""
    frame_index: int
    """Tick index within the episode, from 0."""
    sim_time_s: float
    """Simulator time of the tick in seconds."""
    cam_to_world: np.ndarray
    """4×4 sensor-to-world pose (OpenCV camera frame for cameras)."""
    camera: CameraSpec | None = None
    K: np.ndarray | None = None
    """3×3 intrinsics in pixels (cameras only)."""
    rgb: np.ndarray | None = None
    """H×W×3 uint8 RGB."""
    depth_m: np.ndarray | None = None
    """H×W float32 metres along the optical axis."""
    instance_id: np.ndarray | None = None
    """H×W int32 instance ids; 0 is background (nothing hit)."""
    class_id: np.ndarray | None = None
    """H×W int32 class ids; 0 is background."""
    lidar: LidarSpec | None = None
    points_world: np.ndarray | None = None
    """N×3 float32 LiDAR hit points in the world frame (metres)."""
    ego_to_world: np.ndarray | None = None
    """4×4 pose of the ego body the sensor is mounted on, if any."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Anything else a bridge attaches (boxes, light states); must be msgpack/JSON-able."""

    def __post_init__(self) -> None:
        name = f"SensorFrame[{self.sensor}]"
        check_sensor_name(self.sensor, f"{name}.sensor")
        self.cam_to_world = _rigid(self.cam_to_world, f"{name}.cam_to_world")
        if self.ego_to_world is not None:
            self.ego_to_world = _rigid(self.ego_to_world, f"{name}.ego_to_world")
        if self.K is not None:
            self.K = check_intrinsics(self.K, f"{name}.K")
        elif self.camera is not None:
            self.K = self.camera.intrinsics
        self.validate()

    def validate(self) -> None:
        """Check the arrays (dtype, shape, finite depth and points): on construction, and
        again by the episode writer, since arrays can be changed after construction."""
        name = f"SensorFrame[{self.sensor}]"
        hw = (self.camera.height, self.camera.width) if self.camera is not None else None
        _check_image(self.rgb, f"{name}.rgb", np.uint8, hw, channels=3)
        _check_image(self.depth_m, f"{name}.depth_m", np.float32, hw)
        _check_image(self.instance_id, f"{name}.instance_id", np.int32, hw)
        _check_image(self.class_id, f"{name}.class_id", np.int32, hw)
        if self.depth_m is not None and not np.all(np.isfinite(self.depth_m)):
            raise SpecError(
                f"{name}.depth_m: contains NaN or inf; replace them (e.g. with the far plane)",
                field=f"{name}.depth_m",
                fix="np.nan_to_num(depth_m, nan=far_m, posinf=far_m)",
            )
        if self.points_world is not None:
            pts = self.points_world
            if (
                not isinstance(pts, np.ndarray)
                or pts.dtype != np.float32
                or pts.ndim != 2
                or pts.shape[1] != 3
            ):
                raise SpecError(
                    f"{name}.points_world: expected float32 (N, 3), got "
                    f"{getattr(pts, 'dtype', type(pts).__name__)} {np.shape(pts)}",
                    field=f"{name}.points_world",
                )
            if not np.all(np.isfinite(pts)):
                raise SpecError(
                    f"{name}.points_world: contains NaN or inf; drop rays that hit nothing",
                    field=f"{name}.points_world",
                )

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(height, width) of the camera images, or None for a LiDAR frame."""
        return None if self.camera is None else (self.camera.height, self.camera.width)


def _check_image(
    arr: np.ndarray | None,
    name: str,
    dtype: type,
    hw: tuple[int, int] | None,
    channels: int | None = None,
) -> None:
    if arr is None:
        return
    if not isinstance(arr, np.ndarray) or arr.dtype != dtype:
        got = getattr(arr, "dtype", type(arr).__name__)
        raise SpecError(
            f"{name}: expected dtype {np.dtype(dtype)}, got {got}; convert it first", field=name
        )
    want_ndim = 2 if channels is None else 3
    if arr.ndim != want_ndim or (channels is not None and arr.shape[2] != channels):
        shape = "H×W" if channels is None else f"H×W×{channels}"
        raise SpecError(f"{name}: expected {shape}, got shape {arr.shape}", field=name)
    if hw is not None and arr.shape[:2] != hw:
        raise SpecError(
            f"{name}: image is {arr.shape[:2]} but the camera spec says {hw} (H, W)", field=name
        )


def _as_tuple(arr: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in arr)


def _known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    known = set(cls.__dataclass_fields__)
    unknown = set(data) - known
    if unknown:
        raise SpecError(
            f"{cls.__name__}: unknown field(s) {sorted(unknown)}; known fields are {sorted(known)}"
        )
    return dict(data)
