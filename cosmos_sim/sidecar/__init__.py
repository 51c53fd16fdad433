"""The ZeroMQ sidecar: any simulator, in any language, over the msgpack protocol of PROTOCOL.md.

`cosmos-sim serve` runs a `Server`; Python programs talk to it with `Client`.
"""

from cosmos_sim.sidecar.client import Client, Reply, SidecarError, SidecarTimeout
from cosmos_sim.sidecar.protocol import (
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    ErrorCode,
    Limits,
    ProtocolError,
)
from cosmos_sim.sidecar.security import DEFAULT_BIND, BindRefused, keygen
from cosmos_sim.sidecar.server import Server

__all__ = [
    "DEFAULT_BIND",
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "BindRefused",
    "Client",
    "ErrorCode",
    "Limits",
    "ProtocolError",
    "Reply",
    "Server",
    "SidecarError",
    "SidecarTimeout",
    "keygen",
]
