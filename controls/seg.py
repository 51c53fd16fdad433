"""Segmentation control: instance ids -> one random colour per instance, background black.

Colours follow Cosmos' recipe (HSV hue U(0,1), saturation U(0.1,1), value U(0.2,1)) but each
id's colour is drawn from a generator seeded with (seed, id), so it is stable under the seed
and independent of which other ids are in the clip. If two ids ever draw the same RGB colour,
the larger id draws again from its own stream (the only case where another id's presence
matters). Cosmos paints larger masks first when it rasterises overlapping masks; an id image
has exactly one id per pixel, so order does not arise here. Colours carry no class meaning:
the id->colour table is saved (`seg_palette.json`) so labels can be recovered from the
episode, never from the video.
"""

from __future__ import annotations

import colorsys
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from cosmos_sim.types import SpecError

Palette = dict[int, tuple[int, int, int]]
BACKGROUND_ID = 0
BACKGROUND_RGB = (0, 0, 0)
PALETTE_FORMAT = "cosmos-sim-seg-palette"
_DENSE_LUT_MAX_ID = 1 << 22  # above this, look ids up by binary search, not a dense table


def _draw(rng: np.random.Generator) -> tuple[int, int, int]:
    h = rng.uniform(0.0, 1.0)
    s = rng.uniform(0.1, 1.0)
    v = rng.uniform(0.2, 1.0)
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return (round(r * 255), round(g * 255), round(b * 255))


def seg_palette(instance_ids: Iterable[int], seed: int) -> Palette:
    """Colour for each id (0 -> black), reproducible from (seed, id) alone."""
    return extend_palette({}, instance_ids, seed)


def extend_palette(palette: Mapping[int, tuple[int, int, int]], instance_ids: Iterable[int],
                   seed: int) -> Palette:  # fmt: skip
    """`palette` plus a colour for each new id, drawn as `seg_palette` draws it: ids already
    there keep their colour, so a palette can grow chunk by chunk as ids appear."""
    ids = sorted({int(i) for i in np.asarray(list(instance_ids)).ravel()} - set(palette))
    if ids and ids[0] < 0:
        raise SpecError(
            f"instance_ids: {ids[0]} is negative; ids must be >= 0 with 0 the background "
            "(map the simulator's 'no object' id to 0 first)"
        )
    out: Palette = dict(palette)
    used = {BACKGROUND_RGB, *out.values()}
    for instance in ids:
        if instance == BACKGROUND_ID:
            out[instance] = BACKGROUND_RGB
            continue
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, instance])
        colour = _draw(rng)
        while colour in used:
            colour = _draw(rng)
        used.add(colour)
        out[instance] = colour
    return out


def seg_control(instance_id: np.ndarray, palette: Mapping[int, tuple[int, int, int]]) -> np.ndarray:
    """Instance ids (H×W or T×H×W int) -> uint8 RGB (…×3) painted with `palette`."""
    ids = np.asarray(instance_id)
    if not np.issubdtype(ids.dtype, np.integer) or ids.ndim not in (2, 3):
        raise SpecError(f"instance_id: expected integer H×W or T×H×W, got {ids.dtype} {ids.shape}")
    if ids.size == 0:
        return np.zeros((*ids.shape, 3), np.uint8)
    lo, hi = int(ids.min()), int(ids.max())
    if lo >= 0 and hi < _DENSE_LUT_MAX_ID:
        present = np.flatnonzero(np.bincount(ids.ravel(), minlength=hi + 1))
        lut = np.zeros((hi + 1, 3), np.uint8)
        lut[present] = _colours(present, palette)
        return lut[ids]
    # Sparse large ids (e.g. PyBullet body + link encodings): binary-search the palette keys.
    keys = np.array(sorted(palette), dtype=np.int64)
    pos = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
    known = keys[pos] == ids
    if not known.all():
        _colours(np.unique(ids[~known]), palette)  # raises, naming the missing ids
    return _colours(keys, palette)[pos]


def _colours(ids: np.ndarray, palette: Mapping[int, tuple[int, int, int]]) -> np.ndarray:
    missing = [int(i) for i in ids if int(i) not in palette]
    if missing:
        raise SpecError(
            f"instance_id: ids {missing[:10]} have no colour in the palette; build it with "
            "seg_palette(np.unique(instance_id), seed) over the whole clip"
        )
    return np.array([palette[int(i)] for i in ids], dtype=np.uint8).reshape(-1, 3)


def save_palette(
    palette: Mapping[int, tuple[int, int, int]], path: str | Path, *, seed: int | None = None
) -> Path:
    """Write the id->colour table as JSON (`{"colors": {"<id>": [r, g, b]}, ...}`)."""
    path = Path(path)
    payload = {
        "format": PALETTE_FORMAT,
        "seed": seed,
        "background_id": BACKGROUND_ID,
        "colors": {str(k): list(map(int, v)) for k, v in sorted(palette.items())},
    }
    path.write_text(json.dumps(payload, indent=2))
    return path


def load_palette(path: str | Path) -> Palette:
    """Read a table written by `save_palette`."""
    path = Path(path)
    data = json.loads(path.read_text())
    if data.get("format") != PALETTE_FORMAT:
        raise SpecError(f"{path}: not a seg palette (format is not {PALETTE_FORMAT!r})")
    return {int(k): (int(v[0]), int(v[1]), int(v[2])) for k, v in data["colors"].items()}
