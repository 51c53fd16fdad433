"""stable-baselines3 on a LearnedVectorEnv: all of SB3's envs in one batched model call.

SB3 keeps its own vector API (`step_async` / `step_wait`, same-step autoreset with the last
observation in `info["terminal_observation"]`). SB3's `DummyVecEnv` over N `LearnedEnv`s
would make N model calls per step; `SB3VecEnv` puts SB3 on one `LearnedVectorEnv` in
Gymnasium's SAME_STEP autoreset mode instead, so each SB3 step is one model call for all
N lanes (on the model's GPU when it has one).

    from stable_baselines3 import PPO
    from cosmos_sim.envs.sb3 import SB3VecEnv
    venv = SB3VecEnv(gym.make_vec("cosmos_sim/LearnedPushCube-v0", num_envs=16,
                                  vectorization_mode="vector_entry_point"))
    PPO("CnnPolicy", venv).learn(100_000)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

from cosmos_sim.envs.vector import LearnedVectorEnv, core_of

try:
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv
except ImportError as exc:  # optional: only this adapter needs it
    raise ImportError(
        "cosmos_sim.envs.sb3 needs stable-baselines3: pip install stable-baselines3"
    ) from exc


class SB3VecEnv(VecEnv):
    """A `LearnedVectorEnv` behind stable-baselines3's `VecEnv` API."""

    def __init__(self, env: Any) -> None:
        vector = getattr(env, "unwrapped", env)
        if not isinstance(vector, LearnedVectorEnv):
            raise TypeError(
                f"SB3VecEnv wraps a LearnedVectorEnv, got {type(vector).__name__}; build one "
                "with gymnasium.make_vec(..., vectorization_mode='vector_entry_point')"
            )
        if vector.autoreset_mode != AutoresetMode.SAME_STEP:  # SB3's own convention
            vector = LearnedVectorEnv.from_core(
                core_of(vector),
                autoreset_mode=AutoresetMode.SAME_STEP,
                render_mode=vector.render_mode,
                render_fps=vector.metadata["render_fps"],
            )
        self.env = vector
        self._actions: np.ndarray | None = None
        super().__init__(
            vector.num_envs, vector.single_observation_space, vector.single_action_space
        )

    def reset(self) -> np.ndarray:
        # One generator drives all lanes, so SB3's per-env seeds collapse to the first.
        obs, _ = self.env.reset(seed=self._seeds[0])
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [
            {"success": bool(s), "TimeLimit.truncated": bool(tr and not te)}
            for s, te, tr in zip(info["success"], terminated, truncated, strict=True)
        ]
        for lane in np.flatnonzero(dones):
            infos[lane]["terminal_observation"] = info["final_obs"][lane]
            infos[lane]["success"] = bool(info["final_info"]["success"][lane])
        return obs, reward.astype(np.float32), dones, infos

    def close(self) -> None:
        self.env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.env.render()
        return [None] * self.num_envs if frames is None else list(frames)

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.env, attr_name)] * len(self._lanes(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(
        self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any
    ) -> list[Any]:
        return [getattr(self.env, method_name)(*args, **kwargs)] * len(self._lanes(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._lanes(indices))

    def _lanes(self, indices: None | int | Iterable[int]) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)
