"""A pydantic mirror of Cosmos Transfer 2.5's inference spec parser, for spec tests.

Mirrors `InferenceArguments` and its control configs in nvidia-cosmos/cosmos-transfer2.5
`cosmos_transfer2/config.py` at commit 2ff49d0717af02057ae79bc75c00fbff9da1b4e7 (HEAD,
2026-06-07): the same field names, types, bounds and defaults (guided generation included),
`extra="forbid"` at the top level, the same post-init rules (at least one control; vis and
`image_context_path` not together), the same path handling (`CommonInferenceArguments.
_from_file` chdirs to the spec file's folder, then `ResolvedFilePath` = `pydantic.FilePath`
made absolute) and the batch rule of `from_files` (sample names unique). Cosmos' control
configs ignore unknown keys; this mirror forbids them, to be stricter than the real parser.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import pydantic

UPSTREAM_COMMIT = "2ff49d0717af02057ae79bc75c00fbff9da1b4e7"

ResolvedFilePath = Annotated[
    pydantic.FilePath, pydantic.AfterValidator(lambda p: p.expanduser().absolute())
]
ResolvedDirectoryPath = Annotated[
    pydantic.DirectoryPath, pydantic.AfterValidator(lambda p: p.expanduser().absolute())
]
ControlWeight = Annotated[float, pydantic.Field(ge=0.0, le=1.0)]
Threshold = Literal["very_low", "low", "medium", "high", "very_high"]
DEFAULT_NEGATIVE_PROMPT = "(Transfer 2.5's sim-to-real negative prompt)"


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
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
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
    guided_generation_mask: ResolvedFilePath | ResolvedDirectoryPath | None = None
    guided_generation_step_threshold: int = 25
    guided_generation_foreground_labels: list[int] | None = None

    @pydantic.model_validator(mode="before")
    @classmethod
    def prompt_from_path(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("prompt") is None and data.get("prompt_path"):
            data = {**data, "prompt": Path(data["prompt_path"]).read_text().strip()}
        return data

    def model_post_init(self, __context: object) -> None:
        if not any(getattr(self, k) is not None for k in ("edge", "vis", "depth", "seg")):
            raise ValueError("No controls provided")
        if self.vis is not None and self.image_context_path:
            raise ValueError("vis control and image_context_path are both used to transfer style")


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


def load_spec_files(paths: list[str | Path]) -> list[InferenceArguments]:
    """Several spec files as one batch, as `from_files` loads them: names must be unique."""
    samples = [s for p in paths for s in load_spec_file(p)]
    names = [s.name for s in samples]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"Error: Inference samplename {name} is not unique")
    return samples
