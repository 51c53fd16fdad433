"""Transfer backend "cosmos-framework": Cosmos 3 through an NVIDIA/cosmos-framework checkout.

For each clip it writes one cosmos-framework transfer sample (`controls.spec_cosmos3`: every
Cosmos 3 control of the clip with its per-hint `weight`, absolute paths, the clip's frame
count and fps, a resolution tier), validates it against the framework's own sample schema
(pinned in `schemas/`, exported from upstream commit 5eee9ed) and the rules its
`build_sample` applies, then runs, in the checkout,

    python -m cosmos_framework.scripts.inference --parallelism-preset=latency \\
        -i sample.json -o OUTDIR --checkpoint-path CKPT --seed S
    python -m torch.distributed.run --nproc_per_node N -m cosmos_framework.scripts.inference ...

streaming its log (`cosmos_tool.run_tool`), and reads back `OUTDIR/<name>/vision.mp4`. The
framework rounds `num_frames` up to 4k+1 and renders on the tier canvas, so the video is cut
to the clip's frame count and resized to its size. Its guardrails are its own and stay on:
this backend never passes `--no-guardrails`. Unlike diffusers, the framework weights each
hint (weighted multi-control attention): the weights come from the clip's transfer25.json
`control_weight`s, else `controls.spec.DEFAULT_CONTROL_WEIGHTS`, or `control_weights`.

Each clip is one run of the tool, which loads the model each time; for many clips run
`cosmos3_batch.jsonl` (written by `cosmos-sim controls`) in the checkout once instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_sim.controls.spec_cosmos3 import chunk_for
from cosmos_sim.cosmos_tool import CosmosToolError, checkout_python, find_checkout, run_tool
from cosmos_sim.transfer.base import BackendError, Clip
from cosmos_sim.types import SpecError

MODULE = "cosmos_framework.scripts.inference"
MARKERS = ("cosmos_framework/scripts/inference.py", "cosmos_framework/inference/args.py")
"""Paths that make a folder a cosmos-framework checkout."""
SCHEMA = Path(__file__).parent / "schemas" / "OmniSampleOverrides.schema.json"
SCHEMA_COMMIT = "5eee9ed"
URL_SCHEMES = ("http://", "https://", "s3://")
VIDEO_SUFFIX = ".mp4"
"""The framework reads video inputs from .mp4 only (`VIDEO_EXTENSIONS`)."""


class CosmosFrameworkError(BackendError, CosmosToolError):
    """The framework's tool failed or wrote no video; the message holds its output verbatim."""


class CosmosFrameworkBackend:
    """Cosmos 3 transfer through cosmos-framework's reference inference script."""

    name = "cosmos-framework"

    def __init__(
        self,
        cosmos_root: str | Path,
        *,
        checkpoint: str | None = None,
        controls: Sequence[str] | str | None = None,
        control_weights: Mapping[str, float] | None = None,
        nproc_per_node: int = 1,
        python: str | Path | None = None,
        resolution: int | str = 720,
        num_steps: int | None = None,
        guidance: float | None = None,
        control_guidance: float | None = None,
        negative_prompt: str | None = None,
        parallelism_preset: str = "latency",
    ) -> None:
        from cosmos_sim.controls.spec_cosmos3 import HINTS, RESOLUTIONS

        self.root = find_checkout(
            cosmos_root, markers=MARKERS, repo="NVIDIA/cosmos-framework", field="--cosmos-root"
        )
        if nproc_per_node < 1:
            raise SpecError(f"--nproc-per-node must be >= 1, got {nproc_per_node}")
        if str(resolution) not in RESOLUTIONS:
            raise SpecError(f"--resolution {resolution}: cosmos-framework tiers are {RESOLUTIONS}")
        if isinstance(controls, str):
            controls = [c for c in controls.split(",") if c]
        unknown = sorted(set(controls or ()) - set(HINTS))
        if unknown:
            raise SpecError(
                f"controls {unknown}: Cosmos 3 transfer takes {sorted(HINTS)} (vis is its "
                "blur, hdmap its wsm; it has no lidar hint)"
            )
        self.controls = list(controls) if controls else None
        self.control_weights = dict(control_weights or {})
        self.checkpoint = checkpoint
        self.nproc = nproc_per_node
        self.python = checkout_python(self.root, python)
        self.preset = parallelism_preset
        self.resolution = str(resolution)
        self.overrides = {
            k: v
            for k, v in {
                "num_steps": num_steps,
                "guidance": guidance,
                "control_guidance": control_guidance,
                "negative_prompt": negative_prompt,
            }.items()
            if v is not None
        }

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.checkpoint or "the checkout's default checkpoint",
            "cosmos_root": str(self.root),
            "command": " ".join(self.command(Path("SAMPLE.json"), Path("OUTDIR"), 0)),
            "controls": self.controls or "every Cosmos 3 control of each clip",
            "per_hint_weights": "yes: each hint's weight (framework multi-control attention)",
            "resolution": self.resolution,
            "schema": f"cosmos-framework {SCHEMA_COMMIT} OmniSampleOverrides",
            **self.overrides,
        }

    def command(self, sample: Path, outdir: Path, seed: int) -> list[str]:
        launch = [self.python]
        if self.nproc > 1:
            launch += ["-m", "torch.distributed.run", f"--nproc_per_node={self.nproc}"]
        cmd = [*launch, "-m", MODULE, f"--parallelism-preset={self.preset}",
               "-i", str(sample), "-o", str(outdir), "--seed", str(seed)]  # fmt: skip
        if self.checkpoint:
            cmd += ["--checkpoint-path", self.checkpoint]
        return cmd

    def sample(self, clip: Clip, prompt: str, seed: int) -> dict[str, Any]:
        """The clip's cosmos-framework sample: absolute paths, its controls and weights."""
        from cosmos_sim.controls.spec_cosmos3 import HINTS, cosmos3_spec, hints_of

        present = [c for c in HINTS if clip.video_path(c).is_file()]
        chosen = self.controls or list(hints_of(present))
        if not chosen:
            raise SpecError(
                f"clip {clip.folder} has no Cosmos 3 control (edge, vis, depth, seg, hdmap "
                "or wsm .mp4); write one with `cosmos-sim controls`"
            )
        clip.require("rgb", *chosen, needed_by="the cosmos-framework backend")
        base = clip.spec  # transfer25.json: the weights the clip was written with
        weights = {
            k: base[k]["control_weight"] for k in chosen if "control_weight" in base.get(k, {})
        }
        return cosmos3_spec(
            clip.camera,
            clip.video_path("rgb").resolve(),
            {c: clip.video_path(c).resolve() for c in chosen},
            num_frames=clip.num_frames,
            fps=clip.fps,
            size=clip.size,
            prompt=prompt,
            seed=seed,
            control_weights={**weights, **self.control_weights},
            edge_preset=base.get("edge", {}).get("preset_edge_threshold", "medium"),
            vis_preset=base.get("vis", {}).get("preset_blur_strength", "medium"),
            resolution=self.resolution,
            **self.overrides,
        )

    def transfer(self, clip: Clip, prompt: str, seed: int, workdir: Path) -> Iterator[np.ndarray]:
        from cosmos_sim.controls.spec import write_spec_json
        from cosmos_sim.video import iter_video

        work = Path(workdir).resolve() / "cosmos3"
        work.mkdir(parents=True, exist_ok=True)
        sample = self.sample(clip, prompt, seed)
        for warning in validate_sample(sample, base_dir=work):
            print(f"[cosmos-framework] warning: {warning}")
        path = write_spec_json(sample, work / "sample.json")
        outdir = work / "output"
        run_tool(
            self.command(path, outdir, seed),
            self.root,
            work / "inference.log",
            f"cosmos-framework {clip.camera}",
            error=CosmosFrameworkError,
        )
        video = outdir / sample["name"] / "vision.mp4"
        if not video.is_file():
            found = (
                sorted(str(p.relative_to(outdir)) for p in outdir.rglob("*"))
                if outdir.is_dir()
                else []
            )
            raise CosmosFrameworkError(
                f"cosmos-framework exited cleanly but wrote no {video} (found: {found}); see "
                f"{work / 'inference.log'}"
            )
        yield from _fit(iter_video(video), clip, video)


def _fit(frames: Iterator[np.ndarray], clip: Clip, source: Path) -> Iterator[np.ndarray]:
    """The first clip.num_frames frames, resized to the clip's size; too few is an error."""
    import cv2

    width, height = clip.size
    count = 0
    for frame in frames:
        if count == clip.num_frames:
            return
        if frame.shape[:2] != (height, width):
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        count += 1
        yield frame
    if count < clip.num_frames:
        raise CosmosFrameworkError(
            f"{source} has {count} frames; clip {clip.folder} has {clip.num_frames}"
        )


@cache
def schema() -> dict[str, Any]:
    """cosmos-framework's pinned OmniSampleOverrides JSON schema."""
    return json.loads(SCHEMA.read_text())


def validate_sample(sample: Mapping[str, Any], base_dir: str | Path) -> list[str]:
    """Check one sample as cosmos-framework would; return its warnings, raise SpecError.

    Structure: the pinned schema (unknown keys, types, enums, ranges). Semantics, as the
    framework's `build_sample` and field validators apply them: transfer needs a hint; each
    hint needs a `control_path` (edge and blur may use `vision_path` instead); weights are
    non-negative with a positive sum; a chunk is longer than its conditional frames; local
    paths exist (relative ones from `base_dir`, the sample file's folder) and videos are .mp4.
    `fps` outside [10, 30] and `num_frames` outside [24, tier cap] are warnings, as upstream."""
    from cosmos_sim.extras import require

    jsonschema = require(
        "jsonschema", "framework", needed_for="validating cosmos-framework samples"
    )
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(dict(sample)), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [
            f"{'.'.join(map(str, e.absolute_path)) or '<sample>'}: {e.message}" for e in errors
        ]
        raise SpecError(
            f"sample {sample.get('name')!r} does not match cosmos-framework's sample schema "
            f"(commit {SCHEMA_COMMIT}): " + "; ".join(lines)
        )
    name = sample.get("name", "<unnamed>")
    hints = [h for h in ("edge", "blur", "depth", "seg", "wsm") if sample.get(h) is not None]
    transfer_fields = (
        "num_video_frames_per_chunk", "num_conditional_frames", "max_frames",
        "num_first_chunk_conditional_frames", "share_vision_temporal_positions",
        "emphasize_control_in_prompt", "negative_prompt_file", "control_guidance_interval",
        "show_control_condition", "show_input",
    )  # fmt: skip
    configured = [f for f in transfer_fields if sample.get(f) is not None]
    if sample.get("control_guidance") not in (None, 1.0):
        configured.append("control_guidance")
    if configured and not hints:
        raise SpecError(
            f"sample {name!r}: {configured} are transfer fields but no hint (edge, blur, depth, "
            "seg, wsm) is set; add a hint with its control_path"
        )
    base = Path(base_dir)
    for hint in hints:
        path = sample[hint].get("control_path")
        if path is None and (hint not in ("edge", "blur") or sample.get("vision_path") is None):
            raise SpecError(
                f"sample {name!r}: {hint}.control_path is missing; cosmos-framework computes only "
                "edge and blur from vision_path, so give a precomputed control video"
            )
    weights = [sample[h].get("weight") for h in hints]
    weights = [1.0 if w is None else w for w in weights]
    if any(w < 0 for w in weights) or (hints and sum(weights) <= 0):
        raise SpecError(f"sample {name!r}: hint weights {weights} must be >= 0 with a positive sum")
    chunk = sample.get("num_video_frames_per_chunk") or chunk_for(hints)
    cond = sample.get("num_conditional_frames")
    if hints and cond is not None and cond >= chunk:
        raise SpecError(
            f"sample {name!r}: num_conditional_frames {cond} must be below "
            f"num_video_frames_per_chunk {chunk}"
        )
    paths = {"vision_path": sample.get("vision_path")}
    paths.update({f"{h}.control_path": sample[h].get("control_path") for h in hints})
    for field, value in paths.items():
        if value is None or str(value).startswith(URL_SCHEMES):
            continue
        local = base / value
        if not local.is_file():
            raise SpecError(f"sample {name!r}: {field} {value} does not exist (read from {base})")
        if local.suffix.lower() != VIDEO_SUFFIX:
            raise SpecError(f"sample {name!r}: {field} {value}: cosmos-framework reads .mp4 videos")
    warnings = []
    fps = sample.get("fps")
    if fps is not None and not 10 <= fps <= 30:
        warnings.append(f"sample {name!r}: fps {fps} is outside the trained [10, 30]")
    caps = {"256": 400, "480": 300, "720": 200, "768": 200}
    frames, tier = sample.get("num_frames"), sample.get("resolution")
    if frames is not None and tier in caps and not 24 <= frames <= caps[tier]:
        warnings.append(f"sample {name!r}: num_frames {frames} is outside [24, {caps[tier]}]")
    return warnings


def validate_file(path: str | Path) -> list[str]:
    """Validate a .json (one sample) or .jsonl (one per line) file; names must be unique."""
    path = Path(path)
    text = path.read_text()
    try:
        samples = (
            [json.loads(line) for line in text.splitlines() if line.strip()]
            if path.suffix == ".jsonl"
            else [json.loads(text)]
        )
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{path} is not valid JSON{'L' if path.suffix == '.jsonl' else ''}: {exc}"
        ) from exc
    names = [s.get("name") for s in samples]
    dupes = sorted({n for n in names if n is not None and names.count(n) > 1})
    if dupes:
        raise SpecError(f"{path}: sample names {dupes} repeat; cosmos-framework needs unique names")
    return [w for s in samples for w in validate_sample(s, base_dir=path.parent)]
