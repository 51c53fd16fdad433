"""Cosmos Transfer specs for control clips: Transfer 2.5 (`inference.py -i`) and Transfer 1.

**Transfer 2.5** (`python examples/inference.py -i spec.json -o out/` in cosmos-transfer2.5).
Fields are those of `InferenceArguments` in `cosmos_transfer2/config.py` (pydantic,
`extra="forbid"`: an unknown top-level key is an error), read at commit
2ff49d0717af02057ae79bc75c00fbff9da1b4e7 (HEAD, 2026-06). The parser `chdir`s to the spec
file's folder before validating, so **relative paths resolve against the folder of the spec
file** (not the caller's cwd); `control_path`/`video_path` must exist then
(`pydantic.FilePath`). We write paths relative to the spec's folder, so a clip folder can be
moved as a whole.

**Transfer 1** (`cosmos_transfer1/diffusion/inference/transfer.py --controlnet_specs spec.json`).
Top-level dicts are controls (`input_control`, `control_weight`); top-level scalars override
the CLI arguments of the same name when not given on the command line. Transfer 1 opens paths
as given, relative to the cwd of the run (the cosmos-transfer1 checkout), so we write
absolute paths. Its general controls (vis, seg, edge, depth, ...) run on the general base
model; hdmap and lidar need the Sample-AV base model (`is_av_sample`, `sigma_max` 80,
trained at 30 fps), so no one run serves both: `transfer1_spec` writes the first kind,
`transfer1_av_spec` the second (read at cosmos-transfer1 5005e823, 2026-06).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
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

TRANSFER1_AV_CONTROLS = ("hdmap", "lidar")
"""Transfer 1 controls that exist only on the Sample-AV base model."""

TRANSFER1_GENERAL_CONTROLS = tuple(k for k in TRANSFER1_CONTROLS if k not in TRANSFER1_AV_CONTROLS)
"""Transfer 1 controls of the general base model."""

TRANSFER1_AV_FPS = 30
"""Frame rate the Transfer 1 Sample-AV models were trained at (their RDS-HQ clips)."""

TRANSFER1_AV_FRAMES = 121
"""Frames of one Transfer 1 generation window (a single-view AV clip at 30 fps is ~4 s)."""

TRANSFER1_AV_SIGMA_MAX = 80.0
"""Sample-AV runs generate from the controls alone: sigma_max >= 80 ignores the input video."""

TRANSFER25_NEGATIVE_PROMPT = (
    "The video captures a game playing, with bad crappy graphics and cartoonish frames. It "
    "represents a recording of old outdated games. The lighting looks very fake. The textures "
    "are very raw and basic. The geometries are very primitive. The images are very pixelated "
    "and of poor CG quality. There are many subtitles in the footage. Overall, the video is "
    "unrealistic at all."
)
"""Transfer 2.5's own negative prompt (`DEFAULT_NEGATIVE_PROMPT`, cosmos_transfer2/config.py):
it names the simulator look the transfer should leave behind. diffusers' pipeline default is a
generic quality prompt, so the diffusers backend passes this one explicitly."""

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
        "edge", "depth", "vis", "seg", "guided_generation_mask",
        "guided_generation_step_threshold", "guided_generation_foreground_labels",
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

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def sample_name(episode: str | Path | None, camera: str) -> str:
    """A sample name unique across episodes: `<episode folder name>-<camera>`.

    Cosmos writes `<name>.mp4` and refuses a batch with a repeated name ("samplename front is
    not unique"), so a camera name alone breaks as soon as two episodes share a batch.
    """
    if not camera:
        raise SpecError("sample_name: camera must be a non-empty string")
    stem = Path(str(episode)).name if episode else ""
    name = f"{stem}-{camera}" if stem else camera
    return _NAME_UNSAFE.sub("_", name)


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
    control_masks: Mapping[str, str | Path] | None = None,
    guided_generation_mask: str | Path | None = None,
    guided_generation_foreground_labels: Sequence[int] | None = None,
    guided_generation_step_threshold: int | None = None,
) -> dict[str, Any]:
    """One Transfer 2.5 sample: the RGB video plus one block per control video.

    `controls` maps a Transfer 2.5 control key (edge, vis, depth, seg) to its mp4. Paths are
    written relative to `relative_to` (the folder the spec file will be in; Cosmos resolves
    them from there) or as given when it is None. `edge_preset`/`vis_preset` record the
    presets the control videos were made with. Defaults are Cosmos' own, except the weights
    (DEFAULT_CONTROL_WEIGHTS).

    `control_masks` gives a control its spatial weight map (`mask_path`: a video, white where
    the control applies; `controls.masks.write_mask_video`). Guided generation anchors the
    simulator's foreground: `guided_generation_mask` is an `.npz` of per-frame label ids
    (`arr_0`, T×H×W) and `guided_generation_foreground_labels` the ids to keep (None: every
    non-zero id); Cosmos holds those pixels to the input video for the first
    `guided_generation_step_threshold` steps (its default 25).
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
    spec.update(
        _guided_generation(
            guided_generation_mask, guided_generation_foreground_labels,
            guided_generation_step_threshold, relative_to,
        )
    )  # fmt: skip
    masks = dict(control_masks or {})
    stray = sorted(set(masks) - set(controls))
    if stray:
        raise SpecError(
            f"transfer25_spec: control_masks for {stray}, which are not among the controls "
            f"{sorted(controls)}; give a mask only to a control the sample uses"
        )
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
        if key in masks:
            block["mask_path"] = _path(masks[key], relative_to)
        spec[key] = block
    return spec


def _guided_generation(
    mask: str | Path | None,
    labels: Sequence[int] | None,
    threshold: int | None,
    relative_to: str | Path | None,
) -> dict[str, Any]:
    """The guided-generation fields of a Transfer 2.5 sample, checked as Cosmos reads them."""
    if mask is None:
        if labels is not None or threshold is not None:
            raise SpecError(
                "transfer25_spec: guided_generation_foreground_labels / _step_threshold need "
                "guided_generation_mask (the .npz of label ids they refer to)"
            )
        return {}
    if Path(mask).suffix not in (".npz", ".mp4"):
        raise SpecError(
            f"transfer25_spec: guided_generation_mask {str(mask)!r} must be an .npz of label ids "
            "(arr_0, T×H×W) or a white-on-black .mp4; Cosmos reads no other format"
        )
    fields: dict[str, Any] = {"guided_generation_mask": _path(mask, relative_to)}
    if labels is not None:
        labels = [int(v) for v in labels]
        if not labels:
            raise SpecError(
                "transfer25_spec: guided_generation_foreground_labels is empty; Cosmos needs "
                "at least one id (or None for every non-zero id)"
            )
        if Path(mask).suffix != ".npz":
            raise SpecError(
                "transfer25_spec: guided_generation_foreground_labels apply to an .npz mask "
                "only (Cosmos ignores them for .mp4)"
            )
        fields["guided_generation_foreground_labels"] = labels
    if threshold is not None:
        fields["guided_generation_step_threshold"] = int(threshold)
    return fields


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
    weight_maps: Mapping[str, str | Path] | None = None,
) -> dict[str, Any]:
    """A Transfer 1 `--controlnet_specs` object for the general base model (vis, seg, edge,
    depth, keypoint, upscale); paths are made absolute (see module doc).

    `fps` is the output video's frame rate; our clips are 16 fps, so the default keeps the
    output in step with the simulator's time. hdmap and lidar go in `transfer1_av_spec`.
    `weight_maps` gives a control a spatial weight map (`.pt`, `controls.masks.
    write_weight_map`) in place of its scalar weight.
    """
    av = sorted(set(controls) & set(TRANSFER1_AV_CONTROLS))
    if av:
        raise SpecError(
            f"transfer1_spec: {av} run only on Transfer 1's Sample-AV base model; write them "
            "with transfer1_av_spec (a separate run with --is_av_sample)"
        )
    _check_transfer1_controls("transfer1_spec", controls, TRANSFER1_GENERAL_CONTROLS)
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
    spec.update(_transfer1_blocks(controls, control_weights))
    for key, path in (weight_maps or {}).items():
        if key not in controls:
            raise SpecError(
                f"transfer1_spec: weight_maps[{key!r}] is for a control the spec does not have "
                f"({sorted(controls)})"
            )
        if Path(path).suffix != ".pt":
            raise SpecError(
                f"transfer1_spec: weight_maps[{key!r}] = {str(path)!r}: Transfer 1 reads spatial "
                "weights from a .pt tensor (T×H×W)"
            )
        spec[key]["control_weight"] = str(Path(path).absolute())
    return spec


def transfer1_av_spec(
    controls: Mapping[str, str | Path],
    *,
    prompt: str = DEFAULT_PROMPT,
    control_weights: Mapping[str, float] | None = None,
    negative_prompt: str | None = None,
    seed: int = 1,
    num_steps: int = 35,
    guidance: float = 7.0,
    fps: int = TRANSFER1_AV_FPS,
) -> dict[str, Any]:
    """A Transfer 1 `--controlnet_specs` object for the Sample-AV base model (hdmap, lidar).

    It sets `is_av_sample` (which picks the AV base checkpoint) and `sigma_max` 80 (generate
    from the controls alone, as NVIDIA's AV examples run), and holds no general control.
    `fps` must be the control videos' real rate; the AV models were trained at
    TRANSFER1_AV_FPS (30), so controls rendered at 30 fps match what they learned.
    """
    general = sorted(set(controls) - set(TRANSFER1_AV_CONTROLS))
    if general:
        raise SpecError(
            f"transfer1_av_spec: {general} are not Sample-AV controls (it takes "
            f"{list(TRANSFER1_AV_CONTROLS)}); write them with transfer1_spec, a separate run"
        )
    _check_transfer1_controls("transfer1_av_spec", controls, TRANSFER1_AV_CONTROLS)
    spec: dict[str, Any] = {
        "prompt": prompt,
        "is_av_sample": True,
        "sigma_max": TRANSFER1_AV_SIGMA_MAX,
        "seed": int(seed),
        "num_steps": int(num_steps),
        "guidance": float(guidance),
        "fps": int(fps),
    }
    if negative_prompt is not None:
        spec["negative_prompt"] = negative_prompt
    spec.update(_transfer1_blocks(controls, control_weights))
    return spec


def _check_transfer1_controls(
    who: str, controls: Mapping[str, str | Path], allowed: Sequence[str]
) -> None:
    unknown = sorted(set(controls) - set(TRANSFER1_CONTROLS))
    if unknown:
        raise SpecError(
            f"{who}: controls {unknown} are not Transfer 1 controls; use {list(allowed)}"
        )
    if not controls:
        raise SpecError(f"{who}: give at least one control of {list(allowed)}")


def _transfer1_blocks(
    controls: Mapping[str, str | Path], control_weights: Mapping[str, float] | None
) -> dict[str, Any]:
    weights = weights_for(controls, control_weights)
    return {
        key: {
            "input_control": str(Path(controls[key]).absolute()),
            "control_weight": weights[key],
        }
        for key in TRANSFER1_CONTROLS
        if key in controls
    }


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
