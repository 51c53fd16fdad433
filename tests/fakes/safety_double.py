"""A safety-checker test double for tiny random Cosmos pipelines (tests only).

Same shape as diffusers' own test double: an object with `to`, `check_text_safety` and
`check_video_safety`. It lets everything through, so the diffusers backend accepts it only
for pipelines far too small to be Cosmos weights (see cosmos_sim.transfer.diffusers_backend).
"""

from __future__ import annotations

import numpy as np


class PassThroughSafetyChecker:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.videos = 0

    def to(self, *_, **__) -> PassThroughSafetyChecker:
        return self

    def check_text_safety(self, prompt: str) -> bool:
        self.texts.append(prompt)
        return True

    def check_video_safety(self, frames: np.ndarray) -> np.ndarray:
        self.videos += 1
        return frames
