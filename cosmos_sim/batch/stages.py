"""What each stage does to one unit, as plain functions (Ray runs them; tests can call them).

Each takes the unit and its inputs' folders and writes one new folder; `units.write_unit`
makes that exactly-once. The work itself is the project's own capture, controls, transfer
and dataset functions: nothing here re-implements a stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cosmos_sim.batch.plan import ControlsStage, DatasetStage, TransferStage, Unit


def capture(unit: Unit, out: Path) -> dict[str, Any]:
    """Record the unit's episode into `out`."""
    c = unit.capture
    if c.simulator == "pybullet":
        from cosmos_sim.bridges.pybullet import make_scene, record_episode

        with make_scene(
            c.scene, seed=unit.seed, width=c.width, height=c.height, renderer=c.renderer
        ) as scene:
            record_episode(scene, c.seconds, out, progress=False)
            return {"renderer": scene.bridge.renderer}
    from cosmos_sim.bridges.carla import capture_episode

    capture_episode(
        out, host=c.host, port=c.port, rig=c.rig, ego=c.ego, seconds=c.seconds,
        replay=unit.replay, timeout_s=c.timeout_s, progress=False,
    )  # fmt: skip
    return {}


def controls(unit: Unit, stage: ControlsStage, episode: Path, out: Path) -> dict[str, Any]:
    """Control clips and specs of the unit's episode into `out`."""
    from cosmos_sim.controls.clips import write_clips

    options: dict[str, Any] = {"prompt": stage.prompt} if stage.prompt else {}
    written = write_clips(
        episode, out, modalities=stage.modalities, seed=unit.seed, device=stage.device,
        xodr=stage.xodr, cameras=unit.capture.cameras, progress=False, **options,
    )  # fmt: skip
    return {"cameras": sorted(written["cameras"]), "frames": written["num_frames"]}


class Transfer:
    """One transfer backend, built once and kept for every unit this process is given."""

    def __init__(self, stage: TransferStage) -> None:
        from cosmos_sim.transfer import make_backend

        self.stage = stage
        self.engine = make_backend(stage.backend, **stage.options)

    def __call__(self, unit: Unit, clips: Path, out: Path) -> dict[str, Any]:
        from cosmos_sim.transfer import run_transfer

        seed = unit.seed if self.stage.seed is None else self.stage.seed
        run_transfer(
            clips, out, backend=self.engine, prompt=self.stage.prompt,
            prompts=self.stage.prompts, seed=seed,
        )  # fmt: skip
        return {"backend": self.engine.name, "seed": seed}


def dataset(
    unit: Unit, stage: DatasetStage, episode: Path, transfer: Path | None, out: Path
) -> dict[str, Any]:
    """The unit's labelled dataset (of the transfer output, else of the sim RGB) into `out`."""
    from cosmos_sim.dataset import write_dataset

    write_dataset(episode, transfer, out, sheets=stage.sheets)
    return {"source": "transfer" if transfer is not None else "sim"}
