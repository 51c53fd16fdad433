"""Methods every client uses: hello (version negotiation), describe, echo, stats, shutdown."""

from __future__ import annotations

from cosmos_sim import __version__
from cosmos_sim.sidecar.protocol import (
    ALLOWED_DTYPES,
    SUPPORTED_VERSIONS,
    ErrorCode,
    ProtocolError,
)
from cosmos_sim.sidecar.schema import Call, Method, Param, Result


def hello(call: Call) -> Result:
    offered = call.params["versions"]
    common = set(SUPPORTED_VERSIONS) & {v for v in offered if isinstance(v, int)}
    if not common:
        raise ProtocolError(
            ErrorCode.VERSION_UNSUPPORTED,
            f"no common protocol version: client offers {offered}, server speaks "
            f"{list(SUPPORTED_VERSIONS)}",
            "params.versions",
            f"offer one of {list(SUPPORTED_VERSIONS)} (upgrade the older side)",
        )
    version = max(common)
    server = call.server
    server.open_session(call.identity, version, call.params["client"])
    methods = server.methods.values()
    return {
        "version": version,
        "server": f"cosmos-sim {__version__}",
        "methods": sorted(m.name for m in methods),
        "idempotent": sorted(m.name for m in methods if m.idempotent),
        "limits": {
            **server.limits.to_dict(),
            "max_sessions": server.max_sessions,
            "max_sessions_per_peer": server.max_sessions_per_peer,
            "session_idle_s": server.session_idle_s,
        },
        "dtypes": list(ALLOWED_DTYPES),
        "curve": server.curve,
    }, {}


def describe(call: Call) -> Result:
    methods = call.server.methods
    names = call.params["methods"] or sorted(methods)
    unknown = [n for n in names if n not in methods]
    if unknown:
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            f"no method {unknown[0]!r}",
            "params.methods",
            f"name methods from {sorted(methods)}",
        )
    return {"methods": {name: methods[name].describe() for name in names}}, {}


def echo(call: Call) -> Result:
    return {"params": call.params["params"]}, call.arrays


def stats(call: Call) -> Result:
    server = call.server
    snapshot = server.stats.snapshot()
    snapshot.update(
        sessions=len(server.sessions), queued=server.queue_depth(), workers=server.num_workers
    )
    if server.jobs is not None:
        snapshot["jobs"] = server.jobs.counts()
    return snapshot, {}


def shutdown(call: Call) -> Result:
    call.server.request_stop()
    return {"stopping": True}, {}


METHODS = [
    Method(
        "hello",
        hello,
        "Negotiate the protocol version and open this client's session; returns the "
        "method names, limits and dtypes.",
        params={
            "versions": Param(list, doc="protocol versions the client speaks, e.g. [1]"),
            "client": Param(str, "", doc="free text naming the client, for logs"),
        },
        idempotent=True,
        inline=True,
    ),
    Method(
        "describe",
        describe,
        "Params and arrays of each method, as the server checks them.",
        params={"methods": Param(list, [], doc="method names; empty for all")},
        idempotent=True,
        inline=True,
    ),
    Method(
        "echo",
        echo,
        "Return the arrays and params.params unchanged (protocol overhead, benchmarks).",
        params={"params": Param(dict, {}, doc="any map, returned as result.params")},
        arrays=None,
        idempotent=True,
        inline=True,
    ),
    Method(
        "stats",
        stats,
        "Requests, errors and latency percentiles (ms) overall and per method.",
        idempotent=True,
        inline=True,
    ),
    Method(
        "shutdown",
        shutdown,
        "Stop the server after replying: in-flight requests finish (up to 5 s), open "
        "episodes are closed as incomplete, envs and jobs are closed.",
        inline=True,
    ),
]
