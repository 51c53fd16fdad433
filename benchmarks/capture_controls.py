"""Capture frames/s (EGL vs TinyRenderer) and control cost per frame at 1280×704 on this CPU.

Baselines measured in the same run: TinyRenderer for capture; for encoding, the lossy
H.264 control video against the lossless libx264rgb seg video.

    python benchmarks/capture_controls.py [--frames 10] [--chunk 93]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from cosmos_sim.bridges.pybullet import make_scene
from cosmos_sim.controls import (
    depth_control,
    edge_control,
    lidar_control,
    seg_control,
    seg_palette,
    vis_control,
)
from cosmos_sim.video import write_video


def time_capture(scene_name: str, renderer: str, frames: int) -> tuple[str, float, dict]:
    """Median seconds per tick (physics step + capture of every sensor); returns one tick."""
    scene = make_scene(scene_name, renderer=renderer, width=1280, height=704)
    try:
        scene.step()
        scene.bridge.capture(0, 0.0)  # warm-up: first render builds GL state
        seconds = []
        captured = []
        for i in range(frames):
            start = time.perf_counter()
            scene.step()
            captured = scene.bridge.capture(i + 1, (i + 1) / scene.fps)
            seconds.append(time.perf_counter() - start)
        return scene.bridge.renderer, statistics.median(seconds), {f.sensor: f for f in captured}
    finally:
        scene.close()


def ms_per_frame(fn: Callable[[], object], frames: int, repeats: int = 3) -> float:
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return 1000 * min(runs) / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10, help="ticks timed per renderer")
    parser.add_argument("--chunk", type=int, default=93, help="frames per encoded chunk")
    args = parser.parse_args()
    console = Console()
    console.print(f"CPU cores: {os.cpu_count()}, load average: {os.getloadavg()}")

    capture = Table(title="Capture at 1280×704 (physics step + all sensors of the scene)")
    for col in ("scene", "renderer", "ms/tick", "ticks/s", "speed-up vs tiny"):
        capture.add_column(col)
    sample = {}
    for scene_name in ("tabletop", "street"):
        tiny_name, tiny_s, _ = time_capture(scene_name, "tiny", args.frames)
        egl_name, egl_s, frames = time_capture(scene_name, "auto", args.frames)
        sample[scene_name] = frames
        capture.add_row(scene_name, tiny_name, f"{tiny_s * 1e3:.0f}", f"{1 / tiny_s:.2f}", "1.00×")
        if egl_name != tiny_name:
            capture.add_row(
                scene_name,
                egl_name,
                f"{egl_s * 1e3:.0f}",
                f"{1 / egl_s:.2f}",
                f"{tiny_s / egl_s:.2f}×",
            )
    console.print(capture)

    street = sample["street"]
    camera = next(f for f in street.values() if f.rgb is not None)
    lidar = next((f for f in street.values() if f.points_world is not None), None)
    batch = 4
    rgb = np.repeat(camera.rgb[None], batch, axis=0)
    depth = np.repeat(camera.depth_m[None], batch, axis=0)
    ids = np.repeat(camera.instance_id[None], batch, axis=0)
    palette = seg_palette(np.unique(ids), seed=0)
    h, w = camera.rgb.shape[:2]
    ops: dict[str, Callable[[], object]] = {
        "depth": lambda: depth_control(depth),
        "seg": lambda: seg_control(ids, palette),
        "edge (medium)": lambda: edge_control(rgb, preset="medium"),
        "vis (medium)": lambda: vis_control(rgb, preset="medium"),
    }
    if lidar is not None:
        ops["lidar"] = lambda: [
            lidar_control([lidar.points_world], camera.K, camera.cam_to_world, h, w)
            for _ in range(batch)
        ]
    controls = Table(title=f"Controls at {w}×{h} (min of 3 runs over {batch} frames)")
    controls.add_column("control")
    controls.add_column("ms/frame")
    controls.add_column("ms per 93-frame chunk")
    for name, fn in ops.items():
        ms = ms_per_frame(fn, batch)
        controls.add_row(name, f"{ms:.1f}", f"{ms * 93:.0f}")
    console.print(controls)

    chunk_rgb = np.repeat(camera.rgb[None], args.chunk, axis=0)
    chunk_seg = np.repeat(seg_control(ids[:1], palette), args.chunk, axis=0)
    encode = Table(title=f"Encode one {args.chunk}-frame chunk at {w}×{h}")
    encode.add_column("video")
    encode.add_column("seconds")
    encode.add_column("MB")
    with tempfile.TemporaryDirectory() as tmp:
        for label, frames, lossless in (
            ("H.264 yuv420p (rgb, depth, vis)", chunk_rgb, False),
            ("libx264rgb qp=0 (seg, edge, lidar, hdmap)", chunk_seg, True),
        ):
            path = Path(tmp) / f"{'seg' if lossless else 'rgb'}.mp4"
            start = time.perf_counter()
            write_video(path, frames, fps=16, lossless=lossless)
            encode.add_row(
                label, f"{time.perf_counter() - start:.2f}", f"{path.stat().st_size / 1e6:.2f}"
            )
    console.print(encode)


if __name__ == "__main__":
    main()
