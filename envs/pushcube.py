"""`cosmos_sim/PushCube-v0`: a planar pusher moves a cube onto a goal disk on a table.

The real simulator behind the learned PushCube env. PyBullet in DIRECT mode, a fixed
top-down RGB camera (64×64 by default) rendered through `cosmos_sim.bridges.pybullet.
PyBulletBridge` (TinyRenderer by default: at 64×64 it needs no GPU; the shipped world model
was trained on its frames, so `renderer="egl"` frames are out of its distribution), and a
continuous 2-D action in [-1, 1]² that moves the pusher by up to `max_step_m` per step. The
camera looks straight down: image right = world +x, image up = world +y.

Reward is dense and bounded: 0.25·(1 − tanh(10·d_pusher→cube)) + 0.75·(1 − tanh(10·d_cube→goal))
each step, and 1.0 on success. Success (`info["success"]`) is the cube centre within
`goal_radius_m` of the goal centre; the episode terminates on success and truncates after
`max_episode_steps` steps.

Episodes are recorded through `cosmos_sim.episode.EpisodeWriter` when `record_dir` is
given: one folder per episode, tick k holds frame k and, in `data`, the action that led to
it (zeros at tick 0), the reward, success, terminated, truncated and the true state.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pybullet as p

from cosmos_sim.bridges.pybullet import PyBulletBridge
from cosmos_sim.episode import EpisodeWriter
from cosmos_sim.types import CameraSpec, SensorFrame, SpecError

CAMERA_NAME = "top"
HALF_VIEW_M = 0.2
"""The camera sees the table square [-HALF_VIEW_M, HALF_VIEW_M]² (at table height)."""
CAMERA_HEIGHT_M = 1.0
CUBE_HALF_M = 0.025
PUSHER_RADIUS_M = 0.02
TABLE_RGBA = (0.78, 0.78, 0.74, 1.0)
CUBE_RGBA = (0.15, 0.35, 0.95, 1.0)
PUSHER_RGBA = (0.95, 0.2, 0.15, 1.0)
GOAL_RGBA = (0.2, 0.8, 0.3, 1.0)
PHYSICS_HZ = 240


def top_camera(size: int) -> CameraSpec:
    """The fixed top-down camera: OpenCV frame x = world +x, y = world −y, z = world −z."""
    cam_to_world = np.array(
        [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, -1.0, 0.0, 0.0],
            [0.0, 0.0, -1.0, CAMERA_HEIGHT_M],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    focal_px = 0.5 * size * CAMERA_HEIGHT_M / HALF_VIEW_M
    # The principal point sits half a pixel right of and above the image centre: the frames
    # the shipped world model was trained on were rendered that way (TinyRenderer), so the
    # world model's pixels and this K agree.
    K = ((focal_px, 0.0, size / 2 + 0.5), (0.0, focal_px, size / 2 - 0.5), (0.0, 0.0, 1.0))
    return CameraSpec(
        name=CAMERA_NAME,
        width=size,
        height=size,
        K=K,
        cam_to_body=cam_to_world,
        near_m=0.5,
        far_m=1.5,
    )


class PushCubeEnv(gym.Env):
    """Push the blue cube onto the green disk with the red pusher (top-down camera)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        render_mode: str | None = None,
        image_size: int = 64,
        max_episode_steps: int = 60,
        control_hz: float = 10.0,
        max_step_m: float = 0.02,
        goal_radius_m: float = 0.04,
        record_dir: str | Path | None = None,
        renderer: str = "tiny",
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise SpecError(
                f"PushCubeEnv.render_mode: use None or 'rgb_array', got {render_mode!r}"
            )
        if not isinstance(image_size, int) or not 16 <= image_size <= 512:
            raise SpecError(f"PushCubeEnv.image_size: an int in [16, 512], got {image_size!r}")
        if not isinstance(max_episode_steps, int) or max_episode_steps < 1:
            raise SpecError(
                f"PushCubeEnv.max_episode_steps: an int >= 1, got {max_episode_steps!r}"
            )
        if renderer not in ("tiny", "egl"):
            raise SpecError(f"PushCubeEnv.renderer: 'tiny' or 'egl', got {renderer!r}")
        self.render_mode = render_mode
        self.image_size = image_size
        self.max_episode_steps = max_episode_steps
        self.control_hz = float(control_hz)
        self.max_step_m = float(max_step_m)
        self.goal_radius_m = float(goal_radius_m)
        self.record_dir = None if record_dir is None else Path(record_dir)
        self.camera = top_camera(image_size)
        self.observation_space = gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._substeps = max(1, round(PHYSICS_HZ / self.control_hz))
        self._client = p.connect(p.DIRECT)
        self._renderer = renderer
        self._build_scene()
        self._bridge = PyBulletBridge(self._client, [self.camera], renderer=renderer)
        self._writer: EpisodeWriter | None = None
        self._episodes_recorded = 0
        self._steps = 0
        self._obs: np.ndarray | None = None
        self._goal_xy = np.zeros(2)
        self._seed: int | None = None

    # -- scene -------------------------------------------------------------------------
    def _build_scene(self) -> None:
        c = self._client
        p.resetSimulation(physicsClientId=c)
        p.setGravity(0, 0, -9.81, physicsClientId=c)
        p.setTimeStep(1.0 / PHYSICS_HZ, physicsClientId=c)
        table_col = p.createCollisionShape(
            p.GEOM_BOX, halfExtents=[0.5, 0.5, 0.02], physicsClientId=c
        )
        table_vis = p.createVisualShape(
            p.GEOM_BOX, halfExtents=[0.5, 0.5, 0.02], rgbaColor=TABLE_RGBA, physicsClientId=c
        )
        self._table = p.createMultiBody(0, table_col, table_vis, [0, 0, -0.02], physicsClientId=c)
        goal_vis = p.createVisualShape(
            p.GEOM_CYLINDER,
            radius=self.goal_radius_m + 0.01,
            length=0.001,
            rgbaColor=GOAL_RGBA,
            physicsClientId=c,
        )
        self._goal = p.createMultiBody(0, -1, goal_vis, [0, 0, 0.0005], physicsClientId=c)
        cube_col = p.createCollisionShape(
            p.GEOM_BOX, halfExtents=[CUBE_HALF_M] * 3, physicsClientId=c
        )
        cube_vis = p.createVisualShape(
            p.GEOM_BOX, halfExtents=[CUBE_HALF_M] * 3, rgbaColor=CUBE_RGBA, physicsClientId=c
        )
        self._cube = p.createMultiBody(
            0.2, cube_col, cube_vis, [0, 0, CUBE_HALF_M], physicsClientId=c
        )
        pusher_col = p.createCollisionShape(
            p.GEOM_CYLINDER, radius=PUSHER_RADIUS_M, height=0.04, physicsClientId=c
        )
        pusher_vis = p.createVisualShape(
            p.GEOM_CYLINDER,
            radius=PUSHER_RADIUS_M,
            length=0.04,
            rgbaColor=PUSHER_RGBA,
            physicsClientId=c,
        )
        self._pusher = p.createMultiBody(
            1.0, pusher_col, pusher_vis, [0.1, 0.1, 0.021], physicsClientId=c
        )
        p.changeDynamics(self._table, -1, lateralFriction=0.5, physicsClientId=c)
        p.changeDynamics(self._cube, -1, lateralFriction=0.5, physicsClientId=c)
        # The pusher glides: no friction with the table, driven by a stiff fixed constraint.
        p.changeDynamics(self._pusher, -1, lateralFriction=0.0, physicsClientId=c)
        p.setCollisionFilterPair(self._table, self._pusher, -1, -1, 0, physicsClientId=c)
        self._pusher_z = 0.021
        self._constraint = p.createConstraint(
            self._pusher,
            -1,
            -1,
            -1,
            p.JOINT_FIXED,
            [0, 0, 0],
            [0, 0, 0],
            [0.1, 0.1, self._pusher_z],
            physicsClientId=c,
        )

    def _frame(self, index: int) -> SensorFrame:
        (frame,) = self._bridge.capture(index, index / self.control_hz)
        self.last_frame = frame  # ids, depth, K, pose behind the observation (for wrappers)
        return frame

    # -- state -------------------------------------------------------------------------
    def _xy(self, body: int) -> np.ndarray:
        pos, _ = p.getBasePositionAndOrientation(body, physicsClientId=self._client)
        return np.array(pos[:2])

    def _cube_yaw(self) -> float:
        _, orn = p.getBasePositionAndOrientation(self._cube, physicsClientId=self._client)
        return float(p.getEulerFromQuaternion(orn)[2])

    def state(self) -> np.ndarray:
        """True state [pusher x, y, cube x, y, yaw, goal x, y] in metres / radians."""
        return np.array(
            [*self._xy(self._pusher), *self._xy(self._cube), self._cube_yaw(), *self._goal_xy],
            dtype=np.float32,
        )

    def _place(self, body: int, xy: np.ndarray, yaw: float, z: float) -> None:
        quat = p.getQuaternionFromEuler([0, 0, yaw])
        p.resetBasePositionAndOrientation(
            body, [float(xy[0]), float(xy[1]), z], quat, physicsClientId=self._client
        )
        p.resetBaseVelocity(body, [0, 0, 0], [0, 0, 0], physicsClientId=self._client)

    # -- gymnasium ---------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._seed = seed
        rng = self.np_random
        cube = rng.uniform(-0.12, 0.12, 2)
        while True:
            goal = rng.uniform(-0.14, 0.14, 2)
            if np.linalg.norm(goal - cube) > 0.08:
                break
        while True:
            pusher = rng.uniform(-0.17, 0.17, 2)
            if np.linalg.norm(pusher - cube) > 0.07 and np.linalg.norm(pusher - goal) > 0.02:
                break
        yaw = float(rng.uniform(-math.pi / 4, math.pi / 4))
        self._goal_xy = goal
        self._place(self._goal, goal, 0.0, 0.0005)
        self._place(self._cube, cube, yaw, CUBE_HALF_M)
        self._place(self._pusher, pusher, 0.0, self._pusher_z)
        p.changeConstraint(
            self._constraint,
            [float(pusher[0]), float(pusher[1]), self._pusher_z],
            maxForce=200,
            physicsClientId=self._client,
        )
        self._steps = 0
        frame = self._frame(0)
        self._obs = frame.rgb
        info = self._info()
        self._start_recording(frame, info)
        return self._obs.copy(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._obs is None:
            raise RuntimeError("PushCubeEnv.step called before reset(); call env.reset() first")
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (2,):
            raise SpecError(f"PushCubeEnv.step: action must have shape (2,), got {action.shape}")
        if not np.all(np.isfinite(action)):
            raise SpecError("PushCubeEnv.step: action contains NaN or inf")
        action = np.clip(action, -1.0, 1.0)
        start = self._xy(self._pusher)
        target = np.clip(start + action * self.max_step_m, -0.19, 0.19)
        c = self._client
        for i in range(self._substeps):
            waypoint = start + (target - start) * (i + 1) / self._substeps
            p.changeConstraint(
                self._constraint,
                [float(waypoint[0]), float(waypoint[1]), self._pusher_z],
                maxForce=200,
                physicsClientId=c,
            )
            p.stepSimulation(physicsClientId=c)
        self._steps += 1
        frame = self._frame(self._steps)
        self._obs = frame.rgb
        info = self._info()
        success = info["success"]
        reward = 1.0 if success else self._dense_reward(info)
        terminated = success
        truncated = (not terminated) and self._steps >= self.max_episode_steps
        self._record(frame, action, reward, info, terminated, truncated)
        return self._obs.copy(), float(reward), terminated, truncated, info

    def _info(self) -> dict[str, Any]:
        state = self.state()
        d_cube_goal = float(np.linalg.norm(state[2:4] - state[5:7]))
        d_pusher_cube = float(np.linalg.norm(state[0:2] - state[2:4]))
        return {
            "success": d_cube_goal < self.goal_radius_m,
            "cube_to_goal_m": d_cube_goal,
            "pusher_to_cube_m": d_pusher_cube,
            "state": state,
        }

    @staticmethod
    def _dense_reward(info: dict[str, Any]) -> float:
        reach = 1.0 - math.tanh(10.0 * info["pusher_to_cube_m"])
        place = 1.0 - math.tanh(10.0 * info["cube_to_goal_m"])
        return 0.25 * reach + 0.75 * place

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._obs is None:
            return np.zeros(self.observation_space.shape, np.uint8)
        return self._obs.copy()

    # -- recording ---------------------------------------------------------------------
    def _start_recording(self, frame: SensorFrame, info: dict[str, Any]) -> None:
        self._close_writer(complete=True)
        if self.record_dir is None:
            return
        self._writer = EpisodeWriter(
            self.record_dir / f"episode_{self._episodes_recorded:06d}",
            cameras=[self.camera],
            fps=self.control_hz,
            simulator="pybullet",
            scene="PushCube-v0",
            seed=self._seed,
            meta={
                "env_id": "cosmos_sim/PushCube-v0",
                "max_step_m": self.max_step_m,
                "goal_radius_m": self.goal_radius_m,
                "max_episode_steps": self.max_episode_steps,
                "action": "tick k's data.action led from frame k-1 to frame k (zeros at 0)",
                "state": "[pusher x, y, cube x, y, yaw, goal x, y]",
            },
        )
        self._episodes_recorded += 1
        self._writer.append(
            [frame], self._tick_data(np.zeros(2, np.float32), 0.0, info, False, False)
        )

    def _record(
        self,
        frame: SensorFrame,
        action: np.ndarray,
        reward: float,
        info: dict[str, Any],
        terminated: bool,
        truncated: bool,
    ) -> None:
        if self._writer is None:
            return
        self._writer.append([frame], self._tick_data(action, reward, info, terminated, truncated))
        if terminated or truncated:
            self._close_writer(complete=True)

    @staticmethod
    def _tick_data(
        action: np.ndarray, reward: float, info: dict[str, Any], terminated: bool, truncated: bool
    ) -> dict[str, Any]:
        return {
            "action": action.astype(np.float32),
            "state": info["state"],
            "reward": float(reward),
            "success": bool(info["success"]),
            "terminated": bool(terminated),
            "truncated": bool(truncated),
        }

    def _close_writer(self, complete: bool) -> None:
        if self._writer is not None:
            self._writer.close(complete=complete)
            self._writer = None

    def close(self) -> None:
        self._close_writer(complete=True)
        if self._bridge is not None:
            self._bridge.close()
            self._bridge = None
        if self._client is not None and p.isConnected(self._client):
            p.disconnect(self._client)
        self._client = None
