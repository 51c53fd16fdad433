"""A PyBullet simulation streaming frames to the sidecar in another process, live.

The simulator side of this script uses only the PyBullet bridge and the sidecar Client (a
simulator in another language does the same with PROTOCOL.md). It starts `cosmos-sim serve`
as a separate process, then, every tick: steps the scene, captures RGB, depth and instance
ids, sends them to the sidecar, gets Cosmos control frames back, and records the tick into
an episode the sidecar writes. At the end it prints the round-trip times and writes a
contact sheet (RGB and each control of the last tick) next to the episode.

    python examples/sidecar_pybullet.py --ticks 30 --width 320 --height 176
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cosmos_sim.bridges.pybullet import make_scene
from cosmos_sim.imaging import image_grid, save_png
from cosmos_sim.sidecar import Client


@dataclass
class Config:
    scene: str = "tabletop"
    """PyBullet scene: tabletop or street."""
    ticks: int = 30
    """Simulator ticks to stream."""
    width: int = 320
    height: int = 176
    modalities: tuple[str, ...] = ("depth", "seg", "edge", "vis")
    out: Path = Path("runs/sidecar_pybullet")
    """The sidecar's data_dir: the episode and contact sheet land here."""


def start_sidecar(bind: str, data_dir: Path) -> subprocess.Popen:
    cli = Path(sys.executable).with_name("cosmos-sim")
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "cosmos_sim.cli"]
    return subprocess.Popen(
        [*command, "serve", "--bind", bind, "--data-dir", str(data_dir), "--workers", "2"]
    )


def main(cfg: Config) -> None:
    cfg.out.mkdir(parents=True, exist_ok=True)
    bind = f"ipc://{tempfile.mkdtemp(prefix='cosmos-sim-')}/sidecar.sock"
    sidecar = start_sidecar(bind, cfg.out)
    scene = make_scene(cfg.scene, width=cfg.width, height=cfg.height)
    try:
        with Client(bind, timeout_s=60) as client:  # waits for the server to come up
            camera = scene.cameras[0]
            episode = client.episode_open(
                f"{cfg.scene}-{time.strftime('%Y%m%d-%H%M%S')}",
                cameras=[c.to_dict() for c in scene.cameras],
                fps=scene.fps,
                simulator="pybullet (through the sidecar)",
                scene=cfg.scene,
            )
            rtts, depth_range_m = [], [None, None]
            for tick in range(cfg.ticks):
                scene.step()
                frames = {f.sensor: f for f in scene.bridge.capture(tick, scene.sim_time_s)}
                frame = frames[camera.name]
                start = time.perf_counter()
                reply = client.call(
                    "controls",
                    {
                        "modalities": list(cfg.modalities),
                        "depth_min_m": depth_range_m[0],
                        "depth_max_m": depth_range_m[1],
                    },
                    {"rgb": frame.rgb, "depth_m": frame.depth_m, "instance_id": frame.instance_id},
                )
                rtts.append(time.perf_counter() - start)
                controls = reply.arrays
                # The first tick's range (percentiles of its depth) keeps one grey scale after.
                depth_range_m = reply.result.get("depth_range_m", depth_range_m)
                client.episode_append(
                    episode,
                    sim_time_s=scene.sim_time_s,
                    sensors={camera.name: {"cam_to_world": frame.cam_to_world, "K": frame.K}},
                    arrays={
                        f"{camera.name}/rgb": frame.rgb,
                        f"{camera.name}/depth_m": frame.depth_m,
                        f"{camera.name}/instance_id": frame.instance_id,
                    },
                )
            closed = client.episode_close(episode)
            stats = client.stats()
            client.shutdown()
        sheet = image_grid(
            [[frame.rgb, *(controls[m] for m in cfg.modalities)]],
            col_labels=["rgb", *cfg.modalities],
        )
        sheet_path = save_png(Path(closed["path"]) / "sidecar_controls.png", sheet)
        ms = np.array(rtts[1:] or rtts) * 1e3  # the first call also loads the control code
        print(
            f"{cfg.ticks} ticks of {cfg.scene} at {cfg.width}×{cfg.height} through the sidecar: "
            f"controls {'+'.join(cfg.modalities)} round trip p50 {np.percentile(ms, 50):.1f} ms, "
            f"max {ms.max():.1f} ms after the first ({rtts[0] * 1e3:.0f} ms); server saw "
            f"{stats['requests']} requests, {stats['errors']} errors"
        )
        print(f"  episode        {closed['path']} ({closed['num_ticks']} ticks)")
        print(f"  contact sheet  {sheet_path}")
    finally:
        scene.close()
        try:
            sidecar.wait(20)
        except subprocess.TimeoutExpired:
            sidecar.terminate()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in vars(Config()).items():
        kind = type(default) if not isinstance(default, tuple) else str
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default)
    args = vars(parser.parse_args())
    if isinstance(args["modalities"], str):
        args["modalities"] = tuple(args["modalities"].split(","))
    main(Config(**args))
