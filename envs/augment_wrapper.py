"""`AugmentObservation`: a Gymnasium wrapper that augments each step's camera frame.

For our PyBullet envs (`cosmos_sim/PushCube-v0`), which keep the SensorFrame behind their
last observation in `last_frame`. Each step's frame goes to an `Augmenter` (one per
episode, the backend built once and kept); what comes back is reported as:

- `mode="info"`: `info["augmented"]` is the newest augmented frame (None before the first),
  `info["augmented_tick"]` the step it shows and `info["augmented_lag_steps"]` how many
  steps behind the current one it is. With `wait=False` (the default here) the policy never
  waits for the backend, so the frame may lag; with `wait=True` it is this step's.
- `mode="observation"`: the observation *is* this step's augmented frame (the wrapper waits
  for it: a policy must not see frames from the past without knowing), and the simulator's
  own frame is in `info["sim_observation"]`; lag is 0 by construction.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from cosmos_sim.augment import Augmented, Augmenter
from cosmos_sim.transfer.base import TransferBackend, make_backend
from cosmos_sim.types import SpecError

MODES = ("info", "observation")
WAIT_TIMEOUT_S = 60.0
"""Longest a waiting step waits for its frame before the backend counts as stuck."""


class AugmentObservation(gym.Wrapper):
    """Adds (or substitutes) the augmented frame of each step; see the module doc."""

    def __init__(
        self,
        env: gym.Env,
        backend: str | TransferBackend = "appearance",
        *,
        mode: str = "info",
        wait: bool | None = None,
        prompt: str = "",
        seed: int = 0,
        backend_options: dict[str, Any] | None = None,
        **augmenter_options: Any,
    ) -> None:
        super().__init__(env)
        if mode not in MODES:
            raise SpecError(f"AugmentObservation.mode={mode!r}: choose one of {list(MODES)}")
        if mode == "observation" and wait is False:
            raise SpecError(
                "AugmentObservation: mode='observation' waits for each step's frame; use "
                "mode='info' to step without waiting"
            )
        self.mode = mode
        self.wait = mode == "observation" if wait is None else wait
        self.backend = (
            make_backend(backend, **(backend_options or {}))
            if isinstance(backend, str)
            else backend
        )
        self.options = {"prompt": prompt, "seed": seed, "chunk_frames": 1,
                        "resolution": "camera", **augmenter_options}  # fmt: skip
        self.augmenter: Augmenter | None = None
        self.latest: Augmented | None = None
        self.step_index = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        if self.augmenter is not None:
            self.augmenter.close()
        self.augmenter = Augmenter(self.backend, **self.options)
        self.latest, self.step_index = None, 0
        return self._augment(obs, info)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.step_index += 1
        obs, info = self._augment(obs, info)
        return obs, reward, terminated, truncated, info

    def _augment(self, obs: np.ndarray, info: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        assert self.augmenter is not None  # made by reset
        frame = getattr(self.env.unwrapped, "last_frame", None)
        if frame is None:
            raise SpecError(
                "AugmentObservation needs an env that keeps the SensorFrame behind its "
                f"observation in `last_frame` (our PyBullet envs do); "
                f"{type(self.env.unwrapped).__name__} does not"
            )
        self.augmenter.submit([frame])
        self._take(self.augmenter.poll())
        while self.wait and (self.latest is None or self.latest.tick < frame.frame_index):
            got = self.augmenter.poll(timeout_s=WAIT_TIMEOUT_S)
            if not got:
                raise TimeoutError(
                    f"the augment backend gave no frame for {WAIT_TIMEOUT_S} s; it is stuck "
                    "or far too slow for a waiting wrapper (use mode='info', wait=False)"
                )
            self._take(got)
        info = dict(info)
        latest = self.latest
        info["augmented"] = None if latest is None else latest.frame
        info["augmented_tick"] = None if latest is None else latest.tick
        info["augmented_lag_steps"] = None if latest is None else frame.frame_index - latest.tick
        if self.mode == "observation":
            info["sim_observation"] = obs
            obs = latest.frame
        return obs, info

    def _take(self, items: list[Augmented]) -> None:
        if items:
            self.latest = max(items, key=lambda item: item.tick)

    def close(self) -> None:
        if self.augmenter is not None:
            self.augmenter.close()
            self.augmenter = None
        super().close()
