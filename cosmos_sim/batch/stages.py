"""What each stage does to one unit, as plain functions (Ray runs them; tests can call them).

Each takes the unit and its inputs' folders and writes one new folder; `units.write_unit`
makes that exactly-once. Capture calls the simulator bridges; controls, transfer and dataset
are one stage each of `cosmos_sim.pipeline.run_pipeline`, the pipeline every front end runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cosmos_sim.batch.plan import ControlsStage, TransferStage, Unit


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
    from cosmos_sim.pipeline import run_pipeline

    result = run_pipeline(
        episode, out, stages=["controls"], modalities=stage.modalities, prompt=stage.prompt,
        seed=unit.seed, device=stage.device, xodr=stage.xodr, cameras=unit.capture.cameras,
        progress=False,
    )  # fmt: skip
    return {"cameras": sorted(result.clips_info["cameras"]), "notes": result.notes}


class Transfer:
    """One transfer backend, built once and kept for every unit this process is given."""

    def __init__(self, stage: TransferStage) -> None:
        from cosmos_sim.transfer import make_backend

        self.stage = stage
        self.engine = make_backend(stage.backend, **stage.options)

    def __call__(self, unit: Unit, clips: Path, out: Path) -> dict[str, Any]:
        from cosmos_sim.pipeline import run_pipeline

        seed = unit.seed if self.stage.seed is None else self.stage.seed
        run_pipeline(
            None, out, stages=["transfer"], clips=clips, backend=self.engine,
            prompt=self.stage.prompt, prompts=self.stage.prompts, seed=seed, progress=False,
        )  # fmt: skip
        return {"backend": self.engine.name, "seed": seed}


def dataset(unit: Unit, episode: Path, transfer: Path | None, out: Path) -> dict[str, Any]:
    """The unit's labelled dataset (of the transfer output, else of the sim RGB) into `out`."""
    from cosmos_sim.pipeline import run_pipeline

    run_pipeline(episode, out, stages=["dataset"], transfer_out=transfer, progress=False)
    return {"source": "transfer" if transfer is not None else "sim"}
