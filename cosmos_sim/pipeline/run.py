"""`run_pipeline`: the stages of the main job, each streamed, one after the other.

- controls: `controls.clips.write_clips` (chunks of `chunk_frames` output frames, bounded
  memory; control videos, specs and clips.json with K, poses and depth ranges);
- transfer: `transfer.run.run_transfer` (a backend streams frames into each output video);
- dataset: `dataset.write_dataset` (each output frame beside the episode's labels, frame by
  frame).

Where each stage writes: with one stage, `out` is that stage's folder (as the single-stage
CLI commands take it); with several, `out/clips`, `out/transfer` and `out/dataset` (`out` may
hold other things, such as the episode; those three must not exist yet). A stage that fails
leaves the earlier stages' output in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosmos_sim.types import SpecError

if TYPE_CHECKING:
    from cosmos_sim.transfer.base import TransferBackend

STAGES = ("controls", "transfer", "dataset")
"""The pipeline's stages, in the order they run."""

FOLDERS = {"controls": "clips", "transfer": "transfer", "dataset": "dataset"}
"""Sub-folder of `out` each stage writes when several run."""


@dataclass
class PipelineResult:
    """What a pipeline run wrote (None for a stage that did not run)."""

    clips: Path | None = None
    """Control clips folder (clips.json, <camera>/...)."""
    transfer: Path | None = None
    """Transfer output folder (transfer.json, <camera>/output.mp4)."""
    dataset: Path | None = None
    """Dataset folder (annotations.json, images/, depth/)."""
    clips_info: dict[str, Any] = field(default_factory=dict)
    """`write_clips`' return value: per camera videos, specs, depth range, notes."""
    notes: list[str] = field(default_factory=list)
    """Things the user should know (skipped controls, damaged ticks)."""


def run_pipeline(
    episode: str | Path | None,
    out: str | Path,
    *,
    stages: Sequence[str] = STAGES,
    clips: str | Path | None = None,
    transfer_out: str | Path | None = None,
    modalities: Sequence[str] | str | None = None,
    prompt: str | None = None,
    prompts: Any = None,
    seed: int = 0,
    device: str = "auto",
    chunk_frames: int | None = None,
    depth_range_m: tuple[float, float] | None = None,
    xodr: str | Path | None = None,
    cameras: Sequence[str] | None = None,
    skip_damaged: bool = False,
    backend: str | TransferBackend = "appearance",
    backend_options: Mapping[str, Any] | None = None,
    progress: bool = True,
    on_stage: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Run `stages` (any of "controls", "transfer", "dataset", in that order) on an episode.

    `episode`: the recorded episode folder (controls and dataset need it). `clips`: an
    existing clips folder when "controls" is not run; `transfer_out`: an existing transfer
    output when "dataset" runs without "transfer" (None: a dataset of the simulator's RGB).
    Controls: `modalities` (None: all the episode supports), `seed` (seg palette, specs,
    backend), `device` ("auto", "cpu", "cuda": where the controls run), `chunk_frames`
    (output frames per streamed chunk, 1..93), `depth_range_m` (fixed depth range; default
    per clip), `xodr` (OpenDRIVE map for hdmap), `cameras` (a subset; default all),
    `skip_damaged` (hold the previous tick in place of an unreadable one, listed in
    clips.json). Transfer: `backend` ("appearance", "diffusers", "cosmos-cli", ...) with
    `backend_options`, or a backend already built (a resident worker reuses its model across
    episodes); `prompt` for every camera or
    `prompts` one per camera (default: each clip's spec). `on_stage(name)` is called as each
    stage starts (the sidecar reports it as the job's phase).
    """
    stages = _check_stages(stages)
    out = Path(out)
    folder = {s: out if len(stages) == 1 else out / FOLDERS[s] for s in stages}
    if ("controls" in stages or "dataset" in stages) and episode is None:
        raise SpecError(f"stages {list(stages)} need the episode folder", field="episode")
    if "transfer" in stages and "controls" not in stages and clips is None:
        raise SpecError("stage 'transfer' without 'controls' needs clips=", field="clips")
    for path in folder.values():  # checked up front: a late stage must not find it taken
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise FileExistsError(
                f"output folder {path} is not empty; pass a new folder (nothing there was "
                "overwritten)"
            )
    result = PipelineResult()
    if "controls" in stages:
        _started(on_stage, "controls")
        from cosmos_sim.controls.clips import CHUNK_FRAMES, write_clips

        options: dict[str, Any] = {"prompt": prompt} if prompt else {}
        result.clips_info = write_clips(
            episode, folder["controls"], modalities=modalities, seed=seed, device=device,
            chunk_frames=CHUNK_FRAMES if chunk_frames is None else chunk_frames,
            depth_range_m=depth_range_m, xodr=xodr,
            skip_damaged=skip_damaged, cameras=cameras, progress=progress, **options,
        )  # fmt: skip
        result.clips = folder["controls"]
        result.notes += result.clips_info["notes"]
    else:
        result.clips = None if clips is None else Path(clips)
    if "transfer" in stages:
        _started(on_stage, "transfer")
        from cosmos_sim.transfer.run import run_transfer

        result.transfer = run_transfer(
            result.clips, folder["transfer"], backend=backend, prompt=prompt, prompts=prompts,
            seed=seed, **dict(backend_options or {}),
        )  # fmt: skip
    else:
        result.transfer = None if transfer_out is None else Path(transfer_out)
    if "dataset" in stages:
        _started(on_stage, "dataset")
        from cosmos_sim.dataset import write_dataset

        result.dataset = write_dataset(episode, result.transfer, folder["dataset"])
    return result


def _check_stages(stages: Sequence[str]) -> tuple[str, ...]:
    if isinstance(stages, str):
        stages = [stages]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise SpecError(
            f"stages {list(stages)}: choose one or more of {list(STAGES)}",
            field="stages",
            fix=f"use names from {list(STAGES)}",
        )
    return tuple(s for s in STAGES if s in stages)


def _started(on_stage: Callable[[str], None] | None, stage: str) -> None:
    if on_stage is not None:
        on_stage(stage)
