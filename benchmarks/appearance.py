"""Appearance backend (classical appearance randomisation) frames/s at 1280×704 on this CPU.

Input: a PyBullet tabletop capture at 1280×704 turned into a clip (rgb, seg, depth) by the
controls stage, as `cosmos-sim demo` does. Measured in the same run:

- render: `AppearanceRenderer.render` on decoded frames held in memory, for three looks;
- baseline, colour jitter: a plain OpenCV HSV hue/saturation/brightness jitter per frame (the
  cheapest classical augmentation, which knows nothing of instances, depth or weather);
- end to end: `run_transfer` (decode rgb/seg/depth, render, encode output.mp4, manifest);
- baseline, I/O floor: the same decode and encode with no rendering in between.

    python benchmarks/appearance.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from cosmos_sim.bridges.pybullet import make_scene, record_episode
from cosmos_sim.controls.clips import write_clips
from cosmos_sim.transfer import run_transfer
from cosmos_sim.transfer.appearance import AppearanceRenderer, look_from_prompt
from cosmos_sim.transfer.base import Clip, SegDecoder
from cosmos_sim.transfer.run import write_output

LOOKS = ("a sunny day", "a rainy night", "a foggy sunset")


def best_fps(fn: Callable[[], int], repeats: int = 3) -> float:
    """Frames per second of the fastest of `repeats` runs of `fn` (which returns its frames)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        frames = fn()
        best = min(best, (time.perf_counter() - start) / frames)
    return 1.0 / best


def colour_jitter(frames: list[np.ndarray], seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    for rgb in frames:
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        hue, sat, val = cv2.split(hsv)
        hue = cv2.add(hue, int(rng.integers(0, 180)))
        sat = cv2.convertScaleAbs(sat, alpha=float(rng.uniform(0.7, 1.3)))
        val = cv2.convertScaleAbs(val, alpha=float(rng.uniform(0.7, 1.3)), beta=10)
        cv2.cvtColor(cv2.merge([hue % 180, sat, val]), cv2.COLOR_HSV2RGB)
    return len(frames)


def io_floor(clip: Clip, out: Path) -> int:
    """Decode the three videos the backend reads and write the rgb as output: no rendering."""
    streams = zip(clip.frames("rgb"), clip.frames("seg"), clip.frames("depth"), strict=True)
    out.mkdir()
    write_output(clip, out, (rgb for rgb, _, _ in streams), prompt="", label="io floor")
    return clip.num_frames


def end_to_end(clip: Clip, out: Path, prompt: str) -> int:
    run_transfer(clip.folder, out, prompt=prompt)
    return clip.num_frames


def main(seconds: float) -> None:
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scene = make_scene("tabletop", width=1280, height=704)
        try:
            episode = record_episode(scene, seconds, tmp / "episode", progress=False)
        finally:
            scene.close()
        write_clips(episode, tmp / "clips", modalities=["depth", "seg"], progress=False)
        clip = Clip(tmp / "clips" / "front")
        rgb, seg, depth = clip.read("rgb"), clip.read("seg"), clip.read("depth")
        decoder = SegDecoder(clip.palette)
        index = [decoder.index(s) for s in seg]
        rows = []
        for prompt in LOOKS:
            look, _ = look_from_prompt(prompt, 0)
            renderer = AppearanceRenderer(*clip.size, decoder.ids, look, 0)

            def render(renderer=renderer) -> int:
                for i in range(len(rgb)):
                    renderer.render(rgb[i], index[i], depth[i, ..., 0], i)
                return len(rgb)

            rows.append((f"appearance render, {look.name}", best_fps(render)))
        rows.append(("baseline: cv2 colour jitter", best_fps(lambda: colour_jitter(list(rgb)))))
        runs = iter(range(1000))
        e2e = best_fps(lambda: end_to_end(clip, tmp / f"e2e{next(runs)}", LOOKS[0]))
        rows.append(("appearance end to end (run_transfer), day", e2e))
        io = best_fps(lambda: io_floor(clip, tmp / f"io{next(runs)}"))
        rows.append(("baseline: decode + encode only", io))
    table = Table(
        title=f"1280×704, {len(rgb)} frames, {os.cpu_count()} CPU cores, "
        f"OpenCV threads {cv2.getNumThreads()}"
    )
    table.add_column("what")
    table.add_column("frames/s", justify="right")
    for name, fps in rows:
        table.add_row(name, f"{fps:.1f}")
    console.print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="tabletop capture length")
    main(parser.parse_args().seconds)
