"""Small image helpers shared by controls, contact sheets and grids: checks, grids, PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from cosmos_sim.types import SpecError


def as_rgb_frames(rgb: np.ndarray, name: str = "rgb") -> np.ndarray:
    """A uint8 H×W×3 image or T×H×W×3 stack as T×H×W×3 (a view); SpecError naming `name`."""
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4) or arr.shape[-1] != 3:
        raise SpecError(f"{name}: expected uint8 H×W×3 or T×H×W×3, got {arr.dtype} {arr.shape}")
    return arr[None] if arr.ndim == 3 else arr


def image_grid(
    rows: Sequence[Sequence[np.ndarray]],
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    pad_px: int = 4,
    cell_width: int | None = None,
    background: tuple[int, int, int] = (32, 32, 32),
) -> np.ndarray:
    """Tile uint8 RGB images (H×W×3, or H×W grey) into one RGB image, with optional labels.

    Every cell is resized (area) to `cell_width` (default: the first image's width) keeping
    the first image's aspect ratio, so controls of any size line up.
    """
    if not rows or not rows[0]:
        raise SpecError("image_grid: give at least one row with one image")
    first = _to_rgb(rows[0][0])
    cw = cell_width or first.shape[1]
    ch = max(1, round(first.shape[0] * cw / first.shape[1]))
    n_cols = max(len(r) for r in rows)
    label_h = 22 if col_labels else 0
    label_w = 110 if row_labels else 0
    height = label_h + len(rows) * (ch + pad_px) + pad_px
    width = label_w + n_cols * (cw + pad_px) + pad_px
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = background
    for c, text in enumerate(col_labels or []):
        x = label_w + pad_px + c * (cw + pad_px)
        _text(canvas, text, (x + 2, label_h - 6))
    for r, row in enumerate(rows):
        y = label_h + pad_px + r * (ch + pad_px)
        if row_labels and r < len(row_labels):
            _text(canvas, row_labels[r], (4, y + ch // 2))
        for c, img in enumerate(row):
            x = label_w + pad_px + c * (cw + pad_px)
            cell = _to_rgb(img)
            if cell.shape[:2] != (ch, cw):
                interp = cv2.INTER_AREA if cell.shape[1] > cw else cv2.INTER_NEAREST
                cell = cv2.resize(cell, (cw, ch), interpolation=interp)
            canvas[y : y + ch, x : x + cw] = cell
    return canvas


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write a uint8 RGB (or grey) image as PNG."""
    path = Path(path)
    img = _to_rgb(image)
    if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}; check the folder exists and is writable")
    return path


def _to_rgb(img: np.ndarray) -> np.ndarray:
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise SpecError(f"image_grid: images must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        return np.ascontiguousarray(arr)
    raise SpecError(f"image_grid: expected H×W or H×W×3, got shape {arr.shape}")


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int]) -> None:
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(
        canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA
    )
