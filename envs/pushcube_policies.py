"""Image-based PushCube policies: scripted pushing with noise, near-misses, random.

Every policy here reads only the RGB observation (it finds the red pusher, blue cube and
green goal by colour), so the same callable runs unchanged in the real PyBullet env and in
the learned env. Each is importable as `module:function` for `cosmos-sim eval-policies`:
`obs [H, W, 3] uint8 -> action [2] float32`. Noisy policies draw from their own generator;
`reseed(seed)` makes a run reproducible.

`POLICIES` lists the ranking set used by `benchmarks/policy_ranking.py`, chosen to span
success rates from about 0 to about 100 % in the real env.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cosmos_sim.envs.pushcube import CUBE_HALF_M, HALF_VIEW_M, PUSHER_RADIUS_M

Policy = Callable[[np.ndarray], np.ndarray]
MAX_STEP_M = 0.02


def _centroid(mask: np.ndarray) -> np.ndarray | None:
    rows, cols = np.nonzero(mask)
    if rows.size < 2:
        return None
    size = mask.shape[0]
    x = (cols.mean() + 0.5) / size * 2 * HALF_VIEW_M - HALF_VIEW_M
    y = HALF_VIEW_M - (rows.mean() + 0.5) / size * 2 * HALF_VIEW_M
    return np.array([x, y])


def detect(obs: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(pusher, cube, goal) xy in metres from the colours of a top-down frame; None if unseen."""
    rgb = obs.astype(np.int16)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    pusher = (r > 150) & (g < 110) & (b < 110)
    cube = (b > 150) & (r < 110) & (g < 150)
    goal = (g > 110) & (r < 110) & (b < 110)
    return _centroid(pusher), _centroid(cube), _centroid(goal)


def push_action(
    obs: np.ndarray, aim_offset_m: float = 0.0, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Go behind the cube (seen from the goal), then push it through the goal.

    `aim_offset_m` shifts the aim point sideways from the goal centre: > goal radius gives
    near-misses that push the cube past the goal.
    """
    pusher, cube, goal = detect(obs)
    if pusher is None or cube is None or goal is None:
        rng = rng or np.random.default_rng()
        return rng.uniform(-1, 1, 2).astype(np.float32)
    to_goal = goal - cube
    dist = float(np.linalg.norm(to_goal))
    u = to_goal / max(dist, 1e-6)
    n = np.array([-u[1], u[0]])
    aim = goal + n * aim_offset_m
    to_aim = aim - cube
    u = to_aim / max(float(np.linalg.norm(to_aim)), 1e-6)
    n = np.array([-u[1], u[0]])
    rel = pusher - cube
    along, across = float(rel @ u), float(rel @ n)
    standoff = CUBE_HALF_M + PUSHER_RADIUS_M + 0.005
    if along > -standoff + 0.01:
        # In front of or beside the cube: go round it on the pusher's side.
        side = 1.0 if across >= 0 else -1.0
        target = cube + n * side * 0.075 - u * 0.02
        if along < 0:
            target = cube - u * standoff * 1.4 + n * side * 0.04
    elif abs(across) > 0.012:
        target = cube - u * standoff * 1.2
    else:
        target = pusher + u * MAX_STEP_M - n * across
    action = (target - pusher) / MAX_STEP_M
    return np.clip(action, -1.0, 1.0).astype(np.float32)


class NoisyScripted:
    """Scripted pushing with Gaussian action noise `sigma` and, with probability
    `random_prob`, a uniformly random action instead."""

    def __init__(
        self, sigma: float = 0.0, random_prob: float = 0.0, aim_offset_m: float = 0.0, seed: int = 0
    ) -> None:
        self.sigma, self.random_prob, self.aim_offset_m = sigma, random_prob, aim_offset_m
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if self.random_prob and self.rng.random() < self.random_prob:
            return self.rng.uniform(-1, 1, 2).astype(np.float32)
        action = push_action(obs, self.aim_offset_m, self.rng)
        if self.sigma:
            action = action + self.rng.normal(0.0, self.sigma, 2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


class RandomPolicy:
    """Uniform random actions."""

    def __init__(self, seed: int = 0) -> None:
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1, 1, 2).astype(np.float32)


def to_cube(obs: np.ndarray) -> np.ndarray:
    """Drive the pusher at the cube and keep shoving: succeeds only by luck."""
    pusher, cube, _ = detect(obs)
    if pusher is None or cube is None:
        return np.zeros(2, np.float32)
    return np.clip((cube - pusher) / MAX_STEP_M, -1, 1).astype(np.float32)


scripted = NoisyScripted(0.0)
scripted_noise_10 = NoisyScripted(1.0, seed=1)
scripted_noise_15 = NoisyScripted(1.5, seed=2)
scripted_noise_25 = NoisyScripted(2.5, seed=3)
scripted_eps_50 = NoisyScripted(0.2, random_prob=0.5, seed=4)
scripted_eps_75 = NoisyScripted(0.2, random_prob=0.75, seed=5)
near_miss = NoisyScripted(0.1, aim_offset_m=0.07, seed=6)
near_miss_wide = NoisyScripted(0.1, aim_offset_m=0.09, seed=7)
random_policy = RandomPolicy(seed=8)

POLICIES: dict[str, Policy] = {
    "scripted": scripted,
    "scripted_noise_10": scripted_noise_10,
    "scripted_noise_15": scripted_noise_15,
    "scripted_noise_25": scripted_noise_25,
    "scripted_eps_50": scripted_eps_50,
    "scripted_eps_75": scripted_eps_75,
    "near_miss": near_miss,
    "near_miss_wide": near_miss_wide,
    "to_cube": to_cube,
    "random": random_policy,
}


def reseed_all(seed: int) -> None:
    """Reseed every stateful policy in `POLICIES` (each from its own offset)."""
    for offset, policy in enumerate(POLICIES.values()):
        if hasattr(policy, "reseed"):
            policy.reseed(seed * 1000 + offset)


def features(obs: np.ndarray) -> np.ndarray:
    """10-D features from a frame: pusher, cube, goal xy (m), cube - pusher, goal - cube;
    zeros for an object not seen. What the PPO policies below act on."""
    found = [np.zeros(2) if v is None else v for v in detect(obs)]
    pusher, cube, goal = found
    return np.concatenate([pusher, cube, goal, cube - pusher, goal - cube]).astype(np.float32) * 5


class FeaturePPO:
    """A stable-baselines3 PPO model trained on `features(obs)`, acting on frames."""

    def __init__(self, path: str, deterministic: bool = True) -> None:
        from stable_baselines3 import PPO

        self.path = path
        self.model = PPO.load(path, device="cpu")
        self.deterministic = deterministic

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        action, _ = self.model.predict(features(obs), deterministic=self.deterministic)
        return np.asarray(action, np.float32)
