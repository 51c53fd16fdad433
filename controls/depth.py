"""Depth control: metric depth -> Cosmos' near-bright inverse-depth video.

Cosmos computes depth with Depth-Anything (relative inverse depth) and min-max normalises it
over the whole video to 0–255 grey. From a simulator's metric depth we do the same: clip to
[min_m, max_m], take 1/depth, and map 1/max_m -> 0 (dark, far) and 1/min_m -> 255 (bright,
near). The range is per clip: by default the 1st and 99th percentiles of the clip's depth
(robust to a few pixels on the near plane or the sky), so every frame of a clip shares one
grey scale and a frame's values depend on the clip it is in. Pass min_m/max_m (e.g. Isaac
Lab's tabletop 0.05–1.5 m) to fix the scale across clips.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cosmos_sim.types import SpecError

DEPTH_PERCENTILES = (1.0, 99.0)
"""Percentiles of the clip's valid depth used as the default (min_m, max_m)."""


def _check_depth(depth_m: np.ndarray) -> np.ndarray:
    arr = np.asarray(depth_m)
    if arr.ndim not in (2, 3) or not np.issubdtype(arr.dtype, np.floating):
        raise SpecError(f"depth_m: expected float H×W or T×H×W metres, got {arr.dtype} {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise SpecError(
            f"depth_m: {bad} NaN/inf values; replace them before making the depth control "
            "(e.g. np.nan_to_num(depth_m, nan=far_m, posinf=far_m) with the camera's far plane)"
        )
    return arr


def depth_range(depth_m: np.ndarray) -> tuple[float, float]:
    """Default (min_m, max_m) of a clip: DEPTH_PERCENTILES of its positive depth values."""
    arr = _check_depth(depth_m)
    valid = arr[arr > 0]
    if valid.size == 0:
        raise SpecError("depth_m: no positive depth values; the clip measured nothing")
    lo, hi = np.percentile(valid, DEPTH_PERCENTILES)
    if hi <= lo:  # a flat clip (one plane): widen so the plane gets a single grey level
        hi = lo * 1.0001 + 1e-6
    return float(lo), float(hi)


def resolve_range(
    min_m: float | None, max_m: float | None, clip_range: Callable[[], tuple[float, float]]
) -> tuple[float, float]:
    """The (min_m, max_m) a depth control normalises over: given limits win, a missing one
    comes from `clip_range()` (the clip's own percentiles), and the pair must be usable."""
    if min_m is None or max_m is None:
        lo, hi = clip_range()
        min_m = lo if min_m is None else min_m
        max_m = hi if max_m is None else max_m
    if not 0 < min_m < max_m:
        raise SpecError(
            f"depth range: need 0 < min_m < max_m, got min_m={min_m}, max_m={max_m}; "
            "inverse depth needs a positive near limit"
        )
    return min_m, max_m


def depth_control(
    depth_m: np.ndarray, *, min_m: float | None = None, max_m: float | None = None
) -> np.ndarray:
    """Metric depth (H×W or T×H×W, metres) -> uint8 grey RGB (…×3), near bright, per clip."""
    arr = _check_depth(depth_m)
    min_m, max_m = resolve_range(min_m, max_m, lambda: depth_range(arr))
    inv = 1.0 / np.clip(arr.astype(np.float32, copy=False), min_m, max_m)
    inv_far, inv_near = 1.0 / max_m, 1.0 / min_m
    grey = np.rint((inv - inv_far) * (255.0 / (inv_near - inv_far)))
    grey = np.clip(grey, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)
