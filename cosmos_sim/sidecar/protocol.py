"""Wire format of the sidecar (PROTOCOL.md): a msgpack header frame, then one raw frame per array.

Everything here is pure functions on bytes and numpy arrays, shared by the server and the
Python client. Decoding never trusts the peer: sizes are checked before anything is
allocated, ext types (the only code-carrying msgpack feature) are refused, and every
failure is a `ProtocolError` that names the field and the fix.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import asdict, dataclass, field
from typing import Any

import msgpack
import numpy as np

#: Protocol versions this build speaks, oldest first; `hello` picks the highest common one.
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
PROTOCOL_VERSION = SUPPORTED_VERSIONS[-1]

#: dtypes an array frame may carry. No object, string, void or datetime dtypes.
ALLOWED_DTYPES: tuple[str, ...] = (
    "bool",
    "uint8",
    "int8",
    "uint16",
    "int16",
    "uint32",
    "int32",
    "uint64",
    "int64",
    "float16",
    "float32",
    "float64",
)
BYTE_ORDERS = ("<", ">", "|")
MAX_NDIM = 8
MAX_NAME_LEN = 128
MAX_ID_LEN = 128
MAX_DEPTH = 32
"""Deepest nesting of maps and lists in a header (the header map itself is level 1)."""

#: (dtype name, byte order) -> dtype, and (kind, itemsize) -> dtype name: `np.dtype(name)`
#: and `dtype.name` cost microseconds each, which add up per request.
_DTYPES = {
    (name, order): np.dtype(name).newbyteorder(order)
    if np.dtype(name).itemsize > 1
    else np.dtype(name)
    for name in ALLOWED_DTYPES
    for order in BYTE_ORDERS
}
_NAMES = {(np.dtype(name).kind, np.dtype(name).itemsize): name for name in ALLOWED_DTYPES}
REQUEST_KEYS = frozenset({"v", "id", "method", "params", "arrays", "shm_reply"})
DESCRIPTOR_KEYS = frozenset({"name", "dtype", "shape", "order", "frame", "shm", "offset"})
_FRAME_DESCRIPTOR_KEYS = DESCRIPTOR_KEYS - {"shm", "offset"}
SHM_ALIGN = 64
"""Reply arrays written to a shared-memory region start at multiples of this many bytes."""
ShmLookup = Callable[[str], "memoryview | None"]
"""Shared-memory handle -> the region's bytes (None: no such region for this client)."""
_NATIVE_ORDER = "<" if sys.byteorder == "little" else ">"


class ErrorCode:
    """Error codes of an error reply; PROTOCOL.md lists when each is sent."""

    BAD_HEADER = "BAD_HEADER"
    VERSION_UNSUPPORTED = "VERSION_UNSUPPORTED"
    HELLO_REQUIRED = "HELLO_REQUIRED"
    UNKNOWN_METHOD = "UNKNOWN_METHOD"
    BAD_PARAMS = "BAD_PARAMS"
    BAD_ARRAY = "BAD_ARRAY"
    DTYPE_NOT_ALLOWED = "DTYPE_NOT_ALLOWED"
    SHAPE_MISMATCH = "SHAPE_MISMATCH"
    TOO_LARGE = "TOO_LARGE"
    NOT_FOUND = "NOT_FOUND"
    NOT_READY = "NOT_READY"
    BUSY = "BUSY"
    JOB_FAILED = "JOB_FAILED"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    INTERNAL = "INTERNAL"

    @classmethod
    def all(cls) -> list[str]:
        return [v for k, v in vars(cls).items() if k.isupper()]


class ProtocolError(Exception):
    """A request the server refuses: becomes an error reply (code, message, field, fix)."""

    def __init__(self, code: str, message: str, field: str = "", fix: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.fix = fix
        self.request_id: int | str | None = None
        """The id of the request that failed, when its header got that far."""

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "field": self.field, "fix": self.fix}


@dataclass(frozen=True)
class Limits:
    """Per-message limits the server enforces (and reports in `hello`)."""

    max_message_bytes: int = 512 * 2**20
    """Sum of all frames of one request."""
    max_array_bytes: int = 256 * 2**20
    """One array frame (a 93-frame 1280×704 RGB clip is 251 MB)."""
    max_arrays: int = 64
    """Array frames after the header."""
    max_header_bytes: int = 2**20
    """The msgpack header frame."""
    max_inflight_per_client: int = 64
    """Requests of one client being worked on at once; more get BUSY."""
    max_image_side: int = 8192
    """Largest height or width a request may ask the server to make (pixels)."""
    max_dilate_px: int = 32
    """Largest LiDAR dilation (controls.lidar_dilate_px)."""
    max_boxes: int = 1024
    """Most hdmap boxes, and most traffic-light states, in one controls request."""
    max_sensors: int = 16
    """Most cameras plus LiDARs listed in one request (episode_open, episode_append)."""
    max_num_envs: int = 256
    """Most lanes of a VectorEnv (env_make.num_envs, env_branch.n)."""
    max_shm_bytes: int = 2**30
    """Shared memory all sessions together may hold open (shm_open)."""
    max_request_s: int = 60
    """Time limit of a stateless worker method (controls, transfer_progress,
    transfer_result, episode_read): past it the reply is TOO_LARGE."""

    def __post_init__(self) -> None:
        for key, value in asdict(self).items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"Limits.{key}: must be a positive int, got {value!r}")
        if self.max_array_bytes > self.max_message_bytes:
            raise ValueError("Limits.max_array_bytes: must not exceed max_message_bytes")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Request:
    """A decoded request: arrays are numpy views on the received frames (read-only)."""

    id: int | str | None
    method: str
    params: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    version: int = PROTOCOL_VERSION
    origins: dict[int, tuple[np.ndarray, Any]] = field(default_factory=dict)
    """id(array) -> (array, the frame it views, or ("shm", handle, offset)): a reply that
    returns an input array unchanged sends that frame again, or names the same shared
    memory, instead of wrapping the array (true zero-copy)."""
    shm_reply: tuple[str, int] | None = None
    """(shared-memory handle, offset) where the client wants the reply's arrays."""


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack ext type {code} is not allowed")


def unpack_header(data: bytes | memoryview, limits: Limits) -> Any:
    """msgpack → Python with no ext types, string map keys only and bounded lengths."""
    cap = limits.max_header_bytes
    return msgpack.unpackb(
        data,
        raw=False,
        strict_map_key=True,
        ext_hook=_refuse_ext,
        max_ext_len=0,
        max_str_len=cap,
        max_bin_len=cap,
        max_array_len=cap,
        max_map_len=cap,
        use_list=True,
    )


def _pack_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.size <= 256:
        return value.tolist()
    raise TypeError(
        f"cannot put {type(value).__name__} in a msgpack header; send large arrays as frames"
    )


def pack_header(header: Mapping[str, Any]) -> bytes:
    return msgpack.packb(header, use_bin_type=True, default=_pack_default)


def _buffer(frame: Any) -> memoryview:
    """A memoryview of a received frame (zmq.Frame with copy=False, bytes, or buffer)."""
    buf = getattr(frame, "buffer", None)
    return buf if buf is not None else memoryview(frame)


def peek_request_id(header: Any) -> int | str | None:
    """The request id of a header if it is a valid one, so even error replies carry it."""
    if isinstance(header, dict):
        rid = header.get("id")
        if _valid_id(rid):
            return rid
    return None


def _valid_id(rid: Any) -> bool:
    if isinstance(rid, bool):
        return False
    if isinstance(rid, int):
        return 0 <= rid < 2**64
    return isinstance(rid, str) and 0 < len(rid) <= MAX_ID_LEN


def decode_request(frames: Sequence[Any], limits: Limits, shm: ShmLookup | None = None) -> Request:
    """Validate and decode [header, *array frames]; raises ProtocolError (with `.request_id`).

    `shm` resolves the client's shared-memory handles (None: shared memory is refused)."""
    if not frames:
        raise ProtocolError(
            ErrorCode.BAD_HEADER, "empty message", "header", "send a msgpack header frame first"
        )
    bufs = [_buffer(f) for f in frames]
    if bufs[0].nbytes > limits.max_header_bytes:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"header frame is {bufs[0].nbytes} bytes, over max_header_bytes="
            f"{limits.max_header_bytes}",
            "header",
            "send bulk data as array frames, not inside the header",
        )
    try:
        header = unpack_header(bufs[0], limits)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise ProtocolError(
            ErrorCode.BAD_HEADER,
            f"header frame is not a valid msgpack document ({type(exc).__name__}: {exc})",
            "header",
            "the first frame must be one msgpack map with no ext types (PROTOCOL.md §Framing)",
        ) from None
    rid = peek_request_id(header)
    try:
        total = sum(b.nbytes for b in bufs)
        if total > limits.max_message_bytes:
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"message is {total} bytes, over max_message_bytes={limits.max_message_bytes}",
                "message",
                "send fewer or smaller arrays per request (limits are in the hello reply)",
            )
        return _decode_header(header, bufs[1:], limits, rid, frames[1:], shm)
    except ProtocolError as exc:
        exc.request_id = rid
        raise


def _decode_header(
    header: Any,
    bufs: list[memoryview],
    limits: Limits,
    rid: int | str | None,
    frames: Sequence[Any],
    shm: ShmLookup | None,
) -> Request:
    if not isinstance(header, dict):
        raise ProtocolError(
            ErrorCode.BAD_HEADER,
            f"header is a msgpack {type(header).__name__}, not a map",
            "header",
            "send a map with keys v, id, method, params, arrays",
        )
    _refuse_unknown_keys(header, REQUEST_KEYS, ErrorCode.BAD_HEADER, "header")
    version = header.get("v")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ProtocolError(
            ErrorCode.BAD_HEADER,
            f"header.v is {version!r}",
            "header.v",
            f"send the protocol version as an int (supported: {list(SUPPORTED_VERSIONS)})",
        )
    if rid is None:
        raise ProtocolError(
            ErrorCode.BAD_HEADER,
            f"header.id is {header.get('id')!r}",
            "header.id",
            f"send a request id: an int in [0, 2^64) or a string of 1..{MAX_ID_LEN} chars",
        )
    method = header.get("method")
    if not isinstance(method, str) or not method:
        raise ProtocolError(
            ErrorCode.BAD_HEADER,
            f"header.method is {method!r}",
            "header.method",
            "send the method name as a string (see the hello reply's methods)",
        )
    params = header.get("params", {})
    if not isinstance(params, dict):
        raise ProtocolError(
            ErrorCode.BAD_HEADER,
            f"header.params is a {type(params).__name__}",
            "header.params",
            "send params as a map (an empty map when the method takes none)",
        )
    check_values(params)
    descriptors = header.get("arrays", [])
    if not isinstance(descriptors, list):
        raise ProtocolError(
            ErrorCode.BAD_HEADER,
            f"header.arrays is a {type(descriptors).__name__}",
            "header.arrays",
            "send a list of array descriptors (empty when there are no array frames)",
        )
    shm_reply = header.get("shm_reply")
    if shm_reply is not None:
        shm_reply = _check_shm_reply(shm_reply, shm)
    origins: dict[int, tuple[np.ndarray, Any]] = {}
    arrays = decode_arrays(descriptors, bufs, limits, frames, origins, shm)
    return Request(rid, method, params, arrays, version, origins, shm_reply)


def _check_shm_reply(value: Any, shm: ShmLookup | None) -> tuple[str, int]:
    ok = isinstance(value, dict) and value.keys() == {"shm", "offset"}
    handle, offset = (value.get("shm"), value.get("offset")) if ok else (None, None)
    if not (ok and isinstance(offset, int) and not isinstance(offset, bool) and offset >= 0):
        raise ProtocolError(
            ErrorCode.BAD_HEADER,
            f"header.shm_reply is {value!r}",
            "header.shm_reply",
            "send {shm: a handle from shm_open, offset: int >= 0}, or leave it out",
        )
    if not isinstance(handle, str) or shm is None or shm(handle) is None:
        raise ProtocolError(
            ErrorCode.NOT_FOUND,
            f"no shared memory {handle!r} in this client's session",
            "header.shm_reply.shm",
            "pass a handle this connection got from shm_open",
        )
    return handle, offset


def check_values(params: dict[str, Any]) -> None:
    """Refuse nesting deeper than MAX_DEPTH and non-finite floats anywhere in `params`.

    NaN and ±Infinity have no strict-JSON form, and params end up in JSON files
    (episode.json, tick records), so they are refused on the wire rather than written.
    """
    if _clean(params, 2):  # the header is level 1; the usual case takes this fast path
        return
    stack: list[tuple[Any, int, tuple]] = [(params, 2, ())]
    while stack:  # find what is wrong, and where
        value, depth, path = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            where = "params" + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path)
            raise ProtocolError(
                ErrorCode.BAD_PARAMS,
                f"{where} is {value}",
                where,
                "send finite numbers: NaN and ±Infinity are refused (they have no JSON "
                "form); use null where the method allows it",
            )
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise ProtocolError(
                    ErrorCode.BAD_HEADER,
                    f"params nest deeper than {MAX_DEPTH} levels",
                    "header.params",
                    f"keep maps and lists within {MAX_DEPTH} levels (the header is level 1)",
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((v, depth + 1, (*path, k)) for k, v in items)


def _clean(value: Any, depth: int) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return depth <= MAX_DEPTH and all(_clean(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return depth <= MAX_DEPTH and all(_clean(v, depth + 1) for v in value)
    return True


def decode_arrays(
    descriptors: list[Any],
    bufs: Sequence[memoryview],
    limits: Limits,
    frames: Sequence[Any] = (),
    origins: dict[int, tuple[np.ndarray, Any]] | None = None,
    shm: ShmLookup | None = None,
) -> dict[str, np.ndarray]:
    """Array frames (and shared-memory arrays) → {name: read-only ndarray view}, checking
    every descriptor first.

    With `frames` and `origins`, records which frame (or region) each plain view came from.
    """
    in_frames = sum(1 for d in descriptors if not (isinstance(d, dict) and "shm" in d))
    if len(bufs) > limits.max_arrays or len(descriptors) > limits.max_arrays:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"{max(len(bufs), len(descriptors))} arrays, over max_arrays={limits.max_arrays}",
            "header.arrays",
            "send fewer arrays per request",
        )
    if in_frames != len(bufs):
        raise ProtocolError(
            ErrorCode.BAD_ARRAY,
            f"{in_frames} frame array descriptors but {len(bufs)} array frames",
            "header.arrays",
            "send exactly one frame after the header for each descriptor with a frame",
        )
    arrays: dict[str, np.ndarray] = {}
    used_frames: set[int] = set()
    for i, desc in enumerate(descriptors):
        where = f"header.arrays[{i}]"
        name, dtype, shape, frame = _check_descriptor(desc, where, len(bufs))
        if name in arrays:
            raise ProtocolError(
                ErrorCode.BAD_ARRAY,
                f"array name {name!r} repeats",
                f"{where}.name",
                "give each array a unique name",
            )
        if frame in used_frames:
            raise ProtocolError(
                ErrorCode.BAD_ARRAY,
                f"frame {frame} is described twice",
                f"{where}.frame",
                "each descriptor names a different frame (1 is the first after the header)",
            )
        nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow on huge shapes
        if nbytes > limits.max_array_bytes:
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"array {name!r} of shape {shape} {dtype.name} is {nbytes} bytes, over "
                f"max_array_bytes={limits.max_array_bytes}",
                f"{where}.shape",
                "send smaller arrays or split them over several requests",
            )
        if frame is None:
            buf, origin = _shm_slice(desc, where, name, nbytes, shm)
        else:
            used_frames.add(frame)
            buf = bufs[frame - 1]
            origin = frames[frame - 1] if frames else None
            if buf.nbytes != nbytes:
                raise ProtocolError(
                    ErrorCode.BAD_ARRAY,
                    f"array {name!r}: shape {shape} {dtype.name} needs {nbytes} bytes but "
                    f"frame {frame} has {buf.nbytes}",
                    f"{where}.shape",
                    "send the raw C-order bytes of the array, with shape and dtype matching it",
                )
        arr = np.frombuffer(buf, dtype=dtype).reshape(shape)
        arr.flags.writeable = False  # a view on the received frame: never write through it
        if dtype.byteorder not in ("=", "|", _NATIVE_ORDER):
            arr = arr.astype(dtype.newbyteorder("="))
            arr.flags.writeable = False
        elif origins is not None and origin is not None:
            origins[id(arr)] = (arr, origin)
        arrays[name] = arr
    return arrays


def _shm_slice(
    desc: dict, where: str, name: str, nbytes: int, shm: ShmLookup | None
) -> tuple[memoryview, tuple[str, str, int]]:
    """The bytes of an array that lives in a shared-memory region, bounds checked."""
    handle, offset = desc.get("shm"), desc.get("offset")
    region = shm(handle) if shm is not None and isinstance(handle, str) else None
    if region is None:
        raise ProtocolError(
            ErrorCode.NOT_FOUND,
            f"array {name!r}: no shared memory {handle!r} in this client's session",
            f"{where}.shm",
            "pass a handle this connection got from shm_open (or send the array as a frame)",
        )
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ProtocolError(
            ErrorCode.BAD_ARRAY,
            f"array {name!r}: offset {offset!r}",
            f"{where}.offset",
            "give the array's byte offset in the region, an int >= 0",
        )
    if offset + nbytes > region.nbytes:
        raise ProtocolError(
            ErrorCode.BAD_ARRAY,
            f"array {name!r}: bytes [{offset}, {offset + nbytes}) are outside the "
            f"{region.nbytes}-byte region",
            f"{where}.offset",
            "place the array inside the region (offset + nbytes <= size)",
        )
    return region[offset : offset + nbytes], ("shm", handle, offset)


def _check_descriptor(
    desc: Any, where: str, num_frames: int
) -> tuple[str, np.dtype, tuple, int | None]:
    # Fast path for a well-formed frame descriptor (every request has some): the same
    # rules as below in one expression; anything else falls through to the checks that
    # say exactly what is wrong.
    if type(desc) is dict and desc.keys() <= _FRAME_DESCRIPTOR_KEYS:
        name, shape, frame = desc.get("name"), desc.get("shape"), desc.get("frame")
        dtype_name, order = desc.get("dtype"), desc.get("order", "<")
        if (
            type(name) is str
            and 0 < len(name) <= MAX_NAME_LEN
            and type(frame) is int
            and 1 <= frame <= num_frames
            and type(dtype_name) is str
            and type(order) is str
            and type(shape) is list
            and len(shape) <= MAX_NDIM
            and all(type(d) is int and d >= 0 for d in shape)
        ):
            dtype = _DTYPES.get((dtype_name, order))
            if dtype is not None and (order != "|" or dtype.itemsize == 1):
                return name, dtype, tuple(shape), frame
    if not isinstance(desc, dict):
        raise ProtocolError(
            ErrorCode.BAD_ARRAY,
            f"descriptor is a {type(desc).__name__}",
            where,
            "send a map with name, dtype, shape, frame (and optionally order)",
        )
    _refuse_unknown_keys(desc, DESCRIPTOR_KEYS, ErrorCode.BAD_ARRAY, where, "descriptor")
    name = desc.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LEN:
        raise ProtocolError(
            ErrorCode.BAD_ARRAY,
            f"array name is {name!r}",
            f"{where}.name",
            f"give a string name of 1..{MAX_NAME_LEN} characters",
        )
    in_shm = "shm" in desc
    if in_shm == ("frame" in desc) or ("offset" in desc) != in_shm:
        raise ProtocolError(
            ErrorCode.BAD_ARRAY,
            f"array {name!r}: give either frame, or shm and offset",
            f"{where}.frame",
            "an array travels in a frame (frame) or in shared memory (shm, offset)",
        )
    missing = [key for key in ("dtype", "shape") if key not in desc]
    if missing:
        raise ProtocolError(
            ErrorCode.BAD_ARRAY,
            f"array {name!r}: descriptor has no {missing[0]!r}",
            f"{where}.{missing[0]}",
            "send name, dtype, shape and frame in every descriptor (order is optional)",
        )
    dtype_name = desc["dtype"]
    if not isinstance(dtype_name, str):
        raise ProtocolError(
            ErrorCode.BAD_ARRAY,
            f"array {name!r}: dtype is a {type(dtype_name).__name__}",
            f"{where}.dtype",
            f"send the dtype as a string, one of {list(ALLOWED_DTYPES)}",
        )
    if dtype_name not in ALLOWED_DTYPES:
        raise ProtocolError(
            ErrorCode.DTYPE_NOT_ALLOWED,
            f"array {name!r}: dtype {dtype_name!r} is not allowed",
            f"{where}.dtype",
            f"use one of {list(ALLOWED_DTYPES)}",
        )
    shape = desc.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_NDIM
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise ProtocolError(
            ErrorCode.BAD_ARRAY,
            f"array {name!r}: shape {shape!r}",
            f"{where}.shape",
            f"send a list of at most {MAX_NDIM} non-negative ints (C order)",
        )
    order = desc.get("order", "<")
    dtype = _DTYPES.get((dtype_name, order)) if isinstance(order, str) else None
    if dtype is None or (order == "|" and dtype.itemsize > 1):
        raise ProtocolError(
            ErrorCode.BAD_ARRAY,
            f"array {name!r}: byte order {order!r}",
            f"{where}.order",
            "use '<' (little-endian, the default) or '>' (big-endian); '|' only for one-byte "
            "dtypes (bool, uint8, int8)",
        )
    frame = desc.get("frame")
    if in_shm:
        return name, dtype, tuple(shape), None
    if isinstance(frame, bool) or not isinstance(frame, int) or not 1 <= frame <= num_frames:
        raise ProtocolError(
            ErrorCode.BAD_ARRAY,
            f"array {name!r}: frame {frame!r}",
            f"{where}.frame",
            f"give the frame's position after the header, 1..{num_frames}",
        )
    return name, dtype, tuple(shape), frame


def _refuse_unknown_keys(
    mapping: Mapping[str, Any], allowed: Set[str], code: str, where: str, what: str = ""
) -> None:
    if mapping.keys() <= allowed:
        return
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ProtocolError(
            code,
            f"unknown {what or where} key(s) {unknown}",
            f"{where}.{unknown[0]}",
            f"use only {sorted(allowed)}",
        )


def describe_arrays(
    arrays: Mapping[str, np.ndarray],
    origins: Mapping[int, tuple[np.ndarray, Any]] | None = None,
    shm_out: tuple[str, memoryview, int] | None = None,
) -> tuple[list[dict], list[Any]]:
    """Arrays → (descriptors, buffers to send as frames), without copying contiguous data.

    With `shm_out` = (handle, writable region, first offset), arrays that fit are copied
    into the region (at SHM_ALIGN-byte offsets) and described there instead of as frames.
    """
    descriptors, buffers = [], []
    origins = origins or {}
    handle, region, offset = shm_out if shm_out is not None else ("", None, 0)
    for name, value in arrays.items():
        arr = np.asarray(value)
        if not arr.flags.c_contiguous:  # (ascontiguousarray would turn a scalar into [1])
            arr = np.ascontiguousarray(arr)
        dtype = arr.dtype
        dtype_name = _NAMES.get((dtype.kind, dtype.itemsize))
        if dtype_name is None:
            raise TypeError(f"array {name!r}: dtype {dtype} is not in the protocol allow-list")
        order = (
            "|"
            if dtype.itemsize == 1
            else (_NATIVE_ORDER if dtype.byteorder in ("=", "|") else dtype.byteorder)
        )
        desc = {"name": name, "dtype": dtype_name, "shape": list(arr.shape), "order": order}
        origin = origins.get(id(value))
        source = origin[1] if origin is not None and origin[0] is value else None
        if isinstance(source, tuple):  # it came in shared memory: name the same bytes
            desc.update(shm=source[1], offset=source[2])
        elif source is None and region is not None and offset + arr.nbytes <= region.nbytes:
            dst = np.frombuffer(region, np.uint8, arr.nbytes, offset)
            dst[:] = arr.reshape(-1).view(np.uint8)
            desc.update(shm=handle, offset=offset)
            offset += -(-arr.nbytes // SHM_ALIGN) * SHM_ALIGN
        else:
            buffers.append(source if source is not None else arr if arr.ndim else arr.reshape(1))
            desc["frame"] = len(buffers)
        descriptors.append(desc)
    return descriptors, buffers


def encode_request(
    request_id: int | str,
    method: str,
    params: Mapping[str, Any] | None = None,
    arrays: Mapping[str, np.ndarray] | None = None,
    version: int = PROTOCOL_VERSION,
    shm_in: tuple[str, memoryview, int] | None = None,
    shm_reply: tuple[str, int] | None = None,
) -> list[Any]:
    """A request's frames; `shm_in` places its arrays in shared memory, `shm_reply` asks
    for the reply's arrays there (PROTOCOL.md §2.5)."""
    fields = {"v": version, "id": request_id, "method": method, "params": dict(params or {})}
    if shm_reply is not None:
        fields["shm_reply"] = {"shm": shm_reply[0], "offset": shm_reply[1]}
    return _encode(fields, arrays, shm_out=shm_in)


def encode_reply(
    request_id: int | str | None,
    result: Mapping[str, Any] | None = None,
    arrays: Mapping[str, np.ndarray] | None = None,
    version: int = PROTOCOL_VERSION,
    origins: Mapping[int, tuple[np.ndarray, Any]] | None = None,
    shm_out: tuple[str, memoryview, int] | None = None,
) -> list[Any]:
    fields = {"v": version, "id": request_id, "ok": True, "result": dict(result or {})}
    return _encode(fields, arrays, origins, shm_out)


def _encode(
    fields: dict[str, Any],
    arrays: Mapping[str, np.ndarray] | None,
    origins: Mapping[int, tuple[np.ndarray, Any]] | None = None,
    shm_out: tuple[str, memoryview, int] | None = None,
) -> list[Any]:
    """The header (`fields` plus the array descriptors) and one frame per framed array."""
    descriptors, buffers = describe_arrays(arrays or {}, origins, shm_out)
    return [pack_header({**fields, "arrays": descriptors}), *buffers]


def encode_error(
    request_id: int | str | None, error: ProtocolError, version: int = PROTOCOL_VERSION
) -> list[bytes]:
    header = {"v": version, "id": request_id, "ok": False, "error": error.to_dict(), "arrays": []}
    return [pack_header(header)]
