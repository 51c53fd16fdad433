"""Multi-view specs: Transfer 2.5 auto/multiview (7 views) and Transfer 1's six-view AV models.

**Transfer 2.5** (`python examples/multiview.py -i spec.json -o out/` in cosmos-transfer2.5):
fields of `MultiviewInferenceArguments` in `cosmos_transfer2/multiview_config.py` (pydantic,
`extra="forbid"`), read at commit 0bd524d10fb29640379dc8cdcea7b48309362449. Each view is a
`ViewConfig` with `control_path` (required) and `input_path` (required for every view when
`num_conditional_frames > 0`); paths resolve against the spec file's folder and must exist.
The model runs at 10 fps, 720×1280 (H×W), 29 frames per view per chunk.

**Transfer 1** six-view (`transfer_multiview.py --controlnet_specs`): one control key
(`hdmap` or `lidar`) whose `input_control` lists six videos in the order front,
front_left, front_right, rear, rear_left, rear_right (cosmos-transfer1
`assets/sample_av_hdmap_multiview_spec.json`); 57 frames per view.
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
) -> dict[str, Any]:
    """A Transfer 2.5 multiview spec: one control video per view, optionally input videos.

    With `inputs` for all seven views the model conditions on their first frame
    (`num_conditional_frames=1`, Cosmos' default); without, it generates from the controls
    alone (`num_conditional_frames=0`). Paths are written relative to `relative_to`
    (the spec file's folder), as the Cosmos parser resolves them.
    """
    _check_views(controls, TRANSFER25_VIEWS, "controls")
    if inputs:
        _check_views(inputs, TRANSFER25_VIEWS, "inputs")
    if not 0.0 <= control_weight <= 1.0:
        raise SpecError(f"control_weight {control_weight}: Cosmos takes weights in [0, 1]")
    if not 0 <= guidance <= 7:
        raise SpecError(f"guidance {guidance}: Cosmos takes an int in [0, 7]")
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
    for view in TRANSFER25_VIEWS:
        entry = {"control_path": _path(controls[view], relative_to)}
        if inputs:
            entry["input_path"] = _path(inputs[view], relative_to)
        spec[view] = entry
    return spec


def validate_transfer25_multiview(spec: Mapping[str, Any], spec_dir: str | Path) -> None:
    """The checks Cosmos' parser makes: known fields only, every view's files exist."""
    unknown = sorted(set(spec) - TRANSFER25_MULTIVIEW_FIELDS)
    if unknown:
        raise SpecError(f"multiview spec: unknown field(s) {unknown} (Cosmos forbids extras)")
    if "name" not in spec:
        raise SpecError("multiview spec: `name` is required")
    needs_input = spec.get("num_conditional_frames", 1) > 0 or spec.get("enable_autoregressive")
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
    prompt: str = DEFAULT_PROMPT,
    control_weight: float = 1.0,
    view_condition_video: str | Path | None = None,
) -> dict[str, Any]:
    """A Transfer 1 six-view `--controlnet_specs` object (absolute paths, Cosmos' view order)."""
    if control not in TRANSFER1_MULTIVIEW_CONTROLS:
        raise SpecError(
            f"transfer1 multiview control {control!r}: the AV sample models take "
            f"{list(TRANSFER1_MULTIVIEW_CONTROLS)}"
        )
    _check_views(videos, TRANSFER1_VIEWS, "videos")
    spec: dict[str, Any] = {
        "prompt": prompt,
        control: {
            "control_weight": float(control_weight),
            "input_control": [str(Path(videos[v]).absolute()) for v in TRANSFER1_VIEWS],
        },
    }
    if view_condition_video is not None:
        spec["view_condition_video"] = str(Path(view_condition_video).absolute())
    return spec


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
