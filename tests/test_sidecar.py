"""The sidecar over real sockets (ipc and loopback TCP): every method, sessions, concurrency."""

from __future__ import annotations

import threading
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from cosmos_sim import Episode
from cosmos_sim.controls import (
    depth_control,
    edge_control,
    lidar_control,
    seg_control,
    seg_palette,
    vis_control,
)
from cosmos_sim.sidecar import Client, ErrorCode, Limits, Server, SidecarError, SidecarTimeout
from cosmos_sim.sidecar.methods import method_table
from cosmos_sim.sidecar.protocol import (
    ALLOWED_DTYPES,
    decode_request,
    encode_reply,
    encode_request,
)
from cosmos_sim.sidecar.schema import Method, Param

H, W = 48, 64
EYE4 = np.eye(4).tolist()


class Gate:
    """A test-only slow method: blocks until the test opens the gate (no sleeps)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def method(self) -> Method:
        def handler(call):
            self.entered.set()
            if not self.release.wait(10):
                raise RuntimeError("gate never opened")
            return {"tag": call.params["tag"]}, {}

        return Method("gate", handler, "test only", params={"tag": Param(int, 0)})


@pytest.fixture(params=["ipc", "tcp"])
def endpoint(request, tmp_path) -> str:
    return f"ipc://{tmp_path}/sidecar.sock" if request.param == "ipc" else "tcp://127.0.0.1:*"


@pytest.fixture
def gate() -> Gate:
    gate = Gate()
    yield gate
    gate.release.set()


@pytest.fixture
def server(endpoint, tmp_path, gate):
    methods = {**method_table(), "gate": gate.method()}
    with Server(endpoint, workers=3, data_dir=tmp_path / "data", methods=methods) as srv:
        yield srv


@pytest.fixture
def client(server):
    with Client(server.endpoint, timeout_s=20) as c:
        yield c


def frame(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    rgb[:, W // 2 :] = 255 - rgb[:, W // 2 :] // 4  # a strong vertical edge
    depth = rng.uniform(0.5, 8.0, (H, W)).astype(np.float32)
    ids = np.zeros((H, W), np.int32)
    ids[10:30, 5:25], ids[20:40, 30:60] = 3, 7
    return {"rgb": rgb, "depth_m": depth, "instance_id": ids}


def raw_call(sock: zmq.Socket, frames: list, timeout_ms: int = 5000) -> tuple[dict, list]:
    sock.send_multipart(frames)
    assert sock.poll(timeout_ms), "no reply"
    reply = sock.recv_multipart()
    return msgpack.unpackb(reply[0]), reply[1:]


# -- handshake, framing -------------------------------------------------------------------


def test_hello_negotiates_the_highest_common_version(client):
    info = client.server_info
    assert info["version"] == 1
    assert {"hello", "echo", "stats", "controls", "episode_open"} <= set(info["methods"])
    assert "controls" in info["idempotent"] and "episode_append" not in info["idempotent"]
    assert set(info["dtypes"]) == set(ALLOWED_DTYPES)
    assert client.call("hello", {"versions": [1, 7, 99]}).result["version"] == 1


def test_hello_without_a_common_version_names_the_versions(client):
    with pytest.raises(SidecarError) as err:
        client.call("hello", {"versions": [2, 3]})
    assert err.value.code == ErrorCode.VERSION_UNSUPPORTED
    assert err.value.field == "params.versions" and "[1]" in err.value.fix


def test_requests_before_hello_are_refused(server):
    with zmq.Context.instance().socket(zmq.DEALER) as sock:
        sock.linger = 0
        sock.connect(server.endpoint)
        header, _ = raw_call(sock, encode_request(5, "stats"))
        assert header["id"] == 5 and not header["ok"]
        assert header["error"]["code"] == ErrorCode.HELLO_REQUIRED


def test_a_req_socket_works_too(server):
    with zmq.Context.instance().socket(zmq.REQ) as sock:
        sock.linger = 0
        sock.connect(server.endpoint)
        header, _ = raw_call(sock, encode_request(1, "hello", {"versions": [1]}))
        assert header["ok"] and header["result"]["version"] == 1
        rgb = frame()["rgb"]
        header, frames = raw_call(sock, encode_request(2, "echo", {}, {"rgb": rgb}))
        assert header["ok"] and header["arrays"][0]["shape"] == [H, W, 3]
        assert frames[0] == rgb.tobytes()


@pytest.mark.parametrize("dtype", ALLOWED_DTYPES)
def test_echo_round_trips_every_allowed_dtype(client, dtype):
    arr = (np.arange(2 * 3 * 5) % 2 == 1) if dtype == "bool" else np.arange(2 * 3 * 5)
    arr = arr.astype(dtype).reshape(2, 3, 5)
    reply = client.echo({"k": [1, "two"]}, a=arr, scalar=np.array(3.5))
    assert reply.result["params"] == {"k": [1, "two"]}
    assert reply.arrays["a"].dtype == arr.dtype and np.array_equal(reply.arrays["a"], arr)
    assert reply.arrays["scalar"].shape == ()  # a scalar comes back as a scalar


def test_big_endian_arrays_are_converted(client):
    values = np.array([[1.5, -2.0], [3.25, 1e9]])
    frames = encode_request(9, "echo", {}, {"x": values.astype(">f8")})
    header = msgpack.unpackb(frames[0])
    assert header["arrays"][0]["order"] == ">"
    reply = client.call("echo", {}, {"x": values.astype(">f8")})
    assert reply.arrays["x"].dtype == np.dtype("<f8") and np.array_equal(reply.arrays["x"], values)


def test_an_unchanged_input_array_goes_back_as_the_received_frame():
    rgb = frame()["rgb"]
    received = [zmq.Frame(f) for f in encode_request(1, "echo", {}, {"rgb": rgb})]
    request = decode_request(received, Limits())
    assert not request.arrays["rgb"].flags.writeable  # a view on the frame, not a copy
    reply = encode_reply(1, {}, request.arrays, 1, request.origins)
    assert reply[1] is received[1]  # no copy, no re-wrapping
    assert encode_reply(1, {}, {"rgb": rgb.copy()}, 1, request.origins)[1] is not received[1]


def test_describe_lists_params_and_arrays(client):
    info = client.describe("controls")["controls"]
    assert info["idempotent"] and info["params"]["modalities"]["required"]
    assert info["arrays"]["rgb"] == {
        "dtypes": ["uint8"],
        "shape": ["H", "W", 3],
        "required": False,
        "doc": info["arrays"]["rgb"]["doc"],
    }


# -- controls -------------------------------------------------------------------------------


def test_controls_match_the_python_functions(client):
    f = frame()
    out = client.controls(
        ["depth", "seg", "edge", "vis"],
        **f,
        seg_seed=4,
        depth_min_m=0.5,
        depth_max_m=8.0,
        edge_preset="low",
    )
    assert set(out) == {"depth", "seg", "edge", "vis"}
    for value in out.values():
        assert value.shape == (H, W, 3) and value.dtype == np.uint8
    np.testing.assert_array_equal(out["depth"], depth_control(f["depth_m"], min_m=0.5, max_m=8.0))
    palette = seg_palette(np.unique(f["instance_id"]), 4)
    np.testing.assert_array_equal(out["seg"], seg_control(f["instance_id"], palette))
    np.testing.assert_array_equal(out["edge"], edge_control(f["rgb"], "low"))
    np.testing.assert_array_equal(out["vis"], vis_control(f["rgb"], "medium"))


def test_controls_return_the_seg_palette_and_depth_range(client):
    f = frame()
    reply = client.call(
        "controls",
        {"modalities": ["seg", "depth"]},
        {"instance_id": f["instance_id"], "depth_m": f["depth_m"]},
    )
    assert set(reply.result["seg_palette"]) == {"0", "3", "7"}
    assert reply.result["seg_palette"]["0"] == [0, 0, 0]
    lo, hi = reply.result["depth_range_m"]
    assert 0.5 <= lo < hi <= 8.0


def test_lidar_control_over_the_wire(client):
    K = [[50.0, 0, W / 2], [0, 50.0, H / 2], [0, 0, 1]]
    pts = np.array([[0.0, 0.0, 10.0], [1.0, 0.5, 20.0]], np.float32)
    out = client.controls(["lidar"], points_world=pts, K=K, cam_to_world=EYE4, height=H, width=W)
    want = lidar_control([pts], np.array(K), np.eye(4), H, W)
    np.testing.assert_array_equal(out["lidar"], want)
    assert out["lidar"].max() > 0


@pytest.mark.parametrize(
    ("params", "arrays", "code", "field"),
    [
        ({"modalities": ["depth"]}, {"rgb"}, ErrorCode.BAD_ARRAY, "arrays.depth_m"),
        ({"modalities": ["fog"]}, {"rgb"}, ErrorCode.BAD_PARAMS, "params.modalities"),
        (
            {"modalities": ["edge"], "edge_preset": "max"},
            {"rgb"},
            ErrorCode.BAD_PARAMS,
            "params.edge_preset",
        ),
        ({"modalities": ["edge"], "colour": 1}, {"rgb"}, ErrorCode.BAD_PARAMS, "params.colour"),
        ({"modalities": "edge"}, {"rgb"}, ErrorCode.BAD_PARAMS, "params.modalities"),
        ({}, {"rgb"}, ErrorCode.BAD_PARAMS, "params.modalities"),
        ({"modalities": ["lidar"]}, {"points_world"}, ErrorCode.BAD_PARAMS, "params.K"),
    ],
)
def test_bad_controls_requests_name_the_field(client, params, arrays, code, field):
    f = {**frame(), "points_world": np.zeros((4, 3), np.float32)}
    with pytest.raises(SidecarError) as err:
        client.call("controls", params, {k: f[k] for k in arrays})
    assert err.value.code == code and err.value.field == field and err.value.fix


def test_controls_check_shapes_and_dtypes_across_arrays(client):
    f = frame()
    with pytest.raises(SidecarError) as err:
        client.controls(["depth", "edge"], rgb=f["rgb"], depth_m=f["depth_m"][:10])
    assert err.value.code == ErrorCode.SHAPE_MISMATCH and err.value.field == "arrays.depth_m.shape"
    with pytest.raises(SidecarError) as err:
        client.controls(["depth"], depth_m=f["depth_m"].astype(np.float64))
    assert err.value.code == ErrorCode.DTYPE_NOT_ALLOWED and "float32" in err.value.fix
    with pytest.raises(SidecarError) as err:
        client.controls(["edge"], rgb=f["rgb"][..., :2])
    assert err.value.code == ErrorCode.SHAPE_MISMATCH
    with pytest.raises(SidecarError) as err:
        client.call("controls", {"modalities": ["edge"]}, {"rgbx": f["rgb"]})
    assert err.value.code == ErrorCode.BAD_ARRAY and err.value.field == "arrays.rgbx"


def test_nan_depth_is_a_bad_param_not_a_crash(client):
    depth = frame()["depth_m"].copy()
    depth[0, 0] = np.nan
    with pytest.raises(SidecarError) as err:
        client.controls(["depth"], depth_m=depth)
    assert err.value.code == ErrorCode.BAD_PARAMS and "NaN" in err.value.message
    assert client.stats()["errors"] >= 1


# -- episodes -------------------------------------------------------------------------------


CAMERA = {"name": "front", "width": W, "height": H, "fov_deg": 60.0}


def test_episode_round_trip(client, server):
    handle = client.episode_open(
        "robot1/ep0",
        cameras=[CAMERA],
        fps=10.0,
        simulator="unity",
        class_names={"3": "cube"},
        meta={"run": 1},
    )
    frames = [frame(i) for i in range(3)]
    for i, f in enumerate(frames):
        pose = np.eye(4)
        pose[0, 3] = i
        index = client.episode_append(
            handle,
            sim_time_s=i / 10,
            sensors={"front": {"cam_to_world": pose}},
            arrays={
                "front/rgb": f["rgb"],
                "front/depth_m": f["depth_m"],
                "front/instance_id": f["instance_id"],
                "data/action": np.array([i, -i]),
            },
            data={"reward": float(i)},
        )
        assert index == i
    closed = client.episode_close(handle)
    assert closed["num_ticks"] == 3
    episode = Episode(Path(closed["path"]))
    assert Path(closed["path"]) == server.data_dir / "robot1" / "ep0"
    assert episode.complete and len(episode) == 3 and episode.class_names == {3: "cube"}
    np.testing.assert_array_equal(episode.stack("front", "rgb"), [f["rgb"] for f in frames])
    tick = episode[2]
    assert tick.data["reward"] == 2.0 and list(tick.data["action"]) == [2, -2]
    assert tick.frames["front"].cam_to_world[0, 3] == 2


def test_episode_errors_name_the_field(client):
    with pytest.raises(SidecarError) as err:
        client.episode_open("../escape", cameras=[CAMERA], fps=10.0, simulator="x")
    assert err.value.code == ErrorCode.BAD_PARAMS and err.value.field == "params.path"
    with pytest.raises(SidecarError) as err:
        client.episode_open("/abs", cameras=[CAMERA], fps=10.0, simulator="x")
    assert err.value.field == "params.path"
    with pytest.raises(SidecarError) as err:
        client.episode_open("bad", cameras=[{**CAMERA, "width": -1}], fps=10.0, simulator="x")
    assert err.value.code == ErrorCode.BAD_PARAMS and "width" in err.value.message
    handle = client.episode_open("ok", cameras=[CAMERA], fps=10.0, simulator="x")
    with pytest.raises(SidecarError) as err:
        client.episode_append(
            handle, 0.0, {"front": {"cam_to_world": EYE4}}, {"front/rgb": frame()["rgb"][:5]}
        )
    assert err.value.code == ErrorCode.SHAPE_MISMATCH
    assert err.value.field == "arrays.front/rgb.shape"
    with pytest.raises(SidecarError) as err:
        client.episode_append(
            handle, 0.0, {"front": {"cam_to_world": EYE4}}, {"back/rgb": frame()["rgb"]}
        )
    assert err.value.code == ErrorCode.BAD_ARRAY and err.value.field == "arrays.back/rgb"
    with pytest.raises(SidecarError) as err:
        client.episode_append("episode-0000", 0.0, {"front": {"cam_to_world": EYE4}})
    assert err.value.code == ErrorCode.NOT_FOUND


def test_a_client_cannot_touch_another_clients_episode(server):
    with Client(server.endpoint) as owner, Client(server.endpoint) as other:
        handle = owner.episode_open("mine", cameras=[CAMERA], fps=10.0, simulator="x")
        with pytest.raises(SidecarError) as err:
            other.episode_append(handle, 0.0, {"front": {"cam_to_world": EYE4}})
        assert err.value.code == ErrorCode.NOT_FOUND
        with pytest.raises(SidecarError) as err:
            other.episode_close(handle)
        assert err.value.code == ErrorCode.NOT_FOUND
        assert owner.episode_append(handle, 0.0, {"front": {"cam_to_world": EYE4}}) == 0


def test_pipelined_stateful_requests_run_in_arrival_order(server):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(server.endpoint)
    raw_call(sock, encode_request(0, "hello", {"versions": [1]}))
    header, _ = raw_call(
        sock,
        encode_request(
            1,
            "episode_open",
            {"path": "pipelined2", "cameras": [CAMERA], "fps": 10.0, "simulator": "x"},
        ),
    )
    handle = header["result"]["episode"]
    rgbs = [np.full((H, W, 3), i, np.uint8) for i in range(12)]
    for i, rgb in enumerate(rgbs):  # all sent before any reply is read
        sock.send_multipart(
            encode_request(
                10 + i,
                "episode_append",
                {
                    "episode": handle,
                    "sim_time_s": i / 10,
                    "index": i,
                    "sensors": {"front": {"cam_to_world": EYE4}},
                },
                {"front/rgb": rgb},
            )
        )
    replies = {}
    for _ in rgbs:
        assert sock.poll(10_000)
        reply = msgpack.unpackb(sock.recv_multipart()[0])
        replies[reply["id"]] = reply
    sock.close()
    assert all(r["ok"] for r in replies.values()), [r["error"] for r in replies.values()]
    assert [replies[10 + i]["result"]["index"] for i in range(12)] == list(range(12))
    stack = Episode(Path(header["result"]["path"])).stack("front", "rgb")
    assert [int(frame[0, 0, 0]) for frame in stack] == list(range(12))


def test_idle_sessions_end_and_close_their_episodes(tmp_path):
    with Server("tcp://127.0.0.1:*", data_dir=tmp_path, session_idle_s=0.2) as srv:
        with Client(srv.endpoint) as c:
            handle = c.episode_open("idle", cameras=[CAMERA], fps=10.0, simulator="x")
            c.episode_append(handle, 0.0, {"front": {"cam_to_world": EYE4}})
            manifest = tmp_path / "idle" / "episode.json"
            before = manifest.stat().st_mtime_ns
            poll_until(lambda: manifest.stat().st_mtime_ns != before)  # closed by the reaper
            with pytest.raises(SidecarError) as err:
                c.episode_append(handle, 0.1, {"front": {"cam_to_world": EYE4}})
            assert err.value.code == ErrorCode.HELLO_REQUIRED
    episode = Episode(tmp_path / "idle")
    assert not episode.complete and len(episode) == 1


def poll_until(predicate, timeout_s: float = 10.0) -> None:
    pause = threading.Event()  # never set: wait() is a short sleep that is not time.sleep
    for _ in range(int(timeout_s / 0.01)):
        if predicate():
            return
        pause.wait(0.01)
    raise AssertionError("condition not reached")


def test_shutdown_closes_open_episodes_as_incomplete(endpoint, tmp_path):
    srv = Server(endpoint, data_dir=tmp_path).start()
    with Client(srv.endpoint) as c:
        handle = c.episode_open("cut", cameras=[CAMERA], fps=10.0, simulator="x")
        c.episode_append(
            handle, 0.0, {"front": {"cam_to_world": EYE4}}, {"front/rgb": frame()["rgb"]}
        )
        c.shutdown()
    srv.stop()
    assert srv.stopped
    episode = Episode(tmp_path / "cut")
    assert not episode.complete and len(episode) == 1


# -- stats, concurrency, robustness -----------------------------------------------------


def test_stats_count_requests_errors_and_latency(client):
    client.echo(a=np.zeros(3))
    with pytest.raises(SidecarError):
        client.call("echo", {"bogus": 1})
    stats = client.stats()
    assert stats["requests"] >= 3 and stats["errors"] >= 1
    echo = stats["methods"]["echo"]
    assert echo["requests"] == 2 and echo["errors"] == 1
    assert 0 < echo["latency_ms"]["p50"] <= echo["latency_ms"]["p99"]
    assert stats["sessions"] == 1 and stats["workers"] == 3


def test_unknown_method_gets_one_error_reply(client):
    with pytest.raises(SidecarError) as err:
        client.call("teleport")
    assert err.value.code == ErrorCode.UNKNOWN_METHOD and "controls" in err.value.fix


def test_sixty_concurrent_clients(server):
    failures: list[BaseException] = []
    barrier = threading.Barrier(60)

    def run(i: int) -> None:
        try:
            f = frame(i)
            with Client(server.endpoint, timeout_s=60) as c:
                barrier.wait(30)
                echoed = c.echo({"i": i}, rgb=f["rgb"])
                assert echoed.result["params"]["i"] == i
                assert np.array_equal(echoed.arrays["rgb"], f["rgb"])
                out = c.controls(
                    ["depth", "edge"],
                    rgb=f["rgb"],
                    depth_m=f["depth_m"],
                    depth_min_m=0.5,
                    depth_max_m=8.0,
                )
                np.testing.assert_array_equal(out["edge"], edge_control(f["rgb"]))
        except BaseException as exc:  # collected and re-raised in the test thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures[:3]
    with Client(server.endpoint) as c:
        stats = c.stats()
    assert stats["methods"]["controls"]["requests"] == 60 and stats["errors"] == 0


def test_a_slow_method_does_not_stall_other_clients(server, gate):
    slow_client = Client(server.endpoint, timeout_s=20)
    result: dict = {}
    slow = threading.Thread(target=lambda: result.update(slow_client.call("gate").result))
    slow.start()
    try:
        assert gate.entered.wait(10)
        with Client(server.endpoint, timeout_s=10) as fast:  # would time out if stalled
            out = fast.controls(["edge"], rgb=frame()["rgb"])
            assert out["edge"].shape == (H, W, 3)
            assert not result
    finally:
        gate.release.set()
        slow.join(10)
        slow_client.close()
    assert result == {"tag": 0}


def test_a_client_that_disappears_mid_request(server, gate):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(server.endpoint)
    raw_call(sock, encode_request(1, "hello", {"versions": [1]}))
    sock.send_multipart(encode_request(2, "gate", {"tag": 1}))
    assert gate.entered.wait(10)
    sock.close()  # gone before its reply
    gate.release.set()
    with Client(server.endpoint) as c:
        # the method finishes; its reply goes nowhere and never blocks the server
        poll_until(lambda: "gate" in c.stats()["methods"])
        stats = c.stats()
        assert stats["methods"]["gate"] == {**stats["methods"]["gate"], "requests": 1, "errors": 0}
        # Counted as dropped when ZeroMQ already saw the peer go (else ZeroMQ discards it).
        assert stats["dropped_replies"] <= 1
        assert c.echo(a=np.ones(2)).arrays["a"].sum() == 2


def test_client_retries_idempotent_calls_only_and_drops_stale_replies():
    """Against a scripted ROUTER: a lost reply, a duplicate, a stale id, a non-idempotent call."""
    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.linger = 0
    port = router.bind_to_random_port("tcp://127.0.0.1")
    seen: list[tuple[str, int]] = []

    def reply(envelope: list, request_id, result: dict) -> None:
        header = {"v": 1, "id": request_id, "ok": True, "result": result, "arrays": []}
        router.send_multipart([*envelope, msgpack.packb(header)])

    def serve() -> None:
        while router.poll(5000):
            identity, raw = router.recv_multipart()
            header = msgpack.unpackb(raw)
            seen.append((header["method"], header["id"]))
            if header["method"] == "hello":
                reply([identity], header["id"], {"version": 1, "idempotent": ["hello", "stats"]})
            elif header["method"] == "stats" and seen.count(("stats", header["id"])) == 1:
                continue  # the first attempt's reply is lost
            elif header["method"] == "stats":
                reply([identity], header["id"] - 1, {"stale": True})  # an old request's reply
                reply([identity], header["id"], {"n": 1})
                reply([identity], header["id"], {"n": 2})  # a duplicate of the same reply
            elif header["method"] == "shutdown":
                return

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with Client(f"tcp://127.0.0.1:{port}", timeout_s=0.3, retries=2) as c:
            assert c.stats() == {"n": 1}
            with pytest.raises(SidecarTimeout):
                c.call("episode_append", {"episode": "e"})  # never resent
            with pytest.raises(SidecarTimeout):
                c.call("shutdown")
    finally:
        thread.join(10)
        router.close()
    assert [m for m, _ in seen] == ["hello", "stats", "stats", "episode_append", "shutdown"]


def test_too_many_requests_in_flight_get_busy(endpoint, tmp_path, gate):
    methods = {**method_table(), "gate": gate.method()}
    limits = Limits(max_inflight_per_client=2)
    with Server(endpoint, workers=2, limits=limits, data_dir=tmp_path, methods=methods) as srv:
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(srv.endpoint)
        raw_call(sock, encode_request(1, "hello", {"versions": [1]}))
        sock.send_multipart(encode_request(2, "gate"))
        sock.send_multipart(encode_request(3, "gate"))
        header, _ = raw_call(sock, encode_request(4, "gate"))
        assert header["id"] == 4 and header["error"]["code"] == ErrorCode.BUSY
        gate.release.set()
        ids = set()
        for _ in range(2):
            assert sock.poll(5000)
            ids.add(msgpack.unpackb(sock.recv_multipart()[0])["id"])
        assert ids == {2, 3}
        sock.close()


def test_limits_are_enforced(endpoint, tmp_path):
    limits = Limits(max_message_bytes=40_000, max_array_bytes=30_000, max_arrays=3)
    with Server(endpoint, limits=limits, data_dir=tmp_path) as srv, Client(srv.endpoint) as c:
        assert c.server_info["limits"]["max_arrays"] == 3
        cases = [
            {"a": np.zeros(30_001, np.uint8)},
            {f"a{i}": np.zeros(1, np.uint8) for i in range(4)},
            {"a": np.zeros(25_000, np.uint8), "b": np.zeros(25_000, np.uint8)},
        ]
        for arrays in cases:
            with pytest.raises(SidecarError) as err:
                c.echo(**arrays)
            assert err.value.code == ErrorCode.TOO_LARGE
        assert c.echo(a=np.zeros(30_000, np.uint8)).arrays["a"].size == 30_000


def test_shutdown_method_stops_the_server(endpoint, tmp_path):
    srv = Server(endpoint, data_dir=tmp_path).start()
    with Client(srv.endpoint) as c:
        c.shutdown()
    srv.stop()
    assert srv.stopped
    if endpoint.startswith("ipc://"):
        assert not Path(endpoint[len("ipc://") :]).exists()
