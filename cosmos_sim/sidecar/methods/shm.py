"""Shared memory for frames between a client and a server on one machine.

`shm_open` creates a region for the session; requests may then place arrays in it and
ask for the reply's arrays there (PROTOCOL.md §2.5), skipping the socket for the bulk
bytes. Offered only where both sides share a machine: ipc or loopback without CURVE.
"""

from __future__ import annotations

import threading

from cosmos_sim.sidecar.protocol import ErrorCode, ProtocolError
from cosmos_sim.sidecar.schema import Call, Method, Param, Result
from cosmos_sim.sidecar.security import is_local_endpoint
from cosmos_sim.sidecar.shm import SharedRegion

KIND = "shm"
_LOCK = threading.Lock()
"""Guards the server-wide byte count of open regions."""


def shm_open(call: Call) -> Result:
    server, size = call.server, call.params["size"]
    if server.curve or not is_local_endpoint(server.endpoint):
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            "shared memory needs client and server on one machine",
            "",
            "send arrays as frames (this server is reached over a network)",
        )
    limit = server.limits.max_shm_bytes
    with _LOCK:
        if server.shm_bytes + size > limit:
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"{size} bytes more would put open shared memory over max_shm_bytes={limit} "
                f"({server.shm_bytes} bytes are open)",
                "params.size",
                "ask for a smaller region, or close regions you no longer use (shm_close)",
            )
        server.shm_bytes += size
    try:
        region = SharedRegion.create(size)
    except OSError as exc:
        with _LOCK:
            server.shm_bytes -= size
        raise ProtocolError(
            ErrorCode.BAD_PARAMS, f"cannot create shared memory: {exc}", "", "send frames"
        ) from None

    def close() -> None:
        region.close()
        with _LOCK:
            server.shm_bytes -= size

    handle = call.session.add(KIND, region, close)
    return {"shm": handle, "name": region.name, "path": str(region.path), "size": size}, {}


def shm_close(call: Call) -> Result:
    call.session.get(call.params["shm"], KIND, "shm")
    call.session.pop(call.params["shm"]).close()
    return {"closed": True}, {}


METHODS = [
    Method(
        "shm_open",
        shm_open,
        "Create a shared-memory region for this session's arrays (same machine only); "
        "returns its handle and its shm_open name.",
        params={"size": Param(int, doc="bytes, 1..max_message_bytes")},
        stateful=True,
    ),
    Method(
        "shm_close",
        shm_close,
        "Unmap and remove a shared-memory region (sessions remove theirs when they end).",
        params={"shm": Param(str, doc="handle from shm_open")},
        stateful=True,
    ),
]
