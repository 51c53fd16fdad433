"""`Augmenter`: sensor frames in as a bridge makes them, augmented frames out, each on its tick.

The simulator's thread calls `submit(frames)` once per tick. Ticks are grouped into chunks
of `chunk_frames`; a worker computes each chunk's controls, pushes it to one backend session
per camera (`cosmos_sim.transfer.base.start_session`: the appearance backend renders
in-process, a backend without a session runs each chunk through its per-clip transfer, and
any `TransferSession`, e.g. one behind the sidecar, can be passed in), and hands every
output frame on as an `Augmented` with the tick's ground truth, to a `sink` or to `poll()`.

The worker is a thread (`worker="thread"`) or a child process (`worker="process"`): the
simulator, the controls and the renderer are Python loops around C code that mostly holds
the GIL, so a thread shares one core with the simulator while a process gets its own (the
benchmark measures both). In a process the backend is built there from its name, the sink
runs there (it must pickle: `AugmentWriter` does) and frames come back to `poll()` through
a pipe.

When the backend is slower than the simulator, at most `max_chunks_queued` chunks wait;
`overflow` says what happens to the next one: "block" makes `submit` wait (the simulator
runs at the backend's pace, no tick is lost), "skip" drops the chunk and counts it (the
simulator keeps its pace, those ticks get no augmented frame). `stats()` reports both, the
lag of each output frame behind its tick's `submit`, and the output frames/s.

Controls are computed per chunk at the session size (the camera's Cosmos bucket, or the
camera's own size with `resolution="camera"`) by the functions of
`cosmos_sim.controls.backend.control_backend`. A stream has no first pass over the run, so
per-run statistics are fixed as they come: the depth range by the first chunk (or
`depth_range_m`), the seg palette grown as instances appear (each id's colour depends only
on the seed and the id).

HD map. With `xodr=` (an OpenDRIVE map, e.g. a CARLA run's `map.xodr`) the `hdmap` control
(Cosmos 3's `wsm`) is drawn per chunk from each frame's K and pose, and added to the default
controls; it shows the map only (no actor boxes or light states: a `SensorFrame` does not
carry them; `cosmos-sim controls` draws those from the episode).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cosmos_sim.transfer.base import (
    BackendError,
    Chunk,
    SessionOptions,
    TickFrame,
    TransferBackend,
    TransferSession,
    backend_factory,
    make_backend,
    start_session,
)
from cosmos_sim.types import SensorFrame, SpecError

OVERFLOW_POLICIES = ("block", "skip")
"""What `submit` does with a chunk when the queue is full: wait for room, or drop it."""
WORKERS = ("thread", "process")
RESOLUTIONS = ("bucket", "camera")
"""Session size: the camera's Cosmos bucket (what Cosmos models take) or its own size."""
FRAME_INPUTS = frozenset({"rgb", "depth_m", "instance_id"})
"""What an Augmenter gives the controls per chunk: the controls that read only these run
(LiDAR sweeps need the run's other sensors: `cosmos-sim controls` makes those)."""
MAP_INPUTS = frozenset({"K", "cam_to_world"})
"""Also given with `xodr=` (from each frame's calibration): the HD map then runs too."""
DEFAULT_CONTROLS = ("depth", "seg", "edge")
"""Controls computed for a backend that does not say which it needs (`needs`)."""


@dataclass(frozen=True)
class Augmented:
    """One augmented frame and the ground truth of the tick it shows."""

    tick: int
    camera: str
    frame: np.ndarray
    """H×W×3 uint8 RGB at the camera's size."""
    labels: SensorFrame
    """The tick's frame of that camera as the bridge made it: instance/class ids, depth, K,
    cam_to_world (its `rgb` is the simulator's)."""
    lag_s: float
    """Seconds from the tick's `submit` to this frame being ready."""


@dataclass
class AugmentStats:
    """Counters of a run (`Augmenter.stats()`)."""

    ticks_in: int = 0
    chunks_sent: int = 0
    chunks_skipped: int = 0
    ticks_skipped: list[int] = field(default_factory=list)
    frames_out: int = 0
    lag_s: list[float] = field(default_factory=list)
    submit_wait_s: float = 0.0
    """Time `submit` spent blocked (overflow "block")."""
    wall_s: float = 0.0
    """From the first submit to the last output frame."""

    def as_dict(self) -> dict[str, Any]:
        lag = np.asarray(self.lag_s) if self.lag_s else np.zeros(1)
        return {
            "ticks_in": self.ticks_in,
            "chunks_sent": self.chunks_sent,
            "chunks_skipped": self.chunks_skipped,
            "ticks_skipped": list(self.ticks_skipped),
            "frames_out": self.frames_out,
            "lag_s_mean": float(lag.mean()),
            "lag_s_p95": float(np.percentile(lag, 95)),
            "lag_s_max": float(lag.max()),
            "submit_wait_s": self.submit_wait_s,
            "wall_s": self.wall_s,
            "frames_per_s": self.frames_out / self.wall_s if self.wall_s > 0 else 0.0,
        }


@dataclass(frozen=True)
class _Config:
    """What the worker needs (picklable, for a worker process)."""

    backend: str | TransferBackend | None
    backend_options: Mapping[str, Any]
    prompt: str
    seed: int
    fps: float
    resolution: str
    controls: tuple[str, ...]
    depth_range_m: tuple[float, float] | None
    device: str
    xodr: str | None = None
    """OpenDRIVE map the hdmap control is drawn from (compiled in the worker)."""


class Augmenter:
    """Streams a run's camera frames through a resident transfer backend (module doc)."""

    def __init__(
        self,
        backend: str | TransferBackend | Mapping[str, TransferSession] = "appearance",
        *,
        prompt: str = "",
        seed: int = 0,
        chunk_frames: int = 8,
        max_chunks_queued: int = 2,
        overflow: str = "block",
        worker: str = "thread",
        controls: Sequence[str] | None = None,
        depth_range_m: tuple[float, float] | None = None,
        resolution: str = "bucket",
        fps: float = 16.0,
        device: str = "cpu",
        sink: Callable[[Augmented], None] | None = None,
        backend_options: Mapping[str, Any] | None = None,
        xodr: str | os.PathLike | None = None,
    ) -> None:
        from cosmos_sim.controls.backend import check_device
        from cosmos_sim.controls.spec import DEFAULT_PROMPT
        from cosmos_sim.controls.table import CONTROLS

        if overflow not in OVERFLOW_POLICIES:
            raise SpecError(f"overflow={overflow!r}: choose one of {list(OVERFLOW_POLICIES)}")
        if worker not in WORKERS:
            raise SpecError(f"worker={worker!r}: choose one of {list(WORKERS)}")
        if resolution not in RESOLUTIONS:
            raise SpecError(f"resolution={resolution!r}: choose one of {list(RESOLUTIONS)}")
        for name, value in (
            ("chunk_frames", chunk_frames),
            ("max_chunks_queued", max_chunks_queued),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SpecError(f"{name}: an int >= 1, got {value!r}")
        if depth_range_m is not None and not 0 < depth_range_m[0] < depth_range_m[1]:
            raise SpecError(f"depth_range_m: need 0 < min < max metres, got {depth_range_m}")
        check_device(device)
        sessions: dict[str, TransferSession] = {}
        if isinstance(backend, Mapping):  # sessions the caller started
            sessions, backend = dict(backend), None
        elif isinstance(backend, str) and worker == "thread":
            backend = make_backend(backend, **dict(backend_options or {}))
        if worker == "process" and not isinstance(backend, str):
            raise SpecError(
                "worker='process' builds the backend in the worker: pass its name "
                "(and backend_options), not a backend object or sessions"
            )
        self.backend = backend
        # a backend class says which controls it needs (`needs`), so no build is needed here
        needs = getattr(
            backend_factory(backend) if isinstance(backend, str) else backend, "needs", None
        )
        if xodr is not None and not os.path.isfile(xodr):
            raise SpecError(f"xodr={str(xodr)!r}: no such file; pass an OpenDRIVE map (.xodr)")
        if controls is None:
            controls = DEFAULT_CONTROLS if needs is None else needs
            if xodr is not None and "hdmap" not in controls:
                controls = (*controls, "hdmap")
        self.controls = tuple(controls)
        inputs = FRAME_INPUTS if xodr is None else FRAME_INPUTS | MAP_INPUTS
        per_frame = [n for n, c in CONTROLS.items() if set(c.inputs) <= inputs]
        unknown = [c for c in self.controls if c not in per_frame]
        if unknown:
            hint = " (hdmap needs xodr=, an OpenDRIVE map)" if "hdmap" in unknown else ""
            raise SpecError(
                f"controls {unknown}: an Augmenter computes {per_frame} per chunk{hint}",
                field="controls",
                fix=f"choose from {per_frame}" + (" or pass xodr=" if hint else ""),
            )
        self.prompt = prompt or DEFAULT_PROMPT
        self.chunk_frames, self.overflow, self.worker = chunk_frames, overflow, worker
        config = _Config(
            backend, dict(backend_options or {}), self.prompt, int(seed), float(fps),
            resolution, self.controls, depth_range_m, device,
            None if xodr is None else os.fspath(xodr),
        )  # fmt: skip
        self._pending: list[tuple[dict[str, SensorFrame], float]] = []
        self._out: list[Augmented] = []
        self._stats = AugmentStats()
        self._start: float | None = None
        self._error: BaseException | None = None
        self._last_tick = -1
        self._closed = False
        self._done = False
        if worker == "thread":
            self._queue: Any = queue.Queue(maxsize=max_chunks_queued)
            self._events: Any = queue.Queue()
            self._worker: Any = threading.Thread(
                target=_work, args=(config, sessions, sink, self._queue, self._events),
                name="augmenter", daemon=True,
            )  # fmt: skip
        else:
            context = multiprocessing.get_context("spawn")
            self._queue = context.Queue(maxsize=max_chunks_queued)
            self._events = context.Queue()
            self._worker = context.Process(
                target=_work, args=(config, {}, sink, self._queue, self._events),
                name="augmenter", daemon=True,
            )  # fmt: skip
        self._worker.start()

    # -- the simulator's side -----------------------------------------------------------
    def submit(self, frames: Iterable[SensorFrame] | Mapping[str, SensorFrame]) -> None:
        """Hand over one tick's sensor frames (non-camera sensors are ignored)."""
        self._drain()
        if self._closed:
            raise SpecError("Augmenter.submit after close(); start a new Augmenter")
        items = frames.values() if isinstance(frames, Mapping) else frames
        cameras = {f.sensor: f for f in items if f.camera is not None and f.rgb is not None}
        if not cameras:
            raise SpecError("Augmenter.submit: no camera frame with rgb in this tick")
        ticks = {f.frame_index for f in cameras.values()}
        if len(ticks) != 1:
            raise SpecError(f"Augmenter.submit: frames of one tick disagree on frame_index {ticks}")
        tick = ticks.pop()
        if tick <= self._last_tick:
            raise SpecError(
                f"Augmenter.submit: tick {tick} comes after tick {self._last_tick}; submit "
                "each tick once, in order"
            )
        if self._pending and set(cameras) != set(self._pending[0][0]):
            raise SpecError(
                f"Augmenter.submit: tick {tick} has cameras {sorted(cameras)}, the tick "
                f"before {sorted(self._pending[0][0])}; every tick needs the same cameras"
            )
        now = time.monotonic()
        self._start = now if self._start is None else self._start
        self._stats.ticks_in += 1
        self._last_tick = tick
        # only what the worker reads travels (a worker process gets a pickled copy)
        self._pending.append(({name: _camera_only(f) for name, f in cameras.items()}, now))
        if len(self._pending) == self.chunk_frames:
            self._enqueue()

    def poll(self, timeout_s: float = 0.0) -> list[Augmented]:
        """The augmented frames made since the last poll (none when a `sink` takes them).

        With `timeout_s`, wait up to that long for the worker's next word when none is ready.
        """
        self._drain(timeout=timeout_s if not self._out else None)
        out, self._out = self._out, []
        return out

    def close(self) -> AugmentStats:
        """Send the last partial chunk, wait for every frame to come out, end the sessions."""
        if not self._closed:
            self._closed = True
            if self._pending and self._error is None:
                self._put(self._pending)
            self._pending = []
            self._put(None)
            self._wait_done()
        self._drain()
        return self.stats()

    def stats(self) -> AugmentStats:
        s = self._stats
        return replace(s, ticks_skipped=list(s.ticks_skipped), lag_s=list(s.lag_s))

    def __enter__(self) -> Augmenter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        elif not self._closed:  # the run failed: let the worker finish what it has, then stop
            self._closed = True
            self._pending = []
            self._put(None)
            with contextlib.suppress(Exception):  # the run's own error is the one to see
                self._wait_done()

    def _enqueue(self) -> None:
        chunk, self._pending = self._pending, []
        if self.overflow == "skip":
            try:
                self._queue.put_nowait(chunk)
                self._stats.chunks_sent += 1
            except queue.Full:
                self._stats.chunks_skipped += 1
                self._stats.ticks_skipped += [next(iter(t.values())).frame_index for t, _ in chunk]
            return
        waited = time.monotonic()
        self._put(chunk)
        self._stats.submit_wait_s += time.monotonic() - waited

    def _put(self, item: Any) -> None:
        while True:  # a worker that died must not leave the simulator blocked for ever
            try:
                self._queue.put(item, timeout=0.1)
                if item is not None:
                    self._stats.chunks_sent += 1
                return
            except queue.Full:
                self._drain()
                if self._done or not self._worker.is_alive():
                    return

    def _wait_done(self) -> None:
        while not self._done:
            self._drain(timeout=0.1)
            if not self._done and not self._worker.is_alive():
                self._drain()
                if not self._done:
                    self._error = self._error or BackendError(
                        f"the augmenter's worker {self.worker} died without a word "
                        f"(exit code {getattr(self._worker, 'exitcode', None)})"
                    )
                    self._done = True
        self._worker.join()
        self._raise()

    def _drain(self, timeout: float | None = None) -> None:
        """Take the worker's events: frames, the end, or its error."""
        while True:
            try:
                kind, payload = (
                    self._events.get(timeout=timeout) if timeout else (self._events.get_nowait())
                )
            except queue.Empty:
                break
            timeout = None
            if kind == "frame":
                lag_s, made_at, item = payload
                self._stats.frames_out += 1
                self._stats.lag_s.append(lag_s)
                self._stats.wall_s = made_at - (self._start or made_at)
                if item is not None:
                    self._out.append(item)
            elif kind == "error":
                self._error = self._error or payload
            else:  # "done"
                self._done = True
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._closed = True
            raise error


def _camera_only(frame: SensorFrame) -> SensorFrame:
    """The frame without what no control or label reads (LiDAR points, extras)."""
    return replace(frame, points_world=None, extras={})


def _work(
    config: _Config,
    sessions: dict[str, TransferSession],
    sink: Callable[[Augmented], None] | None,
    chunks: Any,
    events: Any,
) -> None:
    """The worker loop (a thread or a process): chunks in, events out."""
    parent = multiprocessing.parent_process()  # None in a thread
    try:
        engine = _Engine(config, sessions, sink, events)
        while True:
            try:
                chunk = chunks.get(timeout=1.0)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    return  # the simulator was killed: what is written stays as it is
                continue
            if chunk is None:
                break
            engine.run(chunk)
        engine.finish()
    except BaseException as exc:  # handed to the simulator's side
        events.put(("error", _picklable(exc)))
        while True:  # unblock a submit waiting for room
            try:
                chunks.get(timeout=0.2)
            except queue.Empty:
                break
    finally:
        events.put(("done", None))


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.dumps(exc)
        return exc
    except Exception:
        return BackendError(f"augmenter worker failed: {exc!r}")


class _Engine:
    """Controls, sessions and delivery for one run (lives in the worker)."""

    def __init__(
        self,
        config: _Config,
        sessions: dict[str, TransferSession],
        sink: Callable[[Augmented], None] | None,
        events: Any,
    ) -> None:
        from cosmos_sim.controls.backend import control_backend

        self.config, self.sessions, self.sink, self.events = config, sessions, sink, events
        backend = config.backend
        if isinstance(backend, str):
            backend = make_backend(backend, **dict(config.backend_options))
        self.backend: TransferBackend | None = backend
        self.functions = control_backend(config.device)
        self.labels: dict[tuple[str, int], tuple[SensorFrame, float]] = {}
        self.stats: dict[str, Any] = {}
        """Camera -> its ClipStats so far (depth range, palette)."""
        self.compact: dict[str, CompactIds] = {}
        self.hdmap_scene = None
        if config.xodr is not None and "hdmap" in config.controls:
            from cosmos_sim.bridges.opendrive import compile_map
            from cosmos_sim.controls.hdmap import compile_scene

            self.hdmap_scene = compile_scene(compile_map(config.xodr).geometry)

    def run(self, ticks: list[tuple[dict[str, SensorFrame], float]]) -> None:
        for camera in ticks[0][0]:
            frames = [tick[camera] for tick, _ in ticks]
            for frame, (_, submitted) in zip(frames, ticks, strict=True):
                self.labels[(camera, frame.frame_index)] = (frame, submitted)
            chunk = self.chunk(camera, frames)
            session = self.sessions.get(camera)
            if session is None:
                session = self.sessions[camera] = self._start_session(camera, chunk)
            session.push(chunk)
            self._deliver(camera, session.pull())

    def finish(self) -> None:
        try:
            for camera, session in self.sessions.items():
                self._deliver(camera, session.pull(wait=True))
        finally:
            for session in self.sessions.values():
                session.close()
            close = getattr(self.sink, "close", None)
            if callable(close):
                close()

    def _start_session(self, camera: str, chunk: Chunk) -> TransferSession:
        if self.backend is None:
            raise SpecError(
                f"camera {camera!r} has no session: the sessions given are for "
                f"{sorted(self.sessions)}; pass one per camera the bridge produces"
            )
        height, width = chunk.rgb.shape[1:3]
        c = self.config
        return start_session(
            self.backend, SessionOptions(camera, width, height, c.prompt, c.seed, c.fps)
        )

    def chunk(self, camera: str, frames: Sequence[SensorFrame]) -> Chunk:
        """One camera's frames as a session Chunk: RGB and controls at the session size."""
        from cosmos_sim.controls.table import (
            ClipStats,
            ControlSettings,
            FrameChunk,
            compute_controls,
            resolve_stats,
        )
        from cosmos_sim.video import bucket_size

        spec = frames[0].camera
        size = (spec.width, spec.height)
        if self.config.resolution == "bucket":
            size = bucket_size(*size)
        wanted = self.config.controls
        ticks = np.array([f.frame_index for f in frames], dtype=np.int64)
        images = FrameChunk(size[1], size[0], ticks=ticks.tolist())
        images.rgb = _fit(np.stack([f.rgb for f in frames]), size, "area")
        if "depth" in wanted:
            images.depth_m = _fit(_stack(frames, "depth_m", "depth"), size, "linear")
        if "seg" in wanted:
            images.instance_id = _fit(_stack(frames, "instance_id", "seg"), size, "nearest")
        if "hdmap" in wanted:
            from cosmos_sim.video import scale_intrinsics

            native = (spec.width, spec.height)
            images.K = np.stack([scale_intrinsics(f.K, native, size) for f in frames])
            images.cam_to_world = np.stack([f.cam_to_world for f in frames])
        # per-run statistics from the first chunk on: the depth range, the growing palette
        known = self.stats.get(camera) or ClipStats(depth_range_m=self.config.depth_range_m)
        stats = self.stats[camera] = resolve_stats(images, wanted, known, self.config.seed)
        used = stats
        if "seg" in wanted:  # the same colours, through seg_control's dense table
            compact = self.compact.get(camera)
            if compact is None or compact.keys != sorted(stats.palette):
                compact = self.compact[camera] = CompactIds(sorted(stats.palette))
            images.instance_id = compact(images.instance_id)
            colours = {i: stats.palette[key] for i, key in enumerate(compact.keys)}
            used = ClipStats(depth_range_m=stats.depth_range_m, palette=colours)
        settings = ControlSettings(seed=self.config.seed, hdmap_scene=self.hdmap_scene)
        controls = (
            compute_controls(images, wanted, used, settings=settings, backend=self.functions)
            if wanted
            else {}
        )
        return Chunk(ticks, images.rgb, controls, stats.palette)

    def _deliver(self, camera: str, outputs: Sequence[TickFrame]) -> None:
        from cosmos_sim.video import resize_frames

        for out in outputs:
            entry = self.labels.pop((camera, out.tick), None)
            if entry is None:
                raise BackendError(
                    f"the {camera!r} session returned tick {out.tick}, which was not pushed "
                    "(or was returned twice); a session returns each pushed tick once"
                )
            labels, submitted = entry
            spec = labels.camera
            frame = out.frame
            if frame.shape[:2] != (spec.height, spec.width):
                frame = resize_frames(frame[None], (spec.width, spec.height), "area")[0]
            made_at = time.monotonic()  # one clock for both processes (CLOCK_MONOTONIC)
            item = Augmented(out.tick, camera, frame, labels, made_at - submitted)
            if self.sink is not None:
                self.sink(item)
            payload = None if self.sink is not None else item
            self.events.put(("frame", (item.lag_s, made_at, payload)))


class CompactIds:
    """Maps a known set of (large, sparse) instance ids to 0..n-1 with one modulo and a table.

    PyBullet ids are `1 + body + (link + 1)·2^24`: too large for a dense table, and a binary
    search per pixel costs more than the rest of the chunk's controls. The smallest modulus
    under which the ids do not collide makes a perfect hash (found once per new id).
    """

    def __init__(self, keys: Sequence[int]) -> None:
        self.keys = list(keys)
        n = len(self.keys)
        self.modulus = next(
            m for m in range(max(n, 1), 1 << 26) if len({k % m for k in self.keys}) == n
        )
        self.slot = np.zeros(self.modulus, np.int32)
        self.slot[np.asarray(self.keys, np.int64) % self.modulus] = np.arange(n, dtype=np.int32)

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        return self.slot[ids % self.modulus]


def _fit(frames: np.ndarray, size: tuple[int, int], kind: str) -> np.ndarray:
    """`frames` at `size` (W, H): resized, or as they are when they already are that size."""
    from cosmos_sim.video import resize_frames

    return frames if frames.shape[2:0:-1] == size else resize_frames(frames, size, kind)


def _stack(frames: Sequence[SensorFrame], field_name: str, control: str) -> np.ndarray:
    missing = [f.frame_index for f in frames if getattr(f, field_name) is None]
    if missing:
        raise SpecError(
            f"camera {frames[0].sensor!r}, ticks {missing}: no {field_name}, which the "
            f"{control} control needs; capture it or leave {control} out of `controls`"
        )
    return np.stack([getattr(f, field_name) for f in frames])


def augment(
    ticks: Iterable[Iterable[SensorFrame] | Mapping[str, SensorFrame]], **options: Any
) -> Iterator[Augmented]:
    """Augment a stream of ticks (each a tick's frames): `Augmenter(**options)` around it."""
    with Augmenter(**options) as augmenter:
        for frames in ticks:
            augmenter.submit(frames)
            yield from augmenter.poll()
        augmenter.close()
        yield from augmenter.poll()
