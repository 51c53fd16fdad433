"""Stand-in for cosmos-transfer2.5's `examples/inference.py` (tests only).

Accepts exactly what the real script gets from the cosmos-cli backend (`-i SPEC -o OUTDIR`),
validates the spec with the pydantic mirror of Cosmos' parser (fakes/transfer25_config.py,
relative paths resolved from the spec's folder), prints progress the way the real tool does
(a tqdm bar over num_steps), and writes `OUTDIR/<name>.mp4`: the input video, colour-inverted,
at its size and frame count. Under torchrun only rank 0 writes. A prompt containing
"PLEASE FAIL" makes it fail the way a crashing run does, with a traceback on stderr.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # tests/, for fakes.*

from fakes.transfer25_config import load_spec_file  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[0] != "-i" or argv[2] != "-o":
        print(f"usage: inference.py -i SPEC -o OUTDIR (got {argv})", file=sys.stderr)
        return 2
    spec_path, outdir = Path(argv[1]), Path(argv[3])
    samples = load_spec_file(spec_path)
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    print(f"rank {rank} of {world}: {len(samples)} sample(s) from {spec_path}", flush=True)
    for i, sample in enumerate(samples):
        print(f"[{i + 1}/{len(samples)}] Processing sample {sample.name}", flush=True)
        if "PLEASE FAIL" in sample.prompt:
            print("Traceback (most recent call last):", file=sys.stderr)
            print("torch.OutOfMemoryError: CUDA out of memory (stand-in)", file=sys.stderr)
            return 1
        for step in range(1, sample.num_steps + 1):
            sys.stderr.write(
                f"\r{100 * step // sample.num_steps:3d}%| | {step}/{sample.num_steps} [00:00<00:00]"
            )
            sys.stderr.flush()
            time.sleep(0.001)
        sys.stderr.write("\n")
        if rank == 0:
            from cosmos_sim.video import read_video, write_video

            frames, fps = read_video(sample.video_path)
            outdir.mkdir(parents=True, exist_ok=True)
            (outdir / f"{sample.name}.json").write_text(sample.model_dump_json())
            write_video(outdir / f"{sample.name}.mp4", 255 - frames, fps)
            print(f"Generated video saved to {outdir / sample.name}.mp4", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
