"""`run_plan`: every unit of a plan through its stages on Ray, resumable and exactly-once on disk.

Captures, controls and datasets are Ray tasks (one CPU each; controls may take a GPU
fraction); transfer runs in resident actors (`workers.ResidentWorkers`), one model each, one
per GPU for GPU backends. The driver keeps at most `max_units_in_flight` units between their
first and last stage (backpressure: a slow transfer stage holds captures back instead of
letting them pile up), hands each unit to its next stage as the last one finishes, and
records every unit's outcome. Only paths travel through Ray; the data stays on disk, where
`units.write_unit` publishes each unit in one rename. `OUT` must be a folder every node sees.
"""

from __future__ import annotations

import functools
import re
import shutil
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cosmos_sim.batch import stages as stage_fns
from cosmos_sim.batch.outdir import check_no_foreign_folders, check_same_plan, locked
from cosmos_sim.batch.plan import Plan, PlanError, TransferStage, Unit, load_plan
from cosmos_sim.batch.progress import Progress
from cosmos_sim.batch.units import done_marker, partials, unit_dir, write_unit
from cosmos_sim.batch.workers import ResidentWorkers
from cosmos_sim.episode import write_json_atomic
from cosmos_sim.extras import require

REPORT = "batch_report.json"


def run_plan(
    plan: Plan | str | Path | Mapping[str, Any],
    out: str | Path,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> dict[str, Any]:
    """Run `plan` into `out`; returns the report also written to `out/batch_report.json`.

    Without `address` (and no Ray already initialised in this process) a local Ray starts
    with `num_cpus` / `num_gpus` (default: what the machine has); with one, the run joins
    that cluster. Units finished by an earlier run into `out` are skipped. A unit that fails
    is reported with its error and its later stages are skipped; the others go on.
    """
    plan = plan if isinstance(plan, Plan) else load_plan(plan)
    out = Path(out)
    stages = plan.stage_names()
    units = plan.units()
    out.mkdir(parents=True, exist_ok=True)
    with locked(out):
        check_same_plan(plan, out)
        finished = {(s, u.id) for s in stages for u in units if done_marker(out, s, u.id)}
        todo = [u for u in units if any((s, u.id) not in finished for s in stages)]
        check_no_foreign_folders(out, stages, todo, finished)
        progress = Progress(stages, [u.id for u in units], finished)
        info: dict[str, Any] = {
            "plan": plan.name,
            "out": str(out.resolve()),
            "ray": "not started" + ("" if todo else ": every unit had finished"),
        }
        try:
            if todo:
                info.update(_run_on_ray(plan, out, todo, progress, address, num_cpus, num_gpus,
                                        on_progress))  # fmt: skip
        finally:
            report = progress.report(**info)
            write_json_atomic(out / REPORT, report)
    return report


def _run_on_ray(
    plan: Plan,
    out: Path,
    todo: list[Unit],
    progress: Progress,
    address: str | None,
    num_cpus: int | None,
    num_gpus: int | None,
    on_progress: Callable[[Progress], None] | None,
) -> dict[str, Any]:
    ray = require("ray", "ray", "cosmos-sim batch")
    started_here, ray_started = not ray.is_initialized(), time.perf_counter()
    if started_here and address:
        ray.init(address=address, log_to_driver=False)
    elif started_here:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                 log_to_driver=False, object_store_memory=2**28)  # fmt: skip
    ray_start_s, pool = time.perf_counter() - ray_started, None
    try:
        resources = ray.cluster_resources()
        cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
        stage_names = progress.stages
        transfer = plan.stages.transfer
        workers = _transfer_workers(transfer, cpus, gpus) if "transfer" in stage_names else 0
        if plan.stages.controls is not None and plan.stages.controls.gpus > gpus:
            raise PlanError(
                f"{plan.stages.controls.gpus} GPU per task, but the Ray cluster has {gpus:g}",
                field="stages.controls.gpus",
                fix="set gpus: 0 (and device: cpu) or join a cluster with GPUs (--address)",
            )
        for stage in stage_names:
            for stale in partials(out, stage):
                shutil.rmtree(stale, ignore_errors=True)  # attempts killed in an earlier run
        needs_transfer = any(
            progress.state.get("transfer", {}).get(u.id) == "waiting" for u in todo
        )
        if workers and needs_transfer:
            pool = _transfer_pool(plan, transfer, out, workers)
        window = plan.max_units_in_flight or int(2 * max(cpus, 1)) + workers
        _drive(plan, out, todo, progress, pool, window, on_progress)
        info = {
            "ray": f"{'cluster ' + address if address else 'local Ray'} "
            f"({cpus:g} CPUs, {gpus:g} GPUs)",
            "resources": {"CPU": cpus, "GPU": gpus},
            "ray_start_s": ray_start_s,
        }
        if pool is not None:
            info["transfer_workers"] = pool.stats()
        return info
    finally:
        if pool is not None:
            pool.close()
        if started_here:
            ray.shutdown()


def _transfer_workers(stage: TransferStage, cpus: float, gpus: float) -> int:
    per_gpu = stage.worker_gpus
    if per_gpu > gpus:
        raise PlanError(
            f"backend {stage.backend} takes {per_gpu:g} GPU per worker, but the Ray cluster "
            f"has {gpus:g}",
            field="stages.transfer.gpus_per_worker",
            fix="join a cluster with GPUs (--address), or set gpus_per_worker: 0 for a CPU run",
        )
    workers = stage.workers or (int(gpus // per_gpu) if per_gpu else 1)
    if workers * stage.cpus_per_worker > cpus - 1:
        raise PlanError(
            f"{workers} workers × {stage.cpus_per_worker:g} CPUs leave no CPU for the "
            f"capture, controls and dataset tasks (the cluster has {cpus:g})",
            field="stages.transfer.cpus_per_worker",
            fix="lower cpus_per_worker or workers",
        )
    return workers


def _transfer_pool(plan: Plan, stage: TransferStage, out: Path, workers: int) -> ResidentWorkers:
    return ResidentWorkers(
        functools.partial(TransferUnits, out, stage),
        count=workers,
        num_gpus=stage.worker_gpus,
        num_cpus=stage.cpus_per_worker,
        max_restarts=plan.max_retries,
    )


class TransferUnits:
    """A resident transfer worker's job: its backend, built once, on one unit per call."""

    def __init__(self, out: Path, stage: TransferStage) -> None:
        self.out = out
        self.transfer = stage_fns.Transfer(stage)

    def __call__(self, unit: Unit) -> dict[str, Any]:
        clips = unit_dir(self.out, "controls", unit.id)
        return write_unit(self.out, "transfer", unit.id, lambda p: self.transfer(unit, clips, p))


def capture_task(out: Path, unit: Unit) -> dict[str, Any]:
    return write_unit(out, "capture", unit.id, lambda p: stage_fns.capture(unit, p))


def controls_task(out: Path, unit: Unit, plan: Plan) -> dict[str, Any]:
    episode = unit_dir(out, "capture", unit.id)
    return write_unit(
        out,
        "controls",
        unit.id,
        lambda p: stage_fns.controls(unit, plan.stages.controls, episode, p),
    )


def dataset_task(out: Path, unit: Unit, plan: Plan) -> dict[str, Any]:
    episode = unit_dir(out, "capture", unit.id)
    transfer = unit_dir(out, "transfer", unit.id) if plan.stages.transfer else None
    return write_unit(
        out, "dataset", unit.id,
        lambda p: stage_fns.dataset(unit, episode, transfer, p),
    )  # fmt: skip


def _drive(
    plan: Plan,
    out: Path,
    todo: list[Unit],
    progress: Progress,
    pool: ResidentWorkers | None,
    window: int,
    on_progress: Callable[[Progress], None] | None,
) -> None:
    """The driver loop: admit units up to `window`, start each one's next stage, collect."""
    import ray

    retries = {"max_retries": plan.max_retries, "retry_exceptions": False}
    controls_gpus = plan.stages.controls.gpus if plan.stages.controls else 0.0
    tasks = {
        "capture": ray.remote(capture_task).options(num_cpus=1, **retries),
        "controls": ray.remote(controls_task).options(
            num_cpus=1, num_gpus=controls_gpus, **retries
        ),  # fmt: skip
        "dataset": ray.remote(dataset_task).options(num_cpus=1, **retries),
    }
    waiting, in_flight = deque(todo), 0
    ready_for_transfer: deque[Unit] = deque()
    running: dict[Any, tuple[str, Unit]] = {}
    last_transfer_error = ""

    def advance(unit: Unit) -> None:
        nonlocal in_flight
        stage = next((s for s in progress.stages if progress.state[s][unit.id] == "waiting"), None)
        if stage is None:
            in_flight -= 1
        elif stage == "transfer":
            ready_for_transfer.append(unit)
        else:
            args = (out, unit) if stage == "capture" else (out, unit, plan)
            running[tasks[stage].remote(*args)] = (stage, unit)
            progress.start(stage, unit.id)

    while waiting or running or ready_for_transfer:
        while waiting and in_flight < window:
            in_flight += 1
            advance(waiting.popleft())
        while ready_for_transfer and pool is not None and pool.idle:
            unit = ready_for_transfer.popleft()
            running[pool.submit(unit)] = ("transfer", unit)
            progress.start("transfer", unit.id)
        if ready_for_transfer and (pool is None or not pool.alive):
            unit = ready_for_transfer.popleft()
            progress.fail("transfer", unit.id, f"no transfer worker left ({last_transfer_error})")
            in_flight -= 1
            continue
        if not running:
            continue
        finished, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
        for ref in finished:
            stage, unit = running.pop(ref)
            try:
                marker = pool.release(ref) if stage == "transfer" else ray.get(ref)
            except Exception as exc:  # noqa: BLE001  (any unit error is reported, not raised)
                progress.fail(stage, unit.id, _describe(exc))
                if stage == "transfer":
                    last_transfer_error = _describe(exc)
                in_flight -= 1
                continue
            progress.finish(stage, unit.id, marker)
            advance(unit)
        if on_progress is not None:
            on_progress(progress)


def _describe(exc: Exception) -> str:
    """The unit's own error (not Ray's wrapper) as `Type: message`.

    A worker whose model could not be built dies with Ray's ActorDiedError, whose text ends
    with the constructor's traceback; its last `SomeError: ...` line is what went wrong.
    """
    import ray

    if isinstance(exc, ray.exceptions.RayTaskError) and exc.cause is not None:
        exc = exc.cause
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if isinstance(exc, ray.exceptions.RayActorError):
        causes = [line for line in lines if _RAISED.match(line)]
        if causes:
            return f"transfer worker died: {causes[-1]}"
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


_RAISED = re.compile(r"^[\w.]*(Error|Exception|Exit|Extra)\b[^:]*: ")
"""A traceback's last line, `SomeError: message`."""
