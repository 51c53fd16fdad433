"""Edge control: cv2.Canny on the RGB frames with Cosmos' threshold presets, white on black.

Like Cosmos' `AddControlInputEdge`, Canny runs on the 3-channel RGB image itself (OpenCV takes
the strongest channel gradient), not on a grey conversion. Compute it on frames already at
the bucket resolution so lines stay one pixel wide.
"""

from __future__ import annotations

import cv2
import numpy as np

from cosmos_sim.imaging import as_rgb_frames
from cosmos_sim.types import SpecError

EDGE_PRESETS: dict[str, tuple[int, int]] = {
    "very_low": (20, 50),
    "low": (50, 100),
    "medium": (100, 200),
    "high": (200, 300),
    "very_high": (300, 400),
}
"""Canny (low, high) hysteresis thresholds per Cosmos preset (`preset_edge_threshold`)."""


def edge_control(rgb: np.ndarray, preset: str = "medium") -> np.ndarray:
    """uint8 RGB (H×W×3 or T×H×W×3) -> uint8 edges (same shape), 255 on edges, 0 elsewhere."""
    if preset not in EDGE_PRESETS:
        raise SpecError(f"edge preset {preset!r} is not known; use one of {list(EDGE_PRESETS)}")
    frames = as_rgb_frames(rgb)
    low, high = EDGE_PRESETS[preset]
    edges = np.stack([cv2.Canny(np.ascontiguousarray(f), low, high) for f in frames])
    out = np.repeat(edges[..., None], 3, axis=-1)
    return out[0] if np.asarray(rgb).ndim == 3 else out
