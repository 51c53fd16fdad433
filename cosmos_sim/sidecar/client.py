"""Python client of the sidecar: numpy arrays in and out over one DEALER socket.

    with Client("tcp://127.0.0.1:5555") as sidecar:
        out = sidecar.controls(["depth", "edge"], rgb=rgb, depth_m=depth_m)

A Client is not thread-safe (neither is its socket): use one per thread. Arrays it returns
are read-only views on the received frames; `.copy()` one to write to it.

On the server's machine, `use_shared_memory(bytes)` moves arrays through a shared-memory
region instead of the socket; replies are then views on that region, valid until the
next call.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from cosmos_sim.sidecar.protocol import (
    SUPPORTED_VERSIONS,
    Limits,
    ProtocolError,
    decode_arrays,
    encode_request,
    unpack_header,
)
from cosmos_sim.sidecar.security import DEFAULT_BIND, apply_client_curve, load_public_key
from cosmos_sim.sidecar.shm import SharedRegion

#: Replies are checked against generous limits: the server already enforces its own.
_REPLY_LIMITS = Limits(
    max_message_bytes=2**40, max_array_bytes=2**40, max_arrays=4096, max_header_bytes=64 * 2**20
)


class SidecarError(Exception):
    """An error reply: `.code`, `.field` and `.fix` as PROTOCOL.md lists them."""

    def __init__(self, code: str, message: str, field: str = "", fix: str = "") -> None:
        super().__init__(
            f"{code}: {message}" + (f" [{field}]" if field else "") + (f" — {fix}" if fix else "")
        )
        self.code, self.message, self.field, self.fix = code, message, field, fix


class SidecarTimeout(TimeoutError):
    """No reply within the timeout (after the retries an idempotent method gets)."""


@dataclass
class Reply:
    result: dict[str, Any]
    arrays: dict[str, np.ndarray]


class Client:
    """A connection to a sidecar server; performs `hello` on connect."""

    def __init__(
        self,
        address: str = DEFAULT_BIND,
        *,
        timeout_s: float = 30.0,
        retries: int = 2,
        client_name: str = "cosmos-sim-python",
        curve_server_key: str | Path | bytes | None = None,
        curve_client_cert: str | Path | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        if curve_server_key is not None and curve_client_cert is None:
            raise ValueError("curve_client_cert: pass the client's .key_secret file too")
        self.address = address
        self.timeout_s = timeout_s
        self.retries = retries
        self._ids = itertools.count(1)
        self._ctx = context or zmq.Context.instance()
        self._socket = self._ctx.socket(zmq.DEALER)
        self._socket.linger = 0
        self._rcvtimeo_ms = -1
        if curve_server_key is not None:
            key = (
                curve_server_key
                if isinstance(curve_server_key, bytes)
                else (load_public_key(curve_server_key))
            )
            apply_client_curve(self._socket, key, curve_client_cert)
        self._socket.connect(address)
        self._idempotent: set[str] = {"hello"}
        self.version = 0
        self._shm: tuple[str, SharedRegion] | None = None
        try:
            self.server_info = self.hello(client_name)
        except BaseException:
            self.close()
            raise

    # -- plumbing ------------------------------------------------------------------------

    def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        arrays: Mapping[str, np.ndarray] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> Reply:
        """Send one request and wait for its reply; raises SidecarError on an error reply.

        Idempotent methods (hello lists them) are resent up to `retries` times after a
        timeout; other methods raise SidecarTimeout at once, since a resend could repeat
        their effect.
        """
        request_id = next(self._ids)
        shm_in = shm_reply = None
        if self._shm is not None and method not in ("shm_open", "shm_close"):
            handle, region = self._shm
            half = region.size // 2  # requests in the first half, replies in the second
            shm_in, shm_reply = (handle, region.view[:half], 0), (handle, half)
        frames = encode_request(
            request_id,
            method,
            params,
            arrays,
            version=self.version or SUPPORTED_VERSIONS[-1],
            shm_in=shm_in,
            shm_reply=shm_reply,
        )
        attempts = 1 + (self.retries if method in self._idempotent else 0)
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        for _ in range(attempts):
            self._socket.send_multipart(frames, copy=False)
            reply = self._wait(request_id, timeout_s)
            if reply is not None:
                return reply
        raise SidecarTimeout(
            f"{method}: no reply from {self.address} within {timeout_s} s "
            f"({attempts} attempt(s)); is `cosmos-sim serve` running there?"
        )

    def _wait(self, request_id: int, timeout_s: float) -> Reply | None:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            # A blocking recv with a timeout wakes faster than poll() followed by recv();
            # the option is set only when it changes (a setsockopt per request adds up).
            timeout_ms = max(1, int(left * 1000))
            if abs(timeout_ms - self._rcvtimeo_ms) > 50:
                self._socket.rcvtimeo = self._rcvtimeo_ms = timeout_ms
            try:
                frames = self._socket.recv_multipart(copy=False)
            except zmq.Again:
                return None
            if frames and len(frames[0]) == 0:  # a delimiter, if the server echoed one
                frames = frames[1:]
            header = unpack_header(frames[0].buffer, _REPLY_LIMITS)
            if header.get("id") != request_id:
                continue  # a late reply to an earlier attempt: drop it
            if not header.get("ok"):
                error = header.get("error") or {}
                raise SidecarError(
                    error.get("code", "?"),
                    error.get("message", ""),
                    error.get("field", ""),
                    error.get("fix", ""),
                )
            try:
                arrays = decode_arrays(
                    header.get("arrays", []),
                    [f.buffer for f in frames[1:]],
                    _REPLY_LIMITS,
                    shm=self._region,
                )
            except ProtocolError as exc:
                raise SidecarError(
                    exc.code, f"bad reply from server: {exc.message}", exc.field, exc.fix
                ) from None
            return Reply(header.get("result", {}), arrays)
        return None

    def _region(self, handle: str) -> memoryview | None:
        if self._shm is None or handle != self._shm[0]:
            return None
        return self._shm[1].view

    def use_shared_memory(self, size: int) -> SharedRegion:
        """Move arrays through a `size`-byte shared-memory region from now on (client and
        server on one machine): requests use its first half, replies its second; arrays
        that do not fit travel as frames. Returned arrays are then views on the region,
        valid until the next call (`.copy()` one to keep it)."""
        result = self.call("shm_open", {"size": size}).result
        self._shm = (result["shm"], SharedRegion.attach(result["name"], result["size"]))
        return self._shm[1]

    def close(self) -> None:
        if self._shm is not None:
            self._shm[1].close()
            self._shm = None
        if not self._socket.closed:
            self._socket.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # -- methods -------------------------------------------------------------------------

    def hello(self, client_name: str = "cosmos-sim-python") -> dict[str, Any]:
        result = self.call(
            "hello", {"versions": list(SUPPORTED_VERSIONS), "client": client_name}
        ).result
        self.version = result["version"]
        self._idempotent = set(result["idempotent"])
        return result

    def echo(self, params: Mapping[str, Any] | None = None, **arrays: np.ndarray) -> Reply:
        return self.call("echo", {"params": dict(params or {})}, arrays)

    def stats(self) -> dict[str, Any]:
        return self.call("stats").result

    def describe(self, *methods: str) -> dict[str, Any]:
        return self.call("describe", {"methods": list(methods)}).result["methods"]

    def controls(
        self,
        modalities: Sequence[str],
        *,
        rgb: np.ndarray | None = None,
        depth_m: np.ndarray | None = None,
        instance_id: np.ndarray | None = None,
        points_world: np.ndarray | None = None,
        **params: Any,
    ) -> dict[str, np.ndarray]:
        """Control frames for one tick, {modality: uint8 H×W×3}."""
        arrays = {
            k: v
            for k, v in (
                ("rgb", rgb),
                ("depth_m", depth_m),
                ("instance_id", instance_id),
                ("points_world", points_world),
            )
            if v is not None
        }
        return self.call("controls", {"modalities": list(modalities), **params}, arrays).arrays

    def episode_open(self, path: str, **params: Any) -> str:
        return self.call("episode_open", {"path": path, **params}).result["episode"]

    def episode_append(
        self,
        episode: str,
        sim_time_s: float,
        sensors: Mapping[str, Mapping[str, Any]],
        arrays: Mapping[str, np.ndarray] | None = None,
        **params: Any,
    ) -> int:
        sensors = {
            name: {
                k: np.asarray(v).tolist() if isinstance(v, np.ndarray) else v
                for k, v in info.items()
            }
            for name, info in sensors.items()
        }
        reply = self.call(
            "episode_append",
            {"episode": episode, "sim_time_s": sim_time_s, "sensors": sensors, **params},
            arrays,
        )
        return reply.result["index"]

    def episode_close(self, episode: str, complete: bool = True) -> dict[str, Any]:
        return self.call("episode_close", {"episode": episode, "complete": complete}).result

    def shutdown(self) -> None:
        self.call("shutdown")
