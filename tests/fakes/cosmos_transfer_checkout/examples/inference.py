"""Stand-in for cosmos-transfer2.5's `examples/inference.py` (tests only).

Accepts what the real script takes from the cosmos-cli backend (`-i SPEC -o OUTDIR
[--model NAME]`), resolves SPEC and OUTDIR from its own working directory (the checkout, as
the real tool does: a relative path the caller meant from elsewhere is not found), validates
the spec with the pydantic mirror of Cosmos' parser (fakes/transfer25_config.py, upstream
HEAD; relative paths inside the spec resolve from the spec's folder), refuses
`--model edge/distilled` unless COSMOS_EXPERIMENTAL_CHECKPOINTS=1 (upstream registers that
checkpoint only then), reads a guided-generation `.npz` as upstream does (`arr_0`, T×H×W),
prints progress the way the real tool does (a tqdm bar over num_steps), and writes
`OUTDIR/<name>.mp4`: the input video, colour-inverted, at its size and frame count. Under
torchrun only rank 0 writes. A prompt containing "PLEASE FAIL" makes it fail the way a
crashing run does, with a traceback on stderr; "PLEASE BLOCK" makes it log a guardrail block
and skip the sample, as upstream does with its default keep_going.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # tests/, for fakes.*

from fakes.transfer25_config import load_spec_file  # noqa: E402

MODELS = {"edge", "depth", "seg", "vis"}


def main(argv: list[str]) -> int:
    shape_ok = len(argv) in (4, 6) and argv[0] == "-i" and argv[2] == "-o"
    if not shape_ok or argv[4:5] not in ([], ["--model"]):
        print(f"usage: inference.py -i SPEC -o OUTDIR [--model M] (got {argv})", file=sys.stderr)
        return 2
    experimental = os.environ.get("COSMOS_EXPERIMENTAL_CHECKPOINTS") == "1"
    models = MODELS | ({"edge/distilled"} if experimental else set())
    model = argv[5] if len(argv) == 6 else "edge"
    if model not in models:
        print(f"error: --model {model!r} is not one of {sorted(models)}", file=sys.stderr)
        return 2
    spec_path, outdir = Path(argv[1]).absolute(), Path(argv[3]).absolute()  # from the checkout
    if not spec_path.is_file():
        print(f"FileNotFoundError: {spec_path}", file=sys.stderr)
        return 1
    samples = load_spec_file(spec_path)
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    print(f"rank {rank} of {world}: model {model}, {len(samples)} sample(s)", flush=True)
    for i, sample in enumerate(samples):
        print(f"[{i + 1}/{len(samples)}] Processing sample {sample.name}", flush=True)
        if "PLEASE FAIL" in sample.prompt:
            print("Traceback (most recent call last):", file=sys.stderr)
            print("torch.OutOfMemoryError: CUDA out of memory (stand-in)", file=sys.stderr)
            return 1
        if "PLEASE BLOCK" in sample.prompt:  # upstream logs it and moves on (keep_going)
            print(f"Guardrail blocked generation. Prompt: {sample.prompt}", flush=True)
            continue
        if sample.guided_generation_mask is not None:
            import numpy as np

            labels = np.load(sample.guided_generation_mask)["arr_0"]
            keep = np.isin(labels, sample.guided_generation_foreground_labels or [])
            print(f"guided generation: {labels.shape} labels, {int(keep.sum())} anchored px")
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
