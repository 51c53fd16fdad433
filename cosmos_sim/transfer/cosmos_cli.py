"""Transfer backend "cosmos-cli": runs a nvidia-cosmos/cosmos-transfer2.5 checkout's own tool.

For each clip it writes a Transfer 2.5 spec (`controls.spec.transfer25_spec`, absolute paths
to the clip's rgb.mp4 and control videos, which are already at 16 fps and the bucket size, so
nothing is re-encoded), then runs, in the checkout,

    python examples/inference.py -i spec.json -o OUTDIR
    python -m torch.distributed.run --nproc_per_node N examples/inference.py ...   (N > 1)

(`torch.distributed.run` is what the `torchrun` script runs), streams the tool's log to the
console with a progress bar and to `cosmos/inference.log`, and reads back `OUTDIR/<name>.mp4`
(Cosmos resizes its output to the input video's size: the clip's). A failed run raises with
the tool's own output verbatim. The tool's guardrails are its own and stay on: this backend
never passes `--disable-guardrails`.

The Python that runs the tool is the checkout's `.venv` (what `uv sync` makes there) when it
exists, else this interpreter; pass `python` to choose another.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_sim.cosmos_tool import CosmosToolError, checkout_python, find_checkout, run_tool
from cosmos_sim.transfer.base import BackendError, Clip
from cosmos_sim.types import SpecError

SCRIPT = "examples/inference.py"
MARKERS = (SCRIPT, "cosmos_transfer2")
"""Paths that make a folder a cosmos-transfer2.5 checkout."""


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
    ) -> None:
        self.root = find_checkout(
            cosmos_root, markers=MARKERS, repo="cosmos-transfer2.5", field="--cosmos-root"
        )
        if nproc_per_node < 1:
            raise SpecError(f"--nproc-per-node must be >= 1, got {nproc_per_node}")
        self.controls = [controls] if isinstance(controls, str) else controls
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
            "cosmos_root": str(self.root),
            "command": " ".join(self.command(Path("SPEC"), Path("OUTDIR"))),
            "controls": self.controls or "the clip spec's",
            **self.overrides,
        }

    def command(self, spec: Path, outdir: Path) -> list[str]:
        launch = [self.python]
        if self.nproc > 1:
            launch += ["-m", "torch.distributed.run", f"--nproc_per_node={self.nproc}"]
        return [*launch, SCRIPT, "-i", str(spec), "-o", str(outdir)]

    def spec(self, clip: Clip, prompt: str, seed: int) -> dict[str, Any]:
        """The Transfer 2.5 sample for `clip`: its controls (or `controls`), absolute paths."""
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
            clip.camera,
            clip.video_path("rgb").resolve(),
            {k: clip.video_path(k).resolve() for k in chosen},
            prompt=prompt,
            seed=seed,
            control_weights=weights,
            edge_preset=base.get("edge", {}).get("preset_edge_threshold", "medium"),
            vis_preset=base.get("vis", {}).get("preset_blur_strength", "medium"),
            **settings,
        )

    def transfer(self, clip: Clip, prompt: str, seed: int, workdir: Path) -> Iterator[np.ndarray]:
        from cosmos_sim.controls.spec import write_spec_json
        from cosmos_sim.video import iter_video

        work = workdir / "cosmos"
        work.mkdir(parents=True, exist_ok=True)
        spec_path = write_spec_json(self.spec(clip, prompt, seed), work / "spec.json")
        outdir = work / "output"
        run_tool(
            self.command(spec_path, outdir),
            self.root,
            work / "inference.log",
            f"cosmos-cli {clip.camera}",
            error=CosmosCliError,
        )
        video = outdir / f"{clip.camera}.mp4"
        if not video.is_file():
            found = sorted(p.name for p in outdir.glob("*")) if outdir.is_dir() else []
            raise CosmosCliError(
                f"the Cosmos tool exited cleanly but wrote no {video} (found: {found}); see "
                f"{work / 'inference.log'}"
            )
        yield from iter_video(video)
