"""Depth control on the device: clip, inverse, per-clip scale -> near-bright grey RGB.

Same arithmetic as `cosmos_sim.controls.depth_control` (float32 inverse, constants rounded to
float32 as numpy does for Python scalars, round-half-even), so outputs match bit for bit.

The default range is the clip's 1st/99th percentile of positive depth. numpy interpolates
between two order statistics per percentile; they are found exactly without sorting the
clip: positive float32 values order like their bit patterns, so one histogram of the top
16 bits places each wanted rank in a bin, and only that bin's values are sorted.
"""

from __future__ import annotations

import numpy as np
import torch

from cosmos_sim.controls.depth import DEPTH_PERCENTILES, resolve_range
from cosmos_sim.kernels._backend import Impl, use_triton
from cosmos_sim.types import SpecError

_NOT_POSITIVE = 0xFFFF  # a top-16-bit pattern no positive float32 has (it is a NaN's)


def depth_range(depth_m: torch.Tensor) -> tuple[float, float]:
    """Default (min_m, max_m) of a clip, equal to `cosmos_sim.controls.depth_range`."""
    depth = _check_finite(_check(depth_m))
    q = np.true_divide(np.asarray(DEPTH_PERCENTILES), 100)
    values, n = _order_statistics(depth.reshape(-1), q)
    if n == 0:
        raise SpecError("depth_m: no positive depth values; the clip measured nothing")
    virtual = (n - 1) * q  # numpy's "linear" method (_function_base_impl._quantile)
    prev = np.minimum(np.floor(virtual), n - 1).astype(np.int64)
    nxt = np.minimum(np.floor(virtual) + 1, n - 1).astype(np.int64)
    gamma = virtual - np.floor(virtual)
    dtype = torch.empty((), dtype=depth.dtype).numpy().dtype
    a = np.array([values[int(k)] for k in prev], dtype)
    b = np.array([values[int(k)] for k in nxt], dtype)
    diff = b - a  # numpy's _lerp: difference in the input's dtype, float64 interpolation
    result = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    lo, hi = float(result[0]), float(result[1])
    if hi <= lo:
        hi = lo * 1.0001 + 1e-6
    return lo, hi


def _order_statistics(flat: torch.Tensor, q: np.ndarray) -> tuple[dict[int, float], int]:
    """{rank: value} of the positive values at the ranks numpy's percentile q needs, and n."""
    if flat.dtype != torch.float32:  # the bit trick is for float32; others sort
        valid = flat[flat > 0]
        n = valid.numel()
        if n == 0:
            return {}, 0
        ranks = _ranks(n, q)
        ordered = valid.sort().values
        return {k: float(ordered[k]) for k in ranks}, n
    top = torch.where(flat > 0, flat.view(torch.int32) >> 16, _NOT_POSITIVE)
    counts = torch.bincount(top, minlength=_NOT_POSITIVE + 1)[:_NOT_POSITIVE]
    cumulative = counts.cumsum(0)
    n = int(cumulative[-1])
    if n == 0:
        return {}, 0
    ranks = _ranks(n, q)
    wanted = torch.tensor(ranks, device=flat.device)
    bins = torch.searchsorted(cumulative, wanted, right=True).tolist()
    before = torch.where(
        torch.tensor(bins, device=flat.device) > 0,
        cumulative[torch.tensor(bins, device=flat.device).clamp(min=1) - 1],
        0,
    ).tolist()
    values: dict[int, float] = {}
    for bin_index in sorted(set(bins)):
        members = flat[top == bin_index].sort().values
        for rank, b, below in zip(ranks, bins, before, strict=True):
            if b == bin_index:
                values[rank] = float(members[rank - below])
    return values, n


def _ranks(n: int, q: np.ndarray) -> list[int]:
    virtual = (n - 1) * q
    prev = np.minimum(np.floor(virtual), n - 1)
    return sorted({int(k) for k in (*prev, *np.minimum(prev + 1, n - 1))})


def depth_control(
    depth_m: torch.Tensor,
    *,
    min_m: float | None = None,
    max_m: float | None = None,
    impl: Impl = "auto",
) -> torch.Tensor:
    """T×H×W float metres -> T×H×W×3 uint8 near-bright inverse depth, on depth_m's device."""
    depth = _check(depth_m)
    min_m, max_m = resolve_range(min_m, max_m, lambda: depth_range(depth))
    # numpy turns Python-float operands into float32 next to a float32 array (NEP 50).
    lo32, hi32 = np.float32(min_m), np.float32(max_m)
    offset = np.float32(1.0 / max_m)
    scale = np.float32(255.0 / (1.0 / min_m - 1.0 / max_m))
    if use_triton(depth, impl):
        from cosmos_sim.kernels._elementwise_triton import depth_to_grey_rgb

        out, bad = depth_to_grey_rgb(depth, float(lo32), float(hi32), float(offset), float(scale))
        if bool(bad.item()):
            _check_finite(depth)  # raises, naming the count
        return out
    depth32 = _check_finite(depth).to(torch.float32)
    inv = torch.reciprocal(depth32.clamp(float(lo32), float(hi32)))
    grey = torch.round((inv - float(offset)) * float(scale)).clamp_(0, 255).to(torch.uint8)
    return grey.unsqueeze(-1).expand(*grey.shape, 3).contiguous()


def _check(depth_m: torch.Tensor) -> torch.Tensor:
    if depth_m.ndim != 3 or not depth_m.is_floating_point():
        raise SpecError(
            f"depth_m: expected float T×H×W metres, got {depth_m.dtype} {tuple(depth_m.shape)}"
        )
    return depth_m


def _check_finite(depth_m: torch.Tensor) -> torch.Tensor:
    finite = torch.isfinite(depth_m)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise SpecError(
            f"depth_m: {bad} NaN/inf values; replace them before making the depth control "
            "(e.g. torch.nan_to_num(depth_m, nan=far_m, posinf=far_m) with the camera's far plane)"
        )
    return depth_m
