"""Augmentation streams: a simulator pushes camera frames, pulls augmented frames back.

`stream_open` starts a `cosmos_sim.augment.Augmenter` for one camera on the server's
transfer backend (`--transfer-backend`), kept in the client's session; `stream_push` hands
it one tick (RGB plus the depth and ids its controls need), `stream_pull` returns the
augmented frames ready so far with the ticks they show, `stream_end` waits for every pushed
tick to come out and returns the run's figures, `stream_close` drops the stream. Labels stay
with the client: each frame names its tick, and the client holds that tick's ground truth.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from cosmos_sim.sidecar.budget import INT64_MAX, image_size, is_matrix
from cosmos_sim.sidecar.methods.episodes import _spec
from cosmos_sim.sidecar.protocol import ErrorCode, ProtocolError
from cosmos_sim.sidecar.schema import ArraySpec, Call, Method, Param, Result
from cosmos_sim.types import CameraSpec, SensorFrame, SpecError

KIND = "stream"
MAX_CHUNK_FRAMES = 93
"""Longest chunk (a Transfer 2.5 chunk)."""
MAX_QUEUED_CHUNKS = 8
MAX_WAIT_S = 10.0
"""Longest a `stream_pull` waits for a frame (the client's timeout must exceed it)."""
#: array -> (SensorFrame field, the control that needs it)
FIELDS = {"depth_m": "depth", "instance_id": "seg"}


class Stream:
    """One client's stream: the Augmenter, the frames not yet pulled, how it ended."""

    def __init__(self, augmenter: Any, camera: CameraSpec, fps: float) -> None:
        self.augmenter, self.camera, self.fps = augmenter, camera, fps
        self.ready: deque[Any] = deque()
        self.last_tick = -1
        self.stats: dict[str, Any] | None = None
        """The run's figures once `stream_end` returned."""
        self.failure = ""

    def collect(self, wait_s: float = 0.0) -> None:
        """Move finished frames into `ready`; a backend failure fails the stream for good."""
        if self.failure:
            raise _failed(self.failure)
        try:
            self.ready.extend(self.augmenter.poll(timeout_s=wait_s if not self.ready else 0))
        except Exception as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
            raise _failed(self.failure) from None

    def close(self) -> None:
        self.augmenter.__exit__(RuntimeError, None, None)  # stop without waiting for output


def _failed(message: str) -> ProtocolError:
    return ProtocolError(
        ErrorCode.JOB_FAILED,
        f"the stream's backend failed: {message}",
        "params.stream",
        "stream_close this stream, fix what the message names and stream_open a new one",
    )


def _in_range(p: dict[str, Any], name: str, lo: float, hi: float) -> None:
    if not lo <= p[name] <= hi:
        raise ProtocolError(
            ErrorCode.BAD_PARAMS, f"params.{name} is {p[name]}", f"params.{name}",
            f"send a value in [{lo}, {hi}]",
        )  # fmt: skip


def stream_open(call: Call) -> Result:
    from cosmos_sim.augment import Augmenter

    p = call.params
    if not isinstance(p["camera"], dict):
        raise ProtocolError(
            ErrorCode.BAD_PARAMS, "params.camera is not a map", "params.camera",
            "send the camera as a map {name, width, height, fov_deg or K}",
        )  # fmt: skip
    image_size(p["camera"], "height", "width", call.server.limits, where="camera.")
    camera = _spec(CameraSpec, p["camera"], "camera")
    _in_range(p, "seed", 0, INT64_MAX)
    _in_range(p, "chunk_frames", 1, MAX_CHUNK_FRAMES)
    _in_range(p, "max_chunks_queued", 1, MAX_QUEUED_CHUNKS)
    if not 0 < p["fps"] <= 1000:
        raise ProtocolError(
            ErrorCode.BAD_PARAMS, f"params.fps is {p['fps']}", "params.fps", "send 0 < fps <= 1000"
        )
    augmenter = Augmenter(
        call.server.transfer_backend,
        backend_options=call.server.transfer_options,
        prompt=p["prompt"],
        seed=p["seed"],
        chunk_frames=p["chunk_frames"],
        max_chunks_queued=p["max_chunks_queued"],
        overflow=p["overflow"],
        resolution=p["resolution"],
        fps=p["fps"],
    )
    stream = Stream(augmenter, camera, p["fps"])
    handle = call.session.add(KIND, stream, stream.close)
    needs = [array for array, control in FIELDS.items() if control in augmenter.controls]
    return {
        "stream": handle,
        "backend": call.server.transfer_backend,
        "controls": list(augmenter.controls),
        "needs_arrays": ["rgb", *needs],
    }, {}


def stream_push(call: Call) -> Result:
    p = call.params
    stream: Stream = call.session.get(p["stream"], KIND, "stream")
    if stream.stats is not None:
        raise ProtocolError(
            ErrorCode.BAD_PARAMS, "the stream has ended (stream_end)", "params.stream",
            "stream_open a new stream to push more ticks",
        )  # fmt: skip
    stream.collect()
    tick = p["tick"]
    if not stream.last_tick < tick <= INT64_MAX:
        raise ProtocolError(
            ErrorCode.BAD_PARAMS, f"params.tick is {tick}, after tick {stream.last_tick}",
            "params.tick", "push each tick once, in increasing order (>= 0)",
        )  # fmt: skip
    for key, rows in (("cam_to_world", 4), ("K", 3)):
        if p[key] is not None and not is_matrix(p[key], rows, rows):
            raise ProtocolError(
                ErrorCode.BAD_PARAMS, f"params.{key} is not a {rows}×{rows} matrix",
                f"params.{key}", f"send {rows} lists of {rows} numbers (row-major)",
            )  # fmt: skip
    cam = stream.camera
    for name, control in FIELDS.items():
        if control in stream.augmenter.controls and name not in call.arrays:
            raise ProtocolError(
                ErrorCode.BAD_ARRAY, f"array {name!r} is missing", f"arrays.{name}",
                f"the {control} control of this stream's backend needs {name} every tick",
            )  # fmt: skip
    rgb = call.arrays["rgb"]
    if rgb.shape[:2] != (cam.height, cam.width):
        raise ProtocolError(
            ErrorCode.SHAPE_MISMATCH, f"array 'rgb' is {rgb.shape[1]}×{rgb.shape[0]}",
            "arrays.rgb.shape", f"send the camera's size: {cam.height}×{cam.width}×3",
        )  # fmt: skip
    pose = np.eye(4) if p["cam_to_world"] is None else np.asarray(p["cam_to_world"], float)
    sim_time_s = tick / stream.fps if p["sim_time_s"] is None else p["sim_time_s"]
    try:
        frame = SensorFrame(
            cam.name, tick, sim_time_s, pose, camera=cam,
            K=None if p["K"] is None else np.asarray(p["K"], float),
            **{name: call.arrays.get(name) for name in ("rgb", "depth_m", "instance_id",
                                                        "class_id")},
        )  # fmt: skip
    except SpecError as exc:
        field = "params.cam_to_world" if "cam_to_world" in str(exc) else "params.K"
        field = next((f"arrays.{n}" for n in call.arrays if f".{n}" in str(exc)), field)
        raise ProtocolError(ErrorCode.BAD_PARAMS, str(exc), field, "fix the named field") from None
    try:
        stream.augmenter.submit([frame])
    except Exception as exc:  # the input was checked above: this is the backend failing
        stream.failure = f"{type(exc).__name__}: {exc}"
        raise _failed(stream.failure) from None
    stream.last_tick = tick
    stats = stream.augmenter.stats()
    return {
        "tick": tick,
        "ticks_in": stats.ticks_in,
        "chunks_skipped": stats.chunks_skipped,
        "frames_ready": len(stream.ready),
    }, {}


def stream_pull(call: Call) -> Result:
    p = call.params
    stream: Stream = call.session.get(p["stream"], KIND, "stream")
    _in_range(p, "max_frames", 1, call.server.limits.max_arrays)
    _in_range(p, "wait_s", 0.0, MAX_WAIT_S)
    stream.collect(p["wait_s"])
    cam = stream.camera
    fits = max(1, call.server.limits.max_array_bytes // (cam.width * cam.height * 3))
    items = [stream.ready.popleft() for _ in range(min(p["max_frames"], fits, len(stream.ready)))]
    arrays = {"frames": np.stack([item.frame for item in items])} if items else {}
    return {
        "ticks": [item.tick for item in items],
        "lag_s": [item.lag_s for item in items],
        "remaining": len(stream.ready),
        "ended": stream.stats is not None,
    }, arrays


def stream_end(call: Call) -> Result:
    stream: Stream = call.session.get(call.params["stream"], KIND, "stream")
    if stream.stats is None:
        if stream.failure:
            raise _failed(stream.failure)
        try:
            stats = stream.augmenter.close()
        except Exception as exc:
            stream.failure = f"{type(exc).__name__}: {exc}"
            raise _failed(stream.failure) from None
        stream.stats = stats.as_dict()
        stream.collect()
    return {"stats": stream.stats, "remaining": len(stream.ready)}, {}


def stream_close(call: Call) -> Result:
    call.session.get(call.params["stream"], KIND, "stream")
    call.session.pop(call.params["stream"]).close()
    return {"closed": True}, {}


_HANDLE = {"stream": Param(str, doc="handle from stream_open")}
_IMAGE = ("H", "W")

METHODS = [
    Method(
        "stream_open",
        stream_open,
        "Start augmenting one camera's frames on the server's transfer backend.",
        params={
            "camera": Param(dict, doc="camera map {name, width, height, fov_deg or K, ...}"),
            "prompt": Param(str, "", doc="text prompt; empty: the default Cosmos prompt"),
            "seed": Param(int, 0),
            "chunk_frames": Param(int, 8, doc=f"ticks per chunk, 1..{MAX_CHUNK_FRAMES}"),
            "max_chunks_queued": Param(int, 2, doc=f"chunks that may wait, 1..{MAX_QUEUED_CHUNKS}"),
            "overflow": Param(str, "block", choices=("block", "skip")),
            "resolution": Param(str, "bucket", choices=("bucket", "camera")),
            "fps": Param(float, 16.0, doc="ticks per second of the pushed frames"),
        },
        stateful=True,
    ),
    Method(
        "stream_push",
        stream_push,
        "Push one tick of the camera (rgb, and the depth/ids the backend's controls need).",
        params={
            **_HANDLE,
            "tick": Param(int, doc="tick index, increasing"),
            "sim_time_s": Param((float, type(None)), None),
            "cam_to_world": Param((list, type(None)), None, doc="4×4 pose; null: identity"),
            "K": Param((list, type(None)), None, doc="3×3 intrinsics; null: from the camera"),
        },
        arrays={
            "rgb": ArraySpec(("uint8",), (*_IMAGE, 3), required=True, doc="H×W×3 RGB"),
            "depth_m": ArraySpec(("float32",), _IMAGE, doc="H×W metres"),
            "instance_id": ArraySpec(("int32",), _IMAGE, doc="H×W ids, 0 background"),
            "class_id": ArraySpec(("int32",), _IMAGE, doc="H×W class ids"),
        },
        stateful=True,
    ),
    Method(
        "stream_pull",
        stream_pull,
        "The augmented frames ready so far (array frames) and the ticks they show.",
        params={
            **_HANDLE,
            "max_frames": Param(int, 16, doc="at most this many frames"),
            "wait_s": Param(float, 0.0, doc=f"wait up to this long for one, 0..{MAX_WAIT_S}"),
        },
        stateful=True,
    ),
    Method(
        "stream_end",
        stream_end,
        "No more ticks: wait until every pushed tick is out; returns the run's figures.",
        params=_HANDLE,
        stateful=True,
    ),
    Method(
        "stream_close",
        stream_close,
        "Drop the stream and its frames.",
        params=_HANDLE,
        stateful=True,
    ),  # fmt: skip
]
