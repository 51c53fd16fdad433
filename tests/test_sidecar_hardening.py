"""What an independent client and fuzzer found (issue 18), each case pinned over real sockets:
work budgets checked before any work, sessions freed when their connection goes away, and
every reply code exactly as PROTOCOL.md documents it."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from cosmos_sim.sidecar import Client, ErrorCode, Limits, Server, SidecarError
from cosmos_sim.sidecar.methods import method_table
from cosmos_sim.sidecar.protocol import encode_request
from cosmos_sim.sidecar.schema import Method

EYE4 = np.eye(4).tolist()
K = [[50.0, 0.0, 32.0], [0.0, 50.0, 24.0], [0.0, 0.0, 1.0]]
CAMERA = {"name": "front", "width": 64, "height": 48, "fov_deg": 60.0}
SMALL = Limits(max_array_bytes=8 * 2**20, max_message_bytes=24 * 2**20, max_arrays=16)
"""The acceptance check's limits (`cosmos-sim serve --max-array-mb 8 --max-message-mb 24
--max-arrays 16`)."""
STREET = Path(__file__).parent / "data" / "two_way_street.xodr"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    shutil.copy(STREET, data_dir / "street.xodr")
    with Server("tcp://127.0.0.1:*", workers=2, data_dir=data_dir, limits=SMALL) as srv:
        yield srv


@pytest.fixture
def client(server):
    with Client(server.endpoint, timeout_s=20) as c:
        yield c


def error_of(client: Client, method: str, params: dict, arrays: dict | None = None):
    with pytest.raises(SidecarError) as err:
        client.call(method, params, arrays)
    return err.value


# -- work budget: parameters that size memory or time ------------------------------------------


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        ({"height": 100_000, "width": 100_000}, ErrorCode.BAD_PARAMS, "params.height"),
        ({"height": 2048, "width": 2048}, ErrorCode.TOO_LARGE, "params.height"),
        ({"height": 48, "width": 64, "lidar_dilate_px": 100_000}, "BAD_PARAMS", None),
        ({"height": 48, "width": 64, "lidar_dilate_px": -1}, "BAD_PARAMS", None),
    ],
)
def test_sizes_and_dilation_are_refused_before_any_work(client, params, code, field):
    error = error_of(
        client,
        "controls",
        {"modalities": ["lidar"], "K": K, "cam_to_world": EYE4, **params},
        {"points_world": np.zeros((4, 3), np.float32)},
    )
    assert error.code == code
    assert error.field == (field or "params.lidar_dilate_px")
    assert "max" in error.fix or "<=" in error.fix or ">=" in error.fix  # names the limit
    assert client.echo(a=np.arange(3)).arrays["a"].tolist() == [0, 1, 2]  # still serving


def test_hello_reports_the_work_budget(client):
    limits = client.server_info["limits"]
    for key in ("max_image_side", "max_dilate_px", "max_boxes", "max_num_envs", "max_request_s"):
        assert limits[key] == Limits().to_dict()[key]
    assert limits["max_sessions"] == 1024 and limits["max_sessions_per_peer"] == 256


def test_batch_sizes_are_bounded(client):
    assert error_of(
        client, "env_make", {"id": "cosmos_sim/PushCube-v0", "num_envs": 10_000}
    ).field == ("params.num_envs")


def test_a_slow_stateless_request_is_answered_at_the_time_limit(tmp_path):
    release = threading.Event()

    def slow(call):
        release.wait(10)
        return {"late": True}, {}

    methods = {**method_table(), "slow": Method("slow", slow, "test only", params={})}
    limits = Limits(max_request_s=1)
    with Server("tcp://127.0.0.1:*", data_dir=tmp_path, limits=limits, methods=methods) as srv:
        with Client(srv.endpoint, timeout_s=10) as c:
            with pytest.raises(SidecarError) as err:
                c.call("slow")
            assert err.value.code == ErrorCode.TOO_LARGE and "max_request_s=1" in err.value.message
            release.set()
            assert c.echo(a=np.ones(2)).arrays["a"].tolist() == [1, 1]  # the late reply is dropped
            assert c.stats()["methods"]["slow"]["errors"] == 1


# -- sessions: freed when the connection goes, capped per peer ---------------------------------


def connect(endpoint: str) -> Client:
    """A client, retrying BUSY for up to 5 s: a closed connection's slot is free once the
    server has read its disconnect event, which can trail the next hello by milliseconds."""
    for _ in range(100):
        try:
            return Client(endpoint, timeout_s=10)
        except SidecarError as exc:
            if exc.code != ErrorCode.BUSY:
                raise
            threading.Event().wait(0.05)
    raise AssertionError("still BUSY after 5 s: closed sessions were not freed")


def test_dropped_clients_free_their_sessions(tmp_path):
    with Server("tcp://127.0.0.1:*", data_dir=tmp_path, max_sessions=8) as srv:
        for _ in range(3 * 8):  # three times the cap: each says hello and goes away
            connect(srv.endpoint).close()
        with connect(srv.endpoint) as c:  # without disconnect events: BUSY for an hour
            assert c.echo(a=np.arange(2)).arrays["a"].tolist() == [0, 1]
            assert c.stats()["sessions"] >= 1


def test_a_dropped_session_closes_its_episode(tmp_path):
    with Server("tcp://127.0.0.1:*", data_dir=tmp_path) as srv:
        with Client(srv.endpoint) as c:
            handle = c.episode_open("ep", cameras=[CAMERA], fps=10.0, simulator="t")
            c.episode_append(handle, 0.0, {"front": {"cam_to_world": EYE4}})
        with Client(srv.endpoint) as c:
            for _ in range(100):  # the close runs on its own thread once the event is read
                manifest = json.loads((tmp_path / "ep" / "episode.json").read_text())
                if manifest["num_ticks"] == 1:
                    break
                threading.Event().wait(0.05)
            assert manifest["num_ticks"] == 1 and manifest["complete"] is False
            assert c.stats()["sessions"] == 1


def test_one_peer_cannot_take_every_session(tmp_path):
    with Server(
        "tcp://127.0.0.1:*", data_dir=tmp_path, max_sessions=8, max_sessions_per_peer=3
    ) as srv:
        held = [Client(srv.endpoint, timeout_s=10) for _ in range(3)]
        with pytest.raises(SidecarError) as err:
            Client(srv.endpoint, timeout_s=10)
        assert err.value.code == ErrorCode.BUSY and "max_sessions_per_peer=3" in err.value.message
        held.pop().close()
        with connect(srv.endpoint) as c:  # the closed one's slot is free again
            assert c.stats()["sessions"] == 3
        for c in held:
            c.close()


# -- reply codes exactly as documented ---------------------------------------------------------


@pytest.fixture(scope="module")
def hdmap(server):
    with Client(server.endpoint) as c:
        yield c, c.call("hdmap_load", {"path": "street.xodr"}).result["hdmap"]


CUBE = [[x, y, z] for x in (9.0, 11.0) for y in (-1.0, 1.0) for z in (0.0, 1.5)]


@pytest.mark.parametrize(
    ("boxes", "field"),
    [
        ([{"class": "Car", "corners": CUBE[:3]}], "params.boxes[0].corners"),
        ([{"class": "Car", "corners": [[0.0, 0.0]] * 8}], "params.boxes[0].corners"),
        ([{"class": "Car", "corners": {"a": 1}}], "params.boxes[0].corners"),
        ([{"class": "Car", "corners": [["1", 2, 3]] * 8}], "params.boxes[0].corners"),
        ([CUBE], "params.boxes[0]"),
        ([{"class": "Spaceship", "corners": CUBE}], "params.boxes[0].class"),
    ],
)
def test_malformed_hdmap_boxes_are_bad_params(hdmap, boxes, field):
    c, handle = hdmap
    params = {"modalities": ["hdmap"], "hdmap": handle, "K": K, "cam_to_world": EYE4}
    error = error_of(c, "controls", {**params, "height": 48, "width": 64, "boxes": boxes})
    assert (error.code, error.field) == (ErrorCode.BAD_PARAMS, field)
    box = {"class": "Car", "corners": CUBE}
    good = c.call("controls", {**params, "height": 48, "width": 64, "boxes": [box]})
    assert good.arrays["hdmap"].shape == (48, 64, 3)


def test_light_states_outside_the_list_are_bad_params(hdmap):
    c, handle = hdmap
    error = error_of(
        c,
        "controls",
        {
            "modalities": ["hdmap"],
            "hdmap": handle,
            "K": K,
            "cam_to_world": EYE4,
            "height": 48,
            "width": 64,
            "light_states": {"1": "purple"},
        },
    )
    assert (error.code, error.field) == (ErrorCode.BAD_PARAMS, "params.light_states.1")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"depth_max_m": float("inf")}, "params.depth_max_m"),
        ({"depth_min_m": float("nan")}, "params.depth_min_m"),
        ({"depth_min_m": 0.0}, "params.depth_min_m"),
        ({"depth_min_m": 5.0, "depth_max_m": 2.0}, "params.depth_max_m"),
        ({"K": [["50", 0, 32], [0, 50, 24], [0, 0, 1]]}, "params.K"),
    ],
)
def test_values_the_document_forbids_are_bad_params(client, params, field):
    depth = np.full((48, 64), 3.0, np.float32)
    error = error_of(client, "controls", {"modalities": ["depth"], **params}, {"depth_m": depth})
    assert (error.code, error.field) == (ErrorCode.BAD_PARAMS, field)


def test_fps_infinity_is_refused_and_never_written(client, server):
    for fps in (float("inf"), float("nan"), 0.0):
        error = error_of(
            client,
            "episode_open",
            {"path": f"inf{fps}", "fps": fps, "simulator": "t", "cameras": [CAMERA]},
        )
        assert (error.code, error.field) == (ErrorCode.BAD_PARAMS, "params.fps")
    meta = {"gain": float("-inf")}
    error = error_of(
        client,
        "episode_open",
        {"path": "m", "fps": 10.0, "simulator": "t", "cameras": [CAMERA], "meta": meta},
    )
    assert (error.code, error.field) == (ErrorCode.BAD_PARAMS, "params.meta.gain")
    assert not any(server.data_dir.glob("inf*")) and not (server.data_dir / "m").exists()


def test_episode_json_is_strict(client, server):
    handle = client.episode_open("strict", cameras=[CAMERA], fps=10.0, simulator="t")
    client.episode_append(handle, 0.0, {"front": {"cam_to_world": EYE4}}, data={"r": 1.5})
    client.episode_close(handle)
    text = (server.data_dir / "strict" / "episode.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def test_episode_append_names_arrays_as_sent(client):
    handle = client.episode_open("codes", cameras=[CAMERA], fps=10.0, simulator="t")
    sensors = {"front": {"cam_to_world": EYE4}}
    cases = [
        ({"front/rgb": np.zeros((48, 60, 3), np.uint8)}, "SHAPE_MISMATCH", "front/rgb.shape"),
        ({"front/rgb": np.zeros((48, 64, 3), np.float32)}, "DTYPE_NOT_ALLOWED", "front/rgb.dtype"),
        (
            {"front/depth_m": np.zeros((48, 64), np.float64)},
            "DTYPE_NOT_ALLOWED",
            "front/depth_m.dtype",
        ),
        (
            {"front/points_world": np.zeros((5, 4), np.float32)},
            "SHAPE_MISMATCH",
            "front/points_world.shape",
        ),
    ]
    for arrays, code, field in cases:
        with pytest.raises(SidecarError) as err:
            client.episode_append(handle, 0.0, sensors, arrays)
        assert (err.value.code, err.value.field) == (code, f"arrays.{field}")
        assert "SensorFrame" not in err.value.message
    with pytest.raises(SidecarError) as err:  # a pose that is not rigid, named as sent
        client.episode_append(handle, 0.0, {"front": {"cam_to_world": (2 * np.eye(4)).tolist()}})
    assert err.value.code == ErrorCode.BAD_PARAMS
    assert err.value.field.startswith("params.sensors.front.cam_to_world")
    assert client.episode_append(handle, 0.0, sensors) == 0  # nothing was written before


def test_episode_read_returns_ticks_by_range(client):
    handle = client.episode_open("readback", cameras=[CAMERA], fps=10.0, simulator="t")
    rng = np.random.default_rng(0)
    rgbs = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(4)]
    for i, rgb in enumerate(rgbs):
        pose = np.eye(4)
        pose[0, 3] = i
        client.episode_append(
            handle, i / 10, {"front": {"cam_to_world": pose}}, {"front/rgb": rgb}, data={"r": i}
        )
    reply = client.call("episode_read", {"path": "readback", "start": 1, "count": 2})
    assert [t["index"] for t in reply.result["ticks"]] == [1, 2]
    assert reply.result["num_ticks"] == 4 and reply.result["complete"] is False
    assert reply.result["ticks"][1]["sensors"]["front"]["cam_to_world"][0][3] == 2
    assert reply.result["ticks"][0]["data"] == {"r": 1}
    np.testing.assert_array_equal(reply.arrays["2/front/rgb"], rgbs[2])
    assert sorted(reply.arrays) == ["1/front/rgb", "2/front/rgb"]
    client.episode_close(handle)
    everything = client.call("episode_read", {"path": "readback", "count": None})
    assert len(everything.result["ticks"]) == 4 and everything.result["complete"] is True
    assert error_of(client, "episode_read", {"path": "readback", "start": 3, "count": 5}).field == (
        "params.start"
    )
    assert error_of(client, "episode_read", {"path": "nothing-here"}).code == ErrorCode.NOT_FOUND


def test_episode_read_stays_within_the_array_limits(tmp_path):
    limits = Limits(max_arrays=3)
    with (
        Server("tcp://127.0.0.1:*", data_dir=tmp_path, limits=limits) as srv,
        Client(srv.endpoint) as c,
    ):
        handle = c.episode_open("ep", cameras=[CAMERA], fps=10.0, simulator="t")
        rgb = {"front/rgb": np.zeros((48, 64, 3), np.uint8)}
        for i in range(4):
            c.episode_append(handle, i / 10, {"front": {"cam_to_world": EYE4}}, rgb)
        error = error_of(c, "episode_read", {"path": "ep", "count": None})
        assert (error.code, error.field) == (ErrorCode.TOO_LARGE, "params.count")
        assert "at most 3 ticks" in error.fix


def raw_exchange(server: Server, header: dict, frames: list[bytes]) -> dict:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(server.endpoint)
    try:
        sock.send_multipart(encode_request(0, "hello", {"versions": [1]}))
        assert sock.poll(5000)
        sock.recv_multipart()
        sock.send_multipart([msgpack.packb(header), *frames])
        assert sock.poll(5000)
        return msgpack.unpackb(sock.recv_multipart()[0])
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("descriptor", "code", "field"),
    [
        ({"name": "a", "shape": [4], "frame": 1}, "BAD_ARRAY", "header.arrays[0].dtype"),
        (
            {"name": "a", "dtype": 7, "shape": [4], "frame": 1},
            "BAD_ARRAY",
            "header.arrays[0].dtype",
        ),
        (
            {"name": "a", "dtype": "object", "shape": [4], "frame": 1},
            "DTYPE_NOT_ALLOWED",
            "header.arrays[0].dtype",
        ),
        (
            {"name": "a", "dtype": "float32", "shape": [4], "frame": 1, "order": "|"},
            "BAD_ARRAY",
            "header.arrays[0].order",
        ),
        ({"name": "a", "dtype": "float32", "frame": 1}, "BAD_ARRAY", "header.arrays[0].shape"),
        (
            {"name": "a", "dtype": "float32", "shape": [4], "frame": 1, "order": ["<"]},
            "BAD_ARRAY",
            "header.arrays[0].order",
        ),
    ],
)
def test_descriptor_errors(server, descriptor, code, field):
    header = {"v": 1, "id": 5, "method": "echo", "params": {}, "arrays": [descriptor]}
    reply = raw_exchange(server, header, [b"\x00" * 16])
    assert (reply["error"]["code"], reply["error"]["field"]) == (code, field)


def test_one_byte_order_bar_still_works_for_one_byte_dtypes(client):
    reply = client.echo(a=np.arange(4, dtype=np.uint8), s=np.array(2.5))
    assert reply.arrays["a"].tolist() == [0, 1, 2, 3]
    assert reply.arrays["s"].shape == () and float(reply.arrays["s"]) == 2.5


def test_deep_nesting_is_bad_header(server):
    deep: list = []
    for _ in range(40):
        deep = [deep]
    reply = raw_exchange(
        server, {"v": 1, "id": 9, "method": "echo", "params": {"params": {"x": deep}}}, []
    )
    assert (reply["error"]["code"], reply["error"]["field"]) == ("BAD_HEADER", "header.params")
    assert reply["id"] == 9


def test_an_oversize_frame_ends_the_session_as_documented(tmp_path):
    limits = Limits(max_message_bytes=2**20, max_array_bytes=2**20)
    with Server("tcp://127.0.0.1:*", data_dir=tmp_path, limits=limits) as srv:
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(srv.endpoint)
        try:
            sock.send_multipart(encode_request(1, "hello", {"versions": [1]}))
            assert sock.poll(5000) and msgpack.unpackb(sock.recv_multipart()[0])["ok"]
            desc = {"name": "a", "dtype": "uint8", "shape": [2**21], "frame": 1}
            head = {"v": 1, "id": 2, "method": "echo", "params": {}, "arrays": [desc]}
            sock.send_multipart([msgpack.packb(head), bytes(2**21)])
            assert not sock.poll(1000), "ZeroMQ drops the connection: no reply"
            sock.send_multipart(encode_request(3, "stats"))  # after ZeroMQ's reconnect
            assert sock.poll(5000)
            reply = msgpack.unpackb(sock.recv_multipart()[0])
            assert (reply["id"], reply["error"]["code"]) == (3, ErrorCode.HELLO_REQUIRED)
        finally:
            sock.close()


HOSTILE = [None, True, -1, 2**64 - 1, -(2**63), 1e308, "x" * 300, [], {}, [[]], [1, "a"]]
HOSTILE += [[[1.0] * 4] * 4, [[0.0] * 3] * 8, ["depth"] * 300, "../x", "/etc", 100_000, 257]


def base_requests(hdmap_handle: str) -> dict:
    box = {"class": "Car", "corners": CUBE}
    rgb = np.zeros((48, 64, 3), np.uint8)
    return {
        "controls": (
            {
                "modalities": ["depth", "edge", "lidar", "hdmap"],
                "K": K,
                "cam_to_world": EYE4,
                "hdmap": hdmap_handle,
                "boxes": [box],
                "light_states": {},
            },
            {
                "rgb": rgb,
                "depth_m": np.full((48, 64), 3.0, np.float32),
                "points_world": np.ones((20, 3), np.float32),
            },
        ),  # fmt: skip
        "episode_open": ({"path": "p", "fps": 10.0, "simulator": "t", "cameras": [CAMERA]}, {}),
        "episode_read": ({"path": "readback", "start": 0, "count": 1}, {}),
        "hdmap_load": ({"path": "street.xodr", "step_m": 5.0}, {}),
        "describe": ({"methods": ["echo"]}, {}),
    }


@pytest.mark.parametrize(
    "method", ["controls", "episode_open", "episode_read", "hdmap_load", "describe"]
)
def test_one_hostile_param_is_never_internal(hdmap, method):
    c, handle = hdmap
    params, arrays = base_requests(handle)[method]
    for i, key in enumerate([*params, "extra"]):
        for j, value in enumerate(HOSTILE):
            sent = {**params, key: value}
            if method == "episode_open" and key != "path":
                sent["path"] = f"hostile-{i}-{j}"
            try:
                c.call(method, sent, arrays)
            except SidecarError as exc:
                assert exc.code != ErrorCode.INTERNAL, (key, value, exc)
