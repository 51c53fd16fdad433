"""Hypothesis fuzz of the request decoder against a live server: each malformed message gets
exactly one error reply, and the server still answers a well-formed request after it."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosmos_sim.sidecar import ErrorCode, Server
from cosmos_sim.sidecar.methods import method_table
from cosmos_sim.sidecar.protocol import ALLOWED_DTYPES, encode_request

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CODES = set(ErrorCode.all())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Server("tcp://127.0.0.1:*", workers=2, data_dir=tmp_path_factory.mktemp("d")) as srv:
        yield srv


@pytest.fixture(scope="module")
def sock(server):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(server.endpoint)
    sock.send_multipart(encode_request(0, "hello", {"versions": [1]}))
    assert sock.poll(5000)
    assert msgpack.unpackb(sock.recv_multipart()[0])["ok"]
    yield sock
    sock.close()


def exchange(sock: zmq.Socket, frames: list[bytes]) -> dict:
    """Send one message; return its only reply, after checking the server still serves."""
    sock.send_multipart(frames)
    assert sock.poll(5000), "no reply to a malformed message"
    reply = sock.recv_multipart()
    if reply[0] == b"":  # the server echoes what it took for a REQ delimiter
        reply = reply[1:]
    header = msgpack.unpackb(reply[0])
    ping = np.arange(6, dtype=np.int16)
    sock.send_multipart(encode_request("ping", "echo", {}, {"p": ping}))
    assert sock.poll(5000), "server stopped answering"
    reply = sock.recv_multipart()
    assert msgpack.unpackb(reply[0])["id"] == "ping" and reply[1] == ping.tobytes()
    assert not sock.poll(0), "more than one reply"
    return header


def assert_error(header: dict) -> None:
    assert header["ok"] is False
    assert header["error"]["code"] in CODES
    assert header["error"]["message"] and header["error"]["fix"]


@FUZZ
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=4))
def test_random_bytes(sock, frames):
    assert_error(exchange(sock, frames))


def valid_echo() -> list[bytes]:
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(5, np.uint8)}
    return [bytes(memoryview(f)) for f in encode_request(7, "echo", {}, arrays)]


@FUZZ
@given(st.data())
def test_truncated_and_dropped_frames(sock, data):
    frames = valid_echo()
    which = data.draw(st.integers(0, len(frames) - 1))
    if data.draw(st.booleans()):
        frames = frames[:which] + frames[which + 1 :]  # a missing frame
    else:
        cut = data.draw(st.integers(0, max(len(frames[which]) - 1, 0)))
        frames[which] = frames[which][:cut]  # a truncated frame
    assert_error(exchange(sock, frames))


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.binary(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@FUZZ
@given(st.sampled_from(["name", "dtype", "shape", "order", "frame", "extra"]), values)
def test_wrong_descriptors(sock, key, value):
    header = msgpack.unpackb(valid_echo()[0])
    header["arrays"][0][key] = value
    frames = [msgpack.packb(header), *valid_echo()[1:]]
    reply = exchange(sock, frames)
    if not reply["ok"]:
        assert_error(reply)
        assert reply["id"] == 7 and reply["error"]["field"].startswith("header.arrays")
    else:  # the mutation happened to keep the descriptor valid
        assert key in ("name", "order", "dtype", "shape", "frame")


@FUZZ
@given(st.lists(st.integers(0, 2**62), min_size=1, max_size=8), st.sampled_from(ALLOWED_DTYPES))
def test_huge_shapes_are_refused_before_allocating(sock, shape, dtype):
    header = {
        "v": 1,
        "id": 3,
        "method": "echo",
        "params": {},
        "arrays": [{"name": "x", "dtype": dtype, "shape": shape, "frame": 1}],
    }
    reply = exchange(sock, [msgpack.packb(header), b"\x00" * 16])
    nbytes = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
    if nbytes == 16:
        assert reply["ok"]
    else:
        assert_error(reply)
        assert reply["error"]["code"] in (ErrorCode.TOO_LARGE, ErrorCode.BAD_ARRAY)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["v", "id", "method", "params", "arrays", "x"]), values, max_size=6
    )
)
def test_headers_with_wrong_types(sock, header):
    reply = exchange(sock, [msgpack.packb(header)])
    assert_error(reply)


@FUZZ
@given(st.text(min_size=1, max_size=30).filter(lambda m: m not in method_table()))
def test_unknown_methods(sock, method):
    reply = exchange(sock, [msgpack.packb({"v": 1, "id": 11, "method": method})])
    assert_error(reply)
    assert reply["id"] == 11 and reply["error"]["code"] == ErrorCode.UNKNOWN_METHOD


@FUZZ
@given(
    st.sampled_from(["controls", "episode_open", "episode_append", "describe", "hello"]),
    st.dictionaries(st.text(max_size=12), values, max_size=4),
)
def test_random_params(sock, method, params):
    reply = exchange(sock, [msgpack.packb({"v": 1, "id": 12, "method": method, "params": params})])
    if not reply["ok"]:  # hello and describe take all-optional params
        assert_error(reply)
        assert reply["id"] == 12


@pytest.mark.parametrize("ext", [msgpack.ExtType(1, b"os.system"), msgpack.Timestamp(0, 1)])
def test_ext_types_are_refused(sock, ext):
    reply = exchange(
        sock, [msgpack.packb({"v": 1, "id": 1, "method": "echo", "params": {"params": {"x": ext}}})]
    )
    assert_error(reply)
    assert reply["error"]["code"] == ErrorCode.BAD_HEADER and reply["id"] is None


# -- acceptance: `cosmos-sim serve` with small limits, spoken to as PROTOCOL.md describes ------

SMALL_LIMITS = ["--max-array-mb", "8", "--max-message-mb", "24", "--max-arrays", "16"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`cosmos-sim serve` in its own process, with the acceptance check's small limits."""
    import re
    import subprocess
    import sys

    cmd = [sys.executable, "-c", "from cosmos_sim.cli import main; main()", "serve"]
    data_dir = tmp_path_factory.mktemp("served")
    args = ["--bind", "tcp://127.0.0.1:*", "--data-dir", str(data_dir), *SMALL_LIMITS]
    proc = subprocess.Popen([*cmd, *args], stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    match = re.search(r"listening on (tcp://\S+)", line)
    assert match, line
    yield proc, match.group(1)
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def doc_socket(endpoint: str) -> zmq.Socket:
    """A DEALER that said hello, built from PROTOCOL.md §9 (plain msgpack, no project code)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    hello = {"v": 1, "id": 1, "method": "hello", "params": {"versions": [1]}, "arrays": []}
    sock.send_multipart([msgpack.packb(hello)])
    assert sock.poll(10_000)
    assert msgpack.unpackb(sock.recv_multipart()[0])["ok"]
    return sock


def one_reply(sock: zmq.Socket, frames: list[bytes]) -> dict:
    sock.send_multipart(frames)
    assert sock.poll(10_000), "no reply"
    return msgpack.unpackb(sock.recv_multipart()[0])  # a second reply would fail the next id


def mutated_requests(rng: np.random.Generator, n: int):
    """Requests for every documented method with one param or descriptor made wrong."""
    rgb = {"name": "rgb", "dtype": "uint8", "shape": [4, 4, 3], "order": "|", "frame": 1}
    bad_values = [None, True, -1, 2**64 - 1, 1e308, "x" * 200, [], {}, [[1, 2]], {"a": [1]}]
    bad_values += [float("nan"), float("inf"), 10**6, -(2**63)]
    methods = sorted(method_table())
    param_names = {name: sorted(m.params) or ["x"] for name, m in method_table().items()}
    for i in range(n):
        method = methods[rng.integers(len(methods))]
        if method == "shutdown":
            continue
        params = {"modalities": ["depth"]} if method == "controls" else {}
        key = param_names[method][rng.integers(len(param_names[method]))]
        params[key] = bad_values[rng.integers(len(bad_values))]
        descriptor = dict(rgb)
        if rng.random() < 0.3:
            field = ["dtype", "shape", "order", "frame", "name"][rng.integers(5)]
            descriptor[field] = bad_values[rng.integers(len(bad_values))]
        header = {"v": 1, "id": i + 10, "method": method, "params": params, "arrays": [descriptor]}
        yield header, [msgpack.packb(header), b"\x00" * 48]


def test_served_small_limits_answer_every_malformed_request_once(served):
    proc, endpoint = served
    sock = doc_socket(endpoint)
    try:
        hello = {"v": 1, "id": 2, "method": "hello", "params": {"versions": [1]}}
        limits = one_reply(sock, [msgpack.packb(hello)])["result"]["limits"]
        assert limits["max_array_bytes"] == 8 * 2**20 and limits["max_arrays"] == 16
        assert limits["max_message_bytes"] == 24 * 2**20
        rng = np.random.default_rng(18)
        answered = 0
        for header, frames in mutated_requests(rng, 400):
            reply = one_reply(sock, frames)
            assert reply["id"] == header["id"]
            if not reply["ok"]:
                assert reply["error"]["code"] in CODES - {ErrorCode.INTERNAL}, (header, reply)
            answered += 1
        assert answered > 300
        big = np.zeros(8 * 2**20 + 1, np.uint8)
        desc = {"name": "a", "dtype": "uint8", "shape": [big.size], "frame": 1}
        head = {"v": 1, "id": 3, "method": "echo", "params": {}, "arrays": [desc]}
        reply = one_reply(sock, [msgpack.packb(head), big.tobytes()])
        assert (reply["error"]["code"], reply["error"]["field"]) == (
            "TOO_LARGE",
            "header.arrays[0].shape",
        )
        many = [
            {"name": f"a{i}", "dtype": "uint8", "shape": [1], "frame": i + 1} for i in range(17)
        ]
        head = {"v": 1, "id": 4, "method": "echo", "params": {}, "arrays": many}
        reply = one_reply(sock, [msgpack.packb(head)] + [b"\x00"] * 17)
        assert reply["error"]["code"] == "TOO_LARGE"
        for c in [doc_socket(endpoint) for _ in range(20)]:  # 20 clients come and go
            c.close()
        for _ in range(100):
            stats = one_reply(sock, [msgpack.packb({"v": 1, "id": 6, "method": "stats"})])
            if stats["result"]["sessions"] == 1:
                break
            sock.poll(50)
        assert stats["result"]["sessions"] == 1
        reply = one_reply(sock, [msgpack.packb({"v": 1, "id": 7, "method": "shutdown"})])
        assert reply["ok"] and reply["id"] == 7 and not sock.poll(100)
    finally:
        sock.close()
    assert proc.wait(30) == 0 and proc.poll() == 0
