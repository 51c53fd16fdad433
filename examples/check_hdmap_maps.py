"""Acceptance check for HD-map controls on OpenDRIVE maps you have never seen.

For every .xodr given (files or folders), compile the map (in a child process: a libcarla
crash is reported, never fatal), render its default drive with one front camera, and
report what was found: lane lines, road boundaries, crosswalks, wait lines, lights (vehicle /
pedestrian), signs, signal types it did not understand, and the share of lit pixels in every
frame. Writes `report.json` and one contact sheet per map; exits 1 if any map failed or
rendered an empty frame.

    python examples/check_hdmap_maps.py /path/to/maps --out /tmp/hdmap_check
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cosmos_sim.bridges.carla_rig import default_rig
from cosmos_sim.bridges.opendrive import OpenDriveError, compile_map
from cosmos_sim.controls.hdmap import compile_scene, render_hdmap_clip
from cosmos_sim.imaging import image_grid, save_png
from cosmos_sim.video import scale_intrinsics

FRAMES, FPS, HEIGHT, WIDTH = 8, 2.0, 352, 640


def check(xodr: Path, out: Path) -> dict:
    try:
        compiled = compile_map(xodr, frames=FRAMES, fps=FPS)
    except (OpenDriveError, FileNotFoundError) as exc:
        return {"map": str(xodr), "ok": False, "error": str(exc)}
    geometry = compiled.geometry
    cam = default_rig().cameras[0]
    K = scale_intrinsics(cam.K, (cam.width, cam.height), (WIDTH, HEIGHT))
    poses = [pose @ cam.cam_to_body for pose in compiled.poses]
    frames = render_hdmap_clip(compile_scene(geometry), [K] * len(poses), poses, HEIGHT, WIDTH)
    lit = (frames.max(-1) > 0).mean(axis=(1, 2))
    save_png(out / f"{xodr.stem}.png", image_grid([list(frames[:4]), list(frames[4:])]))
    kinds = [light["kind"] for light in geometry.traffic_lights]
    return {
        "map": str(xodr),
        "ok": bool((lit > 0).all()),
        "counts": geometry.counts(),
        "vehicle_lights": kinds.count("vehicle"),
        "pedestrian_lights": kinds.count("pedestrian"),
        "unknown_signals": compiled.unknown_signals,
        "lit_share_per_frame": [round(float(x), 4) for x in lit],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    maps = [p for path in args.paths for p in (sorted(path.rglob("*.xodr")) if path.is_dir()
                                                else [path])]  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for xodr in maps:
        result = check(xodr, args.out)
        results.append(result)
        summary = result.get("error") or json.dumps(result["counts"])
        print(f"{'ok  ' if result['ok'] else 'FAIL'} {xodr.name}: {summary}", flush=True)
    (args.out / "report.json").write_text(json.dumps(results, indent=2))
    print(f"{sum(r['ok'] for r in results)}/{len(results)} maps ok; report {args.out}/report.json")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
