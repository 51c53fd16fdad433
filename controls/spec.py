"""Cosmos Transfer specs for control clips: Transfer 2.5 (`inference.py -i`) and Transfer 1.

**Transfer 2.5** (`python examples/inference.py -i spec.json -o out/` in cosmos-transfer2.5).
Fields are those of `InferenceArguments` in `cosmos_transfer2/config.py` (pydantic,
`extra="forbid"`: an unknown top-level key is an error), read at commit
08aa5ae661401999c57c6233719c89088d4fbfa5. The parser `chdir`s to the spec file's folder
before validating, so **relative paths resolve against the folder of the spec file** (not
the caller's cwd); `control_path`/`video_path` must exist then (`pydantic.FilePath`). We
write paths relative to the spec's folder, so a clip folder can be moved as a whole.

**Transfer 1** (`cosmos_transfer1/diffusion/inference/transfer.py --controlnet_specs spec.json`).
Top-level dicts are controls (`input_control`, `control_weight`); top-level scalars override
the CLI arguments of the same name when not given on the command line. Transfer 1 opens paths
as given, relative to the cwd of the run (the cosmos-transfer1 checkout), so we write
absolute paths.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cosmos_sim.episode import write_json_atomic
from cosmos_sim.types import SpecError
from cosmos_sim.video import FRAMES_PER_CHUNK

DEFAULT_PROMPT = (
    "A realistic, high-quality video filmed by a real camera: natural lighting, physically "
    "accurate materials, reflections and soft shadows, fine surface detail and smooth motion."
)

TRANSFER25_CONTROLS = ("edge", "vis", "depth", "seg")
"""Control keys of Transfer 2.5 (`CONTROL_KEYS` in cosmos_transfer2/config.py)."""

TRANSFER1_CONTROLS = ("vis", "seg", "edge", "depth", "keypoint", "upscale", "hdmap", "lidar")
"""Control keys Transfer 1's transfer.py accepts (`valid_hint_keys`)."""

DEFAULT_CONTROL_WEIGHTS: dict[str, float] = {
    "edge": 1.0,
    "depth": 1.0,
    "seg": 1.0,
    "vis": 0.5,
    "lidar": 1.0,
    "hdmap": 1.0,
}
"""Simulator edges, depth, seg, LiDAR and HD maps are exact, so they get Cosmos' default 1.0;
vis carries the simulator's flat look, which the transfer should replace, so it gets half.
Transfer 2.5 normalises multi-control weights to sum to at most 1, so only ratios matter."""

TRANSFER25_FIELDS = frozenset(
    {
        # CommonInferenceArguments
        "name", "prompt_path", "prompt", "negative_prompt", "seed", "guidance",
        # InferenceArguments
        "video_path", "max_frames", "context_frame_index", "image_context_path",
        "num_conditional_frames", "resolution", "sigma_max", "num_video_frames_per_chunk",
        "num_steps", "show_control_condition", "show_input", "keep_input_resolution",
        "edge", "depth", "vis", "seg",
    }
)  # fmt: skip
"""Every top-level field of Transfer 2.5's InferenceArguments (config.py, commit above)."""

TRANSFER25_CONTROL_FIELDS: dict[str, frozenset[str]] = {
    "edge": frozenset({"control_path", "control_weight", "mask_path", "mask_prompt",
                       "preset_edge_threshold"}),
    "vis": frozenset({"control_path", "control_weight", "mask_path", "mask_prompt",
                      "preset_blur_strength"}),
    "depth": frozenset({"control_path", "control_weight", "mask_path", "mask_prompt"}),
    "seg": frozenset({"control_path", "control_weight", "mask_path", "mask_prompt",
                      "control_prompt"}),
}  # fmt: skip
"""Fields of EdgeConfig, BlurConfig, DepthConfig and SegConfig."""

PRESETS = ("very_low", "low", "medium", "high", "very_high")


def weights_for(
    controls: Iterable[str], control_weights: Mapping[str, float] | None
) -> dict[str, float]:
    """Each control's weight (`control_weights` over DEFAULT_CONTROL_WEIGHTS), checked."""
    for key in control_weights or {}:
        if key not in TRANSFER1_CONTROLS:  # every control key of either generation
            raise SpecError(
                f"control_weights: {key!r} is not a control; use keys of {list(TRANSFER1_CONTROLS)}"
            )
    weights = {**DEFAULT_CONTROL_WEIGHTS, **(control_weights or {})}
    out = {}
    for key in controls:
        w = float(weights.get(key, 1.0))
        if not 0.0 <= w <= 1.0:
            raise SpecError(f"control_weights[{key!r}] = {w}: Cosmos takes weights in [0, 1]")
        out[key] = w
    return out


def _path(path: str | Path, relative_to: str | Path | None) -> str:
    if relative_to is None:
        return Path(path).as_posix()
    return Path(os.path.relpath(Path(path).absolute(), Path(relative_to).absolute())).as_posix()


def transfer25_spec(
    name: str,
    video_path: str | Path,
    controls: Mapping[str, str | Path],
    *,
    prompt: str = DEFAULT_PROMPT,
    control_weights: Mapping[str, float] | None = None,
    negative_prompt: str | None = None,
    seed: int = 2025,
    guidance: int = 3,
    num_steps: int = 35,
    resolution: str = "720",
    num_video_frames_per_chunk: int = FRAMES_PER_CHUNK,
    num_conditional_frames: int = 1,
    max_frames: int | None = None,
    sigma_max: str | None = None,
    edge_preset: str = "medium",
    vis_preset: str = "medium",
    relative_to: str | Path | None = None,
) -> dict[str, Any]:
    """One Transfer 2.5 sample: the RGB video plus one block per control video.

    `controls` maps a Transfer 2.5 control key (edge, vis, depth, seg) to its mp4. Paths are
    written relative to `relative_to` (the folder the spec file will be in; Cosmos resolves
    them from there) or as given when it is None. `edge_preset`/`vis_preset` record the
    presets the control videos were made with. Defaults are Cosmos' own, except the weights
    (DEFAULT_CONTROL_WEIGHTS).
    """
    if not name:
        raise SpecError("transfer25_spec: name must be a non-empty string (the output stem)")
    if not prompt:
        raise SpecError("transfer25_spec: prompt must be a non-empty string")
    unknown = sorted(set(controls) - set(TRANSFER25_CONTROLS))
    if unknown:
        raise SpecError(
            f"transfer25_spec: controls {unknown} are not Transfer 2.5 controls; use "
            f"{list(TRANSFER25_CONTROLS)} (LiDAR and HD map go in the Transfer 1 spec)"
        )
    if not controls:
        raise SpecError(
            f"transfer25_spec: give at least one control of {list(TRANSFER25_CONTROLS)}"
        )
    if not (isinstance(guidance, int) and 0 <= guidance <= 7):
        raise SpecError(f"transfer25_spec: guidance must be an int in 0..7, got {guidance!r}")
    if num_conditional_frames not in (0, 1, 2):
        raise SpecError(
            f"transfer25_spec: num_conditional_frames must be 0, 1 or 2, got "
            f"{num_conditional_frames!r}"
        )
    for label, preset in (("edge_preset", edge_preset), ("vis_preset", vis_preset)):
        if preset not in PRESETS:
            raise SpecError(f"transfer25_spec: {label} {preset!r} is not one of {list(PRESETS)}")
    spec: dict[str, Any] = {
        "name": name,
        "prompt": prompt,
        "video_path": _path(video_path, relative_to),
        "seed": int(seed),
        "guidance": guidance,
        "num_steps": int(num_steps),
        "resolution": str(resolution),
        "num_video_frames_per_chunk": int(num_video_frames_per_chunk),
        "num_conditional_frames": num_conditional_frames,
    }
    if negative_prompt is not None:
        spec["negative_prompt"] = negative_prompt
    if max_frames is not None:
        spec["max_frames"] = int(max_frames)
    if sigma_max is not None:
        spec["sigma_max"] = str(sigma_max)
    weights = weights_for(controls, control_weights)
    for key in TRANSFER25_CONTROLS:
        if key not in controls:
            continue
        block: dict[str, Any] = {
            "control_path": _path(controls[key], relative_to),
            "control_weight": weights[key],
        }
        if key == "edge":
            block["preset_edge_threshold"] = edge_preset
        if key == "vis":
            block["preset_blur_strength"] = vis_preset
        spec[key] = block
    return spec


def transfer1_spec(
    video_path: str | Path,
    controls: Mapping[str, str | Path],
    *,
    prompt: str = DEFAULT_PROMPT,
    control_weights: Mapping[str, float] | None = None,
    negative_prompt: str | None = None,
    seed: int = 1,
    num_steps: int = 35,
    guidance: float = 7.0,
    sigma_max: float | None = None,
    fps: int = 16,
) -> dict[str, Any]:
    """A Transfer 1 `--controlnet_specs` object; paths are made absolute (see module doc).

    `fps` is the output video's frame rate; our clips are 16 fps, so the default keeps the
    output in step with the simulator's time.
    """
    unknown = sorted(set(controls) - set(TRANSFER1_CONTROLS))
    if unknown:
        raise SpecError(
            f"transfer1_spec: controls {unknown} are not Transfer 1 controls; use "
            f"{list(TRANSFER1_CONTROLS)}"
        )
    if not controls:
        raise SpecError(f"transfer1_spec: give at least one control of {list(TRANSFER1_CONTROLS)}")
    spec: dict[str, Any] = {
        "prompt": prompt,
        "input_video_path": str(Path(video_path).absolute()),
        "seed": int(seed),
        "num_steps": int(num_steps),
        "guidance": float(guidance),
        "fps": int(fps),
    }
    if negative_prompt is not None:
        spec["negative_prompt"] = negative_prompt
    if sigma_max is not None:
        spec["sigma_max"] = float(sigma_max)
    weights = weights_for(controls, control_weights)
    for key in TRANSFER1_CONTROLS:
        if key in controls:
            spec[key] = {
                "input_control": str(Path(controls[key]).absolute()),
                "control_weight": weights[key],
            }
    return spec


def write_spec_json(spec: Mapping[str, Any], path: str | Path) -> Path:
    """Write one spec as a JSON object (atomically)."""
    path = Path(path)
    write_json_atomic(path, dict(spec))
    return path


def write_spec_jsonl(specs: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Write Transfer 2.5 specs one per line; names must be unique (Cosmos requires it)."""
    specs = [dict(s) for s in specs]
    names = [s.get("name") for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"write_spec_jsonl: sample names {dupes} repeat; Cosmos needs unique names")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(s) + "\n" for s in specs))
    os.replace(tmp, path)
    return path
