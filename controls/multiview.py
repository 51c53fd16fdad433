"""Multi-view specs: Transfer 2.5 auto/multiview (7 views) and Transfer 1's six-view AV models.

**Transfer 2.5** (`python examples/multiview.py -i spec.json -o out/` in cosmos-transfer2.5):
fields of `MultiviewInferenceArguments` in `cosmos_transfer2/multiview_config.py` (pydantic,
`extra="forbid"`), read at commit 2ff49d0717af02057ae79bc75c00fbff9da1b4e7 (HEAD, 2026-06).
Each view is a `ViewConfig` with `control_path` and `input_path` (required for every view
when `num_conditional_frames > 0` outside autoregressive mode); paths resolve against the spec
file's folder and must exist. The model runs at 10 fps, 720×1280 (H×W), 29 frames per view
per chunk: without `enable_autoregressive` upstream generates exactly one 29-frame chunk
whatever the drive length, so a longer drive sets it, with `num_chunks` chunks overlapping by
`chunk_overlap` frames (upstream clamps `num_chunks` to what the controls hold).

**Transfer 1** six-view (`transfer_multiview.py --controlnet_specs`, cosmos-transfer1 at
5005e823): one control key (`hdmap` or `lidar`) whose `input_control` lists six videos in the
order front, front_left, front_right, rear, rear_left, rear_right, with `ckpt_path` naming the
Single2MultiView controlnet (without it upstream loads the single-view AV controlnet), plus
`view_condition_video` (the front camera's RGB; upstream fails without one); 57 frames per
view, trained on 30 fps clips.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cosmos_sim.controls.spec import DEFAULT_PROMPT, _path
from cosmos_sim.types import SpecError

TRANSFER25_VIEWS = (
    "front_wide",
    "cross_left",
    "cross_right",
    "rear_left",
    "rear_right",
    "rear",
    "front_tele",
)
TRANSFER25_MULTIVIEW_FPS = 10
TRANSFER25_MULTIVIEW_SIZE = (1280, 720)
"""(width, height) of each Transfer 2.5 multiview video: 720×1280 H×W."""
TRANSFER25_FRAMES_PER_CHUNK = 29
TRANSFER25_CHUNK_OVERLAP = 1
"""Frames each autoregressive chunk shares with the previous one (upstream's default)."""
TRANSFER25_MULTIVIEW_FIELDS = frozenset(
    {
        # CommonInferenceArguments
        "name", "prompt_path", "prompt", "negative_prompt", "seed", "guidance",
        # MultiviewInferenceArguments
        "num_conditional_frames", "control_weight", *TRANSFER25_VIEWS, "fps", "num_steps",
        "enable_autoregressive", "num_chunks", "chunk_overlap", "save_combined_views",
    }
)  # fmt: skip
TRANSFER25_VIEW_FIELDS = frozenset(
    {"input_path", "control_path", "num_conditional_frames_per_view"}
)

TRANSFER1_VIEWS = ("front", "front_left", "front_right", "rear", "rear_left", "rear_right")
TRANSFER1_MULTIVIEW_CONTROLS = ("hdmap", "lidar")
TRANSFER1_FRAMES_PER_VIEW = 57
TRANSFER1_MULTIVIEW_FPS = 30
TRANSFER1_MULTIVIEW_CKPT = "nvidia/Cosmos-Transfer1-7B-Sample-AV-Single2MultiView/t2w_{}_control.pt"
"""The six-view controlnet, relative to the run's --checkpoint_dir (upstream's sample specs)."""


def transfer25_multiview_spec(
    name: str,
    controls: Mapping[str, str | Path],
    *,
    inputs: Mapping[str, str | Path] | None = None,
    prompt: str = DEFAULT_PROMPT,
    relative_to: str | Path | None = None,
    control_weight: float = 1.0,
    num_steps: int = 35,
    seed: int = 0,
    guidance: int = 3,
    num_frames: int | None = None,
) -> dict[str, Any]:
    """A Transfer 2.5 multiview spec: one control video per view, optionally input videos.

    With `inputs` for all seven views the model conditions on their first frame
    (`num_conditional_frames=1`, Cosmos' default); without, it generates from the controls
    alone (`num_conditional_frames=0`). Paths are written relative to `relative_to`
    (the spec file's folder), as the Cosmos parser resolves them. `num_frames` is the
    frames per view at 10 fps (default: counted from the control videos); past one chunk the
    spec turns on autoregressive generation with as many chunks as the controls fill
    (`multiview_chunks`).
    """
    _check_views(controls, TRANSFER25_VIEWS, "controls")
    if inputs:
        _check_views(inputs, TRANSFER25_VIEWS, "inputs")
    if not 0.0 <= control_weight <= 1.0:
        raise SpecError(f"control_weight {control_weight}: Cosmos takes weights in [0, 1]")
    if not 0 <= guidance <= 7:
        raise SpecError(f"guidance {guidance}: Cosmos takes an int in [0, 7]")
    if num_frames is None:
        num_frames = _fewest_frames(controls.values())
    chunks = multiview_chunks(num_frames)
    spec: dict[str, Any] = {
        "name": name,
        "prompt": prompt,
        "fps": TRANSFER25_MULTIVIEW_FPS,
        "num_conditional_frames": 1 if inputs else 0,
        "control_weight": float(control_weight),
        "num_steps": int(num_steps),
        "seed": int(seed),
        "guidance": int(guidance),
    }
    if chunks > 1:
        spec.update(
            enable_autoregressive=True, num_chunks=chunks, chunk_overlap=TRANSFER25_CHUNK_OVERLAP
        )
    for view in TRANSFER25_VIEWS:
        entry = {"control_path": _path(controls[view], relative_to)}
        if inputs:
            entry["input_path"] = _path(inputs[view], relative_to)
        spec[view] = entry
    return spec


def multiview_chunks(num_frames: int) -> int:
    """Chunks Transfer 2.5 multiview generates from `num_frames` frames per view (10 fps).

    The first chunk takes 29 frames, each later one 28 new frames (1 overlapping). Upstream
    generates only whole chunks, so the output has `multiview_output_frames(chunks)` frames:
    up to 27 trailing frames of a drive are not generated. (Upstream refuses controls shorter
    than one chunk at run time.)
    """
    stride = TRANSFER25_FRAMES_PER_CHUNK - TRANSFER25_CHUNK_OVERLAP
    return 1 + max(0, num_frames - TRANSFER25_FRAMES_PER_CHUNK) // stride


def multiview_output_frames(chunks: int) -> int:
    """Frames per view that `chunks` autoregressive chunks produce."""
    stride = TRANSFER25_FRAMES_PER_CHUNK - TRANSFER25_CHUNK_OVERLAP
    return TRANSFER25_FRAMES_PER_CHUNK + stride * (chunks - 1)


def _fewest_frames(videos) -> int:
    from cosmos_sim.video import video_info

    return min(int(video_info(v)["frames"]) for v in videos)


def validate_transfer25_multiview(spec: Mapping[str, Any], spec_dir: str | Path) -> None:
    """The checks Cosmos' parser makes: known fields only, every view's files exist."""
    unknown = sorted(set(spec) - TRANSFER25_MULTIVIEW_FIELDS)
    if unknown:
        raise SpecError(f"multiview spec: unknown field(s) {unknown} (Cosmos forbids extras)")
    if "name" not in spec:
        raise SpecError("multiview spec: `name` is required")
    autoregressive = bool(spec.get("enable_autoregressive"))
    needs_input = spec.get("num_conditional_frames", 1) > 0 and not autoregressive
    for view in TRANSFER25_VIEWS:
        entry = spec.get(view)
        if not isinstance(entry, Mapping) or "control_path" not in entry:
            raise SpecError(f"multiview spec: view {view!r} needs a `control_path`")
        extra = sorted(set(entry) - TRANSFER25_VIEW_FIELDS)
        if extra:
            raise SpecError(f"multiview spec: view {view!r} has unknown field(s) {extra}")
        if needs_input and entry.get("input_path") is None:
            raise SpecError(
                f"multiview spec: view {view!r} has no input_path but num_conditional_frames > 0"
            )
        for key in ("control_path", "input_path"):
            if entry.get(key) is not None and not (Path(spec_dir) / entry[key]).is_file():
                raise SpecError(f"multiview spec: {view}.{key} {entry[key]!r} does not exist")


def transfer1_multiview_spec(
    control: str,
    videos: Mapping[str, str | Path],
    *,
    view_condition_video: str | Path,
    prompt: str = DEFAULT_PROMPT,
    control_weight: float = 1.0,
    fps: int = TRANSFER1_MULTIVIEW_FPS,
    ckpt_path: str | None = None,
) -> dict[str, Any]:
    """A Transfer 1 six-view `--controlnet_specs` object (absolute paths, Cosmos' view order).

    `view_condition_video` is the front camera's RGB video, which upstream requires and
    conditions the front view on. `ckpt_path` defaults to the Single2MultiView controlnet of
    `control` (relative to the run's --checkpoint_dir). `fps` must be the videos' real rate;
    the model was trained at 30 fps.
    """
    if control not in TRANSFER1_MULTIVIEW_CONTROLS:
        raise SpecError(
            f"transfer1 multiview control {control!r}: the AV sample models take "
            f"{list(TRANSFER1_MULTIVIEW_CONTROLS)}"
        )
    _check_views(videos, TRANSFER1_VIEWS, "videos")
    if not view_condition_video:
        raise SpecError(
            "transfer1 multiview: view_condition_video (the front camera's RGB mp4) is required; "
            "transfer_multiview.py fails without it"
        )
    return {
        "prompt": prompt,
        "fps": int(fps),
        "view_condition_video": str(Path(view_condition_video).absolute()),
        control: {
            "control_weight": float(control_weight),
            "input_control": [str(Path(videos[v]).absolute()) for v in TRANSFER1_VIEWS],
            "ckpt_path": ckpt_path or TRANSFER1_MULTIVIEW_CKPT.format(control),
        },
    }


def _check_views(given: Mapping[str, Any], views: tuple[str, ...], what: str) -> None:
    missing = [v for v in views if v not in given]
    extra = sorted(set(given) - set(views))
    if missing or extra:
        raise SpecError(
            f"{what}: need exactly the views {list(views)}; missing {missing}, unknown {extra}"
        )


def rig_views(camera_views: Mapping[str, str]) -> str | None:
    """Which multiview layout a rig's {camera name: view} covers: "transfer25", "transfer1"."""
    views = set(camera_views.values())
    if set(TRANSFER25_VIEWS) <= views:
        return "transfer25"
    if set(TRANSFER1_VIEWS) <= views:
        return "transfer1"
    return None
