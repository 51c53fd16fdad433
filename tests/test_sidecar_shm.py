"""Frames through shared memory (PROTOCOL.md §2.5) over a real server and real /dev/shm."""

from __future__ import annotations

import threading

import msgpack
import numpy as np
import pytest
import zmq

from cosmos_sim.controls import depth_control
from cosmos_sim.sidecar import Client, ErrorCode, Limits, Server, SidecarError
from cosmos_sim.sidecar.protocol import encode_request
from cosmos_sim.sidecar.shm import SharedRegion


@pytest.fixture
def server(tmp_path):
    with Server(f"ipc://{tmp_path}/s.sock", data_dir=tmp_path, limits=Limits()) as srv:
        yield srv


def test_arrays_cross_in_shared_memory_both_ways(server):
    with Client(server.endpoint) as c:
        region = c.use_shared_memory(8 * 2**20)
        assert region.path.exists() and oct(region.path.stat().st_mode & 0o777) == "0o600"
        rgb = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
        reply = c.echo(rgb=rgb, scalar=np.array(7, np.int16))
        np.testing.assert_array_equal(reply.arrays["rgb"], rgb)
        assert reply.arrays["scalar"].shape == () and int(reply.arrays["scalar"]) == 7
        depth_m = np.linspace(1, 20, 48 * 64, dtype=np.float32).reshape(48, 64)
        out = c.controls(["depth"], depth_m=depth_m, depth_min_m=1.0, depth_max_m=20.0)
        np.testing.assert_array_equal(out["depth"], depth_control(depth_m, min_m=1.0, max_m=20.0))
        big = np.zeros((3000, 1000, 3), np.uint8)  # 9 MB: over half the region, so a frame
        assert c.echo(big=big).arrays["big"].shape == big.shape
        path = region.path
    for _ in range(100):  # the session's close runs once the disconnect event is read
        if not path.exists():
            break
        threading.Event().wait(0.05)
    assert not path.exists(), "the session's region was not removed"


def raw_client(server: Server) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(server.endpoint)
    sock.send_multipart(encode_request(0, "hello", {"versions": [1]}))
    assert sock.poll(5000)
    sock.recv_multipart()
    return sock


def ask(sock: zmq.Socket, header: dict, frames: list[bytes] = ()) -> tuple[dict, list]:
    sock.send_multipart([msgpack.packb(header), *frames])
    assert sock.poll(5000)
    reply = sock.recv_multipart()
    return msgpack.unpackb(reply[0]), reply[1:]


def test_the_wire_carries_only_headers(server):
    sock = raw_client(server)
    opened, _ = ask(sock, {"v": 1, "id": 1, "method": "shm_open", "params": {"size": 4096}})
    handle = opened["result"]["shm"]
    region = SharedRegion.attach(opened["result"]["name"], 4096)
    region.view[128:134] = bytes(range(6))
    desc = {"name": "a", "dtype": "uint8", "shape": [2, 3], "shm": handle, "offset": 128}
    header = {"v": 1, "id": 2, "method": "echo", "params": {}, "arrays": [desc]}
    reply, frames = ask(sock, {**header, "shm_reply": {"shm": handle, "offset": 2048}})
    assert frames == [] and reply["arrays"][0]["shm"] == handle
    assert reply["arrays"][0]["offset"] == 128  # echo names the same bytes: no copy at all
    bad = [
        ({**desc, "offset": 4095}, "BAD_ARRAY", "header.arrays[0].offset"),
        ({**desc, "shm": "shm-0000"}, "NOT_FOUND", "header.arrays[0].shm"),
        ({**desc, "frame": 1}, "BAD_ARRAY", "header.arrays[0].frame"),
        ({k: v for k, v in desc.items() if k != "offset"}, "BAD_ARRAY", "header.arrays[0].frame"),
    ]
    for descriptor, code, field in bad:
        reply, _ = ask(sock, {**header, "arrays": [descriptor]})
        assert (reply["error"]["code"], reply["error"]["field"]) == (code, field)
    reply, _ = ask(sock, {**header, "shm_reply": {"shm": "shm-0000", "offset": 0}})
    assert reply["error"]["code"] == ErrorCode.NOT_FOUND
    other = raw_client(server)  # another connection cannot use this region
    reply, _ = ask(other, header)
    assert reply["error"]["code"] == ErrorCode.NOT_FOUND
    other.close()
    region.close()
    sock.close()


def test_shared_memory_is_bounded(tmp_path):
    limits = Limits(max_shm_bytes=2**20)
    with Server(f"ipc://{tmp_path}/s.sock", data_dir=tmp_path, limits=limits) as srv:
        with Client(srv.endpoint) as c:
            c.use_shared_memory(2**19)
            with pytest.raises(SidecarError) as err:
                c.call("shm_open", {"size": 2**20})
            assert err.value.code == ErrorCode.TOO_LARGE and "max_shm_bytes" in err.value.message
            with pytest.raises(SidecarError) as err:
                c.call("shm_open", {"size": 0})
            assert err.value.code == ErrorCode.BAD_PARAMS
