"""A test double of the CARLA server side: Client, World, blueprints, actors, sensor callbacks.

Only what the bridge calls is here. Poses and settings use the real `carla` types
(Transform, Location, Rotation, BoundingBox, WorldSettings), so the bridge's maths runs on
the real client library. Sensor callbacks fire from threads after `tick()`, in random
order and with stale extra frames, like a real server; `drop` makes one sensor skip a frame.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import carla
import numpy as np

SERVER_VERSION = "0.9.16"


@dataclass
class FakeBlueprint:
    id: str
    attributes: dict[str, str] = field(default_factory=dict)

    def has_attribute(self, key: str) -> bool:
        return key in self.attributes

    def set_attribute(self, key: str, value: str) -> None:
        self.attributes[key] = value


_SENSOR_ATTRS = {
    "sensor.camera.rgb": ("image_size_x", "image_size_y", "fov", "sensor_tick"),
    "sensor.camera.depth": ("image_size_x", "image_size_y", "fov", "sensor_tick"),
    "sensor.camera.semantic_segmentation": ("image_size_x", "image_size_y", "fov", "sensor_tick"),
    "sensor.camera.instance_segmentation": ("image_size_x", "image_size_y", "fov", "sensor_tick"),
    "sensor.lidar.ray_cast": (
        "channels", "range", "points_per_second", "rotation_frequency", "upper_fov",
        "lower_fov", "sensor_tick",
    ),
    "vehicle.lincoln.mkz_2020": ("role_name",),
}  # fmt: skip


class FakeLibrary:
    def find(self, blueprint_id: str) -> FakeBlueprint:
        if blueprint_id not in _SENSOR_ATTRS:
            raise IndexError(f"blueprint {blueprint_id!r} not found")
        return FakeBlueprint(blueprint_id, {k: "" for k in _SENSOR_ATTRS[blueprint_id]})

    def filter(self, pattern: str) -> list[FakeBlueprint]:
        return [self.find(b) for b in _SENSOR_ATTRS if fnmatch.fnmatch(b, pattern)]


class FakeActor:
    def __init__(self, world: FakeWorld, actor_id: int, type_id: str, transform: Any, **kw: Any):
        self.world = world
        self.id = actor_id
        self.type_id = type_id
        self._transform = transform
        self.attributes = kw.pop("attributes", {})
        self.bounding_box = kw.pop("bounding_box", carla.BoundingBox())
        self.state = kw.pop("state", None)
        self.destroyed = False
        self.autopilot = False

    def get_transform(self) -> Any:
        return self._transform

    def get_velocity(self) -> Any:
        return carla.Vector3D(1.0, 0.5, 0.0)

    def set_autopilot(self, on: bool, port: int = 8000) -> None:
        self.autopilot = on

    def get_opendrive_id(self) -> str:
        return "20"

    def destroy(self) -> bool:
        self.destroyed = True
        self.world.actors.pop(self.id, None)
        return True


class FakeSensor(FakeActor):
    def __init__(self, world: FakeWorld, actor_id: int, bp: FakeBlueprint, mount: Any, parent: Any):
        super().__init__(world, actor_id, bp.id, mount)
        self.blueprint = bp
        self.parent = parent
        self.callback = None

    def listen(self, callback: Any) -> None:
        self.callback = callback

    def stop(self) -> None:
        self.callback = None

    def world_transform(self) -> Any:
        """Parent ∘ mount, for a parent that only yaws (what the tests use)."""
        p = self.parent.get_transform()
        m = self._transform
        loc = p.transform(carla.Location(m.location.x, m.location.y, m.location.z))
        rot = carla.Rotation(
            pitch=m.rotation.pitch, yaw=p.rotation.yaw + m.rotation.yaw, roll=m.rotation.roll
        )
        return carla.Transform(loc, rot)


@dataclass
class FakeImage:
    frame: int
    timestamp: float
    transform: Any
    width: int
    height: int
    raw_data: bytes


@dataclass
class FakeLidarMeasurement:
    frame: int
    timestamp: float
    transform: Any
    raw_data: bytes


def encode_depth(depth_m: np.ndarray) -> np.ndarray:
    """Metres -> CARLA's BGRA 24-bit depth encoding (the inverse of the bridge's decoder)."""
    code = np.round(depth_m / 1000.0 * 16777215.0).astype(np.int64)
    bgra = np.zeros((*depth_m.shape, 4), np.uint8)
    bgra[..., 2] = code & 255
    bgra[..., 1] = (code >> 8) & 255
    bgra[..., 0] = (code >> 16) & 255
    bgra[..., 3] = 255
    return bgra


class FakeWorld:
    def __init__(self, *, delta_rng_seed: int = 0) -> None:
        self.settings = carla.WorldSettings(synchronous_mode=False)
        self.applied: list[Any] = []
        self.actors: dict[int, FakeActor] = {}
        self.frame = 100
        self.elapsed = 0.0
        self.next_id = 1000
        self.drop: tuple[str, int] | None = None
        """(sensor blueprint id suffix, frame) to withhold, e.g. ("depth", 105)."""
        self.fail_tick_at: int | None = None
        self.rng = random.Random(delta_rng_seed)
        self.threads: list[threading.Thread] = []
        self._map = FakeMap()
        car = self.add_actor(
            "vehicle.tesla.model3",
            carla.Transform(carla.Location(30.0, 5.0, 0.0), carla.Rotation(yaw=90.0)),
            bounding_box=carla.BoundingBox(
                carla.Location(0, 0, 0.8), carla.Vector3D(2.3, 1.0, 0.8)
            ),
            attributes={"base_type": "car", "role_name": "autopilot"},
        )
        self.other_car_id = car.id
        self.add_actor(
            "traffic.traffic_light",
            carla.Transform(carla.Location(50.0, 8.0, 0.0)),
            state=carla.TrafficLightState.Red,
        )

    # -- settings
    def get_settings(self) -> Any:
        return self.settings

    def apply_settings(self, settings: Any) -> int:
        self.settings = settings
        self.applied.append(settings)
        return self.frame

    # -- actors
    def add_actor(self, type_id: str, transform: Any, **kw: Any) -> FakeActor:
        actor = FakeActor(self, self.next_id, type_id, transform, **kw)
        self.actors[actor.id] = actor
        self.next_id += 1
        return actor

    def get_blueprint_library(self) -> FakeLibrary:
        return FakeLibrary()

    def get_map(self) -> FakeMap:
        return self._map

    def get_actor(self, actor_id: int) -> FakeActor | None:
        return self.actors.get(actor_id)

    def get_actors(self) -> FakeActorList:
        return FakeActorList(list(self.actors.values()))

    def try_spawn_actor(self, bp: FakeBlueprint, transform: Any) -> FakeActor:
        actor = self.add_actor(
            bp.id,
            transform,
            bounding_box=carla.BoundingBox(
                carla.Location(0, 0, 0.7), carla.Vector3D(2.4, 1.0, 0.7)
            ),
            attributes=dict(bp.attributes),
        )
        return actor

    def spawn_actor(self, bp: FakeBlueprint, transform: Any, attach_to: Any = None) -> FakeSensor:
        sensor = FakeSensor(self, self.next_id, bp, transform, attach_to)
        self.actors[sensor.id] = sensor
        self.next_id += 1
        return sensor

    # -- ticking
    def tick(self, seconds: float = 10.0) -> int:
        if self.fail_tick_at is not None and self.frame + 1 >= self.fail_tick_at:
            raise RuntimeError("simulated server failure")
        self.frame += 1
        self.elapsed += self.settings.fixed_delta_seconds or 0.05
        for sensor in [a for a in self.actors.values() if isinstance(a, FakeSensor)]:
            if sensor.callback is None:
                continue
            kind = sensor.type_id.split(".")[-1]
            if self.drop == (kind, self.frame):
                continue
            items = [self._measure(sensor, self.frame)]
            if self.rng.random() < 0.3:  # a stale duplicate of an older frame arrives first
                items.insert(0, self._measure(sensor, self.frame - 1))
            thread = threading.Thread(
                target=_deliver, args=(sensor.callback, items, self.rng.random() * 0.01)
            )
            thread.start()
            self.threads.append(thread)
        return self.frame

    def _measure(self, sensor: FakeSensor, frame: int) -> Any:
        transform = sensor.world_transform()
        kind = sensor.type_id
        if kind == "sensor.lidar.ray_cast":
            # One return 10 m straight ahead of the sensor, one 5 m to its right (UE4 +y).
            pts = np.array([[10.0, 0.0, 0.0, 1.0], [0.0, 5.0, 0.0, 0.5]], np.float32)
            return FakeLidarMeasurement(frame, self.elapsed, transform, pts.tobytes())
        w = int(sensor.blueprint.attributes["image_size_x"])
        h = int(sensor.blueprint.attributes["image_size_y"])
        bgra = np.zeros((h, w, 4), np.uint8)
        if kind.endswith("rgb"):
            bgra[..., 2] = frame % 256  # red carries the frame id, to check tick matching
            bgra[..., 1] = 7
            bgra[..., 0] = 200
        elif kind.endswith("depth"):
            depth = np.linspace(1.0, 250.0, w, dtype=np.float64)[None].repeat(h, 0)
            bgra = encode_depth(depth)
        elif kind.endswith("semantic_segmentation"):
            bgra[..., 2] = 14  # Car
            bgra[: h // 2, :, 2] = 11  # Sky
        elif kind.endswith("instance_segmentation"):
            bgra[..., 2] = 14
            bgra[..., 1] = 0x34
            bgra[..., 0] = 0x12
        return FakeImage(frame, self.elapsed, transform, w, h, bgra.tobytes())

    def join(self) -> None:
        for thread in self.threads:
            thread.join()


def _deliver(callback: Any, items: list[Any], delay: float) -> None:
    threading.Event().wait(delay)
    for item in items:
        callback(item)


class FakeActorList(list):
    def filter(self, pattern: str) -> FakeActorList:
        return FakeActorList([a for a in self if fnmatch.fnmatch(a.type_id, pattern)])


class FakeMap:
    name = "Carla/Maps/FakeTown"

    def to_opendrive(self) -> str:
        return (Path(__file__).parents[1] / "data" / "two_way_street.xodr").read_text()

    def get_spawn_points(self) -> list[Any]:
        return [carla.Transform(carla.Location(10.0, -2.0, 0.3), carla.Rotation(yaw=30.0))]


class FakeTrafficManager:
    def __init__(self) -> None:
        self.sync_calls: list[bool] = []

    def set_synchronous_mode(self, on: bool) -> None:
        self.sync_calls.append(on)

    def get_port(self) -> int:
        return 8000


class FakeClient:
    """Stands in for carla.Client; `FakeClient.world` is shared so tests can inspect it."""

    world: FakeWorld
    server_version = SERVER_VERSION
    traffic_manager: FakeTrafficManager

    def __init__(self, host: str, port: int, worker_threads: int = 0) -> None:
        self.host, self.port = host, port
        self.replayed: list[tuple] = []

    def set_timeout(self, seconds: float) -> None:
        self.timeout = seconds

    def get_server_version(self) -> str:
        return type(self).server_version

    def get_client_version(self) -> str:
        return SERVER_VERSION

    def get_world(self) -> FakeWorld:
        return type(self).world

    def get_trafficmanager(self, port: int = 8000) -> FakeTrafficManager:
        return type(self).traffic_manager

    def show_recorder_file_info(self, name: str, show_all: bool) -> str:
        return (
            "Version: 1\nMap: FakeTown\nFrames: 100\n"
            if name.endswith(".log")
            else (f"File {name} not found on server\n")
        )

    def replay_file(
        self, name: str, start: float, duration: float, follow_id: int, sensors: bool
    ) -> str:
        self.replayed.append((name, start, duration, follow_id, sensors))
        hero = type(self).world.add_actor(
            "vehicle.lincoln.mkz_2020",
            carla.Transform(carla.Location(0.0, 0.0, 0.0), carla.Rotation(yaw=0.0)),
            attributes={"role_name": "hero", "base_type": "car"},
            bounding_box=carla.BoundingBox(
                carla.Location(0, 0, 0.7), carla.Vector3D(2.4, 1.0, 0.7)
            ),
        )
        type(self).replay_hero = hero.id
        return "Replaying"

    def stop_replayer(self, keep_actors: bool) -> None:
        type(self).stopped_replayer = True
