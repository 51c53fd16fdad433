"""Transfer jobs: submit / progress / result / cancel, on the server's configured backend.

A job takes an episode (recorded through `episode_*` or written by `cosmos-sim capture`) or
a clips folder, both under the server's data_dir, and runs `run_pipeline` (controls on the
server's device, then transfer) on a job thread of its own: request workers only enqueue and
poll, so a transfer that takes an hour never delays a `controls` call. Output frames come back in
pages (`transfer_result` with camera/start/count) so no reply exceeds the array limit.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_sim.sidecar.methods.episodes import episode_path
from cosmos_sim.sidecar.protocol import ErrorCode, ProtocolError
from cosmos_sim.sidecar.schema import Call, Method, Param, Result

KIND = "job"
CLIPS_DIR = "clips"
TRANSFER_DIR = "transfer"


@dataclass
class Job:
    """One transfer job's state, written by its job thread and read by `transfer_progress`."""

    out: Path
    run: Callable[[Job], None]
    state: str = "queued"
    """queued, running, done, failed or cancelled."""
    phase: str = ""
    """controls (writing control clips) or transfer (running the backend)."""
    error: str = ""
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def progress(self) -> dict[str, Any]:
        now = time.monotonic()
        manifest = read_manifest(self.out)
        cameras = manifest.get("cameras", {}) if manifest else {}
        return {
            "state": self.state,
            "phase": self.phase,
            "cameras_done": sum(1 for c in cameras.values() if "frames" in c),
            "cameras_total": _count_clips(self.out),
            "queued_s": (self.started or now) - self.submitted,
            "running_s": 0.0 if self.started is None else (self.finished or now) - self.started,
            "error": self.error,
        }


def read_manifest(out: Path) -> dict[str, Any] | None:
    path = out / TRANSFER_DIR / "transfer.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):  # not written yet, or being replaced right now
        return None


def _count_clips(out: Path) -> int:
    clips = out / CLIPS_DIR
    return sum(1 for p in clips.iterdir() if (p / "rgb.mp4").is_file()) if clips.is_dir() else 0


class JobRunner:
    """Runs jobs on `workers` daemon threads of their own, first come first served."""

    def __init__(self, workers: int) -> None:
        self._queue: queue.Queue[Job] = queue.Queue()
        self._jobs: list[Job] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, name=f"sidecar-job-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job) -> Job:
        with self._lock:
            self._jobs.append(job)
        self._queue.put(job)
        return job

    def cancel(self, job: Job) -> bool:
        with job.lock:
            if job.state != "queued":
                return False
            job.state, job.finished = "cancelled", time.monotonic()
            return True

    def counts(self) -> dict[str, int]:
        with self._lock:
            states = [job.state for job in self._jobs]
        return {s: states.count(s) for s in ("queued", "running", "done", "failed", "cancelled")}

    def shutdown(self) -> None:
        """Cancel queued jobs; a running job's thread is abandoned with the process."""
        with self._lock:
            jobs = list(self._jobs)
        for job in jobs:
            self.cancel(job)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            with job.lock:
                if job.state != "queued":
                    continue
                job.state, job.started = "running", time.monotonic()
            try:
                job.run(job)
                job.state = "done"
            except Exception as exc:  # reported through progress/result, never raised here
                job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
            job.finished = time.monotonic()


_RUNNER_LOCK = threading.Lock()


def _runner(call: Call) -> JobRunner:
    server = call.server
    with _RUNNER_LOCK:
        if server.jobs is None:
            server.jobs = JobRunner(server.job_workers)
    return server.jobs


_ids = itertools.count(1)


def transfer_submit(call: Call) -> Result:
    p = call.params
    server = call.server
    if (p["episode"] is None) == (p["clips"] is None):
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            "give exactly one of episode and clips",
            "params.episode",
            "pass episode (a recorded episode folder) or clips (a `cosmos-sim controls` "
            "output folder), relative to the server's data_dir",
        )
    source = episode_path(server.data_dir, p["episode"] or p["clips"])
    if not source.is_dir():
        field_name = "params.episode" if p["episode"] else "params.clips"
        raise ProtocolError(
            ErrorCode.NOT_FOUND,
            f"{source} does not exist",
            field_name,
            "record it first (episode_open/append/close) or fix the path",
        )
    default_out = f"transfers/{time.strftime('%Y%m%d-%H%M%S')}-{next(_ids)}"
    out = episode_path(server.data_dir, p["out"] or default_out)
    if out.exists():
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            f"{out} exists",
            "params.out",
            "pass a new folder (nothing is overwritten)",
        )
    backend, options = server.transfer_backend, dict(server.transfer_options)

    def run(job: Job) -> None:
        from cosmos_sim.pipeline import run_pipeline

        from_episode = p["episode"] is not None
        run_pipeline(  # out/clips and out/transfer (one stage writes into the folder given)
            source if from_episode else None,
            out if from_episode else out / TRANSFER_DIR,
            stages=["controls", "transfer"] if from_episode else ["transfer"],
            clips=None if from_episode else source,
            modalities=p["modalities"],
            prompt=p["prompt"],
            seed=p["seed"],
            device=server.device,
            backend=backend,
            backend_options=options,
            progress=False,
            on_stage=lambda stage: setattr(job, "phase", stage),
        )

    out.mkdir(parents=True)
    job = _runner(call).submit(Job(out=out, run=run))
    handle = call.session.add(KIND, job, lambda: server.jobs.cancel(job))
    return {"job": handle, "out": str(out), "backend": backend}, {}


def transfer_progress(call: Call) -> Result:
    job: Job = call.session.get(call.params["job"], KIND, "job")
    return job.progress(), {}


def transfer_result(call: Call) -> Result:
    p = call.params
    job: Job = call.session.get(p["job"], KIND, "job")
    if job.state == "failed":
        raise ProtocolError(
            ErrorCode.JOB_FAILED,
            job.error,
            "params.job",
            "fix the cause the message names and submit a new job",
        )
    if job.state == "cancelled":
        raise ProtocolError(
            ErrorCode.JOB_FAILED, "the job was cancelled", "params.job", "submit a new job"
        )
    if job.state != "done":
        raise ProtocolError(
            ErrorCode.NOT_READY,
            f"the job is {job.state}",
            "params.job",
            "poll transfer_progress until state is done",
        )
    manifest = read_manifest(job.out) or {}
    result = {"out": str(job.out / TRANSFER_DIR), "manifest": manifest}
    if p["camera"] is None:
        return result, {}
    cameras = manifest.get("cameras", {})
    if p["camera"] not in cameras:
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            f"no camera {p['camera']!r} in the output",
            "params.camera",
            f"use one of {sorted(cameras)}",
        )
    entry = cameras[p["camera"]]
    start, total = p["start"], entry["frames"]
    count = total - start if p["count"] is None else p["count"]
    if not (0 <= start < total and 0 < count <= total - start):
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            f"frames [{start}, {start + count}) of {total}",
            "params.start",
            f"ask for frames within 0..{total}",
        )
    frame_bytes = entry["width"] * entry["height"] * 3
    limit = call.server.limits.max_array_bytes
    if count * frame_bytes > limit:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"{count} frames are {count * frame_bytes} bytes",
            "params.count",
            f"ask for at most {limit // frame_bytes} frames per call",
        )
    from cosmos_sim.video import iter_video

    frames = itertools.islice(
        iter_video(job.out / TRANSFER_DIR / entry["output"]), start, start + count
    )
    result.update(camera=p["camera"], start=start, fps=entry["fps"])
    return result, {"frames": np.stack(list(frames))}


def transfer_cancel(call: Call) -> Result:
    job: Job = call.session.get(call.params["job"], KIND, "job")
    return {"cancelled": call.server.jobs.cancel(job), "state": job.state}, {}


METHODS = [
    Method(
        "transfer_submit",
        transfer_submit,
        "Queue a transfer job on the server's backend: episode -> control clips -> "
        "transfer, or clips -> transfer. Returns at once with the job handle.",
        params={
            "episode": Param((str, type(None)), None, doc="episode folder relative to data_dir"),
            "clips": Param(
                (str, type(None)),
                None,
                doc="`cosmos-sim controls` output folder relative to data_dir",
            ),
            "out": Param(
                (str, type(None)),
                None,
                doc="new output folder relative to data_dir (default transfers/...)",
            ),
            "prompt": Param((str, type(None)), None, doc="text prompt; null: the clip's spec"),
            "seed": Param(int, 0),
            "modalities": Param(
                (list, type(None)),
                None,
                doc="controls to write from an episode; null: all it supports",
            ),
        },
        stateful=True,
    ),
    Method(
        "transfer_progress",
        transfer_progress,
        "State (queued, running, done, failed, cancelled), phase and cameras done of a job.",
        params={"job": Param(str)},
        idempotent=True,
    ),
    Method(
        "transfer_result",
        transfer_result,
        "The finished job's manifest; with camera, also its output frames [start, start+count) "
        "as one uint8 T×H×W×3 array named frames.",
        params={
            "job": Param(str),
            "camera": Param((str, type(None)), None),
            "start": Param(int, 0),
            "count": Param((int, type(None)), None, doc="frames to return; null: to the end"),
        },
        idempotent=True,
    ),
    Method(
        "transfer_cancel",
        transfer_cancel,
        "Cancel a job that has not started (a running job finishes).",
        params={"job": Param(str)},
        stateful=True,
    ),
]
