"""HD-map (wsm) control frames/s at 1280×704: the CPU renderer and the device kernel, one map.

Baseline measured in the same run: the CPU reference (`controls.hdmap.render_hdmap_clip`,
numpy + OpenCV, one frame at a time). Candidate: `kernels.hdmap.hdmap_control` on `--device`
(Triton on CUDA, else its torch path), CLIP_BATCH frames per call, timed with the device
synchronised; its agreement with the reference is printed next to its speed.

The map comes from an OpenDRIVE file (needs the `carla` extra) or from a scene JSON written
here with `--save-scene` (map geometry + camera poses; the GPU machine has no carla):

    python benchmarks/hdmap.py --save-scene /tmp/hdmap_scene.json          # CPU machine
    python benchmarks/hdmap.py --scene /tmp/hdmap_scene.json --device cuda --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from cosmos_sim.controls.hdmap import MapGeometry, compile_scene, render_hdmap_clip
from cosmos_sim.kernels.hdmap import hdmap_control

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_XODR = ROOT / "tests" / "data" / "opendrive" / "e6mini.xodr"
HEIGHT, WIDTH = 704, 1280
BATCH = 16


def front_camera() -> tuple[np.ndarray, np.ndarray]:
    """K of a 90° camera at 1280×704 and its camera-to-body pose (1.5 m ahead, 1.7 m up)."""
    f = WIDTH / 2 / np.tan(np.radians(45))
    K = np.array([[f, 0, (WIDTH - 1) / 2], [0, f, (HEIGHT - 1) / 2], [0, 0, 1.0]])
    cam_to_body = np.eye(4)
    cam_to_body[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]
    cam_to_body[:3, 3] = [1.5, 0.0, 1.7]
    return K, cam_to_body


def load_scene(args: argparse.Namespace) -> tuple[MapGeometry, list[np.ndarray], str]:
    if args.scene is not None:
        data = json.loads(args.scene.read_text())
        poses = [np.asarray(p, float) for p in data["cam_to_world"]][: args.frames]
        return MapGeometry.from_json(data["geometry"]), poses, data["map"]
    from cosmos_sim.bridges.opendrive import compile_map

    compiled = compile_map(args.xodr, frames=args.frames, fps=16.0)
    _, cam_to_body = front_camera()
    return compiled.geometry, [p @ cam_to_body for p in compiled.poses], args.xodr.name


def agreement(reference: np.ndarray, candidate: np.ndarray, tolerance: int = 32) -> float:
    """Share of pixels where the candidate is within `tolerance` of the reference."""
    return float(
        (np.abs(reference.astype(int) - candidate.astype(int)).max(-1) <= tolerance).mean()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xodr", type=Path, default=DEFAULT_XODR)
    parser.add_argument("--scene", type=Path, help="scene JSON from --save-scene (no carla)")
    parser.add_argument("--save-scene", type=Path, help="write the scene JSON and exit")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--device", default="cpu", help="device of the kernel: cpu, cuda")
    parser.add_argument(
        "--kernel-frames",
        type=int,
        help="frames for the kernel (default: all; its CPU torch "
        "path is a fallback, seconds per 1280×704 frame)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    geometry, poses, source = load_scene(args)
    if args.save_scene is not None:
        args.save_scene.write_text(json.dumps({
            "map": source,
            "geometry": geometry.to_json(),
            "cam_to_world": [np.round(p, 6).tolist() for p in poses],
        }))  # fmt: skip
        print(f"wrote {args.save_scene} ({len(poses)} poses)")
        return
    K, _ = front_camera()
    scene = compile_scene(geometry)

    render_hdmap_clip(scene, [K], poses[:1], HEIGHT, WIDTH)  # warm-up
    start = time.perf_counter()
    reference = render_hdmap_clip(scene, [K] * len(poses), poses, HEIGHT, WIDTH)
    cpu_s = time.perf_counter() - start

    device = torch.device(args.device)
    count = len(poses) if args.kernel_frames is None else min(args.kernel_frames, len(poses))
    Ks = torch.as_tensor(np.stack([K] * count), device=device)
    cams = torch.as_tensor(np.stack(poses[:count]), device=device)

    def run_kernel() -> np.ndarray:
        out = [
            hdmap_control(scene, Ks[i : i + BATCH], cams[i : i + BATCH], HEIGHT, WIDTH).cpu()
            for i in range(0, count, BATCH)
        ]
        return torch.cat(out).numpy()

    hdmap_control(scene, Ks[:1], cams[:1], HEIGHT, WIDTH)  # warm-up (Triton compiles here)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    candidate = run_kernel()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    kernel_s = time.perf_counter() - start

    results = {
        "map": source,
        "segments": int(len(scene.seg_a)),
        "frames": len(poses),
        "size": [HEIGHT, WIDTH],
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu_reference_fps": len(poses) / cpu_s,
        "kernel_frames": count,
        "kernel_fps": count / kernel_s,
        "kernel_speedup": (count / kernel_s) / (len(poses) / cpu_s),
        "kernel_agreement": agreement(reference[:count], candidate),
        "lit_share": float((reference.max(-1) > 0).mean()),
    }
    print(json.dumps(results, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
