"""Episodes on disk: an `episode.json` manifest plus one compressed record per tick.

Each tick is written to a temporary file and renamed into place, so a reader (or a process
that survives a crash) only ever sees whole ticks: a recording killed with SIGKILL loses at
most the tick in flight. Records are `.npz` files loaded with `allow_pickle=False`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_sim.types import CameraSpec, LidarSpec, SensorFrame, SpecError

FORMAT = "cosmos-sim-episode"
VERSION = 1
MANIFEST = "episode.json"
TICKS_DIR = "ticks"
_TICK_NAME = re.compile(r"^(\d{6})\.npz$")
_IMAGE_FIELDS = ("rgb", "depth_m", "instance_id", "class_id")
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)
"""What numpy / zipfile / json raise on a truncated, bit-flipped or empty record."""
_LISTING_LOCK = threading.Lock()
"""Guards `Episode._listing`: ticks are read from several threads (controls.clips); one
module lock keeps an Episode picklable."""


class EpisodeError(SpecError):
    """An episode on disk is missing, malformed or inconsistent; the message says which."""


class DamagedTickError(EpisodeError):
    """A tick record cannot be read (truncated, bit-flipped, empty); `path` names it."""

    def __init__(self, path: Path, index: int, reason: str) -> None:
        super().__init__(
            f"tick {index} ({path}) is damaged: {reason}",
            field=str(path),
            fix="re-record the episode, or pass --skip-damaged (skip_damaged=True) to hold the "
            "tick before it in its place",
        )
        self.path = path
        self.index = index


@dataclass
class Tick:
    """One simulator tick: a SensorFrame per sensor plus task data (actions, rewards…)."""

    index: int
    sim_time_s: float
    frames: dict[str, SensorFrame]
    data: dict[str, Any] = field(default_factory=dict)


def ensure_empty_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create `path`, refusing to reuse a non-empty or unwritable folder (never overwrite)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{what} {path} is a file; pass a folder path that does not exist")
    if path.is_dir() and any(path.iterdir()):
        raise FileExistsError(
            f"{what} {path} is not empty; pass a new folder (nothing there was overwritten)"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, delete=True)
        probe.close()
    except OSError as exc:
        raise PermissionError(
            f"{what} {path} is not writable ({exc.strerror}); pick another"
        ) from exc
    return path


def write_json_atomic(path: Path, payload: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    # Strict JSON: NaN/Infinity have no JSON form and strict readers reject them.
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default, allow_nan=False))
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


class EpisodeWriter:
    """Records ticks into a new episode folder; use as a context manager."""

    def __init__(
        self,
        path: str | Path,
        *,
        cameras: Sequence[CameraSpec] = (),
        lidars: Sequence[LidarSpec] = (),
        fps: float,
        simulator: str,
        scene: str = "",
        seed: int | None = None,
        class_names: Mapping[int, str] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(fps, bool) or not (isinstance(fps, int | float) and 0 < fps < math.inf):
            raise SpecError(
                f"EpisodeWriter.fps: must be a finite number > 0, got {fps!r}",
                field="EpisodeWriter.fps",
                fix="pass the simulator's tick rate, e.g. 30.0",
            )
        names = [c.name for c in cameras] + [lidar.name for lidar in lidars]
        if len(set(names)) != len(names):
            raise SpecError(f"EpisodeWriter: sensor names must be unique, got {names}")
        self.path = ensure_empty_dir(path, "episode folder")
        (self.path / TICKS_DIR).mkdir()
        self.cameras = {c.name: c for c in cameras}
        self.lidars = {lidar.name: lidar for lidar in lidars}
        self.num_ticks = 0
        self.closed = False
        self._manifest = {
            "format": FORMAT,
            "version": VERSION,
            "simulator": simulator,
            "scene": scene,
            "fps": float(fps),
            "seed": seed,
            "units": {"length": "m", "time": "s", "angle": "rad", "depth": "m along optical axis"},
            "frames": "OpenCV camera (x right, y down, z forward); world right-handed, z up",
            "cameras": [c.to_dict() for c in cameras],
            "lidars": [lidar.to_dict() for lidar in lidars],
            "class_names": {str(k): v for k, v in (class_names or {}).items()},
            "meta": dict(meta or {}),
            "created_unix_s": time.time(),
            "complete": False,
            "num_ticks": 0,
        }
        write_json_atomic(self.path / MANIFEST, self._manifest)

    def append(
        self,
        frames: Sequence[SensorFrame] | Mapping[str, SensorFrame],
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Write one tick atomically; returns its index. `data` holds arrays or JSON values."""
        if self.closed:
            raise EpisodeError(
                f"episode {self.path} is closed; open a new EpisodeWriter to record more",
                field="EpisodeWriter.append",
            )
        frames = list(frames.values()) if isinstance(frames, Mapping) else list(frames)
        index = self.num_ticks
        names = [getattr(f, "sensor", None) for f in frames]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise EpisodeError(
                f"tick {index}: sensor(s) {twice} appear more than once; send one frame per "
                "sensor per tick",
                field="frames",
            )
        arrays: dict[str, np.ndarray] = {}
        sensors_meta: dict[str, Any] = {}
        sim_time = None
        for frame in frames:
            self._check_frame(frame, index)
            frame.validate()  # arrays may have changed since the frame was built
            sim_time = frame.sim_time_s if sim_time is None else sim_time
            sensors_meta[frame.sensor] = {
                "cam_to_world": frame.cam_to_world,
                "ego_to_world": frame.ego_to_world,
                "K": frame.K,
                "extras": frame.extras,
            }
            for key in (*_IMAGE_FIELDS, "points_world"):
                value = getattr(frame, key)
                if value is not None:
                    arrays[f"{frame.sensor}/{key}"] = value
        json_data: dict[str, Any] = {}
        for key, value in (data or {}).items():
            if isinstance(value, np.ndarray):
                arrays[f"data/{key}"] = value
            else:
                json_data[key] = value
        meta = {
            "index": index,
            "sim_time_s": float(sim_time if sim_time is not None else index / self.fps),
            "sensors": sensors_meta,
            "data": json_data,
        }
        blob = json.dumps(meta, default=_json_default, allow_nan=False).encode()
        arrays["__meta__"] = np.frombuffer(blob, dtype=np.uint8)
        final = self.path / TICKS_DIR / f"{index:06d}.npz"
        tmp = final.with_name(f".{index:06d}.npz.tmp")
        try:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
            os.replace(tmp, final)
        except BaseException as exc:  # full disk, Ctrl-C: no temp file left behind
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise OSError(
                    exc.errno,
                    f"could not write tick {index} to {final} ({exc.strerror}); the "
                    f"{self.num_ticks} ticks before it are kept",
                ) from exc
            raise
        self.num_ticks += 1
        return index

    @property
    def fps(self) -> float:
        return self._manifest["fps"]

    def _check_frame(self, frame: SensorFrame, index: int) -> None:
        if frame.frame_index != index:
            raise EpisodeError(
                f"SensorFrame[{frame.sensor}].frame_index is {frame.frame_index} but the "
                f"episode's next tick is {index}; append ticks in order without gaps"
            )
        spec = self.cameras.get(frame.sensor) or self.lidars.get(frame.sensor)
        if spec is None:
            raise EpisodeError(
                f"sensor {frame.sensor!r} is not in this episode's rig "
                f"{sorted(self.cameras) + sorted(self.lidars)}; declare it when opening"
            )
        if frame.sensor in self.cameras:
            cam = self.cameras[frame.sensor]
            for key in _IMAGE_FIELDS:
                value = getattr(frame, key)
                if value is not None and value.shape[:2] != (cam.height, cam.width):
                    raise EpisodeError(
                        f"SensorFrame[{frame.sensor}].{key} is {value.shape[:2]}, but the rig "
                        f"camera is {(cam.height, cam.width)} (H, W)"
                    )

    def close(self, complete: bool = True) -> None:
        """Finalise the manifest (tick count, complete or not); later appends are refused."""
        if self.closed:
            return
        self.closed = True
        for stray in (self.path / TICKS_DIR).glob(".*.tmp"):
            stray.unlink(missing_ok=True)
        self._manifest["complete"] = complete
        self._manifest["num_ticks"] = self.num_ticks
        write_json_atomic(self.path / MANIFEST, self._manifest)

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.close(complete=exc_type is None)


class Episode:
    """Reads an episode folder, also one that is still being written."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise EpisodeError(
                f"{self.path} has no {MANIFEST}; pass a folder written by `cosmos-sim capture`"
            )
        try:
            self.manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise EpisodeError(f"{manifest_path} is not valid JSON ({exc})") from exc
        if self.manifest.get("format") != FORMAT:
            raise EpisodeError(f"{manifest_path}: format is not {FORMAT!r}")
        if self.manifest.get("version") != VERSION:
            raise EpisodeError(
                f"{manifest_path}: version {self.manifest.get('version')} is not {VERSION}"
            )
        self.cameras = {c["name"]: CameraSpec.from_dict(c) for c in self.manifest["cameras"]}
        self.lidars = {s["name"]: LidarSpec.from_dict(s) for s in self.manifest["lidars"]}
        self.class_names = {int(k): v for k, v in self.manifest.get("class_names", {}).items()}
        self._listing: list[Path] | None = None

    @classmethod
    def open(cls, path: str | Path) -> Episode:
        return cls(path)

    @property
    def fps(self) -> float:
        return float(self.manifest["fps"])

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    @property
    def fingerprint(self) -> str:
        """A short id of this recording (start time, simulator, scene, seed, rig): clips,
        transfer output and datasets carry it so one episode's output is never paired with
        another's labels, even when both have the same length."""
        keys = ("created_unix_s", "simulator", "scene", "seed", "cameras", "lidars")
        blob = json.dumps({k: self.manifest.get(k) for k in keys}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def tick_paths(self) -> list[Path]:
        """Paths of the whole ticks on disk now, checked to be contiguous from 0."""
        found = {}
        for entry in (self.path / TICKS_DIR).iterdir():
            match = _TICK_NAME.match(entry.name)
            if match:
                found[int(match.group(1))] = entry
        expected = self.manifest.get("num_ticks", 0) if self.complete else len(found)
        missing = sorted(set(range(max(expected, len(found)))) - set(found))
        if missing:
            raise EpisodeError(
                f"{self.path}: ticks {missing[:10]} are missing (have {len(found)}); the "
                "episode was damaged after it was written; re-record it or trim it to the "
                "ticks before the gap"
            )
        return [found[i] for i in range(len(found))]

    def __len__(self) -> int:
        return len(self.tick_paths())

    def __iter__(self) -> Iterator[Tick]:
        return self.ticks()

    def ticks(
        self, indices: Iterable[int] | None = None, *, arrays: Iterable[str] | None = None
    ) -> Iterator[Tick]:
        """Load ticks (all of them, or those at `indices`) from one listing of the folder.

        `arrays` limits which arrays are decompressed ("front/rgb", "lidar/points_world",
        ...; default all): a pass that needs only depth does not pay for the RGB.
        """
        paths = self.tick_paths()
        wanted = None if arrays is None else set(arrays)
        for index in range(len(paths)) if indices is None else indices:
            if not 0 <= index < len(paths):
                raise IndexError(f"tick {index} out of range: episode has {len(paths)} ticks")
            yield self._load(paths[index], wanted, index)

    def array_names(self, index: int) -> list[str]:
        """Names of the arrays tick `index` holds ("front/rgb", ...), read without loading."""
        path = self._path_of(index)
        try:
            with np.load(path, allow_pickle=False) as npz:
                return [k for k in npz.files if k != "__meta__"]
        except _READ_ERRORS as exc:
            raise DamagedTickError(path, index, f"{type(exc).__name__}: {exc}") from exc

    def __getitem__(self, index: int) -> Tick:
        return self.tick(index)

    def tick(self, index: int, *, arrays: Iterable[str] | None = None) -> Tick:
        """Tick `index` (negative counts from the end); `arrays` as in `ticks`."""
        path = self._path_of(index)
        return self._load(path, None if arrays is None else set(arrays), int(path.stem))

    def _path_of(self, index: int) -> Path:
        # Ticks are only ever added, so a listing that already holds `index` stays valid;
        # re-list only when it does not (or for negative indices, which count from the end).
        with _LISTING_LOCK:
            paths = self._listing
            if paths is None or index < 0 or index >= len(paths):
                paths = self._listing = self.tick_paths()
        if not -len(paths) <= index < len(paths):
            raise IndexError(f"tick {index} out of range: episode has {len(paths)} ticks")
        return paths[index]

    def stack(self, sensor: str, key: str) -> np.ndarray:
        """All ticks of one field of one sensor as a T×… array (e.g. ("front", "depth_m"))."""
        values = []
        for tick in self:
            frame = tick.frames.get(sensor)
            value = None if frame is None else getattr(frame, key)
            if value is None:
                raise EpisodeError(
                    f"tick {tick.index} of {self.path} has no {sensor}.{key}; "
                    f"sensors there: {sorted(tick.frames)}"
                )
            values.append(value)
        if not values:
            raise EpisodeError(f"{self.path} has no ticks yet")
        shapes = {v.shape for v in values}
        if len(shapes) > 1:
            raise EpisodeError(f"{sensor}.{key} changes shape across ticks: {sorted(shapes)}")
        return np.stack(values)

    def _load(self, path: Path, wanted: set[str] | None = None, index: int = -1) -> Tick:
        try:
            with np.load(path, allow_pickle=False) as npz:
                keys = [k for k in npz.files if wanted is None or k in wanted or k == "__meta__"]
                arrays = {key: npz[key] for key in keys}
            meta = json.loads(arrays.pop("__meta__").tobytes())
        except _READ_ERRORS as exc:
            reason = "empty file" if path.stat().st_size == 0 else f"{type(exc).__name__}: {exc}"
            raise DamagedTickError(path, index, reason) from exc
        frames = {}
        for sensor, info in meta["sensors"].items():
            fields = {
                key: arrays[f"{sensor}/{key}"]
                for key in (*_IMAGE_FIELDS, "points_world")
                if f"{sensor}/{key}" in arrays
            }
            frames[sensor] = SensorFrame(
                sensor=sensor,
                frame_index=meta["index"],
                sim_time_s=meta["sim_time_s"],
                cam_to_world=np.asarray(info["cam_to_world"]),
                ego_to_world=None
                if info["ego_to_world"] is None
                else np.asarray(info["ego_to_world"]),
                camera=self.cameras.get(sensor),
                lidar=self.lidars.get(sensor),
                K=None if info["K"] is None else np.asarray(info["K"]),
                extras=info.get("extras", {}),
                **fields,
            )
        data = dict(meta["data"])
        data.update({key[5:]: value for key, value in arrays.items() if key.startswith("data/")})
        return Tick(index=meta["index"], sim_time_s=meta["sim_time_s"], frames=frames, data=data)
