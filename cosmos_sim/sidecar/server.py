"""The sidecar server: a ZeroMQ ROUTER in front of a pool of worker threads.

One I/O thread owns the ROUTER socket. It decodes and checks each request, answers the
microsecond methods (hello, describe, echo, stats, shutdown) itself, and queues the rest
for the workers. Each worker owns a PUSH socket back to the I/O thread's inproc PULL, so
no socket is ever touched by two threads. Transfer jobs run on job threads of their own
and are polled, so neither they nor a slow control computation stall other clients. A
client's stateful requests (episodes, envs, jobs) run one at a time, in arrival order.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import struct
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from cosmos_sim.controls.backend import check_device, control_backend
from cosmos_sim.episode import EpisodeError
from cosmos_sim.sidecar.budget import check_budget
from cosmos_sim.sidecar.protocol import (
    PROTOCOL_VERSION,
    ErrorCode,
    Limits,
    ProtocolError,
    Request,
    decode_request,
    encode_error,
    encode_reply,
)
from cosmos_sim.sidecar.schema import Call, Method
from cosmos_sim.sidecar.security import DEFAULT_BIND, CurveKeys, check_bind
from cosmos_sim.types import SpecError

log = logging.getLogger("cosmos_sim.sidecar")

#: Gymnasium ids a client may make with env_make unless the server is given others.
DEFAULT_ENV_IDS = ("cosmos_sim/LearnedPushCube-v0", "cosmos_sim/PushCube-v0")
_REPLIES_ENDPOINT = "inproc://cosmos-sim-sidecar-replies-{}"
_POLL_MS = 100
_REAP_EVERY_S = 1.0
"""How often idle sessions are looked for (more often when session_idle_s is shorter)."""
_LATENCY_WINDOW = 10_000
_HEARTBEAT_IVL_MS = 5_000
_HEARTBEAT_TIMEOUT_MS = 20_000
"""ZMTP pings: a peer that answers none for this long is disconnected (its session ends)."""


@dataclass
class Resource:
    """A stateful thing a client opened (episode, env, job), closed when the session ends."""

    kind: str
    obj: Any
    close: Callable[[], None]


@dataclass
class Session:
    """Per-client state, keyed by the client's ZeroMQ routing identity."""

    identity: bytes
    version: int
    client: str
    peer: str = ""
    """Who is connected: the CURVE public key, the TCP address or ipc's uid:gid:pid."""
    last_seen: float = field(default_factory=time.monotonic)
    resources: dict[str, Resource] = field(default_factory=dict)
    running: bool = False
    """A stateful method of this client is queued or running; later ones wait in `waiting`."""
    waiting: deque[_Task] = field(default_factory=deque)
    order_lock: threading.Lock = field(default_factory=threading.Lock)
    """Guards `running` and `waiting` (the I/O thread adds, the worker that finishes takes)."""

    def admit(self, task: _Task) -> bool:
        """True: run `task` now; False: it waits behind this client's running stateful task."""
        with self.order_lock:
            if self.running:
                self.waiting.append(task)
                return False
            self.running = True
            return True

    def next_waiting(self) -> _Task | None:
        """The next stateful task of this client, in arrival order, once one finished."""
        with self.order_lock:
            if self.waiting:
                return self.waiting.popleft()
            self.running = False
            return None

    def add(self, kind: str, obj: Any, close: Callable[[], None]) -> str:
        handle = f"{kind}-{secrets.token_hex(8)}"
        self.resources[handle] = Resource(kind, obj, close)
        return handle

    def get(self, handle: Any, kind: str, param: str) -> Any:
        resource = self.resources.get(handle) if isinstance(handle, str) else None
        if resource is None or resource.kind != kind:
            raise ProtocolError(
                ErrorCode.NOT_FOUND,
                f"no {kind} {handle!r} in this client's session",
                f"params.{param}",
                "pass a handle that this connection got from the method that made it "
                "(handles are per connection and end with its session)",
            )
        return resource.obj

    def region(self, handle: str) -> memoryview | None:
        """The bytes of this session's shared-memory region `handle` (None: no such)."""
        resource = self.resources.get(handle)
        return resource.obj.view if resource is not None and resource.kind == "shm" else None

    def pop(self, handle: str) -> Resource:
        return self.resources.pop(handle)

    def close_all(self) -> None:
        for handle in list(self.resources):
            resource = self.resources.pop(handle)
            try:
                resource.close()
            except Exception:  # one broken resource must not keep the others open
                log.exception("closing %s %s failed", resource.kind, handle)


class Stats:
    """Request counts and latency windows, shared by the I/O and worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.requests = 0
        self.errors = 0
        self.dropped_replies = 0
        self._by_method: dict[str, list[int]] = {}
        self._latency: dict[str, deque[float]] = {}

    def record(self, method: str, ok: bool, seconds: float) -> None:
        with self._lock:
            self.requests += 1
            counts = self._by_method.setdefault(method, [0, 0])
            counts[0] += 1
            if not ok:
                self.errors += 1
                counts[1] += 1
            self._latency.setdefault(method, deque(maxlen=_LATENCY_WINDOW)).append(seconds)

    def dropped(self) -> None:
        with self._lock:
            self.dropped_replies += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            by_method = {k: list(v) for k, v in self._by_method.items()}
            latency = {k: np.array(v) for k, v in self._latency.items()}
            out = {
                "requests": self.requests,
                "errors": self.errors,
                "dropped_replies": self.dropped_replies,
            }
        every = np.concatenate(list(latency.values())) if latency else np.zeros(0)
        out["uptime_s"] = time.monotonic() - self.started
        out["latency_ms"] = _percentiles(every)
        out["methods"] = {
            name: {"requests": n, "errors": e, "latency_ms": _percentiles(latency[name])}
            for name, (n, e) in sorted(by_method.items())
        }
        return out


def _percentiles(seconds: np.ndarray) -> dict[str, float | None]:
    if seconds.size == 0:
        return {"p50": None, "p99": None, "max": None}
    p50, p99 = np.percentile(seconds, [50, 99]) * 1e3
    return {"p50": float(p50), "p99": float(p99), "max": float(seconds.max() * 1e3)}


@dataclass
class _Task:
    envelope: list[Any]
    request: Request
    method: Method
    session: Session | None
    started: float
    deadline: float | None = None
    """Stateless methods only: when the I/O thread answers TOO_LARGE in the worker's place."""
    answered: bool = False
    """The reply went out (guarded by Server._answer_lock, with a deadline)."""


class Server:
    """The sidecar: `Server(bind).serve_forever()`, or `with Server(bind).start(): ...`.

    `bind` is ipc or loopback TCP unless `curve_keys` (a `cosmos-sim keygen` folder) is
    given; `workers` threads run the slower methods; episode, clips and map paths are
    relative to `data_dir`; transfer jobs use `transfer_backend` with `transfer_options`
    on `job_workers` threads; `env_make` serves only `env_ids`; `controls` runs on `device`
    ("auto": the GPU kernels when CUDA is visible, "cpu" or "cuda", as `cosmos-sim controls
    --device`); `methods` replaces the method table (tests add methods this way). A session
    ends when its connection closes or misses heartbeats, or after `session_idle_s` idle;
    at most `max_sessions` exist, `max_sessions_per_peer` of them per peer.
    """

    def __init__(
        self,
        bind: str = DEFAULT_BIND,
        *,
        workers: int = 4,
        limits: Limits | None = None,
        curve_keys: str | Path | CurveKeys | None = None,
        data_dir: str | Path = "runs/sidecar",
        session_idle_s: float = 3600.0,
        max_sessions: int = 1024,
        max_sessions_per_peer: int = 256,
        transfer_backend: str = "appearance",
        transfer_options: Mapping[str, Any] | None = None,
        job_workers: int = 1,
        env_ids: Sequence[str] | None = None,
        device: str = "auto",
        methods: Mapping[str, Method] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers: need at least 1, got {workers}")
        if max_sessions < 1 or max_sessions_per_peer < 1:
            raise ValueError(
                f"max_sessions ({max_sessions}) and max_sessions_per_peer "
                f"({max_sessions_per_peer}): need at least 1 each"
            )
        if isinstance(curve_keys, str | Path):
            curve_keys = CurveKeys.load(curve_keys)
        check_bind(bind, curve=curve_keys is not None)
        from cosmos_sim.sidecar.methods import method_table

        self.limits = limits or Limits()
        self.methods: dict[str, Method] = dict(methods if methods is not None else method_table())
        self.data_dir = Path(data_dir).resolve()
        self.session_idle_s = session_idle_s
        self.max_sessions = max_sessions
        self.max_sessions_per_peer = min(max_sessions_per_peer, max_sessions)
        self.num_workers = workers
        self.transfer_backend = transfer_backend
        self.transfer_options = dict(transfer_options or {})
        self.job_workers = job_workers
        self.env_ids = tuple(DEFAULT_ENV_IDS if env_ids is None else env_ids)
        self.device = check_device(device)
        # An explicit GPU is checked now (a clear error at start, not at the first request);
        # "auto" waits for the first controls call, so a server that never makes controls
        # never imports torch.
        self._control_backend = None if device in ("auto", "cpu") else control_backend(device)
        self.stats = Stats()
        self.sessions: dict[bytes, Session] = {}
        self._peers: Counter[str] = Counter()
        self._fds: dict[int, bytes] = {}
        """Socket fd of each connection that said hello -> its routing identity."""
        self._ending: dict[bytes, Session] = {}
        """Sessions whose peer left while their requests ran: closed when those finish."""
        self._deadlines: deque[_Task] = deque()
        self._answer_lock = threading.Lock()
        self._hello_frame: Any = None
        self.jobs = None  # set by the transfer methods on first use
        self.shm_bytes = 0
        """Bytes of shared memory open over all sessions (methods/shm.py)."""
        self._inflight: dict[bytes, int] = {}
        self._tasks: queue.Queue[_Task | None] = queue.Queue()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []
        self._serving = False

        self._ctx = zmq.Context()
        self._auth = None
        self._router = self._ctx.socket(zmq.ROUTER)
        self._router.linger = 1000
        self._router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # A frame over the message limit cannot be answered: ZeroMQ drops that connection.
        self._router.setsockopt(zmq.MAXMSGSIZE, self.limits.max_message_bytes)
        self._router.heartbeat_ivl = _HEARTBEAT_IVL_MS
        self._router.heartbeat_timeout = _HEARTBEAT_TIMEOUT_MS
        # Disconnects end sessions at once (an fd event, matched to the identity at hello).
        self._monitor = self._router.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        if curve_keys is not None:
            from zmq.auth.thread import ThreadAuthenticator

            self._auth = ThreadAuthenticator(self._ctx)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(curve_keys.authorized_dir))
            self._router.curve_server = True
            self._router.curve_publickey = curve_keys.public
            self._router.curve_secretkey = curve_keys.secret
        self.curve = curve_keys is not None
        try:
            self._router.bind(bind)
        except zmq.ZMQError as exc:
            self._close_sockets()
            raise OSError(f"cannot bind {bind!r}: {exc}; pick a free port or path") from exc
        self.endpoint: str = self._router.last_endpoint.decode()
        if self.endpoint.startswith("ipc://"):
            os.chmod(self.endpoint[len("ipc://") :], 0o600)  # the owner's processes only
        self._replies_endpoint = _REPLIES_ENDPOINT.format(id(self))
        self._replies = self._ctx.socket(zmq.PULL)
        self._replies.bind(self._replies_endpoint)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def control_backend(self) -> dict[str, Callable[..., Any]]:
        """The control functions for `device` (`cosmos_sim.controls.backend`), made once."""
        if self._control_backend is None:
            self._control_backend = control_backend(self.device)
        return self._control_backend

    def start(self) -> Server:
        """Serve on a background thread; returns self (use as a context manager)."""
        self._thread = threading.Thread(target=self.serve_forever, name="sidecar-io", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._serving = True
        self._workers = [
            threading.Thread(target=self._worker, name=f"sidecar-worker-{i}", daemon=True)
            for i in range(self.num_workers)
        ]
        for worker in self._workers:
            worker.start()
        try:
            self._loop()
        finally:
            self._shutdown()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the server to stop (thread- and signal-safe) and wait for it if it runs."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._wake()
            self._thread.join(timeout_s)
        elif not self._serving and not self._stopped.is_set():  # bound but never served
            self._close_sockets()
            self._stopped.set()

    def _wake(self) -> None:
        """Wake the I/O thread now rather than at its next poll timeout."""
        try:
            with self._ctx.socket(zmq.PUSH) as wake:
                wake.linger = 0
                wake.connect(self._replies_endpoint)
                wake.send(b"", zmq.NOBLOCK)
        except zmq.ZMQError:  # already stopping: the context is closed or closing
            pass

    def request_stop(self) -> None:
        """Ask the server to stop without waiting (for signal handlers and methods)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def __enter__(self) -> Server:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()

    # -- I/O thread ----------------------------------------------------------------------

    def _loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._replies, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        reap_every = min(_REAP_EVERY_S, self.session_idle_s / 4)
        next_reap = time.monotonic() + reap_every
        drain_until = None
        while True:
            events = dict(poller.poll(_POLL_MS))
            if self._replies in events:
                self._forward_replies()
            if self._monitor in events:
                self._disconnects()
            if self._router in events:
                self._receive_requests()
            now = time.monotonic()
            if self._deadlines:
                self._expire(now)
            if now >= next_reap:
                self._reap_idle_sessions(now)
                next_reap = now + reap_every
            if self._stop.is_set():
                drain_until = drain_until or now + 5.0
                if not any(self._inflight.values()) or now > drain_until:
                    return

    def _forward_replies(self) -> None:
        for _ in range(1000):  # bounded, so requests and replies take turns
            try:
                frames = self._replies.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if len(frames) > 1:  # (one frame: a wake-up from stop())
                self._done(frames[0].bytes)
                self._send(frames)
            if not self._replies.get(zmq.EVENTS) & zmq.POLLIN:  # cheaper than catching Again
                return

    def _done(self, identity: bytes) -> None:
        """One request of `identity` was answered; a departed client's session ends after
        its last one."""
        left = self._inflight.get(identity, 1) - 1
        if left > 0:
            self._inflight[identity] = left
            return
        self._inflight.pop(identity, None)
        session = self._ending.pop(identity, None)
        if session is not None:
            self._close_in_background(session)

    def _expire(self, now: float) -> None:
        """Answer TOO_LARGE for stateless requests past max_request_s (their late results
        are dropped by the worker)."""
        while self._deadlines:
            task = self._deadlines[0]
            if not task.answered and task.deadline > now:
                return
            self._deadlines.popleft()
            with self._answer_lock:
                if task.answered:
                    continue
                task.answered = True
            limit = self.limits.max_request_s
            error = ProtocolError(
                ErrorCode.TOO_LARGE,
                f"{task.method.name} ran past max_request_s={limit}",
                "",
                "ask for less work per request (smaller images, fewer modalities or frames)",
            )
            self.stats.record(task.method.name, False, time.perf_counter() - task.started)
            version = task.session.version if task.session else PROTOCOL_VERSION
            self._done(task.envelope[0].bytes)
            self._send(task.envelope + encode_error(task.request.id, error, version))

    def _disconnects(self) -> None:
        """Monitor events: a connection that said hello went away, so its session ends."""
        for _ in range(1000):
            if not self._monitor.get(zmq.EVENTS) & zmq.POLLIN:
                return
            event = self._monitor.recv_multipart()
            _, fd = struct.unpack("=HI", event[0][:6])
            identity = self._fds.pop(fd, None)
            if identity is not None:
                self.end_session(identity)

    def _receive_requests(self) -> None:
        for _ in range(1000):  # poll saw a request; more may wait behind it
            try:
                frames = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            started = time.perf_counter()
            # REQ sockets put an empty delimiter frame before the body; DEALERs need not.
            cut = 2 if len(frames) > 1 and len(frames[1]) == 0 else 1
            self._handle(frames[:cut], frames[cut:], started)
            if not self._router.get(zmq.EVENTS) & zmq.POLLIN:  # cheaper than catching Again
                return

    def _handle(self, envelope: list[Any], body: list[Any], started: float) -> None:
        identity = envelope[0].bytes
        session = self.sessions.get(identity)
        version = session.version if session else PROTOCOL_VERSION
        name, request_id = "(invalid)", None
        try:
            request = decode_request(body, self.limits, session.region if session else None)
            request_id = request.id
            method = self.methods.get(request.method)
            if method is None:
                raise ProtocolError(
                    ErrorCode.UNKNOWN_METHOD,
                    f"no method {request.method!r}",
                    "header.method",
                    f"use one of {sorted(self.methods)}",
                )
            name = method.name
            if method.name == "hello":
                self._hello_frame = envelope[0]  # open_session reads the peer from it
                if session is None:
                    self._note_connection(identity, envelope[0])
            if self._stop.is_set():
                raise ProtocolError(
                    ErrorCode.SHUTTING_DOWN,
                    "the server is shutting down",
                    "",
                    "reconnect when it is back",
                )
            if method.name != "hello":
                _check_session(session, request)
                session.last_seen = time.monotonic()
            if method.inline:
                self._send(envelope + self._run(method, request, session, identity, started))
                return
            inflight = self._inflight.get(identity, 0)
            if inflight >= self.limits.max_inflight_per_client:
                raise ProtocolError(
                    ErrorCode.BUSY,
                    f"this client has {inflight} requests in flight",
                    "",
                    "wait for replies before sending more "
                    f"(max_inflight_per_client={self.limits.max_inflight_per_client})",
                )
            self._inflight[identity] = inflight + 1
            task = _Task(envelope, request, method, session, started)
            if not method.stateful:
                task.deadline = time.monotonic() + self.limits.max_request_s
                self._deadlines.append(task)
            if not method.stateful or session.admit(task):
                self._tasks.put(task)
        except ProtocolError as exc:
            self.stats.record(name, False, time.perf_counter() - started)
            rid = request_id if exc.request_id is None else exc.request_id
            self._send(envelope + encode_error(rid, exc, version))
        except Exception as exc:  # a bug: answer INTERNAL, and keep the I/O thread alive
            self.stats.record(name, False, time.perf_counter() - started)
            self._send(envelope + encode_error(request_id, _as_protocol_error(exc, name), version))

    def _send(self, frames: list[Any]) -> None:
        try:
            self._router.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except (zmq.Again, zmq.ZMQError):  # the client left (EHOSTUNREACH) or stopped reading
            self.stats.dropped()

    def _note_connection(self, identity: bytes, frame: Any) -> None:
        """Remember the socket fd of a connection saying its first hello, so its disconnect
        event ends its session. Pending events are read first: a fd closed just now may
        already be reused by this very connection."""
        self._disconnects()
        try:
            fd = frame.get(zmq.SRCFD)
        except zmq.ZMQError:  # inproc has no socket: idle expiry ends its sessions
            return
        if fd >= 0:
            self._fds[fd] = identity

    def _peer_of(self, frame: Any) -> str:
        for prop in ("User-Id", "Peer-Address") if self.curve else ("Peer-Address",):
            try:
                return frame.get(prop)
            except zmq.ZMQError:  # no such property on this transport
                continue
        return ""

    def _reap_idle_sessions(self, now: float) -> None:
        idle = [
            identity
            for identity, session in self.sessions.items()
            if now - session.last_seen > self.session_idle_s and not self._inflight.get(identity)
        ]
        for identity in idle:
            self.end_session(identity)

    def end_session(self, identity: bytes) -> None:
        """End a session now (I/O thread): its slot is free at once, its resources close
        once none of its requests is still running."""
        session = self.sessions.pop(identity, None)
        if session is None:
            return
        self._peers[session.peer] -= 1
        if self._peers[session.peer] <= 0:
            del self._peers[session.peer]
        if self._inflight.get(identity):
            self._ending[identity] = session
        else:
            self._close_in_background(session)

    def _close_in_background(self, session: Session) -> None:
        if session.resources:
            threading.Thread(target=self._close_session, args=(session,), daemon=True).start()

    @staticmethod
    def _close_session(session: Session) -> None:
        session.close_all()  # none of its methods is running

    # -- workers -------------------------------------------------------------------------

    def _worker(self) -> None:
        push = self._ctx.socket(zmq.PUSH)
        push.linger = 1000
        push.connect(self._replies_endpoint)
        try:
            while (task := self._tasks.get()) is not None:
                while task is not None:  # a client's stateful tasks run in arrival order
                    if task.deadline is None or not task.answered:  # else: already expired
                        identity = task.envelope[0].bytes
                        frames = self._run(
                            task.method, task.request, task.session, identity, task.started
                        )
                        if self._claim(task):
                            push.send_multipart(task.envelope + frames, copy=False)
                    task = task.session.next_waiting() if task.method.stateful else None
        finally:
            push.close()

    def _claim(self, task: _Task) -> bool:
        """True: this worker sends the reply; False: the deadline already answered it."""
        if task.deadline is None:
            return True
        with self._answer_lock:
            if task.answered:
                return False
            task.answered = True
            return True

    def _run(
        self,
        method: Method,
        request: Request,
        session: Session | None,
        identity: bytes,
        started: float,
    ) -> list[Any]:
        """Check and run one request; returns the reply frames (never raises)."""
        version = session.version if session else PROTOCOL_VERSION
        try:
            params = method.check(request.params, request.arrays)
            check_budget(method.name, params, self.limits)
            call = Call(params, request.arrays, session, self, identity)
            result, arrays = method.handler(call)
            if method.name == "hello":
                version = result["version"]
            shm_out = None
            if request.shm_reply is not None and arrays:
                handle, offset = request.shm_reply
                region = session.region(handle)  # None if closed meanwhile: frames then
                shm_out = None if region is None else (handle, region, offset)
            frames = encode_reply(request.id, result, arrays, version, request.origins, shm_out)
            ok = True
        except Exception as exc:
            error = _as_protocol_error(exc, method.name)
            frames = encode_error(request.id, error, version)
            ok = False
        self.stats.record(method.name, ok, time.perf_counter() - started)
        return frames

    # -- sessions ------------------------------------------------------------------------

    def open_session(self, identity: bytes, version: int, client: str) -> Session:
        """Called by `hello`: a new session (a repeated hello keeps the resources)."""
        session = self.sessions.get(identity)
        if session is None:
            if len(self.sessions) >= self.max_sessions:
                raise ProtocolError(
                    ErrorCode.BUSY,
                    f"{len(self.sessions)} client sessions are open (max_sessions)",
                    "",
                    "retry later: sessions end when their connection closes",
                )
            peer = self._peer_of(self._hello_frame) if self._hello_frame is not None else ""
            if self._peers[peer] >= self.max_sessions_per_peer:
                raise ProtocolError(
                    ErrorCode.BUSY,
                    f"peer {peer or '(unknown)'} holds {self._peers[peer]} sessions "
                    f"(max_sessions_per_peer={self.max_sessions_per_peer})",
                    "",
                    "close connections you no longer use (their sessions end at once)",
                )
            session = self.sessions[identity] = Session(identity, version, client, peer)
            self._peers[peer] += 1
        session.version, session.client = version, client
        session.last_seen = time.monotonic()
        return session

    def queue_depth(self) -> int:
        return self._tasks.qsize()

    # -- shutdown ------------------------------------------------------------------------

    def _shutdown(self) -> None:
        for _ in self._workers:
            self._tasks.put(None)
        for worker in self._workers:
            worker.join(10.0)
        self._forward_replies()
        if self.jobs is not None:
            self.jobs.shutdown()
        for session in list(self.sessions.values()):
            self._close_session(session)
        self.sessions.clear()
        self._close_sockets()
        self._stopped.set()

    def _close_sockets(self) -> None:
        endpoint = getattr(self, "endpoint", "")
        self._router.disable_monitor()
        for sock in (self._monitor, self._router, getattr(self, "_replies", None)):
            if sock is not None:
                sock.close()
        if self._auth is not None:
            self._auth.stop()
        self._ctx.term()
        if endpoint.startswith("ipc://"):
            Path(endpoint[len("ipc://") :]).unlink(missing_ok=True)


def _check_session(session: Session | None, request: Request) -> None:
    if session is None:
        raise ProtocolError(
            ErrorCode.HELLO_REQUIRED,
            f"{request.method!r} before hello",
            "header.method",
            "send hello first on this connection (PROTOCOL.md §Handshake)",
        )
    if request.version != session.version:
        raise ProtocolError(
            ErrorCode.VERSION_UNSUPPORTED,
            f"header.v is {request.version} but hello negotiated {session.version}",
            "header.v",
            f"send v={session.version}, or hello again to renegotiate",
        )


def _as_protocol_error(exc: Exception, method: str) -> ProtocolError:
    if isinstance(exc, ProtocolError):
        return exc
    if isinstance(exc, SpecError | EpisodeError):  # our own input checks name the field
        return ProtocolError(
            ErrorCode.BAD_PARAMS,
            str(exc),
            getattr(exc, "field", None) or _field_of(str(exc)),
            getattr(exc, "fix", None) or "fix the named field as the message says",
        )
    if isinstance(exc, FileExistsError | FileNotFoundError | PermissionError):
        return ProtocolError(
            ErrorCode.BAD_PARAMS,
            str(exc),
            "params.path" if method in ("episode_open", "hdmap_load") else "",
            "pass a path that the message's fix allows (client paths are relative to the "
            "server's data_dir)",
        )
    log.error("method %s failed:\n%s", method, traceback.format_exc())
    return ProtocolError(
        ErrorCode.INTERNAL,
        f"{method} failed: {type(exc).__name__}: {exc}",
        "",
        "this is a server bug or a backend failure; the server log has the traceback",
    )


def _field_of(message: str) -> str:
    head = message.split(":", 1)[0]
    return head if len(head) < 80 and " " not in head else ""
