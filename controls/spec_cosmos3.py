"""Cosmos 3 transfer sample args (cosmos-framework's `OmniSampleOverrides` JSON) for clips.

Cosmos 3 takes every control at once: one sample names each hint (`edge`, `blur`, `depth`,
`seg`, `wsm`) with its precomputed `control_path` and `weight` (the framework normalises the
weights and aggregates the hints by weighted attention). Our `vis` is Cosmos' `blur` and our
`hdmap` its `wsm`; LiDAR has no Cosmos 3 transfer hint. A sample is `video2video` with the
clip's rgb.mp4 as `vision_path`, and states its size and timing explicitly (`num_frames`,
`fps`, `resolution` tier, `aspect_ratio`), so no per-mode default (189 frames at 24 fps)
applies. The framework tunes guidance per hint only for a single hint; the same numbers are
written here, and with several hints the edge/blur/depth pair (none is published for mixes).

`write_cosmos3_specs` writes `<camera>/cosmos3.json` (paths relative to it: the framework
resolves paths from the input file's folder) and `cosmos3_batch.jsonl` (every camera, paths
relative to the clips folder), with sample names unique across episodes (`spec.sample_name`).
Run them with `python -m cosmos_framework.scripts.inference -i cosmos3_batch.jsonl -o OUT
--checkpoint-path Cosmos3-Nano` in a cosmos-framework checkout, or `cosmos-sim transfer
--backend cosmos-framework`, which also validates them (cosmos_sim.transfer.cosmos_framework).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cosmos_sim.controls.spec import (
    DEFAULT_PROMPT,
    _path,
    sample_name,
    weights_for,
    write_spec_json,
    write_spec_jsonl,
)
from cosmos_sim.types import SpecError
from cosmos_sim.video import FRAMES_PER_CHUNK

HINTS = {
    "edge": "edge",
    "vis": "blur",
    "depth": "depth",
    "seg": "seg",
    "hdmap": "wsm",
    "wsm": "wsm",
}
"""Our control video -> Cosmos 3 hint; a clip with both hdmap.mp4 and wsm.mp4 feeds wsm.mp4."""
HINT_ORDER = ("edge", "blur", "depth", "seg", "wsm")
RECOMMENDED = {
    "edge": (3.0, 1.5),
    "blur": (3.0, 1.5),
    "depth": (3.0, 1.5),
    "seg": (3.0, 2.0),
    "wsm": (1.0, 3.0),
}
"""Hint -> (guidance, control_guidance) cosmos-framework applies to a single hint (args.py
`_TRANSFER_DEFAULTS`, diffusers' docs give the same); several hints get the edge pair."""
WSM_CHUNK_FRAMES = 101
"""Frames per chunk cosmos-framework uses for a wsm hint alone (its WSM window: 101 frames at
10 fps, args.py:858-865); every other set of hints is chunked at `FRAMES_PER_CHUNK` (93)."""
ASPECT_RATIOS = {"16,9": 16 / 9, "9,16": 9 / 16, "4,3": 4 / 3, "3,4": 3 / 4, "1,1": 1.0}
RESOLUTIONS = ("256", "480", "720", "768")
"""cosmos-framework's resolution tiers (`resolution` enum of the sample schema)."""
SPEC_FILE = "cosmos3.json"
BATCH_FILE = "cosmos3_batch.jsonl"


def hints_of(controls: Mapping[str, Any]) -> dict[str, str]:
    """Our control name -> Cosmos 3 hint for the Cosmos 3 controls among `controls`."""
    chosen = {c: HINTS[c] for c in controls if c in HINTS}
    if "wsm" in chosen and "hdmap" in chosen:
        del chosen["hdmap"]
    return dict(sorted(chosen.items(), key=lambda kv: HINT_ORDER.index(kv[1])))


def guidance_for(hints: list[str] | tuple[str, ...]) -> tuple[float, float]:
    """(guidance, control_guidance) for a set of hints (see RECOMMENDED)."""
    return RECOMMENDED[hints[0]] if len(hints) == 1 else RECOMMENDED["edge"]


def chunk_for(hints: list[str] | tuple[str, ...]) -> int:
    """Frames per chunk for a set of hints: 101 for wsm alone, else 93 (as the framework)."""
    return WSM_CHUNK_FRAMES if list(hints) == ["wsm"] else FRAMES_PER_CHUNK


def aspect_ratio(width: int, height: int) -> str:
    """The framework's aspect-ratio name nearest `width`/`height`."""
    return min(ASPECT_RATIOS, key=lambda k: abs(ASPECT_RATIOS[k] - width / height))


def cosmos3_spec(
    name: str,
    video_path: str | Path,
    controls: Mapping[str, str | Path],
    *,
    num_frames: int,
    fps: float,
    size: tuple[int, int],
    prompt: str = DEFAULT_PROMPT,
    seed: int = 0,
    control_weights: Mapping[str, float] | None = None,
    edge_preset: str = "medium",
    vis_preset: str = "medium",
    resolution: str = "720",
    num_steps: int = 35,
    num_video_frames_per_chunk: int | None = None,
    num_conditional_frames: int = 1,
    guidance: float | None = None,
    control_guidance: float | None = None,
    negative_prompt: str | None = None,
    relative_to: str | Path | None = None,
) -> dict[str, Any]:
    """One cosmos-framework transfer sample: the clip's RGB video plus one block per hint.

    `controls` maps our control names (edge, vis, depth, seg, hdmap/wsm; others are skipped)
    to their mp4s; `size` is the clip's (width, height), `fps` and `num_frames` its timing.
    Paths are written relative to `relative_to` (the spec file's folder) or as given;
    `num_video_frames_per_chunk` None is the framework's per-hint default (`chunk_for`)."""
    hints = hints_of(controls)
    if not hints:
        raise SpecError(
            f"cosmos3_spec: no Cosmos 3 control among {sorted(controls)}; Cosmos 3 transfer "
            f"takes {sorted(HINTS)}"
        )
    if num_video_frames_per_chunk is None:
        num_video_frames_per_chunk = chunk_for(list(hints.values()))
    if not name or not prompt:
        raise SpecError("cosmos3_spec: name and prompt must be non-empty strings")
    if str(resolution) not in RESOLUTIONS:
        raise SpecError(f"resolution {resolution!r}: cosmos-framework tiers are {RESOLUTIONS}")
    if not 0 <= num_conditional_frames < num_video_frames_per_chunk:
        raise SpecError(
            f"num_conditional_frames {num_conditional_frames} must be below "
            f"num_video_frames_per_chunk {num_video_frames_per_chunk}"
        )
    weights = weights_for(hints, control_weights)
    if sum(weights.values()) <= 0:
        raise SpecError(f"control_weights {weights}: at least one weight must be positive")
    default_guidance, default_control = guidance_for(list(hints.values()))
    spec: dict[str, Any] = {
        "name": name,
        "model_mode": "video2video",
        "prompt": prompt,
        "seed": int(seed),
        "vision_path": _path(video_path, relative_to),
        "resolution": str(resolution),
        "aspect_ratio": aspect_ratio(*size),
        "num_frames": int(num_frames),
        "fps": round(fps),
        "num_steps": int(num_steps),
        "guidance": default_guidance if guidance is None else float(guidance),
        "control_guidance": default_control if control_guidance is None else control_guidance,
        "shift": 10.0,
        "num_video_frames_per_chunk": int(num_video_frames_per_chunk),
        "num_conditional_frames": int(num_conditional_frames),
        "num_first_chunk_conditional_frames": 0,
        "share_vision_temporal_positions": True,
        "emphasize_control_in_prompt": False,
    }
    if negative_prompt is not None:
        spec["negative_prompt"] = negative_prompt
    for control, hint in hints.items():
        block: dict[str, Any] = {
            "control_path": _path(controls[control], relative_to),
            "weight": weights[control],
        }
        if hint == "edge":
            block["preset_edge_threshold"] = edge_preset
        elif hint == "blur":
            block["preset_blur_strength"] = vis_preset
        spec[hint] = block
    return spec


def write_cosmos3_specs(
    out: str | Path,
    cameras: Mapping[str, Mapping[str, Path]],
    *,
    episode: str | Path | None,
    num_frames: int,
    fps: float,
    sizes: Mapping[str, tuple[int, int]],
    **spec_kwargs: Any,
) -> Path | None:
    """`<camera>/cosmos3.json` for each camera with a Cosmos 3 control, and
    `cosmos3_batch.jsonl` for all of them; returns the batch path (None: no such control).

    `cameras` maps a camera to its videos ({"rgb": path, control: path, ...})."""
    out = Path(out)
    batch = []
    for camera, videos in cameras.items():
        controls = {k: v for k, v in videos.items() if k in HINTS}
        if not controls:
            continue
        name = sample_name(episode, camera)
        common = dict(num_frames=num_frames, fps=fps, size=sizes[camera], **spec_kwargs)
        folder = out / camera
        spec = cosmos3_spec(name, videos["rgb"], controls, relative_to=folder, **common)
        write_spec_json(spec, folder / SPEC_FILE)
        batch.append(cosmos3_spec(name, videos["rgb"], controls, relative_to=out, **common))
    return write_spec_jsonl(batch, out / BATCH_FILE) if batch else None
