"""`write_clips` end to end on a GPU machine: `--device` (default "auto") against "cpu".

Both runs go through the same streamed pipeline (read ticks in a background thread, compute
each chunk's controls, encode every video on its own thread) on the same episode, in one
process; the CPU run is the baseline. Prints output frames/s of each (reading and encoding
included) and checks the device videos against the CPU ones within the kernels' parity
tolerances. The episode is synthetic (boxes on a ground plane, seen by `--cameras` 1280×704
cameras with a LiDAR), so the GPU machine needs no simulator: only numpy, torch, av (PyAV),
opencv-python-headless, gymnasium and tqdm.

Set-up is timed apart: before the measured runs, each path writes the clips of a short
`--warmup-ticks` episode (the GPU path's one-off costs: CUDA context, Triton compiling its
kernels, which later processes find in Triton's on-disk cache). `--warmup-ticks 0` measures
a cold process instead. Each run also reports where its main thread spent the time: the
first pass (clip statistics), waiting for the reading thread, computing controls, waiting
for an encoder to take a batch, and the rest (LiDAR scan of the records, specs, contact
sheets, copies).

    python benchmarks/clips_gpu.py [--ticks 48] [--cameras 1] [--device auto] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import cosmos_sim.controls.clips as clips_module
import cosmos_sim.transfer.base as transfer_base
from cosmos_sim import CameraSpec, EpisodeWriter, LidarSpec, SensorFrame
from cosmos_sim.controls import write_clips
from cosmos_sim.kernels import available_device
from cosmos_sim.video import read_video

WIDTH, HEIGHT = 1280, 704
MODALITIES = ("depth", "seg", "edge", "vis", "lidar")


def synthetic_episode(path: Path, ticks: int, seed: int = 0, cameras: int = 1) -> Path:
    """A camera 1.5 m above a plane, driving forward past coloured boxes (one id each);
    `cameras` > 1 records that view under several names (front, cam1, ...)."""
    rng = np.random.default_rng(seed)
    camera = CameraSpec("front", WIDTH, HEIGHT, fov_deg=60, near_m=0.1, far_m=100)
    names = ["front"] + [f"cam{i}" for i in range(1, cameras)]
    specs = [camera] + [CameraSpec(n, WIDTH, HEIGHT, fov_deg=60, near_m=0.1, far_m=100)
                        for n in names[1:]]  # fmt: skip
    lidar = LidarSpec("lidar", channels=32, points_per_channel=1024)
    K = camera.intrinsics
    boxes = [(rng.uniform(-6, 6), rng.uniform(6, 60), rng.uniform(0.5, 2.5)) for _ in range(24)]
    colours = rng.integers(30, 255, (len(boxes), 3))
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    ray_y = (v - K[1, 2]) / K[1, 1]
    with EpisodeWriter(path, cameras=specs, lidars=[lidar], fps=16, simulator="synthetic",
                       class_names={1: "ground", 2: "box"}) as writer:  # fmt: skip
        for t in range(ticks):
            ahead_m = 0.4 * t
            depth = np.where(ray_y > 1e-3, 1.5 / np.maximum(ray_y, 1e-3), 100.0)
            depth = np.minimum(depth, 100.0).astype(np.float32)
            ids = np.where(ray_y > 1e-3, 1, 0).astype(np.int32)
            classes = ids.copy()
            rgb = np.full((HEIGHT, WIDTH, 3), (150, 190, 230), np.uint8)
            rgb[ids == 1] = (90, 90, 90)
            for index, (x, z, size) in sorted(
                enumerate(boxes), key=lambda item: -(item[1][1] - ahead_m)
            ):
                z_cam = z - ahead_m
                if z_cam < 1.0:
                    continue
                u0, u1 = (
                    K[0, 0] * (x - size / 2) / z_cam + K[0, 2],
                    K[0, 0] * (x + size / 2) / z_cam + K[0, 2],
                )
                v0, v1 = K[1, 1] * (1.5 - size) / z_cam + K[1, 2], K[1, 1] * 1.5 / z_cam + K[1, 2]
                r0, r1 = int(max(v0, 0)), int(min(v1, HEIGHT))
                c0, c1 = int(max(u0, 0)), int(min(u1, WIDTH))
                if r0 >= r1 or c0 >= c1:
                    continue
                depth[r0:r1, c0:c1] = z_cam
                ids[r0:r1, c0:c1] = 2 + index
                classes[r0:r1, c0:c1] = 2
                rgb[r0:r1, c0:c1] = colours[index]
            noise = rng.integers(-12, 13, rgb.shape)
            rgb = np.clip(rgb.astype(np.int16) + noise, 0, 255).astype(np.uint8)
            rgb = cv2.GaussianBlur(rgb, (3, 3), 0)
            cam_to_world = np.array(
                [[1, 0, 0, 0], [0, 0, 1, ahead_m], [0, -1, 0, 1.5], [0, 0, 0, 1]], np.float64
            )  # OpenCV camera looking along world +y, 1.5 m above the ground
            n = 20000
            points_cam = np.stack(
                [rng.uniform(-20, 20, n), np.full(n, 1.5), rng.uniform(3, 80, n)], 1
            )
            points_world = points_cam @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]
            frames = [
                *(SensorFrame(spec.name, t, t / 16, cam_to_world, camera=spec, rgb=rgb,
                              depth_m=depth, instance_id=ids, class_id=classes)
                  for spec in specs),
                SensorFrame("lidar", t, t / 16, cam_to_world, lidar=lidar,
                            points_world=points_world.astype(np.float32)),
            ]  # fmt: skip
            writer.append(frames)
    return path


class StageClock:
    """Seconds the main thread of `write_clips` spends per stage, by wrapping the module's
    own functions (the code measured is the code users run)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.saved: dict[str, Any] = {}

    def _timed(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start

        return wrapper

    def __enter__(self) -> StageClock:
        clock = self
        self.saved = {name: getattr(clips_module, name)
                      for name in ("_first_pass", "compute_controls",
                                   "ParallelVideoWriters")}  # fmt: skip
        self.saved["prefetch"] = transfer_base.prefetch  # imported inside write_clips
        writers_cls = self.saved["ParallelVideoWriters"]

        class TimedWriters(writers_cls):  # type: ignore[misc, valid-type]
            def write(self, key: str, frames: np.ndarray) -> None:
                start = time.perf_counter()
                super().write(key, frames)
                clock.seconds["wait for encoders"] += time.perf_counter() - start

            def close(self) -> None:
                start = time.perf_counter()
                super().close()
                clock.seconds["wait for encoders"] += time.perf_counter() - start

        def timed_prefetch(*args: Any, **kwargs: Any) -> Iterator[Any]:
            source = iter(self.saved["prefetch"](*args, **kwargs))
            try:
                while True:
                    start = time.perf_counter()
                    try:
                        item = next(source)
                    except StopIteration:
                        return
                    finally:
                        self.seconds["wait for reading"] += time.perf_counter() - start
                    yield item
            finally:
                close = getattr(source, "close", None)
                if close is not None:
                    close()

        clips_module._first_pass = self._timed("first pass", self.saved["_first_pass"])
        clips_module.compute_controls = self._timed("controls", self.saved["compute_controls"])
        transfer_base.prefetch = timed_prefetch
        clips_module.ParallelVideoWriters = TimedWriters
        return self

    def __exit__(self, *_: object) -> None:
        transfer_base.prefetch = self.saved.pop("prefetch")
        for name, value in self.saved.items():
            setattr(clips_module, name, value)


def edge_f1(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a[..., 0] > 127, b[..., 0] > 127
    both = np.logical_and(a, b).sum()
    return float(2 * both / max(a.sum() + b.sum(), 1))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=48)
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--device", default="auto", help="the run measured against 'cpu'")
    parser.add_argument("--chunk-frames", type=int, default=16)
    parser.add_argument("--warmup-ticks", type=int, default=8,
                        help="untimed first run per path (0: measure a cold process)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp())
    start = time.perf_counter()
    episode = synthetic_episode(root / "episode", args.ticks, cameras=args.cameras)
    build_s = time.perf_counter() - start
    picked = available_device() if args.device == "auto" else args.device
    print(f"device={args.device!r} picks: {picked}")
    seconds, frames, stages, setup = {}, {}, {}, {}
    if args.warmup_ticks:
        warm = synthetic_episode(root / "warmup", args.warmup_ticks, seed=1, cameras=args.cameras)
    for run, device in enumerate(("cpu", args.device)):
        if args.warmup_ticks:
            start = time.perf_counter()
            write_clips(warm, root / f"warmup_{run}_{device}", modalities=MODALITIES,
                        device=device, chunk_frames=args.chunk_frames, progress=False)  # fmt: skip
            setup[device] = time.perf_counter() - start
        start = time.perf_counter()
        with StageClock() as clock:
            result = write_clips(episode, root / f"clips_{run}_{device}", modalities=MODALITIES,
                                 device=device, chunk_frames=args.chunk_frames,
                                 progress=False)  # fmt: skip
        seconds[device] = time.perf_counter() - start
        frames[device] = result["num_frames"] * args.cameras
        stages[device] = dict(clock.seconds)
        stages[device]["other"] = seconds[device] - sum(clock.seconds.values())
    cpu, dev = seconds["cpu"], seconds[args.device]
    print(f"write_clips, {args.ticks} ticks × {args.cameras} camera(s) at {WIDTH}×{HEIGHT}, "
          "5 controls + rgb, reading and encoding included:")  # fmt: skip
    print(f"  cpu          {cpu:7.2f} s  {frames['cpu'] / cpu:7.1f} frames/s")
    print(f"  {args.device:12s} {dev:7.2f} s  {frames[args.device] / dev:7.1f} frames/s "
          f"({cpu / dev:.1f}× the cpu path)")  # fmt: skip
    if setup:
        print(f"  untimed warm-up runs, {args.warmup_ticks} ticks: "
              + ", ".join(f"{d} {s:.2f} s" for d, s in setup.items()))  # fmt: skip
    for device, spent in stages.items():
        print(f"  {device} main thread: "
              + ", ".join(f"{k} {v:.2f} s" for k, v in spent.items()))  # fmt: skip
    agreement = {}
    print(f"{'control':8} {'agreement with the cpu path'}")
    for name in MODALITIES:
        a, _ = read_video(root / "clips_0_cpu" / "front" / f"{name}.mp4")
        b, _ = read_video(root / f"clips_1_{args.device}" / "front" / f"{name}.mp4")
        if name == "edge":
            agreement[name] = {"f1": edge_f1(a, b)}
            score = f"F1 {agreement[name]['f1']:.4f} (target ≥ 0.95)"
        elif name in ("seg", "lidar"):
            agreement[name] = {
                "exact": bool(np.array_equal(a, b)),
                "differ": float(np.mean(a != b)),
            }
            score = (
                f"exact: {agreement[name]['exact']} ({agreement[name]['differ']:.2e} bytes differ)"
            )
        else:
            agreement[name] = {"psnr_db": psnr(a, b)}
            score = f"PSNR {agreement[name]['psnr_db']:.1f} dB between the two encoded videos"
        print(f"{name:8} {score}")
    report = {
        "ticks": args.ticks, "cameras": args.cameras, "size": [WIDTH, HEIGHT],
        "chunk_frames": args.chunk_frames, "cpu_count": os.cpu_count(),
        "episode_build_s": build_s,
        "cpu": {"seconds": cpu, "frames_per_s": frames["cpu"] / cpu},
        args.device: {"seconds": dev, "frames_per_s": frames[args.device] / dev},
        "speedup_vs_cpu": cpu / dev,
        "warmup_ticks": args.warmup_ticks,
        "warmup_seconds": setup,
        "main_thread_seconds": stages,
        "agreement": agreement,
    }  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
