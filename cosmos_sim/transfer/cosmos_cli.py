"""Transfer backend "cosmos-cli": runs a nvidia-cosmos/cosmos-transfer2.5 checkout's own tool.

For each clip it writes a Transfer 2.5 spec (`controls.spec.transfer25_spec`, absolute paths
to the clip's rgb.mp4 and control videos, which are already at 16 fps and the bucket size, so
nothing is re-encoded), then runs, in the checkout,

    python examples/inference.py -i SPEC -o OUTDIR [--model edge/distilled]
    python -m torch.distributed.run --nproc_per_node N examples/inference.py ...   (N > 1)

(`torch.distributed.run` is what the `torchrun` script runs), streams the tool's log to the
console with a progress bar and to `cosmos/inference.log`, and reads back `OUTDIR/<name>.mp4`
(Cosmos resizes its output to the input video's size: the clip's). The tool runs with the
checkout as its working directory, so SPEC and OUTDIR are absolute whatever `--out` was. A
failed run raises with the tool's own output verbatim. The tool's guardrails are its own and
stay on: this backend never passes `--disable-guardrails`.

Options beyond the spec defaults: `model` picks a checkpoint of the tool (`edge/distilled`,
the 4-step distilled edge model, needs `COSMOS_EXPERIMENTAL_CHECKPOINTS=1`, which the backend
sets); `guided_ids` turns on guided generation from the clip's instance masks (those
instances' pixels stay anchored to the simulator: `guided_generation_mask` +
`guided_generation_foreground_labels`); `control_masks` gives controls spatial weight maps
from the same masks ({control: instance ids where it applies}).

The Python that runs the tool is the checkout's `.venv` (what `uv sync` makes there) when it
exists, else this interpreter; pass `python` to choose another.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_sim.cosmos_tool import CosmosToolError, checkout_python, find_checkout, run_tool
from cosmos_sim.transfer.base import BackendError, Clip, GuardrailBlocked
from cosmos_sim.types import SpecError

SCRIPT = "examples/inference.py"
MARKERS = (SCRIPT, "cosmos_transfer2")
"""Paths that make a folder a cosmos-transfer2.5 checkout."""
MODELS = ("edge", "depth", "seg", "vis", "edge/distilled")
"""Single-view `--model` names of cosmos_transfer2/config.py (the distilled one experimental)."""
DISTILLED_STEPS = 4
EXPERIMENTAL_ENV = {"COSMOS_EXPERIMENTAL_CHECKPOINTS": "1"}


class CosmosCliError(BackendError, CosmosToolError):
    """The Cosmos tool failed or wrote no video; the message holds its output verbatim."""


class CosmosCliBackend:
    """Cosmos Transfer 2.5 through its reference inference script."""

    name = "cosmos-cli"

    def __init__(
        self,
        cosmos_root: str | Path,
        *,
        controls: Sequence[str] | str | None = None,
        nproc_per_node: int = 1,
        python: str | Path | None = None,
        num_steps: int | None = None,
        guidance: int | None = None,
        negative_prompt: str | None = None,
        model: str | None = None,
        guided_ids: Sequence[int] | None = None,
        control_masks: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        self.root = find_checkout(
            cosmos_root, markers=MARKERS, repo="cosmos-transfer2.5", field="--cosmos-root"
        )
        if nproc_per_node < 1:
            raise SpecError(f"--nproc-per-node must be >= 1, got {nproc_per_node}")
        if model is not None and model not in MODELS:
            raise SpecError(f"--model {model!r}: the single-view tool takes one of {list(MODELS)}")
        self.controls = [controls] if isinstance(controls, str) else controls
        if model is not None and model.endswith("/distilled"):
            if self.controls not in (None, ["edge"]):
                raise SpecError(
                    f"--model {model} is an edge model; it takes only the edge control, not "
                    f"{self.controls}"
                )
            self.controls = ["edge"]
            num_steps = DISTILLED_STEPS if num_steps is None else num_steps
        if guided_ids is not None and not len(guided_ids):
            raise SpecError("guided_ids: give the instance ids to anchor (or leave it unset)")
        self.model = model
        self.guided_ids = None if guided_ids is None else [int(i) for i in guided_ids]
        self.control_masks = {k: [int(i) for i in v] for k, v in (control_masks or {}).items()}
        self.nproc = nproc_per_node
        self.python = checkout_python(self.root, python)
        self.overrides = {
            k: v
            for k, v in {
                "num_steps": num_steps,
                "guidance": guidance,
                "negative_prompt": negative_prompt,
            }.items()
            if v is not None
        }

    def describe(self) -> dict[str, Any]:
        return {
            "model": "nvidia/Cosmos-Transfer2.5-2B (the checkout's own checkpoints)",
            "cosmos_model": self.model or "the tool's default (edge, or multicontrol)",
            "cosmos_root": str(self.root),
            "command": " ".join(self.command(Path("SPEC"), Path("OUTDIR"))),
            "controls": self.controls or "the clip spec's",
            "guided_ids": self.guided_ids,
            "control_masks": self.control_masks or None,
            **self.overrides,
        }

    def command(self, spec: Path, outdir: Path) -> list[str]:
        launch = [self.python]
        if self.nproc > 1:
            launch += ["-m", "torch.distributed.run", f"--nproc_per_node={self.nproc}"]
        model = [] if self.model is None else ["--model", self.model]
        return [*launch, SCRIPT, "-i", str(spec), "-o", str(outdir), *model]

    def spec(
        self, clip: Clip, prompt: str, seed: int, masks: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The Transfer 2.5 sample for `clip`: its controls (or `controls`), absolute paths.

        `masks` holds the spec's mask fields (`control_masks`, `guided_generation_*`) once
        `write_masks` has written their files.
        """
        from cosmos_sim.controls.spec import TRANSFER25_CONTROLS, transfer25_spec

        base = clip.spec
        if self.controls is not None:
            chosen = list(self.controls)
        else:
            chosen = [k for k in TRANSFER25_CONTROLS if k in base] or [
                k for k in TRANSFER25_CONTROLS if k in clip.controls
            ]
        unknown = sorted(set(chosen) - set(TRANSFER25_CONTROLS))
        if unknown:
            raise SpecError(
                f"controls {unknown} are not Transfer 2.5 controls; use {list(TRANSFER25_CONTROLS)}"
            )
        clip.require("rgb", *chosen, needed_by="the cosmos-cli backend")
        weights = {
            k: base[k]["control_weight"] for k in chosen if "control_weight" in base.get(k, {})
        }
        settings = {
            k: base[k]
            for k in ("guidance", "num_steps", "num_video_frames_per_chunk", "negative_prompt")
            if k in base
        }
        settings.update(self.overrides)
        return transfer25_spec(
            base.get("name") or clip.camera,
            clip.video_path("rgb").resolve(),
            {k: clip.video_path(k).resolve() for k in chosen},
            prompt=prompt,
            seed=seed,
            control_weights=weights,
            edge_preset=base.get("edge", {}).get("preset_edge_threshold", "medium"),
            vis_preset=base.get("vis", {}).get("preset_blur_strength", "medium"),
            **settings,
            **(masks or {}),
        )

    def write_masks(self, clip: Clip, folder: Path) -> dict[str, Any]:
        """Write the mask files the options ask for from the clip's instance masks (seg.mp4
        decoded through its palette) into `folder`; returns the spec fields naming them."""
        from cosmos_sim.controls.masks import write_label_npz, write_mask_video

        fields: dict[str, Any] = {}
        if self.control_masks:
            fields["control_masks"] = {
                control: write_mask_video(
                    folder / f"{control}_mask.mp4", clip.instance_ids(), ids, clip.fps
                )
                for control, ids in self.control_masks.items()
            }
        if self.guided_ids is not None:
            fields["guided_generation_mask"] = write_label_npz(
                folder / "guided_generation_mask.npz", clip.instance_ids(), clip.num_frames
            )
            fields["guided_generation_foreground_labels"] = self.guided_ids
        return fields

    def transfer(self, clip: Clip, prompt: str, seed: int, workdir: Path) -> Iterator[np.ndarray]:
        from cosmos_sim.controls.spec import write_spec_json
        from cosmos_sim.video import iter_video

        # The tool runs in the checkout: every path it gets is absolute.
        work = Path(workdir).resolve() / "cosmos"
        work.mkdir(parents=True, exist_ok=True)
        spec = self.spec(clip, prompt, seed, self.write_masks(clip, work))
        spec_path = write_spec_json(spec, work / "spec.json")
        outdir = work / "output"
        run_tool(
            self.command(spec_path, outdir),
            self.root,
            work / "inference.log",
            f"cosmos-cli {clip.camera}",
            error=CosmosCliError,
            env=EXPERIMENTAL_ENV if self.model and self.model.endswith("/distilled") else None,
        )
        video = outdir / f"{spec['name']}.mp4"
        log = work / "inference.log"
        if not video.is_file() and "Guardrail blocked" in log.read_text(errors="replace"):
            raise GuardrailBlocked(
                f"the Cosmos guardrail blocked clip {clip.folder} (the tool skips a blocked "
                f"sample and writes nothing); see {log}. Try another prompt or seed."
            )
        if not video.is_file():
            found = sorted(p.name for p in outdir.glob("*")) if outdir.is_dir() else []
            raise CosmosCliError(
                f"the Cosmos tool exited cleanly but wrote no {video} (found: {found}); see "
                f"{work / 'inference.log'}"
            )
        yield from iter_video(video)
