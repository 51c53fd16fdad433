"""HD-map control frames/s at 1280×704 on a real OpenDRIVE map, on this CPU.

Baseline measured in the same run: the naive renderer most people write first (transform
and project each segment on its own, drop segments with an end behind the camera, one
`cv2.line` per segment). Ours clips to the near/far planes, culls and projects every
segment at once, and draws one `cv2.polylines` per colour level.

    python benchmarks/hdmap.py [--xodr MAP.xodr] [--frames 93]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from cosmos_sim.bridges.carla_rig import default_rig
from cosmos_sim.controls.hdmap import compile_scene, render_hdmap
from cosmos_sim.controls.opendrive import default_trajectory, load_opendrive, map_geometry

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = [
    ROOT / "tests" / "data" / "opendrive" / "e6mini.xodr",
    ROOT / "tests" / "data" / "two_way_street.xodr",
]


def naive_render(scene, K, cam_to_world, width, height, near_m=0.3, fade_m=200.0):
    world_to_cam = np.linalg.inv(cam_to_world)
    image = np.zeros((height, width, 3), np.uint8)
    for a, b, color, w in zip(
        scene.seg_a, scene.seg_b, scene.seg_color, scene.seg_width, strict=True
    ):
        pa = world_to_cam[:3, :3] @ a + world_to_cam[:3, 3]
        pb = world_to_cam[:3, :3] @ b + world_to_cam[:3, 3]
        if pa[2] < near_m or pb[2] < near_m:
            continue
        fade = max(0.0, 1.0 - 0.5 * (pa[2] + pb[2]) / fade_m)
        ua, ub = (K @ pa)[:2] / pa[2], (K @ pb)[:2] / pb[2]
        cv2.line(
            image,
            (int(ua[0]), int(ua[1])),
            (int(ub[0]), int(ub[1])),
            tuple(float(c) * fade for c in color),
            int(w),
            cv2.LINE_AA,
        )
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xodr", type=Path, default=next(p for p in CANDIDATES if p.is_file()))
    parser.add_argument("--frames", type=int, default=93)
    args = parser.parse_args()

    t0 = time.perf_counter()
    carla_map = load_opendrive(args.xodr)
    scene = compile_scene(map_geometry(carla_map))
    load_s = time.perf_counter() - t0
    cam = default_rig().cameras[0]
    poses = [p @ cam.cam_to_body for p in default_trajectory(carla_map, args.frames, 16.0).poses]

    def timed(render) -> float:
        render(poses[0])  # warm-up
        start = time.perf_counter()
        for pose in poses:
            render(pose)
        return len(poses) / (time.perf_counter() - start)

    ours = timed(lambda p: render_hdmap(scene, cam.K, p, cam.width, cam.height))
    ours_8 = timed(lambda p: render_hdmap(scene, cam.K, p, cam.width, cam.height, antialias=False))
    naive = timed(lambda p: naive_render(scene, cam.K, p, cam.width, cam.height))
    print(f"map {args.xodr.name}: {len(scene.seg_a)} segments, load + compile {load_s:.2f} s")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"{'renderer':<44}{'frames/s':>10}")
    print(f"{'ours (vectorised clip + polylines, AA)':<44}{ours:>10.1f}")
    print(f"{'ours (vectorised clip + polylines, LINE_8)':<44}{ours_8:>10.1f}")
    print(f"{'baseline: per-segment project + cv2.line':<44}{naive:>10.1f}")
    print(f"speed-up over the baseline: {ours / naive:.1f}×")


if __name__ == "__main__":
    main()
