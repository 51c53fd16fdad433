"""Synthetic episodes and clips for transfer and dataset tests (no simulator needed).

`moving_boxes_episode` records a camera looking at a floor plane with boxes sliding across
it: instance and class ids, metric depth and a flat-shaded RGB, all exact. `write_test_clip`
writes a clip folder the way the controls stage lays it out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cosmos_sim import CameraSpec, EpisodeWriter, SensorFrame

CLASS_NAMES = {1: "floor", 2: "box", 3: "ball"}


def scene_frame(width: int, height: int, t: float, n_boxes: int = 3, speed: float = 0.15):
    """(rgb, depth_m, instance_id, class_id) at time t (s); boxes move `speed` widths/s."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = 0.35 * height
    depth = np.where(yy > horizon, 1.5 * height / np.maximum(yy - horizon, 1), 50.0)
    depth = np.minimum(depth, 50.0).astype(np.float32)
    inst = np.where(yy > horizon, 1, 0).astype(np.int32)
    cls = inst.copy()
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[inst == 0] = (140, 170, 210)
    rgb[inst == 1] = (120, 120, 110)
    for k in range(n_boxes):
        bw, bh = width // (6 + k), height // (5 + k)
        x0 = int((0.1 + 0.25 * k + speed * t) * width) % max(1, width - bw)
        y0 = int(0.45 * height + k * height * 0.12)
        y0 = min(y0, height - bh)
        box = (slice(y0, y0 + bh), slice(x0, x0 + bw))
        inst[box] = 10 + k
        cls[box] = 2 if k % 2 == 0 else 3
        depth[box] = np.float32(3.0 + k)
        rgb[box] = (200 - 40 * k, 60 + 50 * k, 40 + 30 * k)
    return rgb, depth, inst, cls


def moving_boxes_episode(
    path: Path, *, width=320, height=240, fps=30.0, ticks=24, camera="front", speed=0.15
) -> Path:
    cam = CameraSpec(camera, width, height, fov_deg=60.0)
    with EpisodeWriter(
        path, cameras=[cam], fps=fps, simulator="synthetic", class_names=CLASS_NAMES
    ) as writer:
        for i in range(ticks):
            rgb, depth, inst, cls = scene_frame(width, height, i / fps, speed=speed)
            pose = np.eye(4)
            pose[0, 3] = 0.01 * i
            writer.append(
                [
                    SensorFrame(
                        camera,
                        i,
                        i / fps,
                        pose,
                        camera=cam,
                        rgb=rgb,
                        depth_m=depth,
                        instance_id=inst,
                        class_id=cls,
                    )
                ]
            )
    return path


def write_test_clip(
    folder: Path, *, width=1280, height=704, frames=16, seed=0, static=False
) -> Path:
    """A clip folder (rgb, seg, depth, edge videos + palette) of the moving-boxes scene.

    `static=True` repeats the first frame (a still simulator).
    """
    from cosmos_sim.controls import (
        depth_control,
        edge_control,
        save_palette,
        seg_control,
        seg_palette,
    )
    from cosmos_sim.video import write_video

    folder.mkdir(parents=True, exist_ok=True)
    data = [scene_frame(width, height, 0.0 if static else i / 16) for i in range(frames)]
    rgb, depth, inst = (np.stack([d[k] for d in data]) for k in range(3))
    palette = seg_palette(np.unique(inst), seed)
    save_palette(palette, folder / "seg_palette.json", seed=seed)
    write_video(folder / "rgb.mp4", rgb, 16)
    write_video(folder / "seg.mp4", seg_control(inst, palette), 16, lossless=True)
    write_video(folder / "depth.mp4", depth_control(depth), 16)
    write_video(folder / "edge.mp4", edge_control(rgb), 16)
    return folder
