"""Live CARLA capture into an episode: synchronous ticks, frame-matched sensors, decoded once.

`capture_episode` connects to a CARLA 0.9.16 server, puts the world in synchronous mode
with a fixed delta (restoring the previous settings on any exit, Ctrl-C included), mounts
a rig of cameras and LiDARs on an ego vehicle (an existing actor or a spawned one), and per
tick waits for every sensor's frame with the tick's frame id. Everything is decoded at the
edge, once: depth from the 24-bit encoding to metres, semantic tags to class ids
(CityObjectLabel), instance ids, LiDAR points to world points, UE4's left-handed frame to
ours (right-handed, z up; OpenCV cameras), actors' 3D boxes, traffic-light states and the
ego pose. With `replay=` it replays a recorder log (`client.replay_file`) instead.
"""

from __future__ import annotations

import queue
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_sim.bridges.carla_rig import (
    CAMERA_OUTPUTS,
    FLIP_Y,
    LIDAR_BLUEPRINT,
    Rig,
    RigCamera,
    RigLidar,
    body_from_ue,
    camera_from_ue,
    default_rig,
    load_rig,
)
from cosmos_sim.episode import EpisodeWriter
from cosmos_sim.extras import require
from cosmos_sim.types import SensorFrame

#: CARLA base types of the Transfer 2.5 HD-map box classes Truck and Cyclist (`box_class`).
_TRUCK_BASE_TYPES = {"truck", "van", "bus"}
_CYCLE_BASE_TYPES = {"bicycle", "motorcycle"}


class CarlaBridgeError(ValueError):
    """The server, the rig or the ego is not usable as given; the message names the fix."""


def import_carla() -> Any:
    return require("carla", "carla", "CARLA (capture and OpenDRIVE maps)", " (carla==0.9.16)")


# --------------------------------------------------------------------------- decoding


def bgra_view(raw: bytes | memoryview, width: int, height: int, name: str) -> np.ndarray:
    """CARLA images are BGRA bytes, row-major; returns an H×W×4 uint8 view."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    if buf.size != width * height * 4:
        raise CarlaBridgeError(
            f"sensor {name!r}: image has {buf.size} bytes, expected {width}×{height}×4; "
            "the server sent a different size than the rig asked for"
        )
    return buf.reshape(height, width, 4)


def decode_rgb(bgra: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(bgra[..., 2::-1])


def decode_depth_m(bgra: np.ndarray) -> np.ndarray:
    """CARLA's 24-bit depth: (R + 256 G + 65536 B) / (256³ − 1) × 1000 m."""
    r = bgra[..., 2].astype(np.float32)
    g = bgra[..., 1].astype(np.float32)
    b = bgra[..., 0].astype(np.float32)
    return ((r + g * 256.0 + b * 65536.0) * np.float32(1000.0 / 16777215.0)).astype(np.float32)


def decode_semantic(bgra: np.ndarray) -> np.ndarray:
    """Semantic tag (CityObjectLabel value) in the red channel."""
    return bgra[..., 2].astype(np.int32)


def decode_instance(bgra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Instance camera: tag in red, a 16-bit object id in green (low) and blue (high)."""
    class_id = bgra[..., 2].astype(np.int32)
    instance_id = bgra[..., 1].astype(np.int32) | (bgra[..., 0].astype(np.int32) << 8)
    return class_id, instance_id


def decode_lidar(raw: bytes | memoryview) -> np.ndarray:
    """`sensor.lidar.ray_cast` raw data: float32 (x, y, z, intensity) in the UE4 sensor frame."""
    return np.frombuffer(raw, dtype=np.float32).reshape(-1, 4)


def class_names() -> dict[int, str]:
    """CityObjectLabel id -> name (0 is unlabelled background)."""
    carla = import_carla()
    names = {int(v): str(k) for k, v in carla.CityObjectLabel.names.items() if int(v) < 255}
    names[0] = "Unlabeled"
    return dict(sorted(names.items()))


def transform_matrix(transform: Any) -> np.ndarray:
    return np.asarray(transform.get_matrix(), dtype=np.float64)


def body_pose(transform: Any) -> np.ndarray:
    """A carla.Transform of an actor -> 4×4 body-to-world (x fwd, y left, z up) in our frame."""
    return body_from_ue(transform_matrix(transform))


def camera_pose(transform: Any) -> np.ndarray:
    """A carla.Transform of a camera -> 4×4 OpenCV camera-to-world in our frame."""
    return camera_from_ue(transform_matrix(transform))


def ue_points_to_world(points_local: np.ndarray, transform: Any) -> np.ndarray:
    """Sensor-local UE4 points (N×3) -> our world frame, float32."""
    m = FLIP_Y @ transform_matrix(transform)
    return (points_local[:, :3].astype(np.float64) @ m[:3, :3].T + m[:3, 3]).astype(np.float32)


def box_class(type_id: str, base_type: str = "") -> str:
    base = base_type.lower()
    if type_id.startswith("walker."):
        return "Pedestrian"
    if not type_id.startswith("vehicle."):
        return "Others"
    if base in _CYCLE_BASE_TYPES:
        return "Cyclist"
    if base in _TRUCK_BASE_TYPES:
        return "Truck"
    return "Car"


def actor_box(actor: Any) -> dict[str, Any]:
    """A vehicle/walker's 3D box in our world frame: 8 corners plus centre, extent, yaw.

    Corners are ordered x-major like `carla.BoundingBox.get_local_vertices`: (−x −y −z),
    (−x −y +z), (−x +y −z), … with x the actor's forward axis (corners 4–7 are the front).
    """
    bbox = actor.bounding_box
    ext = np.array([bbox.extent.x, bbox.extent.y, bbox.extent.z])
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    local = signs * ext
    box_in_actor = transform_matrix(_carla_transform(bbox.location, bbox.rotation))
    actor_to_world = transform_matrix(actor.get_transform())
    m = FLIP_Y @ actor_to_world @ box_in_actor
    corners = local @ m[:3, :3].T + m[:3, 3]
    forward = m[:3, 0]
    base_type = ""
    attributes = getattr(actor, "attributes", {}) or {}
    if isinstance(attributes, dict):
        base_type = str(attributes.get("base_type", ""))
    return {
        "id": int(actor.id),
        "type_id": str(actor.type_id),
        "class": box_class(str(actor.type_id), base_type),
        "corners": corners.round(4).tolist(),
        "center": m[:3, 3].round(4).tolist(),
        "extent": ext.round(4).tolist(),
        "yaw": float(np.arctan2(forward[1], forward[0])),
    }


def _carla_transform(location: Any, rotation: Any) -> Any:
    carla = import_carla()
    return carla.Transform(carla.Location(location.x, location.y, location.z), rotation)


# --------------------------------------------------------------------- server session


def connect(host: str, port: int, timeout_s: float) -> Any:
    """A carla.Client that answered within `timeout_s` and runs the client's version."""
    carla = import_carla()
    client = carla.Client(host, int(port))
    client.set_timeout(float(timeout_s))
    try:
        server_version = client.get_server_version()
    except RuntimeError as exc:
        raise CarlaBridgeError(
            f"no CARLA server answered at {host}:{port} within {timeout_s:g} s ({exc}); start "
            f"one (./CarlaUE4.sh -carla-rpc-port={port}) or pass --host/--port/--timeout"
        ) from exc
    client_version = client.get_client_version()
    if _release(server_version) != _release(client_version):
        raise CarlaBridgeError(
            f"the CARLA server at {host}:{port} runs {server_version} but the Python client "
            f"is {client_version}; install the matching client (pip install "
            f"carla=={_release(server_version)}) or run a {client_version} server"
        )
    return client


def _release(version: str) -> str:
    return str(version).split("-")[0].strip()


@contextmanager
def synchronous_mode(
    world: Any, fixed_delta_s: float, traffic_manager: Any = None
) -> Iterator[Any]:
    """Synchronous mode with a fixed delta; the previous settings come back on every exit."""
    original = world.get_settings()
    carla = import_carla()
    settings = carla.WorldSettings(
        synchronous_mode=True,
        no_rendering_mode=original.no_rendering_mode,
        fixed_delta_seconds=float(fixed_delta_s),
    )
    world.apply_settings(settings)
    try:  # from here on the world is synchronous: every exit must restore it
        if traffic_manager is not None:
            traffic_manager.set_synchronous_mode(True)
        yield original
    finally:
        with _interrupts_deferred():
            if traffic_manager is not None:
                _best_effort(
                    "traffic manager back to asynchronous",
                    lambda: traffic_manager.set_synchronous_mode(False),
                )
            _best_effort("restore world settings", lambda: world.apply_settings(original))


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Cleanup that a second Ctrl-C must not cut short (a server left synchronous hangs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending:
            raise KeyboardInterrupt


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """`kill` (SIGTERM) unwinds like Ctrl-C, so the cleanup runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _best_effort(what: str, action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception as exc:  # cleanup must go on; the first error is the one raised
        warnings.warn(f"CARLA cleanup: {what} failed: {exc}", RuntimeWarning, stacklevel=2)


# ----------------------------------------------------------------------- sensor rig


@dataclass
class _Stream:
    """One CARLA sensor actor and the queue its callback fills."""

    sensor: str
    """Rig sensor name."""
    output: str
    """rgb/depth/semantic/instance, or lidar."""
    actor: Any
    frames: queue.Queue

    @property
    def label(self) -> str:
        return self.sensor if self.output == "lidar" else f"{self.sensor}/{self.output}"

    def take(self, frame: int, timeout_s: float) -> Any:
        """The measurement of `frame`; older ones are dropped, a missing one is an error."""
        while True:
            try:
                data = self.frames.get(timeout=timeout_s)
            except queue.Empty:
                raise CarlaBridgeError(
                    f"sensor {self.label!r} delivered no measurement for frame {frame} within "
                    f"{timeout_s:g} s; the server dropped it (raise --timeout, lower the rig's "
                    "resolution/fps, or check the server log)"
                ) from None
            if data.frame == frame:
                return data
            if data.frame > frame:
                raise CarlaBridgeError(
                    f"sensor {self.label!r} delivered frame {data.frame} while frame {frame} was "
                    "awaited; another client is ticking this world (one synchronous client only)"
                )


class CarlaRig:
    """The rig's sensors spawned on an ego actor; `collect` returns one tick's SensorFrames."""

    def __init__(self, world: Any, ego: Any, rig: Rig, timeout_s: float) -> None:
        carla = import_carla()
        self.world = world
        self.ego = ego
        self.rig = rig
        self.timeout_s = timeout_s
        self.streams: list[_Stream] = []
        self.camera_specs = {c.name: c.spec() for c in rig.cameras}
        self.lidar_specs = {s.name: s.spec() for s in rig.lidars}
        library = world.get_blueprint_library()
        try:
            for cam in rig.cameras:
                for output in cam.outputs:
                    bp = _blueprint(library, CAMERA_OUTPUTS[output], cam.name)
                    _set(
                        bp,
                        cam.name,
                        image_size_x=cam.width,
                        image_size_y=cam.height,
                        fov=cam.fov_deg,
                        sensor_tick=0.0,
                    )
                    self._spawn(carla, bp, cam, output)
            for lidar in rig.lidars:
                bp = _blueprint(library, LIDAR_BLUEPRINT, lidar.name)
                _set(
                    bp,
                    lidar.name,
                    channels=lidar.channels,
                    range=lidar.range_m,
                    points_per_second=lidar.points_per_second,
                    rotation_frequency=lidar.rotation_hz,
                    upper_fov=lidar.upper_fov_deg,
                    lower_fov=lidar.lower_fov_deg,
                    sensor_tick=0.0,
                )
                self._spawn(carla, bp, lidar, "lidar")
        except BaseException:
            self.destroy()
            raise

    def _spawn(self, carla: Any, bp: Any, sensor: RigCamera | RigLidar, output: str) -> None:
        m = sensor.mount
        transform = carla.Transform(
            carla.Location(x=m.x, y=m.y, z=m.z),
            carla.Rotation(pitch=m.pitch, yaw=m.yaw, roll=m.roll),
        )
        actor = self.world.spawn_actor(bp, transform, attach_to=self.ego)
        stream = _Stream(sensor.name, output, actor, queue.Queue())
        self.streams.append(stream)
        actor.listen(stream.frames.put)

    def collect(self, frame: int, index: int) -> tuple[list[SensorFrame], dict[str, Any]]:
        """Wait for every sensor's measurement of `frame` and decode them into SensorFrames."""
        data = {s.label: s.take(frame, self.timeout_s) for s in self.streams}
        ego_to_world = body_pose(self.ego.get_transform())
        frames: list[SensorFrame] = []
        sim_time = None
        for cam in self.rig.cameras:
            fields: dict[str, np.ndarray] = {}
            pose = None
            for output in cam.outputs:
                m = data[f"{cam.name}/{output}"]
                sim_time = float(m.timestamp) if sim_time is None else sim_time
                pose = camera_pose(m.transform) if pose is None else pose
                bgra = bgra_view(m.raw_data, m.width, m.height, f"{cam.name}/{output}")
                if output == "rgb":
                    fields["rgb"] = decode_rgb(bgra)
                elif output == "depth":
                    fields["depth_m"] = decode_depth_m(bgra)
                elif output == "semantic":
                    fields["class_id"] = decode_semantic(bgra)
                else:
                    class_id, fields["instance_id"] = decode_instance(bgra)
                    fields.setdefault("class_id", class_id)
            frames.append(
                SensorFrame(
                    sensor=cam.name,
                    frame_index=index,
                    sim_time_s=sim_time,
                    cam_to_world=pose,
                    camera=self.camera_specs[cam.name],
                    ego_to_world=ego_to_world,
                    extras={"carla_frame": frame},
                    **fields,
                )
            )
        for lidar in self.rig.lidars:
            m = data[lidar.name]
            sim_time = float(m.timestamp) if sim_time is None else sim_time
            points = decode_lidar(m.raw_data)
            frames.append(
                SensorFrame(
                    sensor=lidar.name,
                    frame_index=index,
                    sim_time_s=sim_time,
                    cam_to_world=body_pose(m.transform),
                    lidar=self.lidar_specs[lidar.name],
                    points_world=ue_points_to_world(points, m.transform),
                    ego_to_world=ego_to_world,
                    extras={"carla_frame": frame},
                )
            )
        return frames, {"sim_time_s": sim_time}

    def drain(self) -> None:
        for stream in self.streams:
            while not stream.frames.empty():
                stream.frames.get_nowait()

    def destroy(self) -> None:
        for stream in self.streams:
            _best_effort(f"stop sensor {stream.label}", stream.actor.stop)
            _best_effort(f"destroy sensor {stream.label}", stream.actor.destroy)
        self.streams = []


def _blueprint(library: Any, blueprint_id: str, sensor: str) -> Any:
    try:
        return library.find(blueprint_id)
    except (IndexError, RuntimeError) as exc:
        raise CarlaBridgeError(
            f"sensor {sensor!r}: this server has no blueprint {blueprint_id!r} ({exc})"
        ) from exc


def _set(bp: Any, sensor: str, **attributes: Any) -> None:
    for key, value in attributes.items():
        if not bp.has_attribute(key):
            raise CarlaBridgeError(
                f"sensor {sensor!r}: blueprint {bp.id} has no attribute {key!r} on this server"
            )
        bp.set_attribute(key, f"{value:g}" if isinstance(value, float) else str(value))


# -------------------------------------------------------------------- world state


def world_state(world: Any, ego: Any) -> dict[str, Any]:
    """Per-tick dynamic state: other actors' boxes, traffic-light states, the ego pose."""
    actors = world.get_actors()
    boxes = [
        actor_box(actor)
        for pattern in ("vehicle.*", "walker.pedestrian.*")
        for actor in actors.filter(pattern)
        if actor.id != ego.id
    ]
    lights = []
    for light in actors.filter("traffic.traffic_light*"):
        location = light.get_transform().location
        lights.append(
            {
                "id": int(light.id),
                "opendrive_id": str(_maybe(light, "get_opendrive_id", "")),
                "state": str(light.state).split(".")[-1].lower(),
                "position": [location.x, -location.y, location.z],
            }
        )
    velocity = _maybe(ego, "get_velocity", None)
    return {
        "boxes": boxes,
        "traffic_lights": lights,
        "ego": {
            "id": int(ego.id),
            "type_id": str(ego.type_id),
            "ego_to_world": body_pose(ego.get_transform()).round(6).tolist(),
            "velocity": None if velocity is None else [velocity.x, -velocity.y, velocity.z],
            "box": actor_box(ego),
        },
    }


def _maybe(obj: Any, method: str, default: Any) -> Any:
    fn = getattr(obj, method, None)
    return default if fn is None else fn()


# --------------------------------------------------------------------------- capture


def find_ego(world: Any, ego: str, *, replay: bool = False) -> Any | None:
    """The actor `ego` names (an id), the replay's hero for "spawn" in replay mode, else None."""
    if ego == "spawn":
        if not replay:
            return None
        heroes = [
            a
            for a in world.get_actors().filter("vehicle.*")
            if (getattr(a, "attributes", {}) or {}).get("role_name") == "hero"
        ]
        if not heroes:
            raise CarlaBridgeError(
                "the replayed log has no vehicle with role_name 'hero'; pass --ego ID with "
                "one of the replayed vehicles: " + _vehicle_list(world)
            )
        return heroes[0]
    try:
        actor_id = int(ego)
    except ValueError:
        raise CarlaBridgeError(f"--ego must be an actor id or 'spawn', got {ego!r}") from None
    actor = world.get_actor(actor_id)
    if actor is None:
        raise CarlaBridgeError(
            f"--ego {actor_id}: no actor with that id in the world; vehicles there: "
            f"{_vehicle_list(world)} (or pass --ego spawn)"
        )
    return actor


def _vehicle_list(world: Any) -> str:
    vehicles = [f"{a.id} ({a.type_id})" for a in world.get_actors().filter("vehicle.*")]
    return ", ".join(vehicles[:20]) or "none"


def spawn_ego(world: Any, rig: Rig, traffic_manager: Any) -> Any:
    library = world.get_blueprint_library()
    matches = [bp for bp in library.filter(rig.ego_blueprint)]
    if not matches:
        raise CarlaBridgeError(
            f"rig {rig.source}: ego.blueprint {rig.ego_blueprint!r} matches no blueprint on "
            "this server; use e.g. vehicle.lincoln.mkz_2020"
        )
    bp = matches[0]
    if bp.has_attribute("role_name"):
        bp.set_attribute("role_name", "hero")
    points = world.get_map().get_spawn_points()
    if not points:
        raise CarlaBridgeError("the loaded map has no spawn points; pass --ego ID of a vehicle")
    for k in range(len(points)):
        actor = world.try_spawn_actor(bp, points[(rig.spawn_point + k) % len(points)])
        if actor is not None:
            if rig.autopilot:
                actor.set_autopilot(True, traffic_manager.get_port())
            return actor
    raise CarlaBridgeError("every spawn point is occupied; free one or pass --ego ID")


def capture_episode(
    out: Path,
    *,
    host: str = "localhost",
    port: int = 2000,
    rig: Path | None,
    ego: str = "spawn",
    seconds: float,
    replay: Path | None = None,
    timeout_s: float = 10.0,
    progress: bool = True,
    on_tick: Callable[[list[SensorFrame]], None] | None = None,
) -> Path:
    """Record `seconds` of a live (or replayed) CARLA world into a new episode at `out`.

    `on_tick` gets each tick's frames once they are on disk (e.g. `Augmenter.submit`)."""
    the_rig = default_rig() if rig is None else load_rig(rig)
    if seconds <= 0:
        raise CarlaBridgeError(f"seconds must be > 0, got {seconds}")
    num_ticks = max(1, round(seconds * the_rig.fps))
    client = connect(host, port, timeout_s)
    replay_name = None
    if replay is not None:
        replay_name = _start_replay(client, replay, seconds)
    # After replay_file: replaying a log loads its map, which expires any earlier world handle.
    world = client.get_world()
    traffic_manager = None
    if replay is None and (ego == "spawn" and the_rig.autopilot):
        traffic_manager = client.get_trafficmanager()
    spawned = None
    sensors: CarlaRig | None = None
    try:
        with _sigterm_as_interrupt(), synchronous_mode(world, 1.0 / the_rig.fps, traffic_manager):
            world.tick()
            ego_actor = find_ego(world, ego, replay=replay is not None)
            if ego_actor is None:
                ego_actor = spawned = spawn_ego(world, the_rig, traffic_manager)
            try:
                sensors = CarlaRig(world, ego_actor, the_rig, timeout_s)
                world.tick()  # sensors start with the next frame; drop the warm-up one
                sensors.drain()
                _record(
                    out,
                    world,
                    ego_actor,
                    sensors,
                    the_rig,
                    num_ticks,
                    progress,
                    on_tick,
                    meta={
                        "host": host,
                        "port": port,
                        "ego": ego,
                        "replay": replay_name,
                        "rig": the_rig.raw or {"name": the_rig.name},
                        "server_version": client.get_server_version(),
                        "map": world.get_map().name,
                    },
                )
            finally:
                with _interrupts_deferred():
                    if sensors is not None:
                        sensors.destroy()
                    if spawned is not None:
                        _best_effort("destroy the spawned ego", spawned.destroy)
    finally:
        if replay_name is not None:
            _best_effort("stop the replayer", lambda: client.stop_replayer(False))
    return Path(out)


def _start_replay(client: Any, replay: Path, seconds: float) -> str:
    # The server reads the log: a path that exists here is passed absolute, any other
    # name is left for the server to resolve (CARLA looks in its own Saved/ folder).
    name = str(replay.resolve()) if replay.exists() else str(replay)
    info = client.show_recorder_file_info(name, False)
    if "not found" in info.lower() or not info.strip():
        raise CarlaBridgeError(
            f"--replay {replay}: the server cannot read this recorder log ({info.strip()!r}); "
            "give a path the server can see (absolute, on the server's machine)"
        )
    client.replay_file(name, 0.0, float(seconds), 0, False)
    return name


def _record(
    out: Path,
    world: Any,
    ego: Any,
    sensors: CarlaRig,
    rig: Rig,
    num_ticks: int,
    progress: bool,
    on_tick: Callable[[list[SensorFrame]], None] | None,
    meta: dict[str, Any],
) -> None:
    from tqdm import tqdm

    with EpisodeWriter(
        out,
        cameras=list(sensors.camera_specs.values()),
        lidars=list(sensors.lidar_specs.values()),
        fps=rig.fps,
        simulator="carla",
        scene=str(meta.get("map", "")),
        class_names=class_names(),
        meta=meta,
    ) as writer:
        # The map travels with the episode, so its HD-map control can be rendered later
        # (bridges.opendrive.compile_map + DynamicState.from_tick_data) with no server.
        (writer.path / "map.xodr").write_text(world.get_map().to_opendrive())
        for index in tqdm(range(num_ticks), desc="carla capture", disable=not progress):
            frame = world.tick()
            frames, info = sensors.collect(frame, index)
            state = world_state(world, ego)
            writer.append(frames, data={"carla_frame": int(frame), **info, **state})
            if on_tick is not None:
                on_tick(frames)
