"""A pydantic mirror of Cosmos Transfer 2.5's multiview spec parser, for spec tests.

Mirrors `MultiviewInferenceArguments` and `ViewConfig` in nvidia-cosmos/cosmos-transfer2.5
`cosmos_transfer2/multiview_config.py` (commit 0bd524d10fb29640379dc8cdcea7b48309362449) on
top of `CommonInferenceArguments` (`cosmos_transfer2/config.py`): same field names, bounds
and defaults, `extra="forbid"`, paths resolved after a chdir to the spec file's folder, and
the same `validate_input_paths` rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pydantic
from fakes.transfer25_config import ResolvedFilePath, _cwd

VIEWS = ("front_wide", "rear", "rear_left", "rear_right", "cross_left", "cross_right", "front_tele")


class ViewConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    input_path: ResolvedFilePath | None = None
    control_path: ResolvedFilePath
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
    front_wide: ViewConfig
    rear: ViewConfig
    rear_left: ViewConfig
    rear_right: ViewConfig
    cross_left: ViewConfig
    cross_right: ViewConfig
    front_tele: ViewConfig
    fps: pydantic.PositiveInt = 10
    num_steps: int = 35
    enable_autoregressive: bool = False
    num_chunks: int = pydantic.Field(default=2, ge=1)
    chunk_overlap: int = 1
    save_combined_views: bool = True

    @pydantic.model_validator(mode="after")
    def validate_input_paths(self) -> MultiviewInferenceArguments:
        if self.num_conditional_frames > 0 or self.enable_autoregressive:
            missing = [v for v in VIEWS if getattr(self, v).input_path is None]
            if missing:
                raise ValueError(f"Missing input_path for views: {', '.join(missing)}")
        return self


def load_multiview_spec(path: str | Path) -> MultiviewInferenceArguments:
    path = Path(path)
    with _cwd(path.parent):
        return MultiviewInferenceArguments.model_validate(json.loads(path.read_text()))
