"""Peak RSS and wall time of `controls`, `transfer` and `dataset` vs episode length and cameras.

Each stage runs as its own `cosmos-sim` process (as a user runs it); its peak resident set
is the kernel's ru_maxrss for that process (`os.wait4`), its time the wall clock. The
baseline is the shortest episode of the same run: with streaming, peak RSS should stay flat
as the episode grows (the issue's figures before streaming: 1.4 GiB at 2 s, 4.9 at 8 s,
14.1 at 24 s for one 1280×704 camera).

Episodes: a PyBullet tabletop capture of `--source-seconds` at 1280×704, then lengthened to
each `--seconds` by recording its ticks again in a loop through `EpisodeWriter` (the same
frames and labels, new tick indices: capture is not what is measured, and on a loaded
machine it would dominate). `--cameras N` records N copies of the tabletop camera.

    python benchmarks/pipeline_memory.py --seconds 2 60 [--cameras 1 6] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

CLI = [sys.executable, "-c", "from cosmos_sim.cli import main; main()"]


def run_measured(args: list[str]) -> dict[str, float]:
    """Run a cosmos-sim command; its wall seconds and peak RSS (GiB), from os.wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read()  # to EOF, then reap the child ourselves to get its rusage
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"cosmos-sim {' '.join(args)} failed:\n{err.decode()[-2000:]}")
    return {"wall_s": wall, "peak_rss_gib": usage.ru_maxrss / 2**20}  # ru_maxrss is KiB


def lengthen(source: Path, out: Path, seconds: float, cameras: int) -> int:
    """Record `source`'s ticks again, looped, into a `seconds`-long episode of `cameras`
    copies of its camera; returns the tick count."""
    from cosmos_sim.episode import Episode, EpisodeWriter

    episode = Episode(source)
    (name, spec), *_ = episode.cameras.items()
    specs = [spec] if cameras == 1 else [replace(spec, name=f"cam{i}") for i in range(cameras)]
    ticks = max(1, round(seconds * episode.fps))
    with EpisodeWriter(out, cameras=specs, fps=episode.fps, simulator="pybullet",
                       scene=episode.manifest["scene"], seed=episode.manifest["seed"],
                       class_names=episode.class_names) as writer:  # fmt: skip
        for index in range(ticks):
            tick = episode[index % len(episode)]
            frame = tick.frames[name]
            frames = [replace(frame, sensor=s.name, camera=s, frame_index=index,
                              sim_time_s=index / episode.fps) for s in specs]  # fmt: skip
            writer.append(frames, data=tick.data)
    return ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[2.0, 60.0])
    parser.add_argument("--cameras", type=int, nargs="+", default=[1])
    parser.add_argument("--source-seconds", type=float, default=2.0)
    parser.add_argument("--modalities", default=None, help="controls --modalities (default all)")
    parser.add_argument("--workdir", type=Path, default=None, help="kept if given")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="pipeline-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / "source"
    if not source.exists():
        run_measured(["capture", "--out", str(source), "--seconds", str(args.source_seconds)])
    load = os.getloadavg()[0]
    rows = []
    for cameras in args.cameras:
        for seconds in sorted(args.seconds):
            case = work / f"{cameras}cam_{seconds:g}s"
            shutil.rmtree(case, ignore_errors=True)
            case.mkdir()
            episode = case / "episode"
            ticks = lengthen(source, episode, seconds, cameras)
            controls = ["controls", str(episode), "--out", str(case / "clips")]
            if args.modalities:
                controls += ["--modalities", args.modalities]
            row = {"cameras": cameras, "seconds": seconds, "ticks": ticks}
            row["controls"] = run_measured(controls)
            row["transfer"] = run_measured(
                ["transfer", str(case / "clips"), "--out", str(case / "transfer")]
            )
            row["dataset"] = run_measured(
                ["dataset", str(episode), str(case / "dataset"), "--transfer",
                 str(case / "transfer")]
            )  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.workdir is None:
                shutil.rmtree(case)
    for cameras in args.cameras:  # baseline: the shortest episode with as many cameras
        mine = [r for r in rows if r["cameras"] == cameras]
        for row in mine:
            for stage in ("controls", "transfer", "dataset"):
                base = mine[0][stage]["peak_rss_gib"]
                row[stage]["rss_vs_shortest"] = row[stage]["peak_rss_gib"] / base
    result = {
        "machine": f"{os.cpu_count()} CPUs, load average {load:.1f} at start "
        f"(shared), {os.getloadavg()[0]:.1f} at end",
        "resolution": "1280x704",
        "modalities": args.modalities or "all the episode supports",
        "rows": rows,
    }
    print(f"{'cams':>4} {'sec':>5} {'ticks':>6} " + " ".join(
        f"{s + ' GiB':>13} {s + ' s':>11} {'x shortest':>10}"
        for s in ("controls", "transfer", "dataset")))  # fmt: skip
    for r in rows:
        print(f"{r['cameras']:>4} {r['seconds']:>5g} {r['ticks']:>6} " + " ".join(
            f"{r[s]['peak_rss_gib']:>13.2f} {r[s]['wall_s']:>11.1f} "
            f"{r[s]['rss_vs_shortest']:>10.2f}"
            for s in ("controls", "transfer", "dataset")))  # fmt: skip
    print(result["machine"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
