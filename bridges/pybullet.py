"""PyBullet bridge: cameras and LiDARs attached to any PyBullet client and its bodies.

Conventions converted here, once (DESIGN.md):

- **Poses.** `cam_to_world` is the OpenCV camera frame (x right, y down, z forward) in the
  PyBullet world (right-handed, z up). A sensor mounted on a body rides on that body's URDF
  link frame (not its centre of mass); the base is link -1. `ego_to_world` is that frame.
- **Intrinsics.** K follows OpenCV: pixel (column u, row v) has its centre at integer
  coordinates, so a world point shows at pixel `round(u), round(v)` of `K @ x_cam / z`.
  The OpenGL projection matrix is built from K (principal point anywhere, skew rejected)
  and from where each rasteriser samples a pixel, so both renderers agree with K to a
  few hundredths of a pixel (tested).
- **Depth.** `depth_m` is metric distance along the optical axis (camera z), linearised
  from the OpenGL z-buffer with the camera's near/far; nothing hit reads as `far_m`.
  TinyRenderer's depth is exact to ~0.1 mm. EGL's (Mesa) is coarser, about
  4e-6 · depth² / near_m metres (2.6 cm at 19 m with near_m = 0.05): give cameras the
  largest near_m the scene allows.
- **Instance ids.** From `ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX`:
  `instance_id = 1 + body_id + (link_index + 1) * 2**24`, 0 = nothing hit
  (`decode_instance_id` inverts it), so each link of a body is its own instance.
  `class_id` comes from a body → class map; 0 is background.
- **LiDAR.** `LidarSpec.ray_directions()` in the sensor frame (x forward, y left, z up),
  cast with `rayTestBatch` from the sensor origin in batches of 16383 rays; hits become
  `points_world`, misses are dropped, and so are returns from the body the LiDAR rides on
  (the ego mask a LiDAR driver applies).
- **Renderer.** The `eglRenderer` plugin (OpenGL through EGL; Mesa llvmpipe on a CPU, ~3×
  faster than TinyRenderer at 1280×704) when it can be used, else TinyRenderer; the
  bridge's `renderer` says which. The plugin is per client, replaces TinyRenderer for
  every image of that client, and only draws bodies created after it loads: call
  `enable_egl(client)` right after `p.connect()` (a bridge on a client without bodies
  loads it itself). It then stays until `p.disconnect()` (see `PyBulletBridge.close`).

Built-in scenes (`make_scene`) capture at 16 fps, Cosmos' model rate, so the 16 fps
resampling of the control videos is the identity; physics runs at 240 Hz underneath.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pkgutil
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pybullet as p
from tqdm import tqdm

from cosmos_sim.bridges.pybullet_scenes import (
    PHYSICS_HZ,
    SCENE_WORLDS,
    SceneWorld,
    body_name,
    look_at,
    pose_matrix,
)
from cosmos_sim.episode import EpisodeWriter
from cosmos_sim.types import CameraSpec, LidarSpec, SensorFrame, SpecError

__all__ = [
    "MAX_RAYS_PER_BATCH",
    "SCENES",
    "PyBulletBridge",
    "Scene",
    "decode_instance_id",
    "egl_active",
    "enable_egl",
    "gl_projection",
    "linearize_depth",
    "link_pose",
    "look_at",
    "make_scene",
    "record_episode",
]

log = logging.getLogger(__name__)

#: Rays per rayTestBatch call. pybullet's MAX_RAY_INTERSECTION_BATCH_SIZE is 16384, but a
#: batch of exactly 16384 returns only 16383 results (pybullet 3.2.7), so we stay below it.
MAX_RAYS_PER_BATCH = 16383
#: Frames per second the built-in scenes capture at (Cosmos' model rate).
SCENE_FPS = 16.0
RENDERERS = ("auto", "egl", "tiny")
_INSTANCE_LINK_SHIFT = 24
_BODY_MASK = (1 << _INSTANCE_LINK_SHIFT) - 1
# OpenCV camera axes -> OpenGL camera axes (y up, looking down -z): flip y and z.
_CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])

# TinyRenderer clears to white; eglRenderer to a grey-blue sky. A 2×2 render of empty space
# therefore tells which one draws a client, including a plugin the user loaded themselves.
_TINY_CLEAR_RGB = (255, 255, 255)
# Where each rasteriser samples a pixel, from its top-left corner (see gl_projection).
_SAMPLE_OFFSET = {"egl": (0.5, 0.5), "tiny": (0.0, 1.0)}


# -- geometry -------------------------------------------------------------------------------


def gl_projection(
    K: np.ndarray,
    width: int,
    height: int,
    near_m: float,
    far_m: float,
    sample_offset: tuple[float, float] = (0.5, 0.5),
) -> np.ndarray:
    """4×4 OpenGL projection under which pixel (u, v) shows exactly what K projects to (u, v).

    `sample_offset` is where the rasteriser samples pixel (column i, row j), measured from the
    pixel's top-left corner: (0.5, 0.5) for OpenGL (EGL) and (0, 1) for TinyRenderer, which
    samples corners (measured: masks sit half a pixel off otherwise).
    """
    K = np.asarray(K, dtype=np.float64)
    if abs(K[0, 1]) > 1e-9 or abs(K[1, 0]) > 1e-9 or np.any(np.abs(K[2] - [0, 0, 1]) > 1e-9):
        raise SpecError(
            "CameraSpec.K: PyBullet renders a pinhole without skew; K must be "
            "[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]"
        )
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if fx <= 0 or fy <= 0:
        raise SpecError(f"CameraSpec.K: focal lengths must be > 0, got fx={fx}, fy={fy}")
    ox, oy = sample_offset
    # Pixel (i, j) is sampled at x_ndc = 2 (i + ox) / W - 1 and, rows counting down from the
    # top, y_ndc = 1 - 2 (j + oy) / H; a point that K sends to (u, v) must land there at u = i.
    return np.array(
        [
            [2 * fx / width, 0, 1 - 2 * (cx + ox) / width, 0],
            [0, 2 * fy / height, 2 * (cy + oy) / height - 1, 0],
            [0, 0, -(far_m + near_m) / (far_m - near_m), -2 * far_m * near_m / (far_m - near_m)],
            [0, 0, -1, 0],
        ]
    )


def linearize_depth(zbuffer: np.ndarray, near_m: float, far_m: float) -> np.ndarray:
    """Metric depth along the optical axis from an OpenGL [0, 1] z-buffer (1 -> far_m)."""
    z = np.asarray(zbuffer, dtype=np.float32)
    # far·near / (far - (far - near)·z) = far / ((far/near)·(1 - z) + z): the denominator is a
    # sum of two positive terms (no cancellation near z = 1, so float32 suffices) and
    # z = 1 gives far_m exactly.
    depth = np.subtract(np.float32(1), z) * np.float32(far_m / near_m)
    depth += z
    np.divide(np.float32(far_m), depth, out=depth)
    return np.clip(depth, np.float32(near_m), np.float32(far_m), out=depth)


def decode_instance_id(instance_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(body_id, link_index) per pixel from the bridge's instance ids; -1, -2 where 0."""
    ids = np.asarray(instance_id, dtype=np.int64) - 1
    body = np.where(ids >= 0, ids & _BODY_MASK, -1)
    link = np.where(ids >= 0, (ids >> _INSTANCE_LINK_SHIFT) - 1, -2)
    return body, link


def link_pose(client_id: int, body: int, link: int = -1) -> np.ndarray:
    """4×4 world pose of a body's URDF link frame (link -1 is the base), not its COM."""
    if link == -1:
        pos, orn = p.getBasePositionAndOrientation(body, physicsClientId=client_id)
        inertial_pos, inertial_orn = p.getDynamicsInfo(body, -1, physicsClientId=client_id)[3:5]
        com = pose_matrix(pos, orn)
        return com @ np.linalg.inv(pose_matrix(inertial_pos, inertial_orn))
    state = p.getLinkState(body, link, computeForwardKinematics=True, physicsClientId=client_id)
    return pose_matrix(state[4], state[5])


# -- the bridge -----------------------------------------------------------------------------


class PyBulletBridge:
    """Attach cameras and LiDARs to any PyBullet client id (a user's own sim) and its bodies.

    Args:
        client_id: a connected PyBullet client (`p.connect(...)`'s return value).
        cameras: the cameras to render each tick.
        lidars: the LiDARs to cast each tick.
        mounts: sensor name -> body id, or (body id, link index), that the sensor rides on;
            a sensor not named here is fixed in the world (its `cam_to_body` /
            `lidar_to_body` is then its pose in the world).
        body_classes: body id -> class id (>= 0; 0 reads as background). Bodies not in the
            map get class 0. Default: one class per distinct body name (URDF robot name),
            numbered from 1 in body-id order; bodies created later join at capture time.
        class_names: class id -> name; default names come from the bodies (or "class<k>").
        renderer: "auto" (EGL when it loads, else TinyRenderer), "egl" or "tiny".
    """

    def __init__(
        self,
        client_id: int,
        cameras: Sequence[CameraSpec],
        lidars: Sequence[LidarSpec] = (),
        *,
        mounts: Mapping[str, int | tuple[int, int]] | None = None,
        body_classes: Mapping[int, int] | None = None,
        class_names: Mapping[int, str] | None = None,
        renderer: str = "auto",
    ) -> None:
        if not isinstance(client_id, int | np.integer) or not p.isConnected(
            physicsClientId=int(client_id)
        ):
            raise SpecError(
                f"PyBulletBridge.client_id: {client_id!r} is not a connected PyBullet client; "
                "pass the id that p.connect() returned"
            )
        if renderer not in RENDERERS:
            raise SpecError(f"PyBulletBridge.renderer: {renderer!r} is not one of {RENDERERS}")
        self.client_id = int(client_id)
        self.cameras = list(cameras)
        self.lidars = list(lidars)
        self._check_sensors()
        self._mounts = self._check_mounts(dict(mounts or {}))
        self.class_names: dict[int, str] = {}
        self._init_classes(body_classes, class_names)
        for cam in self.cameras:  # reject a bad K before touching the renderer
            gl_projection(cam.intrinsics, cam.width, cam.height, cam.near_m, cam.far_m)
        self._rays = {lidar.name: lidar.ray_directions() * lidar.range_m for lidar in self.lidars}
        self.renderer = self._start_renderer(renderer)
        offset = _SAMPLE_OFFSET[self.renderer]
        self._projections = {
            cam.name: gl_projection(
                cam.intrinsics, cam.width, cam.height, cam.near_m, cam.far_m, offset
            )
            .T.ravel()
            .tolist()
            for cam in self.cameras
        }
        log.info("PyBullet client %d renders with %s", self.client_id, self.renderer)

    # -- validation -----------------------------------------------------------------------

    def _check_sensors(self) -> None:
        for cam in self.cameras:
            if not isinstance(cam, CameraSpec):
                raise SpecError(f"PyBulletBridge.cameras: expected CameraSpec, got {cam!r}")
        for lidar in self.lidars:
            if not isinstance(lidar, LidarSpec):
                raise SpecError(f"PyBulletBridge.lidars: expected LidarSpec, got {lidar!r}")
        names = [c.name for c in self.cameras] + [lidar.name for lidar in self.lidars]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SpecError(
                f"PyBulletBridge: sensor names must be unique, {dupes} used more than once; "
                "rename the cameras/LiDARs"
            )
        if not names:
            raise SpecError("PyBulletBridge: give at least one camera or LiDAR")

    def _existing_bodies(self) -> list[int]:
        c = self.client_id
        return [
            p.getBodyUniqueId(i, physicsClientId=c)
            for i in range(p.getNumBodies(physicsClientId=c))
        ]

    def _check_mounts(self, mounts: dict[str, Any]) -> dict[str, tuple[int, int]]:
        sensors = {c.name for c in self.cameras} | {lidar.name for lidar in self.lidars}
        bodies = set(self._existing_bodies())
        checked = {}
        for name, mount in mounts.items():
            if name not in sensors:
                raise SpecError(
                    f"PyBulletBridge.mounts: {name!r} is not a sensor; "
                    f"sensors are {sorted(sensors)}"
                )
            if isinstance(mount, int | np.integer):
                mount = (mount, -1)
            if not (
                isinstance(mount, tuple | list)
                and len(mount) == 2
                and all(isinstance(v, int | np.integer) for v in mount)
            ):
                raise SpecError(
                    f"PyBulletBridge.mounts[{name!r}]: give a body id or a (body id, link "
                    f"index) pair, got {mount!r}"
                )
            body, link = mount
            if body not in bodies:
                raise SpecError(
                    f"PyBulletBridge.mounts[{name!r}]: body {body} does not exist in client "
                    f"{self.client_id} (bodies: {sorted(bodies)})"
                )
            num_links = p.getNumJoints(body, physicsClientId=self.client_id)
            if not -1 <= link < num_links:
                raise SpecError(
                    f"PyBulletBridge.mounts[{name!r}]: body {body} has links -1..{num_links - 1}, "
                    f"not {link}"
                )
            checked[name] = (int(body), int(link))
        return checked

    def _init_classes(
        self, body_classes: Mapping[int, int] | None, class_names: Mapping[int, str] | None
    ) -> None:
        self._default_classes = body_classes is None
        self._class_by_name: dict[str, int] = {}
        self._bodies_seen = -1
        self._user_names = {int(k): str(v) for k, v in (class_names or {}).items()}
        self._body_classes: dict[int, int] = {}
        if body_classes is None:
            self._refresh_default_classes()
            return
        bodies = set(self._existing_bodies())
        for body, cls in body_classes.items():
            if body not in bodies:
                raise SpecError(
                    f"PyBulletBridge.body_classes: body {body} does not exist in client "
                    f"{self.client_id} (bodies: {sorted(bodies)})"
                )
            if not isinstance(cls, int | np.integer) or cls < 0:
                raise SpecError(
                    f"PyBulletBridge.body_classes[{body}]: class ids are ints >= 0, got {cls!r}"
                )
            self._body_classes[int(body)] = int(cls)
        names = {k: f"class{k}" for k in set(self._body_classes.values()) if k != 0}
        self._set_class_names(names)

    def _refresh_default_classes(self) -> None:
        """One class per body name, numbered from 1 in order of first sight; new bodies join."""
        count = p.getNumBodies(physicsClientId=self.client_id)
        if count == self._bodies_seen:
            return
        self._bodies_seen = count
        for body in self._existing_bodies():
            name = body_name(self.client_id, body)
            cls = self._class_by_name.setdefault(name, len(self._class_by_name) + 1)
            self._body_classes[body] = cls
        self._set_class_names({k: n for n, k in self._class_by_name.items()})

    def _set_class_names(self, names: dict[int, str]) -> None:
        names.update(self._user_names)
        names.setdefault(0, "background")
        self.class_names = dict(sorted(names.items()))
        # Index body_id -> class; the extra last slot serves "nothing hit" and unknown bodies.
        lut = np.zeros(max(self._body_classes, default=-1) + 2, dtype=np.int32)
        for body, cls in self._body_classes.items():
            lut[body] = cls
        self._class_lut = lut

    # -- renderer -------------------------------------------------------------------------

    def _start_renderer(self, renderer: str) -> str:
        c = self.client_id
        if p.getConnectionInfo(physicsClientId=c)["connectionMethod"] == p.GUI:
            if renderer == "egl":
                raise SpecError(
                    "PyBulletBridge.renderer='egl': a GUI client draws through its own OpenGL "
                    "window; use a DIRECT client or renderer='tiny'"
                )
            return "tiny"
        active = egl_active(c)
        if renderer == "tiny":
            if active:
                raise SpecError(
                    f"PyBulletBridge.renderer='tiny': eglRenderer is loaded into client {c} "
                    "and replaces TinyRenderer there; use a separate client for TinyRenderer"
                )
            return "tiny"
        if active:
            return "egl"
        if p.getNumBodies(physicsClientId=c) > 0:
            why_not = (
                "the client already has bodies and the EGL renderer only draws bodies created "
                "after it loads; call cosmos_sim.bridges.pybullet.enable_egl(client_id) right "
                "after p.connect()"
            )
        elif enable_egl(c):
            return "egl"
        else:
            why_not = "the eglRenderer plugin did not load on this machine (no EGL/Mesa?)"
        if renderer == "egl":
            raise SpecError(f"PyBulletBridge.renderer='egl': {why_not}; or pass renderer='tiny'")
        log.info("PyBullet client %d renders with TinyRenderer: %s", c, why_not)
        return "tiny"

    def close(self) -> None:
        """Release the bridge. An EGL plugin it loaded stays until `p.disconnect`, which frees
        it: PyBullet 3.2.7 keeps drawing through an unloaded eglRenderer and crashes when it
        is loaded again into the same connection, so unloading it early is never safe."""

    def __enter__(self) -> PyBulletBridge:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    @property
    def mounts(self) -> dict[str, tuple[int, int]]:
        """Sensor name -> (body id, link index) it rides on; world-fixed sensors are absent."""
        return dict(self._mounts)

    # -- capture --------------------------------------------------------------------------

    def sensor_to_world(
        self, name: str, sensor_to_body: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(sensor pose, mount pose or None) in the world for a sensor's mount."""
        mount = self._mounts.get(name)
        if mount is None:
            return sensor_to_body, None
        try:
            body_to_world = link_pose(self.client_id, *mount)
        except p.error as exc:
            raise RuntimeError(
                f"sensor {name!r} is mounted on body {mount[0]} link {mount[1]}, which no "
                f"longer exists in client {self.client_id}"
            ) from exc
        return body_to_world @ sensor_to_body, body_to_world

    def capture(self, frame_index: int, sim_time_s: float) -> list[SensorFrame]:
        """One tick: a SensorFrame per camera (rgb, depth_m, ids) and per LiDAR (points)."""
        frames = [self._render(cam, frame_index, sim_time_s) for cam in self.cameras]
        frames += [self._cast(lidar, frame_index, sim_time_s) for lidar in self.lidars]
        return frames

    def _render(self, cam: CameraSpec, frame_index: int, sim_time_s: float) -> SensorFrame:
        cam_to_world, ego = self.sensor_to_world(cam.name, cam.cam_to_body_matrix)
        view = np.linalg.inv(cam_to_world @ _CV_TO_GL)
        flags = p.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX
        _, _, rgba, zbuffer, seg = p.getCameraImage(
            cam.width,
            cam.height,
            viewMatrix=view.T.ravel().tolist(),
            projectionMatrix=self._projections[cam.name],
            renderer=p.ER_BULLET_HARDWARE_OPENGL if self.renderer == "egl" else p.ER_TINY_RENDERER,
            flags=flags,
            physicsClientId=self.client_id,
        )
        hw = (cam.height, cam.width)
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(*hw, 4)[..., :3]
        seg = np.asarray(seg, dtype=np.int32).reshape(hw)
        depth = linearize_depth(
            np.asarray(zbuffer, dtype=np.float32).reshape(hw), cam.near_m, cam.far_m
        )
        return SensorFrame(
            sensor=cam.name,
            frame_index=frame_index,
            sim_time_s=sim_time_s,
            cam_to_world=cam_to_world,
            ego_to_world=ego,
            camera=cam,
            K=cam.intrinsics,
            rgb=np.ascontiguousarray(rgb),
            depth_m=depth,
            instance_id=seg + 1,  # -1 (nothing) -> 0; see the module docstring
            class_id=self._class_of(seg),
        )

    def _class_of(self, seg: np.ndarray) -> np.ndarray:
        if self._default_classes:
            self._refresh_default_classes()
        lut = self._class_lut
        body = np.where(seg >= 0, seg & _BODY_MASK, len(lut) - 1)
        return lut[np.minimum(body, len(lut) - 1)]

    def _cast(self, lidar: LidarSpec, frame_index: int, sim_time_s: float) -> SensorFrame:
        lidar_to_world, ego = self.sensor_to_world(lidar.name, np.array(lidar.lidar_to_body))
        origin = lidar_to_world[:3, 3]
        ends = self._rays[lidar.name] @ lidar_to_world[:3, :3].T + origin
        own_body = self._mounts.get(lidar.name, (-1, -1))[0]
        points = []
        for start in range(0, len(ends), MAX_RAYS_PER_BATCH):
            chunk = ends[start : start + MAX_RAYS_PER_BATCH]
            # Lists, not arrays: pybullet 3.2.7 silently returns no hits for ndarray input.
            hits = p.rayTestBatch(
                np.broadcast_to(origin, chunk.shape).tolist(),
                chunk.tolist(),
                numThreads=0,
                physicsClientId=self.client_id,
            )
            if len(hits) != len(chunk):
                raise RuntimeError(
                    f"rayTestBatch returned {len(hits)} results for {len(chunk)} rays"
                )
            # Returns from the body the LiDAR rides on are dropped, like a driver's ego mask.
            points.extend(hit[3] for hit in hits if hit[0] >= 0 and hit[0] != own_body)
        return SensorFrame(
            sensor=lidar.name,
            frame_index=frame_index,
            sim_time_s=sim_time_s,
            cam_to_world=lidar_to_world,
            ego_to_world=ego,
            lidar=lidar,
            points_world=np.array(points, dtype=np.float32).reshape(-1, 3),
        )


def egl_active(client_id: int) -> bool:
    """Whether the eglRenderer plugin draws this client's camera images."""
    view = [1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1.0]
    # A frustum 100-200 km away holds nothing, so the image is the renderer's clear colour.
    projection = gl_projection(np.diag([1.0, 1.0, 1.0]), 2, 2, 1e5, 2e5).T.ravel().tolist()
    rgba = p.getCameraImage(
        2, 2, view, projection, flags=p.ER_NO_SEGMENTATION_MASK, physicsClientId=client_id
    )[2]
    return tuple(np.asarray(rgba, dtype=np.uint8).reshape(-1)[:3]) != _TINY_CLEAR_RGB


def enable_egl(client_id: int) -> bool:
    """Load the eglRenderer plugin into a new client; returns whether it draws the client.

    Call it right after `p.connect(p.DIRECT)`, before creating any body: the plugin only draws
    bodies created after it loads, and loading it late also hides the existing bodies from
    TinyRenderer. Calling it again on the same client is a no-op. The plugin stays loaded
    until `p.disconnect` (see `PyBulletBridge.close`).
    """
    if p.getConnectionInfo(physicsClientId=client_id)["connectionMethod"] == p.GUI:
        return False  # a GUI client renders through its own window
    if egl_active(client_id):
        return True
    if p.getNumBodies(physicsClientId=client_id) > 0:
        raise SpecError(
            f"enable_egl: client {client_id} already has bodies, which the EGL renderer would "
            "not draw; call enable_egl right after p.connect(), before loading anything"
        )
    loader = pkgutil.get_loader("eglRenderer")
    if loader is None:
        return False
    with _quiet_stdout():
        plugin = p.loadPlugin(
            loader.get_filename(), "_eglRendererPlugin", physicsClientId=client_id
        )
    return plugin >= 0 and egl_active(client_id)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence the C-level chatter of the EGL plugin (device choice, GL vendor strings)."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


# -- built-in scenes ------------------------------------------------------------------------


class Scene:
    """A built-in world with its own scripted motion, in its own DIRECT client, and a bridge
    attached to it. `step()` advances 1/fps seconds; `bridge.capture(...)` senses the tick."""

    def __init__(
        self,
        name: str,
        *,
        seed: int = 0,
        width: int = 1280,
        height: int = 704,
        renderer: str = "auto",
    ) -> None:
        self.name = name
        self.seed = seed
        self.fps = SCENE_FPS
        if name not in SCENE_WORLDS:
            raise SpecError(f"scene {name!r} is not known; choose one of {sorted(SCENE_WORLDS)}")
        if renderer not in RENDERERS:
            raise SpecError(f"make_scene.renderer: {renderer!r} is not one of {RENDERERS}")
        self.client_id = p.connect(p.DIRECT)
        try:
            if renderer != "tiny":
                enable_egl(self.client_id)  # before any body: EGL only draws later bodies
            self.world: SceneWorld = SCENE_WORLDS[name](
                self.client_id, np.random.default_rng(seed), width, height
            )
            self.bridge = PyBulletBridge(
                self.client_id,
                self.world.cameras,
                self.world.lidars,
                mounts=self.world.mounts,
                body_classes=self.world.body_classes,
                class_names=self.world.class_names,
                renderer=renderer,
            )
        except BaseException:
            p.disconnect(physicsClientId=self.client_id)
            raise
        self.frame_index = 0
        self._substeps = round(PHYSICS_HZ / self.fps)

    @property
    def cameras(self) -> list[CameraSpec]:
        return self.bridge.cameras

    @property
    def lidars(self) -> list[LidarSpec]:
        return self.bridge.lidars

    @property
    def sim_time_s(self) -> float:
        return self.frame_index / self.fps

    def step(self) -> None:
        """Advance the simulation by 1/fps: scripted motion, then physics at 240 Hz."""
        start = self.sim_time_s
        for i in range(1, self._substeps + 1):
            self.world.control(start + i / PHYSICS_HZ)
            p.stepSimulation(physicsClientId=self.client_id)
        self.frame_index += 1

    def tick_data(self) -> dict[str, Any]:
        """The scene's state and scripted action at this tick (arrays), for the episode."""
        return self.world.tick_data()

    def rig(self) -> dict[str, Any]:
        """Which body each sensor rides on, by name, for the episode manifest."""
        return {
            name: {"body": body_name(self.client_id, body), "body_id": body, "link": link}
            for name, (body, link) in self.bridge.mounts.items()
        }

    def close(self) -> None:
        if p.isConnected(physicsClientId=self.client_id):
            self.bridge.close()
            with _quiet_stdout():
                p.disconnect(physicsClientId=self.client_id)

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


#: Built-in scene names -> their world builders (see pybullet_scenes).
SCENES = SCENE_WORLDS


def make_scene(
    name: str, *, seed: int = 0, width: int = 1280, height: int = 704, renderer: str = "auto"
) -> Scene:
    """Build a built-in scene (`tabletop`, `street`) in a new DIRECT client."""
    return Scene(name, seed=seed, width=width, height=height, renderer=renderer)


def record_episode(
    scene: Scene,
    seconds: float,
    out: str | Path,
    *,
    progress: bool = True,
    on_tick: Callable[[list[SensorFrame]], None] | None = None,
) -> Path:
    """Capture `seconds` of a scene (a tick every 1/fps, from its current state) to `out`.

    `on_tick` gets each tick's frames once they are on disk (e.g. `Augmenter.submit`)."""
    if not seconds > 0 or not math.isfinite(seconds):
        raise SpecError(f"record_episode.seconds: must be a finite number > 0, got {seconds}")
    ticks = max(1, round(seconds * scene.fps))
    writer = EpisodeWriter(
        out,
        cameras=scene.cameras,
        lidars=scene.lidars,
        fps=scene.fps,
        simulator="pybullet",
        scene=scene.name,
        seed=scene.seed,
        class_names=scene.bridge.class_names,
        meta={
            "renderer": scene.bridge.renderer,
            "physics_hz": PHYSICS_HZ,
            "rig": scene.rig(),
            "instance_id": "1 + body_id + (link_index + 1) * 2**24; 0 = nothing hit",
            "pybullet_api_version": p.getAPIVersion(),
        },
    )
    with writer:
        for index in tqdm(
            range(ticks), desc=f"capture {scene.name}", unit="tick", disable=not progress
        ):
            frames = scene.bridge.capture(index, scene.sim_time_s)
            writer.append(frames, data=scene.tick_data())
            if on_tick is not None:
                on_tick(frames)
            if index + 1 < ticks:
                scene.step()
    return writer.path
