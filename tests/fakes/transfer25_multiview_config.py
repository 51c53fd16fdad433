"""A pydantic mirror of Cosmos Transfer 2.5's multiview spec parser, for spec tests.

Mirrors `MultiviewInferenceArguments` and `ViewConfig` in nvidia-cosmos/cosmos-transfer2.5
`cosmos_transfer2/multiview_config.py` at commit 2ff49d0717af02057ae79bc75c00fbff9da1b4e7
(HEAD, 2026-06-07) on top of `CommonInferenceArguments` (`cosmos_transfer2/config.py`): same
field names, bounds and defaults, `extra="forbid"`, paths resolved after a chdir to the spec
file's folder, and the same `validate_input_paths` rule (a view is active when it has a
control_path; input paths are required for active views when num_conditional_frames > 0 and
not autoregressive; in autoregressive mode per-view conditional frames are 0, 1 or 5, all
zero or all set, and input paths are required only when set). `chunks_for` mirrors how
multiview.py clamps `num_chunks` to the control length.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pydantic
from fakes.transfer25_config import UPSTREAM_COMMIT, ResolvedFilePath, _cwd

__all__ = ["UPSTREAM_COMMIT", "MultiviewInferenceArguments", "load_multiview_spec"]

VIEWS = ("front_wide", "cross_right", "rear_right", "rear", "rear_left", "cross_left", "front_tele")
CHUNK_FRAMES = 29
"""Frames per view of one chunk (state_t 8 latent frames through the Wan tokenizer)."""


class ViewConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    input_path: ResolvedFilePath | None = None
    control_path: ResolvedFilePath | None = None
    num_conditional_frames_per_view: int = pydantic.Field(default=0, ge=0, le=5)


class MultiviewInferenceArguments(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: str
    prompt_path: ResolvedFilePath | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    seed: int = 0
    guidance: Annotated[int, pydantic.Field(ge=0, le=7)] = 3
    num_conditional_frames: int = 1
    control_weight: Annotated[float, pydantic.Field(ge=0.0, le=1.0)] = 1.0
    front_wide: ViewConfig = pydantic.Field(default_factory=ViewConfig)
    rear: ViewConfig = pydantic.Field(default_factory=ViewConfig)
    rear_left: ViewConfig = pydantic.Field(default_factory=ViewConfig)
    rear_right: ViewConfig = pydantic.Field(default_factory=ViewConfig)
    cross_left: ViewConfig = pydantic.Field(default_factory=ViewConfig)
    cross_right: ViewConfig = pydantic.Field(default_factory=ViewConfig)
    front_tele: ViewConfig = pydantic.Field(default_factory=ViewConfig)
    fps: pydantic.PositiveInt = 10
    num_steps: int = 35
    enable_autoregressive: bool = False
    num_chunks: int = pydantic.Field(default=2, ge=1)
    chunk_overlap: int = 1
    save_combined_views: bool = True

    @property
    def active_views(self) -> list[tuple[str, ViewConfig]]:
        return [(v, getattr(self, v)) for v in VIEWS if getattr(self, v).control_path is not None]

    @pydantic.model_validator(mode="after")
    def validate_input_paths(self) -> MultiviewInferenceArguments:
        active = self.active_views
        if not active:
            raise ValueError("At least one view with a control_path must be provided.")
        missing = [v for v, c in active if c.input_path is None]
        if self.num_conditional_frames > 0 and not self.enable_autoregressive and missing:
            raise ValueError(f"Missing input_path for views: {', '.join(missing)}")
        if self.enable_autoregressive:
            per_view = [c.num_conditional_frames_per_view for _, c in active]
            if any(n not in (0, 1, 5) for n in per_view):
                raise ValueError("num_conditional_frames_per_view must be one of [0, 1, 5]")
            if any(n == 0 for n in per_view) and not all(n == 0 for n in per_view):
                raise ValueError("num_conditional_frames_per_view must be consistent")
            if any(n > 0 for n in per_view) and missing:
                raise ValueError(f"Missing input_path for views: {', '.join(missing)}")
        return self

    def chunks_for(self, control_frames: int, video_fps: float) -> int:
        """How many chunks multiview.py generates for controls of this length and rate."""
        if video_fps % self.fps:
            raise ValueError(f"Video file fps {video_fps} is not evenly divisible by {self.fps}")
        available = control_frames // int(video_fps / self.fps)
        if available < CHUNK_FRAMES:
            raise ValueError(f"Not enough frames in control videos: need {CHUNK_FRAMES}")
        if not self.enable_autoregressive:
            return 1
        most = max(1, 1 + (available - CHUNK_FRAMES) // (CHUNK_FRAMES - self.chunk_overlap))
        return min(self.num_chunks, most)


def load_multiview_spec(path: str | Path) -> MultiviewInferenceArguments:
    path = Path(path)
    with _cwd(path.parent):
        return MultiviewInferenceArguments.model_validate(json.loads(path.read_text()))
