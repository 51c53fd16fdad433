"""The one table of controls, and the per-chunk function every consumer calls.

`CONTROLS` says, for each control: its name, the inputs it reads, its CPU function and GPU
kernel, its codec, what it returns besides frames and what an episode must hold for it.
`write_clips` / `run_pipeline`, `control_backend` (which function runs on which device),
`cosmos_sim.kernels.clip_backend`, the sidecar's `controls` method and the in-loop augmenter
all read it; nothing else lists modality names or dispatches on them.

`compute_controls(chunk, modalities, stats)` makes the control frames of a `FrameChunk`
(T frames of one camera, already at the size the controls are made at, with K and
cam_to_world per frame). Per-clip statistics (the depth range, the seg palette) come in
`stats`: fixed by the user, computed in a first streaming pass (`ClipStatsAccumulator`), or
taken from the chunk itself (`resolve_stats`) when frames arrive one chunk at a time.

Argument order is numpy's everywhere: images T×H×W[×C], sizes (height, width).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cosmos_sim.controls.depth import depth_control, depth_range
from cosmos_sim.controls.edge import EDGE_PRESETS, edge_control
from cosmos_sim.controls.hdmap import DynamicState, HDMapScene, render_hdmap_clip
from cosmos_sim.controls.lidar import (
    LIDAR_DILATE_PX,
    LIDAR_MAX_M,
    LIDAR_MIN_M,
    lidar_control_clip,
)
from cosmos_sim.controls.seg import Palette, extend_palette, seg_control
from cosmos_sim.controls.vis import VIS_PRESETS, vis_control
from cosmos_sim.types import SpecError

Backend = Mapping[str, Callable[..., np.ndarray]]
"""Control name -> the function that computes it on some device (`control_backend`)."""


@dataclass(frozen=True)
class Control:
    """One Cosmos control, as every consumer sees it."""

    name: str
    """Cosmos' name (video file `<name>.mp4`, spec key)."""
    inputs: tuple[str, ...]
    """`FrameChunk` fields it reads (the sidecar's request arrays carry the same names)."""
    cpu: Callable[..., np.ndarray]
    """The reference numpy/OpenCV function (batch-first numpy in, uint8 T×H×W×3 out)."""
    gpu: str
    """The device kernel `cosmos_sim.kernels.clip_backend` wraps, as "module:function"."""
    lossless: bool
    """Codec: libx264rgb qp=0 (exact colours, thin lines, sparse returns) when True, else
    H.264 yuv420p CRF 18."""
    returns: tuple[str, ...] = ()
    """What it yields besides frames, recorded per camera in clips.json."""
    requires: str | None = None
    """What an episode must hold for it: "lidar" (a recorded LiDAR) or "map" (OpenDRIVE)."""


CONTROLS: dict[str, Control] = {
    c.name: c
    for c in (
        Control("depth", ("depth_m",), depth_control, "cosmos_sim.kernels.depth:depth_control",
                lossless=False, returns=("depth_range_m",)),
        Control("seg", ("instance_id",), seg_control, "cosmos_sim.kernels.seg:seg_control",
                lossless=True, returns=("seg_palette",)),
        Control("edge", ("rgb",), edge_control, "cosmos_sim.kernels.canny:edge_control",
                lossless=True),
        Control("vis", ("rgb",), vis_control, "cosmos_sim.kernels.vis:vis_control",
                lossless=False),
        Control("lidar", ("sweeps", "K", "cam_to_world"), lidar_control_clip,
                "cosmos_sim.kernels.lidar:lidar_control", lossless=True, requires="lidar"),
        Control("hdmap", ("K", "cam_to_world"), render_hdmap_clip,
                "cosmos_sim.kernels.hdmap:hdmap_control", lossless=True, requires="map"),
    )
}  # fmt: skip
"""Every control, in the order clips are written."""

MODALITIES = tuple(CONTROLS)
"""Control names, in the order they are written."""

LOSSLESS = frozenset(name for name, control in CONTROLS.items() if control.lossless)
"""Controls written with libx264rgb qp=0."""


@dataclass
class FrameChunk:
    """T consecutive frames of one camera at the size the controls are made at.

    Fill what the wanted controls read (`Control.inputs`); sizes are (height, width).
    """

    height: int
    """Image height in pixels."""
    width: int
    """Image width in pixels."""
    rgb: np.ndarray | None = None
    """uint8 T×H×W×3 RGB; for edge and vis."""
    depth_m: np.ndarray | None = None
    """float32 T×H×W metres along the optical axis; for depth."""
    instance_id: np.ndarray | None = None
    """int T×H×W instance ids, 0 = background; for seg."""
    K: np.ndarray | None = None
    """T×3×3 intrinsics at this size (pixels); for lidar and hdmap."""
    cam_to_world: np.ndarray | None = None
    """T×4×4 OpenCV camera-to-world poses; for lidar and hdmap."""
    ticks: Sequence[int] | None = None
    """Episode tick of each frame (indexes `sweeps`); default 0..T-1."""
    sweeps: Sequence[np.ndarray | None] | None = None
    """World-frame N×3 LiDAR sweep of each tick, None where it did not fire; each frame
    accumulates ±`ControlSettings.lidar_sweeps_each_side` of them. A long episode may pass a
    sparse sequence holding only the sweeps this chunk's windows reach."""
    dynamics: Sequence[DynamicState | None] | None = None
    """Per frame: actor boxes and traffic-light states for hdmap (None: map only)."""

    def __len__(self) -> int:
        for value in (self.rgb, self.depth_m, self.instance_id, self.K):
            if value is not None:
                return len(value)
        return 0


@dataclass(frozen=True)
class ControlSettings:
    """Options of the controls that do not change within a clip."""

    edge_preset: str = "medium"
    """Canny thresholds (`EDGE_PRESETS`)."""
    vis_preset: str = "medium"
    """Blur recipe (`VIS_PRESETS`)."""
    seed: int = 0
    """Seg colours: id i gets the colour drawn from (seed, i)."""
    lidar_max_m: float = LIDAR_MAX_M
    lidar_min_m: float = LIDAR_MIN_M
    lidar_dilate_px: int = LIDAR_DILATE_PX
    lidar_sweeps_each_side: int = 2
    """Sweeps accumulated on each side of a frame's own."""
    hdmap_scene: HDMapScene | None = None
    """The compiled map (`controls.hdmap.compile_scene`); for hdmap."""

    def __post_init__(self) -> None:
        for label, preset, known in (("edge_preset", self.edge_preset, EDGE_PRESETS),
                                     ("vis_preset", self.vis_preset, VIS_PRESETS)):  # fmt: skip
            if preset not in known:
                raise SpecError(
                    f"{label} {preset!r} is not known; use one of {list(known)}",
                    field=label,
                    fix=f"use one of {list(known)}",
                )


@dataclass
class ClipStats:
    """Per-clip statistics the controls share across chunks, so every chunk of a clip is
    drawn on one scale: None means "take it from the chunk" (`resolve_stats`)."""

    depth_range_m: tuple[float, float] | None = None
    """(min_m, max_m) the depth control normalises over."""
    palette: Palette | None = None
    """Instance id -> RGB of the seg control."""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.depth_range_m is not None:
            out["depth_range_m"] = [float(v) for v in self.depth_range_m]
        return out


def check_modalities(modalities: Sequence[str] | str) -> tuple[str, ...]:
    """Known control names, in table order, from a list or a comma-separated string."""
    if isinstance(modalities, str):
        modalities = [m.strip() for m in modalities.split(",") if m.strip()]
    unknown = [m for m in modalities if m not in CONTROLS]
    if unknown or not modalities:
        raise SpecError(
            f"modalities {list(unknown) or []}: choose at least one of {list(MODALITIES)}"
            if not unknown
            else f"modalities {unknown} are not known; choose from {list(MODALITIES)}",
            field="modalities",
            fix=f"use names from {list(MODALITIES)}",
        )
    return tuple(m for m in MODALITIES if m in modalities)


def resolve_stats(
    chunk: FrameChunk, modalities: Sequence[str], stats: ClipStats | None, seed: int = 0
) -> ClipStats:
    """`stats` with what it leaves open filled from this chunk: the depth range from the
    chunk's depth, the palette extended to the chunk's ids (known ids keep their colour)."""
    stats = stats or ClipStats()
    depth_range_m, palette = stats.depth_range_m, stats.palette
    if "depth" in modalities and depth_range_m is None:
        depth_range_m = depth_range(_need(chunk, "depth_m", "depth"))
    if "seg" in modalities:
        ids = np.unique(_need(chunk, "instance_id", "seg"))
        if palette is None or not set(ids.tolist()) <= palette.keys():
            palette = extend_palette(palette or {}, ids, seed)
    return ClipStats(depth_range_m=depth_range_m, palette=palette)


def compute_controls(
    chunk: FrameChunk,
    modalities: Sequence[str],
    stats: ClipStats,
    *,
    settings: ControlSettings | None = None,
    backend: Backend | str = "cpu",
) -> dict[str, np.ndarray]:
    """Control frames (uint8 T×H×W×3 per name) of one chunk of one camera.

    `stats` must hold what the controls need across the clip (a depth range for depth, a
    palette covering the chunk's ids for seg): pass fixed values, the result of a first
    streaming pass, or `resolve_stats(chunk, ...)`. `backend` is a device name ("cpu",
    "cuda", "auto") or a `control_backend(...)` built once for many chunks.
    """
    from cosmos_sim.controls.backend import control_backend

    settings = settings or ControlSettings()
    functions = control_backend(backend) if isinstance(backend, str) else backend
    wanted = check_modalities(modalities)
    return {name: _RUNNERS[name](functions[name], chunk, stats, settings) for name in wanted}


def _need(chunk: FrameChunk, name: str, control: str) -> Any:
    value = getattr(chunk, name)
    if value is None:
        raise SpecError(
            f"control {control!r} needs {name}, which this chunk does not have",
            field=name,
            fix=f"pass {name} or drop {control!r} from the modalities",
        )
    return value


def _depth(fn: Callable, chunk: FrameChunk, stats: ClipStats, s: ControlSettings) -> np.ndarray:
    if stats.depth_range_m is None:
        raise SpecError("depth: stats.depth_range_m is not set; call resolve_stats first")
    lo, hi = stats.depth_range_m
    return fn(_need(chunk, "depth_m", "depth"), min_m=lo, max_m=hi)


def _seg(fn: Callable, chunk: FrameChunk, stats: ClipStats, s: ControlSettings) -> np.ndarray:
    if stats.palette is None:
        raise SpecError("seg: stats.palette is not set; call resolve_stats first")
    return fn(_need(chunk, "instance_id", "seg"), stats.palette)


def _edge(fn: Callable, chunk: FrameChunk, stats: ClipStats, s: ControlSettings) -> np.ndarray:
    return fn(_need(chunk, "rgb", "edge"), s.edge_preset)


_VIS_BATCH = 8  # the vis recipe holds several float copies of its input: bound them


def _vis(fn: Callable, chunk: FrameChunk, stats: ClipStats, s: ControlSettings) -> np.ndarray:
    rgb = _need(chunk, "rgb", "vis")
    return np.concatenate(
        [fn(rgb[i : i + _VIS_BATCH], s.vis_preset) for i in range(0, len(rgb), _VIS_BATCH)]
    )


def _lidar(fn: Callable, chunk: FrameChunk, stats: ClipStats, s: ControlSettings) -> np.ndarray:
    return fn(
        _need(chunk, "sweeps", "lidar"),
        list(_need(chunk, "K", "lidar")),
        list(_need(chunk, "cam_to_world", "lidar")),
        height=chunk.height,
        width=chunk.width,
        ticks=None if chunk.ticks is None else list(chunk.ticks),
        sweeps_each_side=s.lidar_sweeps_each_side,
        max_m=s.lidar_max_m,
        min_m=s.lidar_min_m,
        dilate_px=s.lidar_dilate_px,
    )


def _hdmap(fn: Callable, chunk: FrameChunk, stats: ClipStats, s: ControlSettings) -> np.ndarray:
    if s.hdmap_scene is None:
        raise SpecError(
            "hdmap: no map; pass ControlSettings(hdmap_scene=compile_scene(...))",
            field="hdmap_scene",
        )
    # Keywords, not positions: the HD-map functions' size order may change to (height, width).
    return fn(
        s.hdmap_scene,
        list(_need(chunk, "K", "hdmap")),
        list(_need(chunk, "cam_to_world", "hdmap")),
        height=chunk.height,
        width=chunk.width,
        dynamics=None if chunk.dynamics is None else list(chunk.dynamics),
    )


_RUNNERS: dict[str, Callable[..., np.ndarray]] = {
    "depth": _depth,
    "seg": _seg,
    "edge": _edge,
    "vis": _vis,
    "lidar": _lidar,
    "hdmap": _hdmap,
}
assert _RUNNERS.keys() == CONTROLS.keys()  # one runner per table entry


@dataclass
class ClipStatsAccumulator:
    """The first streaming pass: feed every chunk of a clip, then `result()`.

    The depth range is DEPTH_PERCENTILES of the clip's positive depth, read from a histogram
    of float32 bit patterns (2^20 bins, each 2^-12 of its value wide), so it needs constant
    memory at any clip length; it matches `depth_range` of the whole clip to within that
    relative width (0.025 %: at most one grey level of the control).
    """

    modalities: Sequence[str]
    seed: int = 0
    fixed: ClipStats = field(default_factory=ClipStats)
    _counts: np.ndarray | None = None
    _extent: tuple[float, float] = (np.inf, -np.inf)
    _ids: set[int] = field(default_factory=set)

    @property
    def needs_pass(self) -> bool:
        """Whether any chunk needs to be read before the controls can be made."""
        return ("depth" in self.modalities and self.fixed.depth_range_m is None) or (
            "seg" in self.modalities and self.fixed.palette is None
        )

    def add(self, depth_m: np.ndarray | None = None, instance_id: np.ndarray | None = None):
        if "depth" in self.modalities and self.fixed.depth_range_m is None:
            if depth_m is None:
                raise SpecError("depth: a chunk without depth_m; every frame needs depth")
            self._counts = _add_histogram(self._counts, depth_m)
            positive = depth_m[depth_m > 0]
            if positive.size:  # exact ends: a percentile never lies outside them
                lo, hi = self._extent
                self._extent = (min(lo, float(positive.min())), max(hi, float(positive.max())))
        if "seg" in self.modalities and self.fixed.palette is None and instance_id is not None:
            self._ids.update(_distinct_ids(instance_id))

    def result(self) -> ClipStats:
        depth_range_m, palette = self.fixed.depth_range_m, self.fixed.palette
        if "depth" in self.modalities and depth_range_m is None:
            depth_range_m = _histogram_range(self._counts, self._extent)
        if "seg" in self.modalities and palette is None:
            palette = extend_palette({}, sorted(self._ids), self.seed)
        return ClipStats(depth_range_m=depth_range_m, palette=palette)


_HIST_SHIFT = 11  # float32 bits >> 11: sign 0, 8 exponent bits, 12 mantissa bits
_HIST_BINS = 1 << (31 - _HIST_SHIFT)


def _add_histogram(counts: np.ndarray | None, depth_m: np.ndarray) -> np.ndarray:
    arr = np.asarray(depth_m, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        raise SpecError(
            "depth_m: NaN/inf values; replace them before making the depth control",
            field="depth_m",
            fix="np.nan_to_num(depth_m, nan=far_m, posinf=far_m)",
        )
    bits = arr[arr > 0].view(np.uint32) >> _HIST_SHIFT  # positive floats sort as their bits
    counts = np.zeros(_HIST_BINS, np.int64) if counts is None else counts
    if bits.size:  # count only the span of bins this frame touches (a few of the 2^20)
        lo, hi = int(bits.min()), int(bits.max())
        counts[lo : hi + 1] += np.bincount(bits - lo, minlength=hi - lo + 1)
    return counts


def _distinct_ids(instance_id: np.ndarray) -> list[int]:
    """The distinct ids of a frame. Every id starts a run of equal pixels somewhere in the
    flattened frame, so the sort runs over the run heads (a few thousand in a segmentation
    frame) instead of every pixel: ~13× faster than np.unique at 1280×704."""
    flat = np.ascontiguousarray(instance_id).ravel()
    if flat.size == 0:
        return []
    heads = flat[np.flatnonzero(np.concatenate(([True], flat[1:] != flat[:-1])))]
    return np.unique(heads).tolist()


def _histogram_range(counts: np.ndarray | None, extent: tuple[float, float]) -> tuple[float, float]:
    from cosmos_sim.controls.depth import DEPTH_PERCENTILES

    n = 0 if counts is None else int(counts.sum())
    if n == 0:
        raise SpecError("depth_m: no positive depth values; the clip measured nothing")
    cumulative = np.cumsum(counts)

    def value_at(rank: float) -> float:
        # numpy's "linear" percentile between order statistics floor(rank), ceil(rank); each
        # order statistic is placed within its bin by its rank among the bin's values.
        def order_stat(r: int) -> float:
            b = int(np.searchsorted(cumulative, r, side="right"))
            before = cumulative[b] - counts[b]
            lo = np.array([b << _HIST_SHIFT], np.uint32).view(np.float32)[0]
            hi = np.array([(b + 1) << _HIST_SHIFT], np.uint32).view(np.float32)[0]
            return float(lo + (hi - lo) * (r - before + 0.5) / counts[b])

        low = int(np.floor(rank))
        frac = rank - low
        return order_stat(low) + frac * (order_stat(min(low + 1, n - 1)) - order_stat(low))

    lo, hi = (min(max(value_at((n - 1) * q / 100.0), extent[0]), extent[1])
              for q in DEPTH_PERCENTILES)  # fmt: skip
    if hi <= lo:
        hi = lo * 1.0001 + 1e-6
    return lo, hi
