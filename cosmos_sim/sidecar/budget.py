"""The work budget: every param that sizes memory or time is bounded before a method runs.

The wire limits (`Limits`) bound what a request carries; these checks bound what it asks
the server to do with it (an image size, a dilation radius, a box count, a batch of envs),
so no single request can allocate gigabytes or run for minutes. Each rule is a plain check
on the params the method's schema already typed, run by the server before the handler;
failures are BAD_PARAMS (a value outside its documented range) or TOO_LARGE (a size over a
limit), naming the param and the limit. PROTOCOL.md §5 lists every bound.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from cosmos_sim.sidecar.protocol import ErrorCode, Limits, ProtocolError

INT64_MAX = 2**63 - 1
BOX_CLASSES = ("Car", "Truck", "Pedestrian", "Cyclist", "Others")
LIGHT_STATES = ("red", "yellow", "green", "unknown")
BOX_KEYS = frozenset({"class", "corners"})
MAX_LIST = 256
"""Longest list of names (modalities, describe's methods, transfer modalities)."""

Rule = Callable[[dict[str, Any], Limits], None]


def _bad(name: str, message: str, fix: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_PARAMS, f"params.{name} {message}", f"params.{name}", fix)


def in_range(params: dict[str, Any], name: str, lo: float, hi: float, *, above: bool = False):
    """params[name] (when not null) within [lo, hi] ((lo, hi] with `above`)."""
    value = params.get(name)
    if value is None:
        return
    if value > hi or value < lo or (above and value == lo):
        low = f"> {lo}" if above else f">= {lo}"
        raise _bad(name, f"is {value}", f"send a value {low} and <= {hi}")


def max_items(params: dict[str, Any], name: str, limit: int) -> None:
    value = params.get(name)
    if value is not None and len(value) > limit:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"params.{name} has {len(value)} entries, over the limit of {limit}",
            f"params.{name}",
            f"send at most {limit} entries",
        )


def image_size(params: dict[str, Any], height: str, width: str, limits: Limits, where: str = ""):
    """height × width (pixels) within max_image_side and an RGB frame within max_array_bytes."""
    h, w = params.get(height), params.get(width)
    for name, value in ((height, h), (width, w)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(f"{where}{name}", f"is {value!r}", "send an int number of pixels")
        if not 1 <= value <= limits.max_image_side:
            raise _bad(
                f"{where}{name}",
                f"is {value}",
                f"send 1..{limits.max_image_side} pixels (max_image_side)",
            )
    if h is not None and w is not None and h * w * 3 > limits.max_array_bytes:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"a {h}×{w} RGB frame is {h * w * 3} bytes, over max_array_bytes="
            f"{limits.max_array_bytes}",
            f"params.{where}{height}",
            "ask for a smaller image (height × width × 3 must fit max_array_bytes)",
        )


def is_matrix(value: Any, rows: int, cols: int) -> bool:
    """A rows×cols list of lists of numbers (not strings, not bools)."""
    return (
        isinstance(value, list)
        and len(value) == rows
        and all(
            isinstance(row, list)
            and len(row) == cols
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in row)
            for row in value
        )
    )


def matrix(params: dict[str, Any], name: str, rows: int, cols: int) -> None:
    """params[name], when not null, is a rows×cols matrix of numbers."""
    value = params.get(name)
    if value is not None and not is_matrix(value, rows, cols):
        raise _bad(
            name,
            f"is not a {rows}×{cols} matrix of numbers",
            f"send {rows} lists of {cols} numbers (row-major)",
        )


def intrinsics_and_pose(params: dict[str, Any]) -> None:
    """K (when given) a pinhole matrix, cam_to_world (when given) a rigid transform: the
    projections divide by fx, fy and invert the pose."""
    matrix(params, "K", 3, 3)
    matrix(params, "cam_to_world", 4, 4)
    if params.get("K") is not None:
        K = np.asarray(params["K"], np.float64)
        if not (K[0, 0] > 0 and K[1, 1] > 0 and np.allclose(K[2], [0, 0, 1])):
            raise _bad(
                "K",
                "is not a pinhole matrix",
                "send [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0",
            )
    if params.get("cam_to_world") is not None:
        pose = np.asarray(params["cam_to_world"], np.float64)
        rot = pose[:3, :3]
        if not (
            np.allclose(pose[3], [0, 0, 0, 1])
            and np.allclose(rot @ rot.T, np.eye(3), atol=1e-4)
            and np.linalg.det(rot) > 0
        ):
            raise _bad(
                "cam_to_world",
                "is not a rigid transform",
                "send a rotation (orthonormal, det +1) and a translation, last row [0, 0, 0, 1]",
            )


def _boxes(params: dict[str, Any], limits: Limits) -> None:
    max_items(params, "boxes", limits.max_boxes)
    for i, box in enumerate(params.get("boxes") or []):
        name = f"boxes[{i}]"
        if not isinstance(box, dict) or set(box) != BOX_KEYS:
            got = sorted(box) if isinstance(box, dict) else type(box).__name__
            raise _bad(name, f"is {got}", "send each box as a map {class, corners}")
        if box["class"] not in BOX_CLASSES:
            raise _bad(f"{name}.class", f"is {box['class']!r}", f"use one of {list(BOX_CLASSES)}")
        if not is_matrix(box["corners"], 8, 3):
            raise _bad(
                f"{name}.corners",
                "is not an 8×3 list of numbers",
                "send the 8 corners [x, y, z] in world metres, in the order of PROTOCOL.md "
                "(index = 4·(x>0) + 2·(y>0) + (z>0) in the box frame, +x the front)",
            )


def _light_states(params: dict[str, Any], limits: Limits) -> None:
    max_items(params, "light_states", limits.max_boxes)
    for key, state in (params.get("light_states") or {}).items():
        if state not in LIGHT_STATES:
            raise _bad(f"light_states.{key}", f"is {state!r}", f"use one of {list(LIGHT_STATES)}")


def _controls(params: dict[str, Any], limits: Limits) -> None:
    max_items(params, "modalities", MAX_LIST)
    in_range(params, "seg_seed", 0, INT64_MAX)
    in_range(params, "depth_min_m", 0.0, 1e9, above=True)
    in_range(params, "depth_max_m", 0.0, 1e9, above=True)
    lo, hi = params.get("depth_min_m"), params.get("depth_max_m")
    if lo is not None and hi is not None and hi <= lo:
        raise _bad("depth_max_m", f"is {hi}, not above depth_min_m={lo}", "send max > min > 0")
    intrinsics_and_pose(params)
    image_size(params, "height", "width", limits)
    in_range(params, "lidar_min_m", 0.0, 1e6)
    in_range(params, "lidar_max_m", 0.0, 1e6, above=True)
    if params.get("lidar_max_m", 1.0) <= params.get("lidar_min_m", 0.0):
        raise _bad("lidar_max_m", "is not above lidar_min_m", "send lidar_max_m > lidar_min_m")
    in_range(params, "lidar_dilate_px", 0, limits.max_dilate_px)
    _boxes(params, limits)
    _light_states(params, limits)


def _sensor_specs(params: dict[str, Any], limits: Limits) -> None:
    max_items(params, "cameras", limits.max_sensors)
    max_items(params, "lidars", limits.max_sensors)
    for i, camera in enumerate(params.get("cameras") or []):
        if isinstance(camera, dict):
            image_size(camera, "height", "width", limits, where=f"cameras[{i}].")


def _episode_open(params: dict[str, Any], limits: Limits) -> None:
    in_range(params, "fps", 0.0, 1e6, above=True)
    in_range(params, "seed", -(2**63), INT64_MAX)
    _sensor_specs(params, limits)


def _episode_append(params: dict[str, Any], limits: Limits) -> None:
    max_items(params, "sensors", limits.max_sensors)
    in_range(params, "index", 0, INT64_MAX)


def _episode_read(params: dict[str, Any], limits: Limits) -> None:
    in_range(params, "start", 0, INT64_MAX)
    in_range(params, "count", 1, limits.max_arrays)
    max_items(params, "sensors", limits.max_sensors)


def _transfer_submit(params: dict[str, Any], limits: Limits) -> None:
    in_range(params, "seed", 0, INT64_MAX)
    max_items(params, "modalities", MAX_LIST)


def _transfer_result(params: dict[str, Any], limits: Limits) -> None:
    in_range(params, "start", 0, INT64_MAX)
    in_range(params, "count", 1, INT64_MAX)


def _env_make(params: dict[str, Any], limits: Limits) -> None:
    in_range(params, "num_envs", 1, limits.max_num_envs)


def _env_reset(params: dict[str, Any], limits: Limits) -> None:
    in_range(params, "seed", 0, INT64_MAX)


def _env_branch(params: dict[str, Any], limits: Limits) -> None:
    in_range(params, "n", 1, limits.max_num_envs)
    in_range(params, "seed", 0, INT64_MAX)
    in_range(params, "lane", 0, limits.max_num_envs - 1)


def _hdmap_load(params: dict[str, Any], limits: Limits) -> None:
    in_range(params, "step_m", 0.1, 100.0)


def _shm_open(params: dict[str, Any], limits: Limits) -> None:
    in_range(params, "size", 1, limits.max_message_bytes)


def _describe(params: dict[str, Any], limits: Limits) -> None:
    max_items(params, "methods", MAX_LIST)
    if not all(isinstance(name, str) for name in params["methods"]):
        raise _bad("methods", "holds a non-string", "send method names as strings")


RULES: Mapping[str, Rule] = {
    "controls": _controls,
    "describe": _describe,
    "episode_open": _episode_open,
    "episode_append": _episode_append,
    "episode_read": _episode_read,
    "transfer_submit": _transfer_submit,
    "transfer_result": _transfer_result,
    "env_make": _env_make,
    "env_reset": _env_reset,
    "env_branch": _env_branch,
    "hdmap_load": _hdmap_load,
    "shm_open": _shm_open,
}


def check_budget(method: str, params: dict[str, Any], limits: Limits) -> None:
    """Bounds of `method`'s params (already typed by its schema); raises ProtocolError."""
    rule = RULES.get(method)
    if rule is not None:
        rule(params, limits)
