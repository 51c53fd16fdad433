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
