"""Seg control on the device: instance ids -> palette colours through a packed lookup table.

The palette (`cosmos_sim.controls.seg_palette`) stays the one source of colours; this only
moves the per-pixel lookup to the device. Ids the palette lacks raise the same error as the
CPU function, found from a flag the kernel raises rather than a pass over the ids.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from cosmos_sim.kernels._backend import Impl, use_triton
from cosmos_sim.types import SpecError

_MAX_LUT_ID = 1 << 22  # a 16 MiB table; sparser palettes go through searchsorted


def palette_lut(palette: Mapping[int, tuple[int, int, int]], device: torch.device) -> torch.Tensor:
    """int32 table indexed by id: colour packed as 0x00BBGGRR, -1 where the id has none."""
    ids = np.fromiter(palette.keys(), dtype=np.int64, count=len(palette))
    if ids.size and (ids.min() < 0 or ids.max() >= _MAX_LUT_ID):
        raise ValueError("palette ids outside [0, 2**22) need the searchsorted path")
    rgb = np.array(list(palette.values()), dtype=np.int32).reshape(-1, 3)
    lut = np.full(int(ids.max()) + 1 if ids.size else 1, -1, dtype=np.int32)
    lut[ids] = rgb[:, 0] | (rgb[:, 1] << 8) | (rgb[:, 2] << 16)
    return torch.from_numpy(lut).to(device)


def seg_control(
    instance_id: torch.Tensor,
    palette: Mapping[int, tuple[int, int, int]],
    *,
    impl: Impl = "auto",
) -> torch.Tensor:
    """T×H×W integer ids -> T×H×W×3 uint8 colours, on instance_id's device."""
    ids = instance_id
    if ids.ndim != 3 or ids.is_floating_point() or ids.dtype == torch.bool:
        raise SpecError(f"instance_id: expected integer T×H×W, got {ids.dtype} {tuple(ids.shape)}")
    keys = sorted(palette)
    if keys and (keys[0] < 0 or keys[-1] >= _MAX_LUT_ID):
        ids, palette = _compact(ids, palette)
    lut = palette_lut(palette, ids.device)
    if use_triton(ids, impl):
        from cosmos_sim.kernels._elementwise_triton import lut_rgb

        out, missing = lut_rgb(ids, lut)
        if bool(missing.item()):
            _raise_missing(ids, lut)
        return out
    key = ids.long()
    known = (key >= 0) & (key < lut.numel())
    packed = torch.where(known, lut[key.clamp(0, lut.numel() - 1)], -1)
    if bool((packed < 0).any()):
        _raise_missing(ids, lut)
    shifts = torch.tensor([0, 8, 16], dtype=torch.int32, device=ids.device)
    return ((packed.unsqueeze(-1) >> shifts) & 255).to(torch.uint8)


def _compact(
    ids: torch.Tensor, palette: Mapping[int, tuple[int, int, int]]
) -> tuple[torch.Tensor, dict[int, tuple[int, int, int]]]:
    """Renumber sparse ids to palette positions (unknown ids become -1, reported later)."""
    keys = torch.tensor(sorted(palette), dtype=torch.int64, device=ids.device)
    pos = torch.searchsorted(keys, ids.long()).clamp_(max=keys.numel() - 1)
    unknown = keys[pos] != ids
    if bool(unknown.any()):
        _raise_missing(ids[unknown], torch.full((1,), -1, dtype=torch.int32))
    return pos, {i: palette[int(k)] for i, k in enumerate(keys.tolist())}


def _raise_missing(ids: torch.Tensor, lut: torch.Tensor) -> None:
    present = torch.unique(ids).long()
    known = (present >= 0) & (present < lut.numel())
    has = torch.zeros_like(known)
    has[known] = lut[present[known]] >= 0
    missing = present[~has].tolist()
    raise SpecError(
        f"instance_id: ids {missing[:10]} have no colour in the palette; build it with "
        "seg_palette(np.unique(instance_id), seed) over the whole clip"
    )
