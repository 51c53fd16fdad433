"""Built-in PyBullet worlds with scripted motion: `tabletop` (an arm pushing objects) and
`street` (the racecar driving a ring road among obstacles).

A world only builds bodies and moves them; the sensing lives in `pybullet.PyBulletBridge`.
Everything random is drawn from the seed's generator, and PyBullet's DIRECT mode is
deterministic, so a seed gives the same episode every run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pybullet as p
import pybullet_data

from cosmos_sim.types import CameraSpec, LidarSpec, SpecError

#: Physics rate of the built-in scenes (PyBullet's default time step).
PHYSICS_HZ = 240.0


def pose_matrix(position: Sequence[float], quaternion: Sequence[float]) -> np.ndarray:
    """4×4 transform from a position and a PyBullet (x, y, z, w) quaternion."""
    x, y, z, w = quaternion
    rot = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    out = np.eye(4)
    out[:3, :3] = rot / np.linalg.norm(quaternion) ** 2
    out[:3, 3] = position
    return out


def look_at(
    eye: Sequence[float], target: Sequence[float], up: Sequence[float] = (0.0, 0.0, 1.0)
) -> np.ndarray:
    """4×4 camera-to-parent pose (OpenCV: x right, y down, z forward) of a camera at `eye`
    looking at `target`, with `up` (in the same parent frame) pointing up in the image."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    forward = target - eye
    right = np.cross(forward, up)
    if np.linalg.norm(forward) < 1e-9 or np.linalg.norm(right) < 1e-9 * np.linalg.norm(forward):
        raise SpecError("look_at: eye and target must differ and the view must not be along `up`")
    forward /= np.linalg.norm(forward)
    right /= np.linalg.norm(right)
    out = np.eye(4)
    out[:3, :3] = np.stack([right, np.cross(forward, right), forward], axis=1)
    out[:3, 3] = eye
    return out


def body_name(client_id: int, body: int) -> str:
    """The URDF robot name of a body (else its base link name, else `body<id>`)."""
    base, name = (
        s.decode(errors="replace") for s in p.getBodyInfo(body, physicsClientId=client_id)
    )
    name = name.removesuffix(".urdf")
    return name or base or f"body{body}"


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


class SceneWorld:
    """Bodies and scripted motion of a built-in scene, plus the sensors that look at it."""

    cameras: list[CameraSpec]
    lidars: list[LidarSpec]
    mounts: dict[str, int | tuple[int, int]]
    body_classes: dict[int, int]
    class_names: dict[int, str]

    def __init__(self, client_id: int) -> None:
        self.client_id = client_id
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client_id)
        p.setGravity(0, 0, -9.81, physicsClientId=client_id)
        p.setTimeStep(1 / PHYSICS_HZ, physicsClientId=client_id)
        self.body_classes = {}
        self.class_names = {}

    def label(self, body: int, class_name: str) -> int:
        """Give `body` the class `class_name` (ids numbered from 1 in order of first use)."""
        ids = {name: k for k, name in self.class_names.items()}
        cls = ids.get(class_name, len(ids) + 1)
        self.class_names[cls] = class_name
        self.body_classes[body] = cls
        return body

    def box(
        self,
        half_extents: Sequence[float],
        position: Sequence[float],
        rgba: Sequence[float],
        *,
        yaw: float = 0.0,
        mass: float = 0.0,
    ) -> int:
        c = self.client_id
        return p.createMultiBody(
            baseMass=mass,
            baseCollisionShapeIndex=p.createCollisionShape(
                p.GEOM_BOX, halfExtents=half_extents, physicsClientId=c
            ),
            baseVisualShapeIndex=p.createVisualShape(
                p.GEOM_BOX, halfExtents=half_extents, rgbaColor=rgba, physicsClientId=c
            ),
            basePosition=position,
            baseOrientation=p.getQuaternionFromEuler([0, 0, yaw]),
            physicsClientId=c,
        )

    def cylinder(
        self,
        radius: float,
        height: float,
        position: Sequence[float],
        rgba: Sequence[float],
        *,
        collides: bool = True,
    ) -> int:
        c = self.client_id
        shape = (
            p.createCollisionShape(p.GEOM_CYLINDER, radius=radius, height=height, physicsClientId=c)
            if collides
            else -1
        )
        return p.createMultiBody(
            baseMass=0.0,
            baseCollisionShapeIndex=shape,
            baseVisualShapeIndex=p.createVisualShape(
                p.GEOM_CYLINDER, radius=radius, length=height, rgbaColor=rgba, physicsClientId=c
            ),
            basePosition=position,
            physicsClientId=c,
        )

    def control(self, t: float) -> None:
        """Set motor targets and kinematic poses for sim time `t` (before a physics step)."""
        raise NotImplementedError

    def tick_data(self) -> dict[str, Any]:
        """State and scripted action now, as arrays (recorded with each episode tick)."""
        raise NotImplementedError


class TabletopWorld(SceneWorld):
    """A KUKA iiwa on a table pushing cubes, a duck and a lego brick around, seen from the front."""

    TABLE_TOP_Z = 0.626
    WORKSPACE = ((0.42, 0.78), (-0.3, 0.3))  # x, y ranges of the objects, metres
    PUSH_PERIOD_S = 4.0
    _LOWER = [-0.967, -2.0, -2.96, 0.19, -2.96, -2.09, -3.05]
    _UPPER = [0.967, 2.0, 2.96, 2.29, 2.96, 2.09, 3.05]
    _REST = [0.0, 0.4, 0.0, 1.6, 0.0, -1.1, 0.0]
    _EE_LINK = 6
    _EE_DOWN = p.getQuaternionFromEuler([0.0, -math.pi, 0.0])
    _HOVER_Z = 0.22  # above the table top, for the end-effector link frame
    _PUSH_Z = 0.085  # the flange's lowest point then clears the table by about a centimetre

    def __init__(self, client_id: int, rng: np.random.Generator, width: int, height: int) -> None:
        super().__init__(client_id)
        c = client_id
        self.rng = rng
        self.label(p.loadURDF("plane.urdf", physicsClientId=c), "floor")
        self.label(p.loadURDF("table/table.urdf", [0.5, 0, 0], physicsClientId=c), "table")
        self.arm = p.loadURDF(
            "kuka_iiwa/model.urdf",
            [-0.05, 0, self.TABLE_TOP_Z],
            useFixedBase=True,
            physicsClientId=c,
        )
        self.label(self.arm, "robot")
        self.objects: list[int] = []
        taken: list[np.ndarray] = []
        specs = [
            ("cube_small.urdf", 1.4, (0.85, 0.15, 0.12, 1), "cube"),
            ("cube_small.urdf", 1.4, (0.15, 0.6, 0.2, 1), "cube"),
            ("cube_small.urdf", 1.4, (0.15, 0.3, 0.85, 1), "cube"),
            ("duck_vhacd.urdf", 1.0, None, "duck"),
            ("lego/lego.urdf", 1.5, None, "lego"),
        ]
        for urdf, scale, rgba, name in specs:
            xy = self._free_spot(taken)
            taken.append(xy)
            yaw = float(rng.uniform(-math.pi, math.pi))
            body = p.loadURDF(
                urdf,
                [xy[0], xy[1], self.TABLE_TOP_Z + 0.05],
                p.getQuaternionFromEuler([0, 0, yaw]),
                globalScaling=scale,
                physicsClientId=c,
            )
            if rgba is not None:
                p.changeVisualShape(body, -1, rgbaColor=rgba, physicsClientId=c)
            self.objects.append(self.label(body, name))
        self._joints = list(range(p.getNumJoints(self.arm, physicsClientId=c)))
        home = np.array([0.45, 0.0, self.TABLE_TOP_Z + self._HOVER_Z])
        for _ in range(5):  # IK iterates from the current joints: converge from zero
            for joint, q in zip(self._joints, self._ik(home), strict=True):
                p.resetJointState(self.arm, joint, q, physicsClientId=c)
        self._drive(home)
        for _ in range(int(0.5 * PHYSICS_HZ)):  # let the objects settle on the table
            p.stepSimulation(physicsClientId=c)
        self._order = [int(i) for i in rng.permutation(len(self.objects))]
        self._cycle = -1
        self._waypoints: list[np.ndarray] = []
        self._last_target = home
        self.cameras = [
            CameraSpec(
                name="front",
                width=width,
                height=height,
                fov_deg=45.0,
                cam_to_body=look_at([1.3, -0.8, 1.2], [0.5, 0.0, 0.68]),
                near_m=0.1,
                far_m=10.0,
            )
        ]
        self.lidars = []
        self.mounts = {}

    def _free_spot(self, taken: list[np.ndarray]) -> np.ndarray:
        (x0, x1), (y0, y1) = self.WORKSPACE
        for _ in range(200):
            xy = np.array([self.rng.uniform(x0, x1), self.rng.uniform(y0, y1)])
            if all(np.linalg.norm(xy - other) > 0.12 for other in taken):
                return xy
        raise RuntimeError("tabletop: no free spot for an object; the workspace is too small")

    def _ik(self, position: Sequence[float]) -> list[float]:
        return list(
            p.calculateInverseKinematics(
                self.arm,
                self._EE_LINK,
                position,
                self._EE_DOWN,
                lowerLimits=self._LOWER,
                upperLimits=self._UPPER,
                jointRanges=[u - lo for u, lo in zip(self._UPPER, self._LOWER, strict=True)],
                restPoses=self._REST,
                maxNumIterations=50,
                physicsClientId=self.client_id,
            )
        )

    def _plan(self, cycle: int) -> list[np.ndarray]:
        """Waypoints of one push: hover behind an object, lower, push through, lift."""
        c = self.client_id
        top = self.TABLE_TOP_Z
        for k in range(len(self._order)):
            body = self.objects[self._order[(cycle + k) % len(self._order)]]
            pos = np.array(p.getBasePositionAndOrientation(body, physicsClientId=c)[0])
            if pos[2] > top and 0.3 < np.linalg.norm(pos[:2] - [-0.05, 0]) < 0.85:
                break
        else:
            return [self._last_target] * 5  # everything is out of reach: hold still
        (x0, x1), (y0, y1) = self.WORKSPACE
        goal = np.array([self.rng.uniform(x0, x1), self.rng.uniform(y0, y1)])
        heading = goal - pos[:2]
        heading = heading / max(np.linalg.norm(heading), 1e-6)
        start = pos[:2] - 0.09 * heading
        end = pos[:2] + 0.12 * heading
        hover, push = top + self._HOVER_Z, top + self._PUSH_Z
        return [
            self._last_target,
            np.array([*start, hover]),
            np.array([*start, push]),
            np.array([*end, push]),
            np.array([*end, hover]),
        ]

    def control(self, t: float) -> None:
        cycle, phase = divmod(t / self.PUSH_PERIOD_S, 1.0)
        if int(cycle) != self._cycle:
            self._cycle = int(cycle)
            self._waypoints = self._plan(self._cycle)
            self._last_target = self._waypoints[-1]
        # Segment boundaries within a cycle: travel, lower, push, lift.
        bounds = (0.0, 0.3, 0.45, 0.8, 1.0)
        seg = next(i for i in range(4) if phase < bounds[i + 1] or i == 3)
        alpha = _smoothstep((phase - bounds[seg]) / (bounds[seg + 1] - bounds[seg]))
        a, b = self._waypoints[seg], self._waypoints[seg + 1]
        self._drive((1 - alpha) * a + alpha * b)

    def _drive(self, ee_target: np.ndarray) -> None:
        """Servo the joints towards the IK solution for an end-effector position."""
        self.ee_target = ee_target
        p.setJointMotorControlArray(
            self.arm,
            self._joints,
            p.POSITION_CONTROL,
            targetPositions=self._ik(ee_target),
            forces=[300.0] * len(self._joints),
            positionGains=[0.3] * len(self._joints),
            physicsClientId=self.client_id,
        )

    def tick_data(self) -> dict[str, Any]:
        c = self.client_id
        joints = p.getJointStates(self.arm, self._joints, physicsClientId=c)
        poses = [p.getBasePositionAndOrientation(b, physicsClientId=c) for b in self.objects]
        return {
            "joint_positions": np.array([s[0] for s in joints], dtype=np.float32),
            "ee_target": self.ee_target.astype(np.float32),
            "object_poses": np.array([[*pos, *orn] for pos, orn in poses], dtype=np.float32),
        }


class StreetWorld(SceneWorld):
    """The pybullet_data racecar (scaled to car size) driving laps around a city block among
    parked cars, buildings, street lamps and pedestrians; a chase camera and a roof LiDAR
    ride on it."""

    CAR_SCALE = 4.0  # the MIT racecar is 1/10 scale; ×4 makes it about 1.8 m long
    BLOCK_HALF = (45.0, 30.0)  # half sizes of the loop of road centre lines, metres
    ROAD_HALF_WIDTH = 4.5
    SIDEWALK_M = 2.5
    LANE_OFFSET_M = 1.25  # the car keeps right of the centre line (outside of the loop)
    CORNER_RADIUS_M = 7.0
    ROAD_Z, KERB_Z = 0.02, 0.15  # heights of the road and sidewalk surfaces
    SPEED_MPS = 7.0
    _WHEELS = (2, 3, 5, 7)
    _STEERING = (4, 6)
    _WHEEL_RADIUS = 0.05  # metres at scale 1
    _WHEELBASE = 0.325
    _ASPHALT = (0.2, 0.2, 0.22, 1)
    _PAVEMENT = (0.6, 0.6, 0.58, 1)

    def __init__(self, client_id: int, rng: np.random.Generator, width: int, height: int) -> None:
        super().__init__(client_id)
        c = client_id
        self.rng = rng
        ground = p.createMultiBody(
            baseMass=0.0,
            baseCollisionShapeIndex=p.createCollisionShape(p.GEOM_PLANE, physicsClientId=c),
            baseVisualShapeIndex=p.createVisualShape(
                p.GEOM_BOX,
                halfExtents=[200, 200, 1.0],  # thin huge boxes lose their height in EGL
                visualFramePosition=[0, 0, -1.0],
                rgbaColor=(0.36, 0.45, 0.3, 1),
                physicsClientId=c,
            ),
            physicsClientId=c,
        )
        self.label(ground, "ground")
        self._build_streets()
        self._place_obstacles()
        self.car = p.loadURDF(
            "racecar/racecar.urdf", globalScaling=self.CAR_SCALE, physicsClientId=c
        )
        # Driven kinematically along the lane: no mass, so contacts and gravity leave it be.
        p.changeDynamics(self.car, -1, mass=0.0, physicsClientId=c)
        self.label(self.car, "ego_car")
        self.ego_pose = np.zeros(7)
        self.steer_rad = 0.0
        self.control(0.0)
        s = self.CAR_SCALE
        self.cameras = [
            CameraSpec(
                name="chase",
                width=width,
                height=height,
                fov_deg=55.0,
                cam_to_body=look_at([-4.5, 0.0, 2.3], [5.0, 0.0, 0.4]),
                near_m=0.5,  # EGL depth error grows as distance² / near
                far_m=150.0,
            )
        ]
        lidar_to_body = np.eye(4)
        lidar_to_body[:3, 3] = [0.2 * s, 0.0, 0.2 * s + 0.35]
        self.lidars = [LidarSpec(name="lidar", lidar_to_body=lidar_to_body)]
        self.mounts = {"chase": self.car, "lidar": self.car}

    def _build_streets(self) -> None:
        """Four straight streets around the block; their crossings form the corners."""
        a, b = self.BLOCK_HALF
        w, walk = self.ROAD_HALF_WIDTH, self.SIDEWALK_M
        dash = p.createVisualShape(
            p.GEOM_BOX,
            halfExtents=[1.5, 0.08, 0.01],
            rgbaColor=(0.95, 0.95, 0.9, 1),
            physicsClientId=self.client_id,
        )
        for horizontal, centre in ((True, -b), (True, b), (False, -a), (False, a)):
            half = a if horizontal else b
            yaw = 0.0 if horizontal else math.pi / 2

            def place(along: float, across: float, horizontal: bool = horizontal) -> list[float]:
                return [along, across] if horizontal else [across, along]

            # Slabs reach well below the ground: EGL draws very thin large boxes flattened.
            road = self.box(
                [half + w, w, 0.25], [*place(0, centre), self.ROAD_Z - 0.25], self._ASPHALT, yaw=yaw
            )
            self.label(road, "road")
            for side in (-1, 1):  # sidewalks between the crossings, and the corner squares
                across = centre + side * (w + walk / 2)
                walkway = self.box(
                    [half - w, walk / 2, 0.3],
                    [*place(0, across), self.KERB_Z - 0.3],
                    self._PAVEMENT,
                    yaw=yaw,
                )
                self.label(walkway, "sidewalk")
                if horizontal:
                    for end in (-1, 1):
                        for corner_side in (-1, 1):
                            xy = [end * (a + corner_side * (w + walk / 2)), across]
                            corner = self.box(
                                [walk / 2, walk / 2, 0.3], [*xy, self.KERB_Z - 0.3], self._PAVEMENT
                            )
                            self.label(corner, "sidewalk")
            # Dashed centre line, clear of the crossings; drawn only (the road under it collides).
            inner = half - w - 1.5
            for x in np.arange(-inner, inner - 1.5, 6.0):
                body = p.createMultiBody(
                    baseMass=0.0,
                    baseVisualShapeIndex=dash,
                    basePosition=[*place(x, centre), self.ROAD_Z - 0.008],
                    baseOrientation=p.getQuaternionFromEuler([0, 0, yaw]),
                    physicsClientId=self.client_id,
                )
                self.label(body, "lane_marking")

    def _place_obstacles(self) -> None:
        rng = self.rng
        a, b = self.BLOCK_HALF
        w, walk = self.ROAD_HALF_WIDTH, self.SIDEWALK_M
        car_colours = [
            (0.7, 0.1, 0.1, 1),
            (0.1, 0.2, 0.6, 1),
            (0.85, 0.85, 0.85, 1),
            (0.1, 0.1, 0.1, 1),
            (0.8, 0.6, 0.1, 1),
        ]
        for _ in range(12):  # parked cars along both kerbs, clear of the crossings
            x, y, yaw, _ = self._street_spot(3.5 * rng.choice([-1.0, 1.0]), margin=w + 4)
            colour = car_colours[int(rng.integers(len(car_colours)))]
            body = self.box([2.0, 0.85, 0.7], [x, y, 0.72], colour, yaw=yaw)
            self.label(body, "parked_car")
        for _ in range(10):  # street lamps at the outer edge of the sidewalks
            x, y, _, _ = self._street_spot((w + walk - 0.4) * rng.choice([-1.0, 1.0]), margin=w)
            self.label(self.cylinder(0.12, 5.0, [x, y, 2.5], (0.3, 0.3, 0.32, 1)), "pole")
        for inside, count in ((True, 6), (False, 14)):  # buildings in and around the block
            for _ in range(count):
                size = rng.uniform([4, 4, 4], [9, 9, 14])
                shade = rng.uniform(0.45, 0.8)
                if inside:
                    x = rng.uniform(-a + w + walk + size[0], a - w - walk - size[0])
                    y = rng.uniform(-b + w + walk + size[1], b - w - walk - size[1])
                else:
                    edge = w + walk + 3 + max(size[:2])
                    x, y, _, _ = self._street_spot(edge, margin=0.0)
                colour = (shade, shade * 0.92, shade * 0.85, 1)
                self.label(self.box(size, [x, y, size[2]], colour), "building")
        self._walkers = []
        for _ in range(6):
            offset = (w + walk / 2) * rng.choice([-1.0, 1.0])
            _, _, _, where = self._street_spot(offset, margin=w + walk)
            body = self.box([0.25, 0.3, 0.85], [0, 0, 0.85], (*rng.uniform(0.2, 0.9, 3), 1))
            speed = rng.uniform(0.8, 1.5) * rng.choice([-1.0, 1.0])
            self._walkers.append((self.label(body, "pedestrian"), where, speed))
        self.control_walkers(0.0)

    def _street_spot(
        self, offset: float, *, margin: float
    ) -> tuple[float, float, float, tuple[int, float, float]]:
        """A random point `offset` metres off a random street's centre line (positive is
        away from the block), at least `margin` from the block corners: x, y, street yaw and
        (street, along, offset) for moving along it."""
        street = int(self.rng.integers(4))
        along = float(self.rng.uniform(-1, 1))
        return (*self._on_street(street, along, offset, margin), (street, along, offset))

    def _on_street(
        self, street: int, along: float, offset: float, margin: float
    ) -> tuple[float, float, float]:
        a, b = self.BLOCK_HALF
        if street < 2:  # bottom (y = -b), top (y = +b)
            sign = -1.0 if street == 0 else 1.0
            return along * (a - margin), sign * (b + offset), 0.0
        sign = -1.0 if street == 2 else 1.0
        return sign * (a + offset), along * (b - margin), math.pi / 2

    def control_walkers(self, t: float) -> None:
        a, _ = self.BLOCK_HALF
        for body, (street, along0, offset), speed in self._walkers:
            half = a if street < 2 else self.BLOCK_HALF[1]
            span = half - self.ROAD_HALF_WIDTH - self.SIDEWALK_M
            # Walk to and fro along the sidewalk (a triangle wave in the normalised position).
            phase = (along0 + 1 + speed * t / span) % 4
            along = phase - 1 if phase < 2 else 3 - phase
            x, y, yaw = self._on_street(
                street, along, offset, self.ROAD_HALF_WIDTH + self.SIDEWALK_M
            )
            p.resetBasePositionAndOrientation(
                body,
                [x, y, 0.85 + 0.15],
                p.getQuaternionFromEuler([0, 0, yaw]),
                physicsClientId=self.client_id,
            )

    def _line(self, s: float) -> np.ndarray:
        """Point on the driven line at arc length `s`: an anticlockwise rounded rectangle."""
        r = self.CORNER_RADIUS_M
        a = self.BLOCK_HALF[0] + self.LANE_OFFSET_M - r
        b = self.BLOCK_HALF[1] + self.LANE_OFFSET_M - r
        quarter = math.pi * r / 2
        pieces = [  # (length, start point, direction) of straights, then corner centres
            (2 * a, (-a, -b - r), (1, 0), (a, -b), -math.pi / 2),
            (2 * b, (a + r, -b), (0, 1), (a, b), 0.0),
            (2 * a, (a, b + r), (-1, 0), (-a, b), math.pi / 2),
            (2 * b, (-a - r, b), (0, -1), (-a, -b), math.pi),
        ]
        s %= sum(length + quarter for length, *_ in pieces)
        for length, start, direction, centre, angle0 in pieces:
            if s < length:
                return np.array(start) + s * np.array(direction)
            s -= length
            if s < quarter:
                angle = angle0 + s / r
                return np.array(centre) + r * np.array([math.cos(angle), math.sin(angle)])
            s -= quarter
        raise AssertionError("unreachable: s is reduced modulo the lap length")

    def control(self, t: float) -> None:
        # Start halfway along the first street rather than in a crossing.
        c, s = self.client_id, self.SPEED_MPS * t + self.BLOCK_HALF[0] - self.CORNER_RADIUS_M
        here, ahead, behind = self._line(s), self._line(s + 0.5), self._line(s - 0.5)
        tangent = ahead - behind
        yaw = math.atan2(tangent[1], tangent[0])
        first, second = here - behind, ahead - here
        cross = first[0] * second[1] - first[1] * second[0]
        turn = math.atan2(cross, float(np.dot(first, second)))
        self.steer_rad = math.atan(self._WHEELBASE * self.CAR_SCALE * turn / 0.5)
        orn = p.getQuaternionFromEuler([0, 0, yaw])
        p.resetBasePositionAndOrientation(self.car, [*here, self.ROAD_Z], orn, physicsClientId=c)
        p.resetBaseVelocity(self.car, [0, 0, 0], [0, 0, 0], physicsClientId=c)
        spin = s / (self._WHEEL_RADIUS * self.CAR_SCALE)
        for joint in self._WHEELS:
            p.resetJointState(self.car, joint, spin, physicsClientId=c)
        for joint in self._STEERING:
            p.resetJointState(self.car, joint, self.steer_rad, physicsClientId=c)
        self.ego_pose = np.array([*here, self.ROAD_Z, *orn])
        self.control_walkers(t)

    def tick_data(self) -> dict[str, Any]:
        return {
            "ego_pose": self.ego_pose.astype(np.float32),  # x, y, z, qx, qy, qz, qw
            "speed_mps": np.array(self.SPEED_MPS, dtype=np.float32),
            "steer_rad": np.array(self.steer_rad, dtype=np.float32),
        }


#: Scene name -> world builder `(client_id, rng, width, height) -> SceneWorld`.
SCENE_WORLDS: dict[str, Callable[[int, np.random.Generator, int, int], SceneWorld]] = {
    "tabletop": TabletopWorld,
    "street": StreetWorld,
}
