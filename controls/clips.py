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

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cosmos_sim.controls.backend import control_backend
from cosmos_sim.controls.depth import depth_range
from cosmos_sim.controls.edge import EDGE_PRESETS
from cosmos_sim.controls.hdmap import DynamicState, HDMapScene, compile_scene
from cosmos_sim.controls.seg import save_palette, seg_palette
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
from cosmos_sim.controls.vis import VIS_PRESETS
from cosmos_sim.episode import Episode, EpisodeError, ensure_empty_dir, write_json_atomic
from cosmos_sim.imaging import image_grid, save_png
from cosmos_sim.types import SpecError
from cosmos_sim.video import (
    COSMOS_FPS,
    bucket_size,
    resample_indices,
    resize_frames,
    scale_intrinsics,
    write_video,
)

MODALITIES = ("depth", "seg", "edge", "vis", "lidar", "hdmap")
"""Control modalities `write_clips` knows, in the order they are written."""

LOSSLESS = frozenset({"seg", "edge", "lidar", "hdmap"})
"""Modalities written with libx264rgb qp=0."""

EPISODE_MAP = "map.xodr"
"""The OpenDRIVE map inside an episode folder (CARLA captures save it) for the hdmap control."""

CONTACT_SHEET_FRAMES = 4
CONTACT_SHEET_CELL_PX = 320
_VIS_BATCH = 8  # frames per vis call, so the progress bar moves on long clips


def write_clips(
    episode_path: str | Path,
    out: str | Path,
    *,
    modalities: Sequence[str] | None = None,
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
) -> dict[str, Any]:
    """Write control clips and specs for every camera of an episode; returns what it wrote.

    `modalities=None` means all of MODALITIES that the episode supports (see module doc).
    `seed` seeds the seg palette and is the generation seed written into both specs.
    `depth_range_m` fixes the depth control's (min_m, max_m); by default each camera's clip
    sets its own. `device` is "auto", "cpu" or "cuda" (`controls.backend.control_backend`):
    every control runs on the GPU (`cosmos_sim.kernels`) for "cuda", and for "auto" when CUDA
    is visible; otherwise the numpy/OpenCV functions run on the CPU. `xodr` is the OpenDRIVE
    map for the hdmap control (default: the episode's own `map.xodr`); `hdmap_version` is its
    colour version, "v3" (Transfer 2.5) or "v1" (Transfer 1).
    """
    episode = Episode(episode_path)
    backend = control_backend(device)
    ticks = episode.tick_paths()
    if not ticks:
        raise EpisodeError(f"{episode.path} has no ticks; record at least one before `controls`")
    chosen = _choose_cameras(episode, cameras)
    map_path = _episode_map(episode, xodr)
    wanted = _choose_modalities(episode, modalities, map_path)
    # Parsed before the output folder exists, so a bad map leaves nothing behind.
    hdmap_scene = _hdmap_scene(map_path, hdmap_version) if "hdmap" in wanted else None
    buckets = {name: bucket_size(episode.cameras[name].width, episode.cameras[name].height)
               for name in chosen}  # fmt: skip
    if depth_range_m is not None and not 0 < depth_range_m[0] < depth_range_m[1]:
        raise SpecError(f"depth_range_m: need 0 < min < max metres, got {depth_range_m}")
    # Checked before the output folder exists: a bad option leaves nothing to clean up.
    for label, preset, known in (("edge_preset", edge_preset, EDGE_PRESETS),
                                 ("vis_preset", vis_preset, VIS_PRESETS)):  # fmt: skip
        if preset not in known:
            raise SpecError(f"{label} {preset!r} is not known; use one of {list(known)}")
    weights_for(wanted, control_weights)
    if not prompt:
        raise SpecError("prompt: give a non-empty prompt for the specs (or keep the default)")
    source_ticks = resample_indices(len(ticks), episode.fps, COSMOS_FPS)
    out = Path(out)
    created = not out.exists()
    ensure_empty_dir(out, "clips folder")
    try:
        captured = _read_episode(
            episode, len(ticks), chosen, wanted, buckets, source_ticks, progress
        )
    except BaseException:
        if created and not any(out.iterdir()):
            out.rmdir()  # a bad episode leaves no empty folder behind to trip the next run
        raise
    notes = []
    if modalities is None and not episode.lidars:
        notes.append("lidar skipped: the episode recorded no LiDAR")
    if modalities is None and map_path is None:
        notes.append(f"hdmap skipped: the episode has no {EPISODE_MAP}; pass xodr= (--xodr)")
    written: dict[str, Any] = {}
    batch = []
    for name in chosen:
        cam_out = out / name
        cam_out.mkdir()
        result = _write_camera(
            name, cam_out, captured[name], wanted, buckets[name], source_ticks, backend,
            seed=seed, depth_range_m=depth_range_m, edge_preset=edge_preset,
            vis_preset=vis_preset, hdmap_scene=hdmap_scene, progress=progress,
        )  # fmt: skip
        videos = result["videos"]
        t25 = {k: videos[k] for k in TRANSFER25_CONTROLS if k in videos}
        if t25:
            spec_kwargs = dict(
                prompt=prompt, control_weights=control_weights, seed=seed,
                edge_preset=edge_preset, vis_preset=vis_preset,
            )  # fmt: skip
            sample = sample_name(episode.path, name)  # unique across episodes in one batch
            spec = transfer25_spec(sample, videos["rgb"], t25, relative_to=cam_out, **spec_kwargs)
            result["transfer25"] = write_spec_json(spec, cam_out / "transfer25.json")
            batch.append(
                transfer25_spec(sample, videos["rgb"], t25, relative_to=out, **spec_kwargs)
            )
        else:
            notes.append(f"{name}: no Transfer 2.5 control among {wanted}; transfer25.json skipped")
        t1 = {k: videos[k] for k in TRANSFER1_GENERAL_CONTROLS if k in videos}
        if t1:
            spec1 = transfer1_spec(videos["rgb"], t1, prompt=prompt, seed=seed,
                                   control_weights=control_weights)  # fmt: skip
            result["transfer1"] = write_spec_json(spec1, cam_out / "transfer1.json")
        t1_av = {k: videos[k] for k in TRANSFER1_AV_CONTROLS if k in videos}
        if t1_av:  # the Sample-AV base model: its own run (spec.transfer1_av_spec)
            spec_av = transfer1_av_spec(t1_av, prompt=prompt, seed=seed, fps=COSMOS_FPS,
                                        control_weights=control_weights)  # fmt: skip
            result["transfer1_av"] = write_spec_json(spec_av, cam_out / "transfer1_av.json")
            if COSMOS_FPS != TRANSFER1_AV_FPS:
                notes.append(
                    f"{name}: transfer1_av.json controls are {COSMOS_FPS} fps; the "
                    f"Transfer 1 AV models were trained at {TRANSFER1_AV_FPS} fps"
                )
        written[name] = result
    manifest: dict[str, Any] = {
        "episode": str(episode.path.absolute()),
        "fps": COSMOS_FPS,
        "source_fps": episode.fps,
        "num_frames": len(source_ticks),
        "source_ticks": source_ticks.tolist(),
        "modalities": list(wanted),
        "cameras": {
            name: {"size": list(buckets[name]), **{k: _rel(v, out) for k, v in r.items()
                                                  if isinstance(v, Path)},
                   "videos": {k: _rel(v, out) for k, v in r["videos"].items()}}
            for name, r in written.items()
        },
        "notes": notes,
    }  # fmt: skip
    if hdmap_scene is not None and map_path is not None:
        manifest["hdmap"] = {"map": str(map_path.absolute()), "version": hdmap_version}
    if batch:
        manifest["transfer25_batch"] = _rel(
            write_spec_jsonl(batch, out / "transfer25_batch.jsonl"), out
        )
    write_json_atomic(out / "clips.json", manifest)
    return {
        "out": out,
        "cameras": written,
        "transfer25_batch": out / "transfer25_batch.jsonl" if batch else None,
        "manifest": out / "clips.json",
        "num_frames": len(source_ticks),
        "fps": COSMOS_FPS,
        "source_ticks": source_ticks,
        "notes": notes,
    }


def _choose_cameras(episode: Episode, cameras: Sequence[str] | None) -> list[str]:
    if not episode.cameras:
        raise EpisodeError(f"{episode.path} has no cameras; controls need at least one camera")
    if cameras is None:
        return list(episode.cameras)
    unknown = [c for c in cameras if c not in episode.cameras]
    if unknown:
        raise SpecError(f"cameras {unknown} are not in the episode; it has {list(episode.cameras)}")
    if len(set(cameras)) != len(cameras):
        raise SpecError(f"cameras {list(cameras)}: name each camera once")
    return list(cameras)


def _choose_modalities(
    episode: Episode, modalities: Sequence[str] | None, map_path: Path | None
) -> tuple[str, ...]:
    available = {"lidar": bool(episode.lidars), "hdmap": map_path is not None}
    if modalities is None:
        return tuple(m for m in MODALITIES if available.get(m, True))
    if isinstance(modalities, str):
        modalities = [m.strip() for m in modalities.split(",") if m.strip()]
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise SpecError(f"modalities {unknown} are not known; choose from {list(MODALITIES)}")
    if not modalities:
        raise SpecError(f"modalities: give at least one of {list(MODALITIES)}")
    if "lidar" in modalities and not episode.lidars:
        raise SpecError(
            f"modality 'lidar': {episode.path} recorded no LiDAR; drop lidar from the "
            "modalities or record the episode with a LidarSpec in the rig"
        )
    if "hdmap" in modalities and map_path is None:
        raise SpecError(
            f"modality 'hdmap': {episode.path} has no OpenDRIVE map ({EPISODE_MAP}, which "
            "CARLA captures save); pass the map the episode was recorded on with xodr= "
            "(--xodr MAP.xodr) or drop hdmap from the modalities"
        )
    return tuple(m for m in MODALITIES if m in modalities)


def _episode_map(episode: Episode, xodr: str | Path | None) -> Path | None:
    """The OpenDRIVE map for the hdmap control: `xodr`, else the episode's own, else None."""
    if xodr is not None:
        path = Path(xodr)
        if not path.is_file():
            raise SpecError(f"xodr={str(xodr)!r}: no such file; pass an OpenDRIVE .xodr map")
        return path
    own = episode.path / EPISODE_MAP
    return own if own.is_file() else None


def _hdmap_scene(map_path: Path, version: str) -> HDMapScene:
    """The map compiled once for every camera and frame (parsed by CARLA's own reader)."""
    from cosmos_sim.bridges.opendrive import compile_map

    return compile_scene(compile_map(map_path).geometry, version)


def _read_episode(
    episode: Episode,
    num_ticks: int,
    cameras: Sequence[str],
    wanted: Sequence[str],
    buckets: Mapping[str, tuple[int, int]],
    source_ticks: np.ndarray,
    progress: bool,
) -> dict[str, dict[str, Any]]:
    """Load the ticks the clip needs, resized to each camera's bucket, keyed by tick index."""
    from tqdm import tqdm

    needed = set(np.unique(source_ticks).tolist())
    # LiDAR frames accumulate ±2 sweeps, so every tick's sweep is read when lidar is wanted.
    to_read = range(num_ticks) if "lidar" in wanted else sorted(needed)
    fields = {"rgb": "rgb", "depth": "depth_m", "seg": "instance_id"}
    data: dict[str, dict[str, Any]] = {
        name: {"rgb": {}, "depth": {}, "seg": {}, "K": {}, "pose": {}, "ids": set()}
        for name in cameras
    }
    sweeps: dict[int, np.ndarray | None] = {}
    dynamic: dict[int, DynamicState] = {}  # boxes and light states, shared by every camera
    reader = episode.ticks(to_read)
    bar = dict(total=len(to_read), desc="read episode", unit="tick", disable=not progress)
    for tick in tqdm(reader, **bar):
        index = tick.index
        if "lidar" in wanted:
            points = [f.points_world for f in tick.frames.values() if f.lidar is not None
                      and f.points_world is not None]  # fmt: skip
            sweeps[index] = np.concatenate(points) if points else None
        if index not in needed:
            continue
        if "hdmap" in wanted:
            dynamic[index] = DynamicState.from_tick_data(tick.data)
        for name in cameras:
            frame = tick.frames.get(name)
            if frame is None:
                raise EpisodeError(
                    f"tick {index} of {episode.path} has no frame from camera {name!r} "
                    f"(sensors there: {sorted(tick.frames)}); re-record or pick other cameras"
                )
            cam = episode.cameras[name]
            size = buckets[name]
            need = ["rgb"] + [m for m in ("depth", "seg") if m in wanted]
            for key in need:
                value = getattr(frame, fields[key])
                if value is None:
                    raise EpisodeError(
                        f"tick {index}, camera {name!r} has no {fields[key]}, which the "
                        f"{key if key != 'rgb' else 'rgb video'} needs; drop that modality or "
                        "re-record with it"
                    )
                kind = {"rgb": "area", "depth": "linear", "seg": "nearest"}[key]
                data[name][key][index] = resize_frames(value[None], size, kind)[0]
            if "seg" in wanted:
                data[name]["ids"].update(np.unique(data[name]["seg"][index]).tolist())
            data[name]["K"][index] = scale_intrinsics(frame.K, (cam.width, cam.height), size)
            data[name]["pose"][index] = frame.cam_to_world
    for name in cameras:
        data[name]["sweeps"] = [sweeps.get(i) for i in range(num_ticks)] if sweeps else None
        data[name]["dynamic"] = dynamic
    return data


def _write_camera(
    name: str,
    cam_out: Path,
    data: Mapping[str, Any],
    wanted: Sequence[str],
    size: tuple[int, int],
    source_ticks: np.ndarray,
    backend: Mapping[str, Callable[..., np.ndarray]],
    *,
    seed: int,
    depth_range_m: tuple[float, float] | None,
    edge_preset: str,
    vis_preset: str,
    hdmap_scene: HDMapScene | None,
    progress: bool,
) -> dict[str, Any]:
    from tqdm import tqdm

    unique = sorted(data["rgb"])
    position = {tick: i for i, tick in enumerate(unique)}
    expand = np.array([position[t] for t in source_ticks])  # output frame -> unique frame
    rgb = np.stack([data["rgb"][t] for t in unique])
    controls: dict[str, np.ndarray] = {}
    result: dict[str, Any] = {"videos": {}}
    bar = tqdm(total=len(wanted) + 1, desc=f"{name} controls", unit="video",
               disable=not progress)  # fmt: skip
    for modality in wanted:
        bar.set_postfix_str(modality)
        if modality == "depth":
            depth_m = np.stack([data["depth"][t] for t in unique])
            lo, hi = depth_range_m or depth_range(depth_m)
            result["depth_range_m"] = [lo, hi]
            controls[modality] = backend["depth"](depth_m, min_m=lo, max_m=hi)
        elif modality == "seg":
            palette = seg_palette(sorted(data["ids"]), seed)
            result["seg_palette"] = save_palette(palette, cam_out / "seg_palette.json", seed=seed)
            controls[modality] = backend["seg"](np.stack([data["seg"][t] for t in unique]), palette)
        elif modality == "edge":
            controls[modality] = backend["edge"](rgb, edge_preset)
        elif modality == "vis":
            controls[modality] = np.concatenate([
                backend["vis"](rgb[i : i + _VIS_BATCH], vis_preset)
                for i in range(0, len(rgb), _VIS_BATCH)
            ])  # fmt: skip
        elif modality == "lidar":
            w, h = size
            controls[modality] = backend["lidar"](
                data["sweeps"], [data["K"][t] for t in unique], [data["pose"][t] for t in unique],
                h, w, ticks=unique,
            )  # fmt: skip
        elif modality == "hdmap" and hdmap_scene is not None:
            w, h = size
            controls[modality] = backend["hdmap"](
                hdmap_scene, [data["K"][t] for t in unique], [data["pose"][t] for t in unique],
                h, w, [data["dynamic"][t] for t in unique],
            )  # fmt: skip
        bar.update(1)
    bar.set_postfix_str("encode")
    result["videos"]["rgb"] = write_video(cam_out / "rgb.mp4", rgb[expand], COSMOS_FPS)
    for modality, frames in controls.items():
        path = cam_out / f"{modality}.mp4"
        result["videos"][modality] = write_video(
            path, frames[expand], COSMOS_FPS, lossless=modality in LOSSLESS
        )
    bar.update(1)
    bar.close()
    result["contact_sheet"] = _contact_sheet(cam_out / "contact_sheet.png", rgb, controls, expand)
    return result


def _contact_sheet(
    path: Path, rgb: np.ndarray, controls: Mapping[str, np.ndarray], expand: np.ndarray
) -> Path:
    count = min(CONTACT_SHEET_FRAMES, len(expand))
    picks = np.unique(np.linspace(0, len(expand) - 1, count).round().astype(int))
    # Thin lines and sparse returns vanish when a cell is shrunk: widen them to the shrink.
    grow = max(1, int(np.ceil(rgb.shape[2] / CONTACT_SHEET_CELL_PX)))
    kernel = np.ones((grow, grow), np.uint8)

    def cell(modality: str, frame: np.ndarray) -> np.ndarray:
        return cv2.dilate(frame, kernel) if modality in ("edge", "lidar") else frame

    rows = [[rgb[expand[k]]] + [cell(m, c[expand[k]]) for m, c in controls.items()] for k in picks]
    grid = image_grid(
        rows,
        col_labels=["rgb", *controls],
        row_labels=[f"frame {k}" for k in picks],
        cell_width=CONTACT_SHEET_CELL_PX,
    )
    return save_png(path, grid)


def _rel(path: Path, base: Path) -> str:
    return Path(path).relative_to(base).as_posix()
