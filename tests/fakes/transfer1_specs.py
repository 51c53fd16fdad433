"""A mirror of how Cosmos Transfer 1 reads `--controlnet_specs` (tests only).

Mirrors cosmos-transfer1 at commit 5005e823dbd478ad8e51f6bc28a913a13a994b5f (2026-06):
`load_controlnet_specs` (inference_utils.py: a top-level dict must be a valid hint key, other
top-level values become arguments), the override loop of transfer.py / transfer_multiview.py
(a JSON scalar replaces the CLI default when the flag is not on the command line),
`validate_controlnet_specs` (an input video or sigma_max >= 80; an input_control per control
without an input video) and the base-model choice (`is_av_sample` picks the Sample-AV base
checkpoint, whose controlnets are hdmap and lidar). Paths are checked from the run's cwd.
"""

from __future__ import annotations

import json
from pathlib import Path

UPSTREAM_COMMIT = "5005e823dbd478ad8e51f6bc28a913a13a994b5f"
VALID_HINT_KEYS = ("vis", "seg", "edge", "depth", "keypoint", "upscale", "hdmap", "lidar")
AV_HINT_KEYS = ("hdmap", "lidar")
CLI_DEFAULTS = {"sigma_max": 70.0, "fps": 24, "is_av_sample": False, "input_video_path": ""}


def load_transfer1_spec(path: str | Path, *, multiview: bool = False) -> tuple[dict, dict]:
    """(controls, args) as transfer.py (or transfer_multiview.py) would run them."""
    raw = json.loads(Path(path).read_text())
    controls, args = {}, dict(CLI_DEFAULTS)
    extra_keys = ("view_condition_video", "prompts") if multiview else ()
    for key, value in raw.items():
        if key in VALID_HINT_KEYS:
            controls[key] = value
        elif isinstance(value, dict):
            raise ValueError(f"Invalid hint_key: {key}. Must be one of {VALID_HINT_KEYS}")
        else:
            args[key] = value
    for key in extra_keys:
        if key in raw and isinstance(raw[key], dict):
            raise ValueError(f"{key} must not be a control block")
    if not controls:
        raise ValueError("no control in the spec")
    for key, block in controls.items():
        # transfer_multiview.py runs at sigma_max 80 whatever the spec says
        if not multiview and not args["input_video_path"] and float(args["sigma_max"]) < 80:
            raise ValueError("Must have 'input_video' specified if sigma_max < 80")
        if not args["input_video_path"] and "input_control" not in block:
            raise ValueError(f"{key} controlnet must have 'input_control' video specified")
        for video in _as_list(block.get("input_control")):
            if not Path(video).is_file():
                raise FileNotFoundError(video)
        weight = block.get("control_weight", 0.5)
        if isinstance(weight, str) and weight.endswith(".pt"):
            import torch  # load_spatial_temporal_weights: a 2-D or 3-D tensor

            if torch.load(weight, weights_only=False).ndim not in (2, 3):
                raise ValueError(f"Weight map must be 2D or 3D: {weight}")
        elif float(weight) < 0:
            raise ValueError(f"Control weight for {key} must be non-negative.")
        if key in AV_HINT_KEYS and not multiview and not args["is_av_sample"]:
            raise ValueError(f"{key} has a controlnet only on the Sample-AV base model")
        if key not in AV_HINT_KEYS and args["is_av_sample"]:
            raise ValueError(f"{key} has no controlnet on the Sample-AV base model")
    if args["input_video_path"] and not Path(args["input_video_path"]).is_file():
        raise FileNotFoundError(args["input_video_path"])
    if multiview and not args.get("view_condition_video"):
        raise ValueError("transfer_multiview.py needs view_condition_video")
    return controls, args


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
