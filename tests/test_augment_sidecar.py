"""The sidecar's stream methods: push frames in, pull augmented frames out (real ZeroMQ)."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosmos_sim.augment import Augmenter
from cosmos_sim.sidecar import Client, ErrorCode, Server, SidecarError
from cosmos_sim.sidecar.protocol import encode_request
from cosmos_sim.transfer import register_backend
from cosmos_sim.types import CameraSpec, SensorFrame

CAMERA = {"name": "front", "width": 96, "height": 54, "fov_deg": 60.0}
H, W = 54, 96
OPEN = {"camera": CAMERA, "resolution": "camera", "chunk_frames": 2, "prompt": "sunset"}


def tick_arrays(i: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(i)
    ids = np.ones((H, W), np.int32)
    ids[10:30, 20 + i : 50 + i] = 7
    return {
        "rgb": rng.integers(0, 255, (H, W, 3), dtype=np.uint8),
        "depth_m": np.where(ids == 7, 2.0, 5.0).astype(np.float32),
        "instance_id": ids,
    }


class BrokenBackend:
    """Fails on its first chunk (tests only)."""

    name = "broken"
    needs = ()

    def describe(self) -> dict:
        return {}

    def transfer(self, clip, prompt, seed, workdir):
        raise RuntimeError("the model fell over")


register_backend("broken", BrokenBackend)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Server("tcp://127.0.0.1:*", workers=2, data_dir=tmp_path_factory.mktemp("s")) as srv:
        yield srv


@pytest.fixture()
def client(server):
    with Client(server.endpoint, timeout_s=60) as c:
        yield c


def test_a_stream_returns_every_tick_augmented_as_in_process(client):
    opened = client.call("stream_open", OPEN).result
    assert opened["backend"] == "appearance"
    assert opened["needs_arrays"] == ["rgb", "depth_m", "instance_id"]
    handle = opened["stream"]
    pose = np.eye(4)
    for i in range(5):
        pose[0, 3] = 0.1 * i
        pushed = client.call(
            "stream_push", {"stream": handle, "tick": i, "cam_to_world": pose.tolist()},
            tick_arrays(i),
        ).result  # fmt: skip
        assert pushed["tick"] == i and pushed["ticks_in"] == i + 1
    end = client.call("stream_end", {"stream": handle}).result
    assert end["stats"]["frames_out"] == 5 and end["stats"]["chunks_skipped"] == 0
    ticks, frames = [], []
    while True:
        reply = client.call("stream_pull", {"stream": handle, "max_frames": 2})
        ticks += reply.result["ticks"]
        frames += list(reply.arrays.get("frames", []))
        assert len(reply.result["lag_s"]) == len(reply.result["ticks"])
        if reply.result["remaining"] == 0:
            break
    assert ticks == [0, 1, 2, 3, 4] and reply.result["ended"]
    cam = CameraSpec(**CAMERA)
    with Augmenter("appearance", prompt="sunset", chunk_frames=2, resolution="camera") as aug:
        for i in range(5):
            a = tick_arrays(i)
            aug.submit([SensorFrame("front", i, i / 16, np.eye(4), camera=cam, **a)])
        aug.close()
        expected = [a.frame for a in aug.poll()]
    for got, want in zip(frames, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert client.call("stream_close", {"stream": handle}).result == {"closed": True}


def _error(client: Client, method: str, params: dict, arrays=None) -> SidecarError:
    with pytest.raises(SidecarError) as info:
        client.call(method, params, arrays)
    return info.value


@pytest.mark.parametrize(
    "params, code, field",
    [
        ({"camera": "front"}, ErrorCode.BAD_PARAMS, "params.camera"),
        ({"camera": {**CAMERA, "width": 0}}, ErrorCode.BAD_PARAMS, "params.camera.width"),
        ({"camera": {**CAMERA, "lens": 1}}, ErrorCode.BAD_PARAMS, "params.camera"),
        ({"camera": CAMERA, "overflow": "drop"}, ErrorCode.BAD_PARAMS, "params.overflow"),
        ({"camera": CAMERA, "chunk_frames": 0}, ErrorCode.BAD_PARAMS, "params.chunk_frames"),
        ({"camera": CAMERA, "max_chunks_queued": 99}, ErrorCode.BAD_PARAMS,
         "params.max_chunks_queued"),
        ({"camera": CAMERA, "fps": 0.0}, ErrorCode.BAD_PARAMS, "params.fps"),
        ({"camera": CAMERA, "seed": -1}, ErrorCode.BAD_PARAMS, "params.seed"),
    ],
)  # fmt: skip
def test_stream_open_misuse(client, params, code, field):
    error = _error(client, "stream_open", params)
    assert (error.code, error.field) == (code, field) and error.fix


def test_stream_push_and_pull_misuse(client, server):
    handle = client.call("stream_open", OPEN).result["stream"]
    arrays = tick_arrays(0)
    cases = [
        ({"tick": 0}, {"rgb": arrays["rgb"]}, ErrorCode.BAD_ARRAY, "arrays.depth_m"),
        ({"tick": 0}, {**arrays, "rgb": np.zeros((H, W + 2, 3), np.uint8)},
         ErrorCode.SHAPE_MISMATCH, "arrays.depth_m.shape"),
        ({"tick": 0}, {k: v[:10, :10] for k, v in arrays.items()}, ErrorCode.SHAPE_MISMATCH,
         "arrays.rgb.shape"),
        ({"tick": 0}, {**arrays, "depth_m": arrays["depth_m"].astype(np.float64)},
         ErrorCode.DTYPE_NOT_ALLOWED, "arrays.depth_m.dtype"),
        ({"tick": 0, "cam_to_world": [[1, 2]]}, arrays, ErrorCode.BAD_PARAMS,
         "params.cam_to_world"),
        ({"tick": 0, "cam_to_world": (2 * np.eye(4)).tolist()}, arrays, ErrorCode.BAD_PARAMS,
         "params.cam_to_world"),
        ({"tick": 0, "K": [[1.0]]}, arrays, ErrorCode.BAD_PARAMS, "params.K"),
        ({"tick": -1}, arrays, ErrorCode.BAD_PARAMS, "params.tick"),
        ({"tick": 0, "colour": 1}, arrays, ErrorCode.BAD_PARAMS, "params.colour"),
        ({"tick": 0}, {**arrays, "normals": arrays["depth_m"]}, ErrorCode.BAD_ARRAY,
         "arrays.normals"),
    ]  # fmt: skip
    for params, sent, code, field in cases:
        error = _error(client, "stream_push", {"stream": handle, **params}, sent)
        assert (error.code, error.field) == (code, field), (params, error)
    client.call("stream_push", {"stream": handle, "tick": 3}, arrays)  # nothing refused stuck
    error = _error(client, "stream_push", {"stream": handle, "tick": 3}, arrays)
    assert (error.code, error.field) == (ErrorCode.BAD_PARAMS, "params.tick")
    for params, field in (
        ({"wait_s": 60.0}, "params.wait_s"),
        ({"max_frames": 0}, "params.max_frames"),
    ):
        error = _error(client, "stream_pull", {"stream": handle, **params})
        assert (error.code, error.field) == (ErrorCode.BAD_PARAMS, field)
    client.call("stream_end", {"stream": handle})
    error = _error(client, "stream_push", {"stream": handle, "tick": 4}, arrays)
    assert (error.code, error.field) == (ErrorCode.BAD_PARAMS, "params.stream")
    assert client.call("stream_pull", {"stream": handle}).result["ticks"] == [3]
    client.call("stream_close", {"stream": handle})
    error = _error(client, "stream_push", {"stream": handle, "tick": 5}, arrays)
    assert (error.code, error.field) == (ErrorCode.NOT_FOUND, "params.stream")
    for method in ("stream_pull", "stream_end", "stream_close"):
        error = _error(client, method, {"stream": handle})
        assert (error.code, error.field) == (ErrorCode.NOT_FOUND, "params.stream")
    # a handle is only good on the connection that made it
    other = client.call("stream_open", OPEN).result["stream"]
    with Client(server.endpoint) as second:
        error = _error(second, "stream_pull", {"stream": other})
        assert (error.code, error.field) == (ErrorCode.NOT_FOUND, "params.stream")


def test_a_failing_backend_fails_the_stream_with_its_message(tmp_path):
    with Server("tcp://127.0.0.1:*", data_dir=tmp_path, transfer_backend="broken") as srv:
        with Client(srv.endpoint, timeout_s=60) as client:
            opened = client.call("stream_open", {**OPEN, "chunk_frames": 1}).result
            handle = opened["stream"]
            assert opened["needs_arrays"] == ["rgb"]
            client.call(
                "stream_push", {"stream": handle, "tick": 0}, {"rgb": tick_arrays(0)["rgb"]}
            )
            error = _error(client, "stream_end", {"stream": handle})
            assert error.code == ErrorCode.JOB_FAILED and "fell over" in error.message
            error = _error(client, "stream_pull", {"stream": handle})
            assert error.code == ErrorCode.JOB_FAILED  # stays failed
            assert client.call("stream_close", {"stream": handle}).result["closed"]
            assert client.call("echo", {"params": {"alive": 1}}).result["params"]["alive"] == 1


# -- fuzz: random params and arrays never crash the server or get INTERNAL ---------------

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats()
values = st.recursive(
    scalars | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
arrays = st.dictionaries(
    st.sampled_from(["rgb", "depth_m", "instance_id", "class_id", "x"]),
    st.tuples(st.sampled_from(["uint8", "float32", "int32", "float64"]),
              st.lists(st.integers(0, 60), min_size=0, max_size=3)),
    max_size=3,
)  # fmt: skip


@pytest.fixture(scope="module")
def raw(server):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(server.endpoint)
    sock.send_multipart(encode_request(0, "hello", {"versions": [1]}))
    assert sock.poll(5000) and msgpack.unpackb(sock.recv_multipart()[0])["ok"]
    sock.send_multipart(encode_request(1, "stream_open", OPEN))
    assert sock.poll(30000)
    handle = msgpack.unpackb(sock.recv_multipart()[0])["result"]["stream"]
    yield sock, handle
    sock.close()


@FUZZ
@given(
    st.sampled_from(["stream_open", "stream_push", "stream_pull", "stream_end", "stream_close"]),
    st.dictionaries(st.sampled_from(["stream", "tick", "camera", "K", "cam_to_world", "wait_s",
                                     "max_frames", "chunk_frames", "overflow", "zz"]),
                    values, max_size=4),
    arrays,
    st.booleans(),
)  # fmt: skip
def test_random_stream_requests_get_one_documented_reply(raw, method, params, spec, real_handle):
    sock, handle = raw
    if real_handle and method in ("stream_push", "stream_pull"):
        params = {**params, "stream": handle}
    if params.get("wait_s") is not None:
        params["wait_s"] = 0.0
    sent = {name: np.zeros(shape, np.dtype(dtype)) for name, (dtype, shape) in spec.items()}
    sock.send_multipart(encode_request(5, method, params, sent))
    assert sock.poll(30000), "no reply"
    reply = msgpack.unpackb(sock.recv_multipart()[0])
    assert reply["id"] == 5
    if not reply["ok"]:
        error = reply["error"]
        assert error["code"] in set(ErrorCode.all()) - {ErrorCode.INTERNAL}, (params, error)
        assert error["message"] and error["fix"]
    sock.send_multipart(encode_request(6, "echo", {"params": {"ping": 1}}))
    assert sock.poll(30000) and msgpack.unpackb(sock.recv_multipart()[0])["ok"]
    assert not sock.poll(0), "more than one reply"
