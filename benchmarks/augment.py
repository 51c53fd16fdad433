"""Capture with `--augment appearance` against the same capture without it, in one run.

Each round records the PyBullet tabletop scene (1280×704, EGL when available) three ways,
in rotating order so a change in the machine's load hits every mode alike:

- `capture`: `record_episode` alone (the baseline, what `cosmos-sim capture` does);
- `augment/thread` and `augment/process`: the same capture with `capture_augmented`, which
  writes RUN/augmented/ while the simulator runs, the Augmenter's worker a thread or a
  process (`cosmos-sim capture --augment` uses the process).

Wall time runs from the first tick to the last augmented frame on disk (the episode and
the augmented folder both complete). The goal of the issue is augment wall ≤ 1.25× the
capture's. Also reported: ticks/s, augmented frames/s, lag (seconds from a tick's hand-over
to its augmented frame being written), chunks skipped, and the load average, since the
development machine is shared. The appearance backend is classical appearance
randomisation, not Cosmos.

    python benchmarks/augment.py [--seconds 4] [--rounds 2] [--json out.json]
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

from cosmos_sim.augment.capture import capture_augmented
from cosmos_sim.bridges.pybullet import make_scene, record_episode


def run_once(mode: str, folder: Path, args: argparse.Namespace) -> dict:
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
    args = parser.parse_args()
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
