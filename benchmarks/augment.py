"""Capture with `--augment appearance` against the same capture without it, in one run;
and (`--cosmos3`) a Cosmos 3 session with random full-size weights on a GPU.

Each round records the PyBullet tabletop scene (1280×704, EGL when available) three ways,
in rotating order so a change in the machine's load hits every mode alike:

- `capture`: `record_episode` alone (the baseline, what `cosmos-sim capture` does);
- `augment/thread` and `augment/process`: the same capture with `capture_augmented`, which
  writes RUN/augmented/ while the simulator runs, the Augmenter's worker a thread or a
  process (`cosmos-sim capture --augment` uses the thread).

Wall time runs from the first tick to the last augmented frame on disk (the episode and
the augmented folder both complete). The goal of the issue is augment wall ≤ 1.25× the
capture's. Also reported: ticks/s, augmented frames/s, lag (seconds from a tick's hand-over
to its augmented frame being written), chunks skipped, and the load average, since the
development machine is shared. The appearance backend is classical appearance
randomisation, not Cosmos.

    python benchmarks/augment.py [--seconds 4] [--rounds 2] [--json out.json]

GPU mode (`--cosmos3 --device cuda`): the `cosmos3` backend (diffusers'
Cosmos3OmniModularPipeline, built by `cosmos3_transfer_gpu.build_cosmos3` from the public
Cosmos3-Nano architecture with random bf16 weights, behind a pass-through checker that
`Cosmos3Backend.from_pipeline` accepts only for random weights, never Cosmos weights) in an
Augmenter session: synthetic 1280×704 camera frames (a moving box: rgb, depth, ids) are
submitted at the simulator's 16 fps, the Augmenter computes edge, depth and seg per chunk and
the session generates chunk by chunk (the first pipeline call after `--chunk` frames, then
every chunk − 1, chained on the last decoded frame). Reported: output frames/s and lag (submit
to frame out) with `--steps` denoising steps as measured, and per chunk the same EXTRAPOLATED
to 35 steps (rest of the call + 35 × the measured step time, from a transformer forward hook).
Needs torch + CUDA, diffusers 0.42.1, tokenizers, transformers, opencv-python-headless (no
pybullet in this mode).

    python benchmarks/augment.py --cosmos3 --device cuda --json augment_gpu.json
    python benchmarks/augment.py --cosmos3 --device cpu --tiny       # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def run_once(mode: str, folder: Path, args: argparse.Namespace) -> dict:
    from cosmos_sim.augment.capture import capture_augmented
    from cosmos_sim.bridges.pybullet import make_scene, record_episode

    scene = make_scene("tabletop", seed=0, width=args.width, height=args.height)
    out = folder / mode.replace("/", "-")
    try:
        start = time.perf_counter()
        if mode == "capture":
            record_episode(scene, args.seconds, out, progress=False)
            stats = None
        else:
            _, stats = capture_augmented(
                lambda on_tick: record_episode(scene, args.seconds, out, progress=False,
                                               on_tick=on_tick),
                out, backend="appearance", overflow=args.overflow,
                chunk_frames=args.chunk_frames, worker=mode.split("/")[1],
            )  # fmt: skip
        wall = time.perf_counter() - start
        ticks = max(1, round(args.seconds * scene.fps))
    finally:
        scene.close()
        shutil.rmtree(out, ignore_errors=True)
    row = {"mode": mode, "wall_s": wall, "ticks": ticks, "ticks_per_s": ticks / wall}
    if stats is not None:
        figures = stats.as_dict()
        keys = ("frames_out", "chunks_skipped", "lag_s_mean", "lag_s_p95", "lag_s_max")
        row.update({k: figures[k] for k in (*keys, "submit_wait_s")})
        row["frames_per_s"] = figures["frames_out"] / wall
    return row


def synthetic_ticks(n: int, width: int, height: int, fps: float):
    """SensorFrames of a camera watching a box slide over a floor (exact ids and depth)."""
    from cosmos_sim.types import CameraSpec, SensorFrame

    cam = CameraSpec("front", width, height, fov_deg=60.0)
    rows = np.arange(height, dtype=np.float32)[:, None]
    floor = rows > 0.4 * height
    base_depth = np.where(floor, 1.5 * height / np.maximum(rows - 0.4 * height, 1), 50.0)
    for tick in range(n):
        ids = np.broadcast_to(floor, (height, width)).astype(np.int32)
        depth = np.broadcast_to(np.minimum(base_depth, 50.0), (height, width)).astype(np.float32)
        rgb = np.where(ids[..., None] == 1, 110, 190).astype(np.uint8).repeat(3, axis=2)
        x0 = int(0.1 * width + tick * width / (4 * fps)) % (width - width // 5)
        box = (slice(height // 2, height // 2 + height // 4), slice(x0, x0 + width // 5))
        ids[box], depth[box], rgb[box] = 7, 4.0, (200, 60, 40)
        yield [SensorFrame("front", tick, tick / fps, np.eye(4), camera=cam, rgb=rgb,
                           depth_m=depth, instance_id=ids)]  # fmt: skip


class TimedCalls:
    """The pipeline, with the wall time of each call (GPU-synchronised) kept in `seconds`."""

    def __init__(self, pipe, device) -> None:
        self.pipe, self.device, self.seconds = pipe, device, []

    def __call__(self, *args, **kwargs):
        import torch

        start = time.perf_counter()
        out = self.pipe(*args, **kwargs)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds.append(time.perf_counter() - start)
        return out

    def __getattr__(self, name: str):
        return getattr(self.pipe, name)


def cosmos3_session(args: argparse.Namespace) -> dict:
    """A Cosmos 3 session in an Augmenter, random full-size weights (see the module doc)."""
    import sys

    import torch

    from cosmos_sim.augment import Augmenter
    from cosmos_sim.transfer import cosmos3

    sys.path.insert(0, str(Path(__file__).parent))
    import cosmos3_transfer_gpu as c3

    device = torch.device(args.device)
    width, height = (96, 54) if args.tiny else (1280, 704)
    chunk = 5 if args.tiny else args.chunk
    t0 = time.perf_counter()
    pipe = c3.build_cosmos3(device, args.tiny)
    build_s = time.perf_counter() - t0
    timer = c3.PassTimer(pipe.transformer, device)
    backend = cosmos3.Cosmos3Backend.from_pipeline(
        pipe, safety_checker=c3.RandomWeightsChecker(), controls=["edge", "depth", "seg"],
        resolution=256 if args.tiny else 720, device=args.device,
        dtype="float32" if args.tiny else "bfloat16", num_inference_steps=args.steps,
        num_video_frames_per_chunk=chunk, num_conditional_frames=1,
    )  # fmt: skip
    ticks = chunk + (chunk - 1) * (args.chunks - 1)  # exactly `chunks` pipeline calls
    timer.times.clear()
    backend.pipe = TimedCalls(backend.pipe, device)
    calls = backend.pipe.seconds
    augmenter = Augmenter(
        backend, prompt="a sunny street", chunk_frames=chunk, resolution="bucket",
        controls=("edge", "depth", "seg"), overflow="block", max_chunks_queued=1,
    )  # fmt: skip
    start = time.perf_counter()
    with augmenter:
        for frames in synthetic_ticks(ticks, width, height, 16.0):
            augmenter.submit(frames)
            time.sleep(1 / 16)  # the simulator's pace
        stats = augmenter.close().as_dict()
        out = augmenter.poll()
    wall = time.perf_counter() - start
    passes = len(timer.times)
    step_s = sum(timer.times) / max(1, args.steps * len(calls))
    rest_s = [c - sum(timer.times) / len(calls) for c in calls]
    per_chunk_35 = float(np.mean(rest_s)) + 35 * step_s
    return {
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "architecture": "tiny (smoke test)" if args.tiny else "Cosmos3-Nano + Wan2.2 VAE",
        "camera": [width, height],
        "controls": ["edge", "depth", "seg"],
        "build_s": build_s,
        "ticks": ticks,
        "frames_out": len(out),
        "chunk_frames": chunk,
        "pipeline_calls_s": calls,
        "measured_steps": args.steps,
        "transformer_passes": passes,
        "step_s": step_s,
        "measured": {
            "frames_per_s": len(out) / wall,
            "lag_s_mean": stats["lag_s_mean"],
            "lag_s_max": stats["lag_s_max"],
            "wall_s": wall,
        },  # fmt: skip
        "extrapolated_35_steps": {
            "chunk_s": per_chunk_35,
            "frames_per_s_steady": (chunk - 1) / per_chunk_35,
            "first_frame_lag_s": chunk / 16.0 + per_chunk_35,
            "note": "EXTRAPOLATED: mean rest of a call + 35 x measured step time",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="simulated seconds per run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=704)
    parser.add_argument("--chunk-frames", type=int, default=8)
    parser.add_argument("--overflow", default="block", choices=["block", "skip"])
    parser.add_argument("--modes", default="capture,augment/thread,augment/process")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--cosmos3", action="store_true", help="GPU mode (module doc)")
    parser.add_argument("--device", default="cuda", help="--cosmos3: torch device")
    parser.add_argument("--steps", type=int, default=2, help="--cosmos3: denoising steps")
    parser.add_argument("--chunk", type=int, default=29, help="--cosmos3: frames per chunk")
    parser.add_argument("--chunks", type=int, default=2, help="--cosmos3: pipeline calls")
    parser.add_argument("--tiny", action="store_true", help="--cosmos3: toy sizes (CPU)")
    args = parser.parse_args()
    if args.cosmos3:
        result = cosmos3_session(args)
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        return
    modes = args.modes.split(",")
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-augment-") as tmp:
        for r in range(args.rounds):
            for mode in modes[r % len(modes) :] + modes[: r % len(modes)]:
                row = run_once(mode, Path(tmp), args)
                row["round"] = r
                rows.append(row)
                print(json.dumps(row), flush=True)
    load_after = os.getloadavg()
    base = np.median([r["wall_s"] for r in rows if r["mode"] == "capture"])
    summary = {}
    for mode in modes:
        mine = [r for r in rows if r["mode"] == mode]
        wall = float(np.median([r["wall_s"] for r in mine]))
        summary[mode] = {
            "wall_s_median": wall,
            "ticks_per_s_median": float(np.median([r["ticks_per_s"] for r in mine])),
            "wall_vs_capture": wall / base,
            **{k: float(np.median([r[k] for r in mine])) for k in
               ("frames_per_s", "lag_s_mean", "lag_s_max", "chunks_skipped") if k in mine[0]},
        }  # fmt: skip
    print(f"\ncores: {os.cpu_count()}, load average before {load_before}, after {load_after}")
    print(f"{'mode':<18}{'wall s':>9}{'ticks/s':>9}{'× capture':>11}{'aug f/s':>9}{'lag s':>8}")
    for mode, s in summary.items():
        print(f"{mode:<18}{s['wall_s_median']:>9.2f}{s['ticks_per_s_median']:>9.2f}"
              f"{s['wall_vs_capture']:>10.2f}×{s.get('frames_per_s', float('nan')):>9.2f}"
              f"{s.get('lag_s_mean', float('nan')):>8.2f}")  # fmt: skip
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
              "summary": summary, "load_before": load_before, "load_after": load_after}  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
