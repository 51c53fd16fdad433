"""Episode -> per-camera Cosmos control clips, specs and a contact sheet.

For each camera, `write_clips` writes into `out/<camera>/`:

- `rgb.mp4` and one `<modality>.mp4` per control, resampled to 16 fps (`resample_indices`:
  the tick at or before each output time) and at the camera's Cosmos bucket resolution;
- `transfer25.json` (Transfer 2.5, paths relative to that folder), `transfer1.json`
  (Transfer 1 general controls, absolute paths), `transfer1_av.json` (Transfer 1 Sample-AV:
  lidar, hdmap), `seg_palette.json`, `contact_sheet.png`;

and `out/transfer25_batch.jsonl` (every camera's Transfer 2.5 sample, paths relative to
`out`) plus `out/clips.json`, which records the episode tick behind each output frame: the
labels (boxes, masks, depth, poses) stay in the episode and are aligned through it, never
recovered from video.

Controls are computed on images already resized to the bucket so each keeps its meaning:
RGB is resized with area (or bilinear when enlarging) and edge/vis are computed from it (thin
Canny lines, the vis recipe at the model's size); metric depth is resized bilinearly before
the depth control; instance ids with nearest neighbour before seg (no invented ids); LiDAR is
projected straight into the bucket with K scaled to it, and so is the HD map. Seg, edge,
LiDAR and HD-map videos are lossless (libx264rgb qp=0: exact colours, no ringing around thin
lines or sparse returns); rgb, depth and vis are H.264 yuv420p.

Streamed in chunks of `chunk_frames` output frames: memory is bounded by the chunk, not the
episode. A first pass reads only what the per-clip statistics need (the depth range, the seg
ids; `controls.table.ClipStatsAccumulator`), skipped when they are fixed; the second reads
each chunk's ticks in a background thread, computes its controls (`compute_controls`, one
call per camera and chunk) and hands the frames to one encoder thread per video.
`clips.json` records, per camera and output frame, K (at the bucket size) and cam_to_world,
and the depth range, so no later stage guesses them.

With `modalities=None` every control the episode supports is written: lidar only when the
episode recorded a LiDAR, hdmap only when it has an OpenDRIVE map. Asking for either
explicitly on an episode without what it needs is an error.

HD map (`hdmap`, Transfer 1 AV control; Transfer 2.5 single-view has no hdmap key, so it is
only in `transfer1_av.json`): rendered by `controls.hdmap` (colour version v3 by default) from
the episode's `map.xodr`, which CARLA captures save, or from `xodr=` for any other episode
recorded on an OpenDRIVE map. Each output frame is drawn with that tick's camera K and
cam_to_world and its dynamic state (`DynamicState.from_tick_data`: CARLA's actor boxes and
traffic-light states; none for other simulators).
"""

from __future__ import annotations

import os
import shutil
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cosmos_sim.controls.backend import control_backend
from cosmos_sim.controls.hdmap import DynamicState, HDMapScene, compile_scene
from cosmos_sim.controls.lidar import clip_windows
from cosmos_sim.controls.seg import save_palette
from cosmos_sim.controls.spec import (
    DEFAULT_PROMPT,
    TRANSFER1_AV_CONTROLS,
    TRANSFER1_AV_FPS,
    TRANSFER1_GENERAL_CONTROLS,
    TRANSFER25_CONTROLS,
    sample_name,
    transfer1_av_spec,
    transfer1_spec,
    transfer25_spec,
    weights_for,
    write_spec_json,
    write_spec_jsonl,
)
from cosmos_sim.controls.spec_cosmos3 import write_cosmos3_specs
from cosmos_sim.controls.table import (
    CONTROLS,
    LOSSLESS,
    MODALITIES,
    ClipStats,
    ClipStatsAccumulator,
    ControlSettings,
    FrameChunk,
    check_modalities,
    compute_controls,
)
from cosmos_sim.episode import (
    DamagedTickError,
    Episode,
    EpisodeError,
    Tick,
    ensure_empty_dir,
    write_json_atomic,
)
from cosmos_sim.imaging import image_grid, save_png
from cosmos_sim.types import SpecError
from cosmos_sim.video import (
    COSMOS_FPS,
    FRAMES_PER_CHUNK,
    STREAM_PRESET,
    ParallelVideoWriters,
    bucket_size,
    resample_indices,
    resize_frames,
    scale_intrinsics,
)

EPISODE_MAP = "map.xodr"
"""The OpenDRIVE map inside an episode folder (CARLA captures save it) for the hdmap control."""

CHUNK_FRAMES = 8
"""Default output frames per streamed chunk. One 1280×704 camera, all controls, with
`cosmos_sim.heap`'s settings: peak RSS 1.23 GiB for an 8 s episode at 8 (0.93 at 4), against
1.07 for a 2 s one (benchmarks/RESULTS.md, streamed pipeline)."""

CONTACT_SHEET_FRAMES = 4
CONTACT_SHEET_CELL_PX = 320

_FIELDS = {"rgb": "rgb", "depth": "depth_m", "seg": "instance_id"}
_RESIZE = {"rgb": "area", "depth": "linear", "seg": "nearest"}


def write_clips(
    episode_path: str | Path,
    out: str | Path,
    *,
    modalities: Sequence[str] | str | None = None,
    prompt: str = DEFAULT_PROMPT,
    seed: int = 0,
    control_weights: Mapping[str, float] | None = None,
    depth_range_m: tuple[float, float] | None = None,
    edge_preset: str = "medium",
    vis_preset: str = "medium",
    xodr: str | Path | None = None,
    hdmap_version: str = "v3",
    cameras: Sequence[str] | None = None,
    device: str = "auto",
    progress: bool = True,
    chunk_frames: int = CHUNK_FRAMES,
    skip_damaged: bool = False,
) -> dict[str, Any]:
    """Write control clips and specs for every camera of an episode; returns what it wrote.

    `modalities=None` means every control of the table the episode supports (module doc).
    `seed` seeds the seg palette and is the generation seed written into both specs.
    `depth_range_m` fixes the depth control's (min_m, max_m); by default each camera's clip
    sets its own in a first pass. `device` is "auto", "cpu" or "cuda"
    (`controls.backend.control_backend`). `xodr` is the OpenDRIVE map for hdmap (default:
    the episode's own `map.xodr`); `hdmap_version` its colours, "v3" or "v1".
    `chunk_frames` (1..93) output frames are computed and encoded at a time. A damaged tick
    record is an error naming it; with `skip_damaged` the tick before it (or after, at the
    start) is shown in its place, and clips.json lists it under `damaged_ticks`.
    On failure the output folder is removed (a folder that existed empty is emptied).
    """
    episode = Episode(episode_path)
    backend = control_backend(device)
    ticks = episode.tick_paths()
    if not ticks:
        raise EpisodeError(f"{episode.path} has no ticks; record at least one before `controls`")
    chosen = _choose_cameras(episode, cameras)
    map_path = _episode_map(episode, xodr)
    wanted = _choose_modalities(episode, modalities, map_path)
    if depth_range_m is not None and not 0 < depth_range_m[0] < depth_range_m[1]:
        raise SpecError(
            f"depth_range_m: need 0 < min < max metres, got {depth_range_m}",
            field="depth_range_m",
        )
    if isinstance(chunk_frames, bool) or not (
        isinstance(chunk_frames, int) and 1 <= chunk_frames <= FRAMES_PER_CHUNK
    ):
        raise SpecError(
            f"chunk_frames: need an int in 1..{FRAMES_PER_CHUNK}, got {chunk_frames!r}",
            field="chunk_frames",
        )
    # Checked before the output folder exists: a bad option leaves nothing to clean up.
    settings = ControlSettings(edge_preset=edge_preset, vis_preset=vis_preset, seed=seed)
    weights_for(wanted, control_weights)
    if not prompt:
        raise SpecError(
            "prompt: give a non-empty prompt for the specs (or keep the default)", field="prompt"
        )
    # Parsed before the output folder exists, so a bad map leaves nothing behind.
    if "hdmap" in wanted:
        settings = ControlSettings(edge_preset=edge_preset, vis_preset=vis_preset, seed=seed,
                                   hdmap_scene=_hdmap_scene(map_path, hdmap_version))  # fmt: skip
    buckets = {name: bucket_size(episode.cameras[name].width, episode.cameras[name].height)
               for name in chosen}  # fmt: skip
    out = Path(out)
    created = not out.exists()
    ensure_empty_dir(out, "clips folder")
    plan = _Plan(episode, len(ticks), chosen, wanted, buckets, settings, skip_damaged, progress)
    try:
        return _write(
            plan, out, backend, depth_range_m, chunk_frames, prompt=prompt,
            control_weights=control_weights, map_path=map_path, hdmap_version=hdmap_version,
            modalities_given=modalities is not None,
        )  # fmt: skip
    except BaseException:
        _remove_partial(out, created)
        raise


READ_THREADS = max(1, min(8, (os.cpu_count() or 2) // 2))
"""Threads that decompress tick records (zlib lets go of the GIL while it inflates): one
reading thread bounded the GPU path (benchmarks/RESULTS.md, "The controls pipeline on the
GPU"). Half the cores at most, leaving the rest to the controls and the encoders: 8 on the
16-core GPU host, 1 on a 2-core machine."""


@dataclass
class _Plan:
    """What one write_clips run reads: the episode, cameras, controls and their sizes."""

    episode: Episode
    num_ticks: int
    cameras: list[str]
    wanted: tuple[str, ...]
    buckets: dict[str, tuple[int, int]]
    settings: ControlSettings
    skip_damaged: bool
    progress: bool

    def __post_init__(self) -> None:
        self.damaged: set[int] = set()
        self._last_good: Tick | None = None

    def arrays(self, keys: Sequence[str]) -> list[str]:
        """npz array names of the chosen cameras' fields for controls `keys` ("rgb", ...)."""
        return [f"{cam}/{_FIELDS[k]}" for cam in self.cameras for k in keys]

    def load(self, index: int, arrays: Sequence[str]) -> Tick | None:
        """Tick `index`, or with skip_damaged a good neighbour (None in pass 1)."""
        try:
            tick = self.episode.tick(index, arrays=arrays)
        except DamagedTickError:
            if not self.skip_damaged:
                raise
            self.damaged.add(index)
            return None
        return tick

    def load_ahead(self, indices: Sequence[int], arrays: Sequence[str]) -> Iterator[Tick | None]:
        """`load` of each of `indices`, in order, decompressed on READ_THREADS threads with
        at most 2·READ_THREADS records in flight (so memory stays bounded). Closing the
        generator early (an error downstream) cancels what is queued and lets the threads go."""
        pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="read-tick")
        pending: deque[Future[Tick | None]] = deque()
        try:
            for index in indices:
                pending.append(pool.submit(self.load, index, arrays))
                if len(pending) >= 2 * READ_THREADS:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def resized(self, tick: Tick, camera: str, key: str) -> np.ndarray:
        frame = tick.frames.get(camera)
        if frame is None:
            raise EpisodeError(
                f"tick {tick.index} of {self.episode.path} has no frame from camera {camera!r} "
                f"(sensors there: {sorted(tick.frames)}); re-record or pick other cameras"
            )
        value = getattr(frame, _FIELDS[key])
        if value is None:
            raise EpisodeError(
                f"tick {tick.index}, camera {camera!r} has no {_FIELDS[key]}, which the "
                f"{key if key != 'rgb' else 'rgb video'} needs; drop that modality or "
                "re-record with it"
            )
        return resize_frames(value[None], self.buckets[camera], _RESIZE[key])[0]


def _write(
    plan: _Plan,
    out: Path,
    backend: Mapping[str, Any],
    depth_range_m: tuple[float, float] | None,
    chunk_frames: int,
    *,
    prompt: str,
    control_weights: Mapping[str, float] | None,
    map_path: Path | None,
    hdmap_version: str,
    modalities_given: bool,
) -> dict[str, Any]:
    episode, wanted = plan.episode, plan.wanted
    source_ticks = resample_indices(plan.num_ticks, episode.fps, COSMOS_FPS)
    stats = _first_pass(plan, np.unique(source_ticks), depth_range_m)
    fired = _fired_ticks(plan) if "lidar" in wanted else []
    videos = {f"{cam}/{m}": dict(path=out / cam / f"{m}.mp4", fps=COSMOS_FPS,
                                 lossless=m in LOSSLESS, preset=STREAM_PRESET)
              for cam in plan.cameras for m in ("rgb", *wanted)}  # fmt: skip
    for cam in plan.cameras:
        (out / cam).mkdir()
    picks = set(_sheet_picks(len(source_ticks)))
    sheets: dict[str, dict[int, dict[str, np.ndarray]]] = {cam: {} for cam in plan.cameras}
    shown = source_ticks.copy()
    calib = {cam: {"K": [], "cam_to_world": []} for cam in plan.cameras}
    from tqdm import tqdm

    from cosmos_sim.transfer.base import prefetch

    writers = ParallelVideoWriters(videos)
    bar = tqdm(total=len(source_ticks), desc="controls", unit="frame", disable=not plan.progress)
    try:
        chunks = _read_chunks(plan, source_ticks, chunk_frames, fired)
        for start, unique, expand, chunk_by_cam in prefetch(chunks, depth=1):
            shown[start : start + len(expand)] = [unique[i] for i in expand]
            for cam, chunk in chunk_by_cam.items():
                frames = {"rgb": chunk.rgb}
                frames.update(
                    compute_controls(chunk, wanted, stats[cam], settings=plan.settings,
                                     backend=backend)
                )  # fmt: skip
                for m, value in frames.items():
                    writers.write(f"{cam}/{m}", value[expand])
                calib[cam]["K"].extend(chunk.K[expand].tolist())
                calib[cam]["cam_to_world"].extend(chunk.cam_to_world[expand].tolist())
                for k in picks & set(range(start, start + len(expand))):
                    sheets[cam][k] = {m: v[expand[k - start]].copy() for m, v in frames.items()}
            bar.update(len(expand))
    finally:
        bar.close()
        writers.close()

    notes = []
    if not modalities_given and not episode.lidars:
        notes.append("lidar skipped: the episode recorded no LiDAR")
    if not modalities_given and map_path is None:
        notes.append(f"hdmap skipped: the episode has no {EPISODE_MAP}; pass xodr= (--xodr)")
    if plan.damaged:
        notes.append(f"damaged ticks {sorted(plan.damaged)} skipped: a neighbour shown instead")
    written: dict[str, Any] = {}
    batch = []
    for cam in plan.cameras:
        cam_out = out / cam
        result: dict[str, Any] = {
            "videos": {m: cam_out / f"{m}.mp4" for m in ("rgb", *wanted)},
            **stats[cam].as_json(),
        }
        if "seg" in wanted:
            result["seg_palette"] = save_palette(stats[cam].palette, cam_out / "seg_palette.json",
                                                 seed=plan.settings.seed)  # fmt: skip
        result["contact_sheet"] = _contact_sheet(cam_out / "contact_sheet.png", sheets[cam])
        videos_of = result["videos"]
        t25 = {k: videos_of[k] for k in TRANSFER25_CONTROLS if k in videos_of}
        spec_kwargs = dict(prompt=prompt, control_weights=control_weights,
                           seed=plan.settings.seed, edge_preset=plan.settings.edge_preset,
                           vis_preset=plan.settings.vis_preset)  # fmt: skip
        if t25:
            sample = sample_name(episode.path, cam)  # unique across episodes in one batch
            spec = transfer25_spec(sample, videos_of["rgb"], t25, relative_to=cam_out,
                                   **spec_kwargs)  # fmt: skip
            result["transfer25"] = write_spec_json(spec, cam_out / "transfer25.json")
            batch.append(transfer25_spec(sample, videos_of["rgb"], t25, relative_to=out,
                                         **spec_kwargs))  # fmt: skip
        else:
            notes.append(f"{cam}: no Transfer 2.5 control among {wanted}; transfer25.json skipped")
        t1 = {k: videos_of[k] for k in TRANSFER1_GENERAL_CONTROLS if k in videos_of}
        if t1:
            spec1 = transfer1_spec(videos_of["rgb"], t1, prompt=prompt, seed=plan.settings.seed,
                                   control_weights=control_weights)  # fmt: skip
            result["transfer1"] = write_spec_json(spec1, cam_out / "transfer1.json")
        t1_av = {k: videos_of[k] for k in TRANSFER1_AV_CONTROLS if k in videos_of}
        if t1_av:  # the Sample-AV base model: its own run (spec.transfer1_av_spec)
            spec_av = transfer1_av_spec(
                t1_av, prompt=prompt, seed=plan.settings.seed, fps=COSMOS_FPS,
                control_weights=control_weights,
            )  # fmt: skip
            result["transfer1_av"] = write_spec_json(spec_av, cam_out / "transfer1_av.json")
            if COSMOS_FPS != TRANSFER1_AV_FPS:
                notes.append(
                    f"{cam}: transfer1_av.json controls are {COSMOS_FPS} fps; the "
                    f"Transfer 1 AV models were trained at {TRANSFER1_AV_FPS} fps"
                )
        written[cam] = result
    manifest: dict[str, Any] = {
        "episode": str(episode.path.absolute()),
        "episode_id": episode.fingerprint,
        "fps": COSMOS_FPS,
        "source_fps": episode.fps,
        "num_frames": len(source_ticks),
        "source_ticks": shown.tolist(),
        "damaged_ticks": sorted(plan.damaged),
        "modalities": list(wanted),
        "cameras": {
            name: {"size": list(plan.buckets[name]),
                   **{k: _rel(v, out) for k, v in r.items() if isinstance(v, Path)},
                   **{k: v for k, v in r.items() if k == "depth_range_m"},
                   "K": calib[name]["K"], "cam_to_world": calib[name]["cam_to_world"],
                   "videos": {k: _rel(v, out) for k, v in r["videos"].items()}}
            for name, r in written.items()
        },
        "notes": notes,
    }  # fmt: skip
    if map_path is not None and "hdmap" in wanted:
        manifest["hdmap"] = {"map": str(map_path.absolute()), "version": hdmap_version}
    if batch:
        manifest["transfer25_batch"] = _rel(
            write_spec_jsonl(batch, out / "transfer25_batch.jsonl"), out
        )
    cosmos3_batch = write_cosmos3_specs(  # <camera>/cosmos3.json + cosmos3_batch.jsonl
        out, {n: r["videos"] for n, r in written.items()}, episode=episode.path,
        num_frames=len(source_ticks), fps=COSMOS_FPS, sizes=plan.buckets, prompt=prompt,
        seed=plan.settings.seed, control_weights=control_weights,
        edge_preset=plan.settings.edge_preset, vis_preset=plan.settings.vis_preset,
    )  # fmt: skip
    if cosmos3_batch is not None:
        manifest["cosmos3_batch"] = _rel(cosmos3_batch, out)
    write_json_atomic(out / "clips.json", manifest)
    return {
        "out": out,
        "cameras": written,
        "transfer25_batch": out / "transfer25_batch.jsonl" if batch else None,
        "cosmos3_batch": cosmos3_batch,
        "manifest": out / "clips.json",
        "num_frames": len(source_ticks),
        "fps": COSMOS_FPS,
        "source_ticks": shown,
        "damaged_ticks": sorted(plan.damaged),
        "notes": notes,
    }


def _first_pass(
    plan: _Plan, unique: np.ndarray, depth_range_m: tuple[float, float] | None
) -> dict[str, ClipStats]:
    """Per camera, the clip statistics: fixed ones as given, the rest read in one pass over
    the ticks the clip shows (only their depth and ids are decompressed)."""
    from tqdm import tqdm

    fixed = ClipStats(depth_range_m=depth_range_m)
    accs = {c: ClipStatsAccumulator(plan.wanted, plan.settings.seed, fixed) for c in plan.cameras}
    keys = [k for k in ("depth", "seg") if k in plan.wanted]
    if any(acc.needs_pass for acc in accs.values()):
        arrays = plan.arrays(keys)
        # closing: an error below stops the reading threads at once
        with closing(plan.load_ahead(unique.tolist(), arrays)) as ticks:
            for tick in tqdm(ticks, total=len(unique), desc="clip statistics", unit="tick",
                             disable=not plan.progress):  # fmt: skip
                if tick is None:
                    continue
                for cam, acc in accs.items():
                    acc.add(*(plan.resized(tick, cam, k) if k in keys else None
                              for k in ("depth", "seg")))  # fmt: skip
    return {cam: acc.result() for cam, acc in accs.items()}


def _fired_ticks(plan: _Plan) -> list[int]:
    """Ticks at which a LiDAR fired, from each record's table of contents (nothing loaded)."""
    keys = {f"{name}/points_world" for name in plan.episode.lidars}
    fired = []
    for index in range(plan.num_ticks):
        try:
            names = plan.episode.array_names(index)
        except DamagedTickError:
            if not plan.skip_damaged:
                raise
            plan.damaged.add(index)
            continue
        if keys & set(names):
            fired.append(index)
    return fired


def _read_chunks(
    plan: _Plan, source_ticks: np.ndarray, chunk_frames: int, fired: Sequence[int]
) -> Iterator[tuple[int, list[int], np.ndarray, dict[str, FrameChunk]]]:
    """Per chunk of output frames: (first frame, ticks read, output frame -> position among
    them, a FrameChunk per camera). Runs in a background thread (`prefetch`)."""
    episode, wanted = plan.episode, plan.wanted
    keys = ["rgb"] + [k for k in ("depth", "seg") if k in wanted]
    arrays = plan.arrays(keys)
    lidar_arrays = [f"{name}/points_world" for name in episode.lidars]
    fired_marks = [None] * plan.num_ticks  # placeholders: clip_windows only asks which fired
    for i in fired:
        fired_marks[i] = True
    sweeps: dict[int, np.ndarray] = {}
    for start in range(0, len(source_ticks), chunk_frames):
        wanted_ticks = source_ticks[start : start + chunk_frames].tolist()
        needed_ticks = sorted(set(wanted_ticks))
        to_read = [t for t in needed_ticks if t not in plan.damaged]  # known damaged: skip
        ahead = dict(zip(to_read, plan.load_ahead(to_read, arrays), strict=True))
        loaded = {t: _load_shown(plan, t, arrays, ahead.get(t)) for t in needed_ticks}
        unique = sorted({tick.index for tick in loaded.values()})
        by_index = {tick.index: tick for tick in loaded.values()}
        position = {t: unique.index(loaded[t].index) for t in loaded}
        expand = np.array([position[t] for t in wanted_ticks])
        chunk_by_cam = {}
        sparse: list[np.ndarray | None] | None = None
        if "lidar" in wanted:
            placeholders = [None if m is None else _EMPTY_SWEEP for m in fired_marks]
            dummy = [np.eye(3)] * len(unique)
            windows = clip_windows(placeholders, dummy, [np.eye(4)] * len(unique), unique,
                                   plan.settings.lidar_sweeps_each_side)  # fmt: skip
            needed = sorted({i for w in windows for i in w})
            for i in set(sweeps) - set(needed):
                del sweeps[i]
            missing = [i for i in needed if i not in sweeps]
            for i, tick in zip(missing, plan.load_ahead(missing, lidar_arrays), strict=True):
                sweeps[i] = _sweep_points(tick)
            sparse = [None] * plan.num_ticks
            for i in needed:
                sparse[i] = sweeps[i]
            # ticks that fired outside this chunk's windows stay marked, as clip_windows
            # needs every fired tick to find the same windows
            for i in fired:
                if sparse[i] is None:
                    sparse[i] = _EMPTY_SWEEP
        for cam in plan.cameras:
            spec = episode.cameras[cam]
            width, height = plan.buckets[cam]
            ticks = [by_index[t] for t in unique]
            frames = [t.frames.get(cam) for t in ticks]
            chunk = FrameChunk(
                height=height,
                width=width,
                rgb=np.stack([plan.resized(t, cam, "rgb") for t in ticks]),
                depth_m=np.stack([plan.resized(t, cam, "depth") for t in ticks])
                if "depth" in wanted else None,
                instance_id=np.stack([plan.resized(t, cam, "seg") for t in ticks])
                if "seg" in wanted else None,
                K=np.stack([scale_intrinsics(f.K, (spec.width, spec.height), (width, height))
                            for f in frames]),
                cam_to_world=np.stack([f.cam_to_world for f in frames]),
                ticks=unique,
                sweeps=sparse,
                dynamics=[DynamicState.from_tick_data(t.data) for t in ticks]
                if "hdmap" in wanted else None,
            )  # fmt: skip
            chunk_by_cam[cam] = chunk
        yield start, unique, expand, chunk_by_cam


_EMPTY_SWEEP = np.zeros((0, 3), np.float32)


def _load_shown(plan: _Plan, index: int, arrays: Sequence[str], loaded: Tick | None = None) -> Tick:
    """Tick `index` (`loaded`, if already read); with skip_damaged, for a damaged one the last
    good tick before it, or the first good one after it at the start of the episode."""
    if index not in plan.damaged:
        tick = loaded if loaded is not None else plan.load(index, arrays)
        if tick is not None:
            plan._last_good = tick
            return tick
    if plan._last_good is not None and plan._last_good.index < index:
        return plan._last_good
    for later in range(index + 1, plan.num_ticks):
        if later not in plan.damaged and (tick := plan.load(later, arrays)) is not None:
            return tick
    raise EpisodeError(f"{plan.episode.path}: every tick is damaged; nothing to show")


def _sweep_points(tick: Tick | None) -> np.ndarray:
    """A tick's LiDAR points (all LiDARs), empty for a damaged tick."""
    if tick is None:
        return _EMPTY_SWEEP
    points = [f.points_world for f in tick.frames.values() if f.points_world is not None]
    return np.concatenate(points) if points else _EMPTY_SWEEP


def _remove_partial(out: Path, created: bool) -> None:
    """A failed run leaves no half-written clips: the folder goes (or is emptied, if it
    existed empty before the run)."""
    if not out.is_dir():
        return
    if created:
        shutil.rmtree(out, ignore_errors=True)
        return
    for entry in out.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _choose_cameras(episode: Episode, cameras: Sequence[str] | None) -> list[str]:
    if not episode.cameras:
        raise EpisodeError(f"{episode.path} has no cameras; controls need at least one camera")
    if cameras is None:
        return list(episode.cameras)
    unknown = [c for c in cameras if c not in episode.cameras]
    if unknown:
        raise SpecError(
            f"cameras {unknown} are not in the episode; it has {list(episode.cameras)}",
            field="cameras",
        )
    if len(set(cameras)) != len(cameras):
        raise SpecError(f"cameras {list(cameras)}: name each camera once", field="cameras")
    return list(cameras)


def _choose_modalities(
    episode: Episode, modalities: Sequence[str] | str | None, map_path: Path | None
) -> tuple[str, ...]:
    available = {"lidar": bool(episode.lidars), "map": map_path is not None}
    if modalities is None:
        return tuple(m for m in MODALITIES if available.get(CONTROLS[m].requires, True))
    wanted = check_modalities(modalities)
    if "lidar" in wanted and not episode.lidars:
        raise SpecError(
            f"modality 'lidar': {episode.path} recorded no LiDAR; drop lidar from the "
            "modalities or record the episode with a LidarSpec in the rig",
            field="modalities",
        )
    if "hdmap" in wanted and map_path is None:
        raise SpecError(
            f"modality 'hdmap': {episode.path} has no OpenDRIVE map ({EPISODE_MAP}, which "
            "CARLA captures save); pass the map the episode was recorded on with xodr= "
            "(--xodr MAP.xodr) or drop hdmap from the modalities",
            field="xodr",
        )
    return wanted


def _episode_map(episode: Episode, xodr: str | Path | None) -> Path | None:
    """The OpenDRIVE map for the hdmap control: `xodr`, else the episode's own, else None."""
    if xodr is not None:
        path = Path(xodr)
        if not path.is_file():
            raise SpecError(
                f"xodr={str(xodr)!r}: no such file; pass an OpenDRIVE .xodr map", field="xodr"
            )
        return path
    own = episode.path / EPISODE_MAP
    return own if own.is_file() else None


def _hdmap_scene(map_path: Path, version: str) -> HDMapScene:
    """The map compiled once for every camera and frame (parsed by CARLA's own reader)."""
    from cosmos_sim.bridges.opendrive import compile_map

    return compile_scene(compile_map(map_path).geometry, version)


def _sheet_picks(num_frames: int) -> list[int]:
    count = min(CONTACT_SHEET_FRAMES, num_frames)
    return np.unique(np.linspace(0, num_frames - 1, count).round().astype(int)).tolist()


def _contact_sheet(path: Path, picked: Mapping[int, Mapping[str, np.ndarray]]) -> Path:
    frames = [picked[k] for k in sorted(picked)]
    names = list(frames[0])
    # Thin lines and sparse returns vanish when a cell is shrunk: widen them to the shrink.
    grow = max(1, int(np.ceil(frames[0]["rgb"].shape[1] / CONTACT_SHEET_CELL_PX)))
    kernel = np.ones((grow, grow), np.uint8)

    def cell(modality: str, frame: np.ndarray) -> np.ndarray:
        return cv2.dilate(frame, kernel) if modality in ("edge", "lidar") else frame

    rows = [[cell(m, f[m]) for m in names] for f in frames]
    grid = image_grid(
        rows,
        col_labels=names,
        row_labels=[f"frame {k}" for k in sorted(picked)],
        cell_width=CONTACT_SHEET_CELL_PX,
    )
    return save_png(path, grid)


def _rel(path: Path, base: Path) -> str:
    return Path(path).relative_to(base).as_posix()
