"""`cosmos-sim hdmap`: the world-scenario map (HD map) control of an OpenDRIVE map, no server.

The map is compiled by `bridges.opendrive.compile_map` (in a child process: a map that
crashes libcarla gives an error naming the road and lane, never a dead process) and drawn
by `controls.hdmap` for each camera of a rig along a trajectory. Two targets:

- `transfer25` (default): single views at the Cosmos bucket size and 16 fps (93 frames);
  the seven Transfer 2.5 views at 1280×720 and 10 fps with their multiview spec; Transfer 1's
  six views with theirs.
- `cosmos3`: the `wsm` control Cosmos 3 (Transfer-Auto, Sim-Auto, the transfer pipeline's
  `wsm` hint) reads: every camera at 1280×720, 10 fps, 101 frames by default
  (cosmos-framework's WSM window), as `<camera>/wsm.mp4` (control-only clips, the layout
  `cosmos-sim transfer --backend cosmos3` reads), listed per camera in `wsm.json` (hint name,
  fps, frame count, size, video path relative to the folder); `wsm_grid.mp4` is a grid of all
  views for a multi-camera rig.

The default rig for multiview work is NVIDIA's 7-camera AV rig (`NVIDIA_RIG`, `--rig nvidia`).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_sim.types import SpecError

TARGETS = ("transfer25", "cosmos3")
COSMOS3_WSM_FPS = 10
COSMOS3_WSM_FRAMES = 101
COSMOS3_WSM_SIZE = (1280, 720)
"""(width, height) of a Cosmos 3 wsm video (720p, 16:9)."""
NVIDIA_RIG = Path(str(files("cosmos_sim.assets"))) / "rigs" / "nvidia_av_7cam.yaml"
"""NVIDIA's 7-camera AV rig (the Transfer 2.5 multiview / world-scenario camera set)."""


def resolve_rig(rig: str | Path | None) -> Any:
    """A rig: None -> one front camera; "nvidia" -> NVIDIA's 7-camera rig; else a rig file."""
    from cosmos_sim.bridges.carla_rig import default_rig, load_rig

    if rig is None:
        return default_rig()
    if str(rig) == "nvidia":
        return load_rig(NVIDIA_RIG)
    return load_rig(rig)


def write_hdmap_clip(
    xodr: str | Path,
    out: str | Path,
    *,
    rig: str | Path | None = None,
    trajectory: str | Path | None = None,
    seconds: float | None = None,
    version: str = "v3",
    target: str = "transfer25",
    progress: bool = True,
) -> dict[str, Any]:
    """Render the HD-map control of an OpenDRIVE map along a trajectory (see module doc).

    Writes the videos, `contact_sheet.png`, `poses.json` (per-frame ego and camera poses, K)
    and the target's spec or manifest. Returns what it wrote.
    """
    from tqdm import tqdm

    from cosmos_sim.bridges.opendrive import Trajectory, compile_map, load_trajectory
    from cosmos_sim.controls import multiview as mv
    from cosmos_sim.controls.hdmap import compile_scene, render_hdmap
    from cosmos_sim.controls.hdmap_style import check_version
    from cosmos_sim.controls.spec import write_spec_json
    from cosmos_sim.episode import ensure_empty_dir, write_json_atomic
    from cosmos_sim.imaging import image_grid, save_png
    from cosmos_sim.video import (
        COSMOS_FPS,
        FRAMES_PER_CHUNK,
        VideoWriter,
        bucket_size,
        resample_indices,
        scale_intrinsics,
    )

    if target not in TARGETS:
        raise SpecError(f"target {target!r}: use one of {list(TARGETS)}")
    check_version(version)
    if seconds is not None and seconds <= 0:
        raise SpecError(f"--seconds must be > 0, got {seconds}")
    the_rig = resolve_rig(rig)
    views = {cam.name: cam.view or cam.name for cam in the_rig.cameras}
    layout = None if target == "cosmos3" else mv.rig_views(views)
    if target == "cosmos3":
        fps, default_frames = float(COSMOS3_WSM_FPS), COSMOS3_WSM_FRAMES
    elif layout:
        fps, default_frames = float(mv.TRANSFER25_MULTIVIEW_FPS), mv.TRANSFER1_FRAMES_PER_VIEW
    else:
        fps, default_frames = float(COSMOS_FPS), FRAMES_PER_CHUNK
    num_frames = default_frames if seconds is None else max(1, round(seconds * fps))
    if trajectory is None:
        compiled = compile_map(xodr, frames=num_frames, fps=fps)
        traj = Trajectory(compiled.poses, fps, compiled.trajectory_source)
    else:
        given = load_trajectory(trajectory)
        compiled = compile_map(xodr, check_poses=given.poses, source=given.source)
        picks = resample_indices(len(given.poses), given.fps, fps)
        if seconds is not None:
            picks = picks[:num_frames]
        traj = Trajectory([given.poses[i] for i in picks], fps, given.source)
    cameras = []
    for cam in the_rig.cameras:
        if target == "cosmos3":
            size = COSMOS3_WSM_SIZE
        elif layout == "transfer25":
            size = mv.TRANSFER25_MULTIVIEW_SIZE
        else:
            size = bucket_size(cam.width, cam.height)
        cameras.append((cam, scale_intrinsics(cam.K, (cam.width, cam.height), size), size))
    scene = compile_scene(compiled.geometry, version)

    out = ensure_empty_dir(out, "hdmap output folder")
    stem = "wsm" if target == "cosmos3" else "hdmap"
    single = len(cameras) == 1
    if target == "cosmos3":  # the clips layout: <camera>/wsm.mp4, beside any rgb.mp4
        files = {cam.name: f"{cam.name}/wsm.mp4" for cam, _, _ in cameras}
        for cam, _, _ in cameras:
            (out / cam.name).mkdir()
    else:
        files = {cam.name: "hdmap.mp4" if single else f"hdmap_{cam.name}.mp4"
                 for cam, _, _ in cameras}  # fmt: skip
    writers = {name: VideoWriter(out / file, fps, lossless=True) for name, file in files.items()}
    # a cosmos3 grid is not named wsm.mp4: the folder must not look like a control-only clip
    grid = "wsm_grid.mp4" if target == "cosmos3" else f"{stem}.mp4"
    preview = out / (files[cameras[0][0].name] if single else grid)
    grid_writer = None if single else VideoWriter(preview, fps)
    sheet_at = set(np.linspace(0, len(traj.poses) - 1, min(4, len(traj.poses))).round().astype(int))
    sheet_rows, frames_json = [], []
    try:
        for index, ego_pose in enumerate(tqdm(traj.poses, desc=stem, disable=not progress)):
            images, cams_json = [], {}
            for cam, K, (w, h) in cameras:
                cam_to_world = ego_pose @ cam.cam_to_body
                image = render_hdmap(scene, K, cam_to_world, h, w)
                writers[cam.name].write(image)
                images.append(image)
                cams_json[cam.name] = {
                    "K": np.round(K, 6).tolist(),
                    "cam_to_world": np.round(cam_to_world, 6).tolist(),
                    "width": w,
                    "height": h,
                }
            if grid_writer is not None:
                rows = [images[i : i + 4] for i in range(0, len(images), 4)]
                grid_writer.write(_even(image_grid(rows, cell_width=480)))
            if index in sheet_at:
                sheet_rows.append(images)
            frames_json.append({
                "index": index,
                "t": index / fps,
                "ego_to_world": np.round(ego_pose, 6).tolist(),
                "cameras": cams_json,
            })  # fmt: skip
    finally:
        for writer in [*writers.values(), grid_writer]:
            if writer is not None:
                writer.close()
    names = [cam.name for cam, _, _ in cameras]
    sheet = image_grid(
        sheet_rows,
        col_labels=names,
        row_labels=[f"frame {i}" for i in sorted(sheet_at)],
        cell_width=480 if single else 320,
    )
    written: dict[str, Any] = {
        "video": preview,
        "contact_sheet": save_png(out / "contact_sheet.png", sheet),
        "poses": out / "poses.json",
        "frames": len(traj.poses),
        "fps": fps,
        "unknown_signals": compiled.unknown_signals,
    }
    write_json_atomic(
        out / "poses.json",
        {
            "map": str(xodr),
            "frame": "OpenDRIVE/world: right-handed, z up; cameras OpenCV (x right, y down, z fwd)",
            "fps": fps,
            "trajectory": traj.source,
            "version": version,
            "unknown_signals": compiled.unknown_signals,
            "frames": frames_json,
        },
    )
    if target == "cosmos3":
        written["manifest"] = out / "wsm.json"
        write_json_atomic(
            written["manifest"],
            {
                "hint": "wsm",
                "version": version,
                "fps": fps,
                "frames": len(traj.poses),
                "width": COSMOS3_WSM_SIZE[0],
                "height": COSMOS3_WSM_SIZE[1],
                "cameras": {
                    name: {"view": views[name], "control_path": files[name]} for name in names
                },  # fmt: skip
            },
        )
        return written
    by_view = {views[name]: out / files[name] for name in names}
    if layout == "transfer25":
        spec = mv.transfer25_multiview_spec(
            Path(xodr).stem, {v: by_view[v] for v in mv.TRANSFER25_VIEWS}, relative_to=out
        )
        mv.validate_transfer25_multiview(spec, out)
        written["spec"] = write_spec_json(spec, out / "multiview_spec.json")
    elif layout == "transfer1":  # its spec also needs the front RGB (view_condition_video)
        written["note"] = (
            "Transfer 1 six-view conditions on the front camera's RGB video: write its spec "
            "with controls.multiview.transfer1_multiview_spec(view_condition_video=...)"
        )
    return written


def _even(image: np.ndarray) -> np.ndarray:
    """yuv420p needs even sizes; grids have arbitrary ones."""
    h, w = image.shape[:2]
    return image[: h - h % 2, : w - w % 2]
