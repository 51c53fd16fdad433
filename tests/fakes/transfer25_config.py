"""A pydantic mirror of Cosmos Transfer 2.5's inference spec parser, for spec tests.

Mirrors `InferenceArguments` and its control configs in nvidia-cosmos/cosmos-transfer2.5
`cosmos_transfer2/config.py` (read at commit 08aa5ae661401999c57c6233719c89088d4fbfa5): the
same field names, types, bounds and defaults, `extra="forbid"` at the top level, and the same
path handling (`CommonInferenceArguments._from_file` chdirs to the spec file's folder, then
`ResolvedFilePath` = `pydantic.FilePath` made absolute). Cosmos' control configs do not forbid
extra keys; this mirror does, to be stricter than the real parser.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import pydantic

ResolvedFilePath = Annotated[pydantic.FilePath, pydantic.AfterValidator(lambda p: p.absolute())]
ControlWeight = Annotated[float, pydantic.Field(ge=0.0, le=1.0)]
Threshold = Literal["very_low", "low", "medium", "high", "very_high"]


class ControlConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    control_path: ResolvedFilePath | None = None
    control_weight: ControlWeight = 1.0
    mask_path: ResolvedFilePath | None = None
    mask_prompt: str | None = None


class DepthConfig(ControlConfig):
    pass


class BlurConfig(ControlConfig):
    preset_blur_strength: Threshold = "medium"


class EdgeConfig(ControlConfig):
    preset_edge_threshold: Threshold = "medium"


class SegConfig(ControlConfig):
    control_prompt: str | None = None


class InferenceArguments(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: str
    prompt_path: ResolvedFilePath | None = None
    prompt: str
    negative_prompt: str = "default"
    seed: int = 2025
    guidance: Annotated[int, pydantic.Field(ge=0, le=7)] = 3
    video_path: ResolvedFilePath
    max_frames: pydantic.PositiveInt | None = None
    context_frame_index: pydantic.PositiveInt | None = None
    image_context_path: ResolvedFilePath | None = None
    num_conditional_frames: Literal[0, 1, 2] = 1
    resolution: str = "720"
    sigma_max: str | None = None
    num_video_frames_per_chunk: pydantic.PositiveInt = 93
    num_steps: pydantic.PositiveInt = 35
    show_control_condition: bool = False
    show_input: bool = False
    keep_input_resolution: bool = True
    edge: EdgeConfig | None = None
    depth: DepthConfig | None = None
    vis: BlurConfig | None = None
    seg: SegConfig | None = None

    def model_post_init(self, __context: object) -> None:
        if not any(getattr(self, k) is not None for k in ("edge", "vis", "depth", "seg")):
            raise ValueError("No controls provided")


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def load_spec_file(path: str | Path) -> list[InferenceArguments]:
    """Parse a .json or .jsonl spec the way Cosmos' `_from_file` does (cwd = spec folder)."""
    path = Path(path)
    if path.suffix == ".json":
        rows = [json.loads(path.read_text())]
    elif path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
    else:
        raise ValueError(f"Unsupported file extension: {path.suffix}")
    with _cwd(path.parent):
        return [InferenceArguments.model_validate(row) for row in rows]
