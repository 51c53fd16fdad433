"""Stand-in for cosmos-framework's `python -m cosmos_framework.scripts.inference` (tests only).

Takes what the real script takes from the cosmos-framework backend (`--parallelism-preset`,
`-i FILES`, `-o OUTDIR`, `--seed`, `--checkpoint-path`, `--no-guardrails`), resolves them from
its working directory (the checkout, as the real tool does), reads `.json` (one sample) and
`.jsonl` (one per line) files, checks every sample against cosmos-framework's exported
OmniSampleOverrides schema (the pinned copy: unknown keys, enums, types) and unique names,
resolves relative paths from the sample file's folder, prints a tqdm-like bar over
num_steps, and writes `OUTDIR/<name>/vision.mp4` as the real tool lays it out: the first
hint's control video colour-inverted, `num_frames` rounded up to 4k+1 (the last frame
repeated) at the resolution tier's canvas for the sample's aspect ratio, plus
`sample_args.json` and the argv it was run with. A prompt containing "PLEASE FAIL" fails the
way a crashing run does.
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[5]  # the cosmos-sim repository (tests/fakes/...)
sys.path.insert(0, str(REPO))
SCHEMA = REPO / "cosmos_sim" / "transfer" / "schemas" / "OmniSampleOverrides.schema.json"
CANVAS = {  # (width, height) per tier and aspect ratio, cosmos-framework's table
    "256": {"16,9": (320, 192), "9,16": (192, 320), "4,3": (320, 256), "3,4": (256, 320),
            "1,1": (256, 256)},
    "480": {"16,9": (832, 480), "9,16": (480, 832), "4,3": (736, 544), "3,4": (544, 736),
            "1,1": (640, 640)},
    "720": {"16,9": (1280, 720), "9,16": (720, 1280), "4,3": (1104, 832), "3,4": (832, 1104),
            "1,1": (960, 960)},
}  # fmt: skip


def load(files: list[Path]) -> list[tuple[dict, Path]]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    samples = []
    for path in files:
        text = path.read_text()
        lines = (
            [ln for ln in text.splitlines() if ln.strip()] if path.suffix == ".jsonl" else [text]
        )
        for i, line in enumerate(lines):
            sample = json.loads(line)
            for error in validator.iter_errors(sample):
                raise SystemExit(
                    f"pydantic ValidationError: {list(error.absolute_path)}: {error.message}"
                )
            sample.setdefault("name", path.stem if len(lines) == 1 else f"{path.stem}_{i}")
            samples.append((sample, path.parent))
    names = [s["name"] for s, _ in samples]
    if len(set(names)) != len(names):
        raise SystemExit(f"ValueError: sample names are not unique: {names}")
    return samples


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parallelism-preset", default="latency")
    parser.add_argument("-i", "--input-files", nargs="+", type=Path, required=True)
    parser.add_argument("-o", "--output-dir", type=Path, required=True)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--checkpoint-path", default="Cosmos3-Nano")
    parser.add_argument("--no-guardrails", action="store_true")
    args = parser.parse_args(argv)
    files = [p.absolute() for p in args.input_files]  # from the checkout, like the real tool
    for path in files:
        if not path.is_file():
            print(f"FileNotFoundError: {path}", file=sys.stderr)
            return 1
    samples = load(files)
    rank = int(os.environ.get("RANK", "0"))
    print(f"Loaded {len(samples)} samples; checkpoint {args.checkpoint_path}", flush=True)
    from cosmos_sim.video import read_video, write_video

    for sample, folder in samples:
        if "PLEASE FAIL" in sample.get("prompt", ""):
            print("Traceback (most recent call last):", file=sys.stderr)
            print("torch.OutOfMemoryError: CUDA out of memory (stand-in)", file=sys.stderr)
            return 1
        steps = sample.get("num_steps", 35)
        for step in range(1, steps + 1):
            sys.stderr.write(f"\r{100 * step // steps:3d}%| | {step}/{steps} [00:00<00:00]")
            sys.stderr.flush()
            time.sleep(0.001)
        sys.stderr.write("\n")
        hint = next(h for h in ("edge", "blur", "depth", "seg", "wsm") if sample.get(h))
        frames, _ = read_video(folder / sample[hint]["control_path"])
        count = math.ceil((sample["num_frames"] - 1) / 4) * 4 + 1
        frames = list(frames[:count]) + [frames[-1]] * max(0, count - len(frames))
        size = CANVAS[sample["resolution"]][sample["aspect_ratio"]]
        video = [255 - cv2.resize(f, size, interpolation=cv2.INTER_NEAREST) for f in frames]
        if rank == 0:
            out = args.output_dir.absolute() / sample["name"]
            out.mkdir(parents=True, exist_ok=True)
            write_video(out / "vision.mp4", np.stack(video), sample["fps"])
            (out / "sample_args.json").write_text(json.dumps(sample))
            (out / "argv.json").write_text(json.dumps(argv))
            print(f"Saved {out / 'vision.mp4'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
