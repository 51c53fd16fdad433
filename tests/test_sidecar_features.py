"""Sidecar methods over the other features: transfer jobs, learned envs, HD-map controls."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from fakes.tiny_world_model import TinyWorldModel, start_clips

from cosmos_sim.envs import LearnedEnv, LearnedVectorEnv
from cosmos_sim.sidecar import Client, ErrorCode, Server, SidecarError
from cosmos_sim.transfer import register_backend

TINY_ID = "cosmos_sim_test/TinyLearned-v0"
CAMERA = {"name": "front", "width": 128, "height": 72, "fov_deg": 60.0}
STREET = Path(__file__).parent / "data" / "two_way_street.xodr"


def tiny_env(**kwargs) -> LearnedEnv:
    return LearnedEnv(TinyWorldModel(), start_frames=start_clips(), **kwargs)


def tiny_vector_env(num_envs: int = 1, **kwargs) -> LearnedVectorEnv:
    return LearnedVectorEnv(TinyWorldModel(), num_envs, start_frames=start_clips(), **kwargs)


if TINY_ID not in gymnasium.registry:
    gymnasium.register(TINY_ID, entry_point=tiny_env, vector_entry_point=tiny_vector_env)


class GateBackend:
    """A transfer backend that holds its job until the test opens the gate (tests only)."""

    name = "gate"
    running = threading.Event()
    release = threading.Event()

    def describe(self) -> dict:
        return {"note": "test double"}

    def transfer(self, clip, prompt, seed, workdir):
        GateBackend.running.set()
        assert GateBackend.release.wait(30)
        for frame in clip.frames("rgb"):
            yield 255 - frame


register_backend("gate", GateBackend)


def poll(predicate, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        threading.Event().wait(0.02)
    raise AssertionError("condition not reached")


def record_episode(client: Client, name: str, ticks: int = 4) -> None:
    handle = client.episode_open(name, cameras=[CAMERA], fps=16.0, simulator="test")
    h, w = CAMERA["height"], CAMERA["width"]
    for i in range(ticks):
        rgb = np.full((h, w, 3), 40 + 20 * i, np.uint8)
        ids = np.zeros((h, w), np.int32)
        ids[20:50, 30 + i : 70 + i] = 5
        depth = np.where(ids > 0, 2.0, 6.0).astype(np.float32)
        client.episode_append(
            handle,
            i / 16,
            {"front": {"cam_to_world": np.eye(4)}},
            {"front/rgb": rgb, "front/depth_m": depth, "front/instance_id": ids},
        )
    client.episode_close(handle)


@pytest.fixture
def server(tmp_path):
    with Server(
        "tcp://127.0.0.1:*",
        workers=2,
        data_dir=tmp_path,
        env_ids=[TINY_ID],
        transfer_backend="gate",
    ) as srv:
        yield srv


# -- transfer jobs --------------------------------------------------------------------------


def test_a_transfer_job_never_blocks_short_requests(server):
    GateBackend.running.clear()
    GateBackend.release.clear()
    with Client(server.endpoint) as c:
        record_episode(c, "ep")
        job = c.call(
            "transfer_submit",
            {"episode": "ep", "modalities": ["depth", "seg"], "prompt": "a street"},
        ).result
        assert job["backend"] == "gate"
        assert poll(lambda: GateBackend.running.is_set())
        progress = c.call("transfer_progress", {"job": job["job"]}).result
        assert progress["state"] == "running" and progress["phase"] == "transfer"
        assert progress["cameras_total"] == 1 and progress["cameras_done"] == 0
        with pytest.raises(SidecarError) as err:
            c.call("transfer_result", {"job": job["job"]})
        assert err.value.code == ErrorCode.NOT_READY
        # the job holds its thread; requests still go through the request workers
        out = c.controls(["edge"], rgb=np.zeros((8, 8, 3), np.uint8))
        assert out["edge"].shape == (8, 8, 3)
        assert c.stats()["jobs"]["running"] == 1
        GateBackend.release.set()
        poll(lambda: c.call("transfer_progress", {"job": job["job"]}).result["state"] == "done")
        result = c.call(
            "transfer_result", {"job": job["job"], "camera": "front", "start": 1, "count": 2}
        )
    manifest = result.result["manifest"]
    assert manifest["backend"] == "gate" and manifest["complete"]
    assert manifest["cameras"]["front"]["frames"] == 4
    frames = result.arrays["frames"]
    assert frames.shape == (2, 704, 1280, 3)  # the 16:9 Cosmos bucket
    assert abs(int(frames[0, 0, 0, 0]) - (255 - 60)) <= 3  # inverted tick 1, through mp4


def test_transfer_errors(server):
    with Client(server.endpoint) as c:
        with pytest.raises(SidecarError) as err:
            c.call("transfer_submit", {"episode": "missing"})
        assert err.value.code == ErrorCode.NOT_FOUND and err.value.field == "params.episode"
        with pytest.raises(SidecarError) as err:
            c.call("transfer_submit", {})
        assert err.value.code == ErrorCode.BAD_PARAMS
        with pytest.raises(SidecarError) as err:
            c.call("transfer_progress", {"job": "job-0"})
        assert err.value.code == ErrorCode.NOT_FOUND


def test_appearance_transfer_end_to_end(tmp_path):
    with (
        Server("ipc://" + str(tmp_path / "s.sock"), data_dir=tmp_path) as srv,
        Client(srv.endpoint) as c,
    ):
        record_episode(c, "ep", ticks=3)
        job = c.call(
            "transfer_submit",
            {
                "episode": "ep",
                "out": "looks/night",
                "modalities": ["depth", "seg"],
                "prompt": "night",
                "seed": 2,
            },
        ).result["job"]
        progress = poll(
            lambda: (
                (p := c.call("transfer_progress", {"job": job}).result)["state"]
                in ("done", "failed")
                and p
            ),
            timeout_s=120,
        )
        assert progress["state"] == "done", progress["error"]
        result = c.call("transfer_result", {"job": job, "camera": "front"})
    assert result.result["manifest"]["backend"] == "appearance"
    assert result.arrays["frames"].shape == (3, 704, 1280, 3)
    assert (tmp_path / "looks" / "night" / "transfer" / "front" / "output.mp4").is_file()


# -- learned envs ---------------------------------------------------------------------------


def test_env_make_reset_step_close(server):
    with Client(server.endpoint) as c:
        made = c.call("env_make", {"id": TINY_ID}).result
        env = made["env"]
        assert made["num_envs"] is None
        assert made["observation_space"]["shape"] == [16, 16, 3]
        assert made["action_space"] == {
            "type": "Box",
            "shape": [2],
            "dtype": "float32",
            "low": [-1.0, -1.0],
            "high": [1.0, 1.0],
        }
        reset = c.call("env_reset", {"env": env, "seed": 3})
        obs0 = reset.arrays["obs"]
        assert obs0.shape == (16, 16, 3) and obs0.dtype == np.uint8
        step = c.call("env_step", {"env": env}, {"action": np.array([0.5, 0], np.float32)})
        assert step.arrays["obs"].mean() > obs0.mean()  # the tiny model brightens
        assert isinstance(step.result["reward"], float) and step.result["terminated"] is False
        with pytest.raises(SidecarError) as err:
            c.call("env_step", {"env": env}, {"action": np.zeros(3, np.float32)})
        assert err.value.code == ErrorCode.SHAPE_MISMATCH and "[2]" in err.value.fix
        c.call("env_close", {"env": env})
        with pytest.raises(SidecarError) as err:
            c.call("env_reset", {"env": env})
        assert err.value.code == ErrorCode.NOT_FOUND


def test_vector_env_steps_in_one_batch_and_branches(server):
    with Client(server.endpoint) as c:
        env = c.call("env_make", {"id": TINY_ID, "num_envs": 3}).result["env"]
        obs = c.call("env_reset", {"env": env, "seed": 0}).arrays["obs"]
        assert obs.shape == (3, 16, 16, 3)
        step = c.call(
            "env_step",
            {"env": env},
            {"action": np.array([[0.1, 0], [0.2, 0], [0.3, 0]], np.float32)},
        )
        assert step.arrays["reward"].shape == (3,) and step.arrays["terminated"].dtype == bool
        assert step.result["info"]["success"] == [False, False, False]
        futures = c.call("env_branch", {"env": env, "n": 4, "lane": 2, "seed": 1})
        assert futures.result["num_envs"] == 4
        np.testing.assert_array_equal(
            futures.arrays["obs"], np.repeat(step.arrays["obs"][2:3], 4, axis=0)
        )
        with pytest.raises(SidecarError) as err:
            c.call("env_branch", {"env": env, "n": 0})
        assert err.value.code == ErrorCode.BAD_PARAMS and "n" in err.value.message


def test_envs_are_per_client_and_allow_listed(server):
    with Client(server.endpoint) as owner, Client(server.endpoint) as other:
        env = owner.call("env_make", {"id": TINY_ID}).result["env"]
        owner.call("env_reset", {"env": env})
        with pytest.raises(SidecarError) as err:
            other.call("env_step", {"env": env}, {"action": np.zeros(2, np.float32)})
        assert err.value.code == ErrorCode.NOT_FOUND
        with pytest.raises(SidecarError) as err:
            other.call("env_make", {"id": "CartPole-v1"})
        assert err.value.code == ErrorCode.BAD_PARAMS and TINY_ID in err.value.fix
        with pytest.raises(SidecarError) as err:
            other.call("env_make", {"id": TINY_ID, "kwargs": {"bogus": 1}})
        assert err.value.code == ErrorCode.BAD_PARAMS and err.value.field == "params.kwargs"
        assert "'bogus'" in err.value.message


# -- HD-map control ---------------------------------------------------------------------------


def test_hdmap_control_matches_the_renderer(server):
    pytest.importorskip("carla")
    from cosmos_sim.bridges.opendrive import compile_map
    from cosmos_sim.controls.hdmap import compile_scene, render_hdmap

    shutil.copy(STREET, server.data_dir / "street.xodr")
    compiled = compile_map(STREET, frames=1)
    cam_to_body = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 1.5], [0, 0, 0, 1.0]])
    pose = compiled.poses[0] @ cam_to_body
    K = np.array([[320.0, 0, 320], [0, 320.0, 180], [0, 0, 1]])
    with Client(server.endpoint) as c:
        assert "hdmap_load" in c.server_info["methods"]
        loaded = c.call("hdmap_load", {"path": "street.xodr"}).result
        out = c.controls(
            ["hdmap"],
            hdmap=loaded["hdmap"],
            K=K.tolist(),
            cam_to_world=pose.tolist(),
            width=640,
            height=360,
        )
        with pytest.raises(SidecarError) as err:
            c.call("hdmap_load", {"xodr": "<OpenDRIVE></OpenDRIVE>"})
        assert err.value.code == ErrorCode.BAD_PARAMS and err.value.field == "params.xodr"
    want = render_hdmap(compile_scene(compiled.geometry), K, pose, 360, 640)
    np.testing.assert_array_equal(out["hdmap"], want)
    assert (want > 0).mean() > 0.01  # lane lines are in view


def test_default_envs_are_the_shipped_learned_model_and_the_real_task(tmp_path):
    with Server("tcp://127.0.0.1:*", data_dir=tmp_path) as srv, Client(srv.endpoint) as c:
        learned = c.call("env_make", {"id": "cosmos_sim/LearnedPushCube-v0", "num_envs": 2})
        env = learned.result["env"]
        assert learned.result["observation_space"]["shape"] == [2, 64, 64, 3]
        c.call("env_reset", {"env": env, "seed": 0})
        step = c.call("env_step", {"env": env}, {"action": np.zeros((2, 2), np.float32)})
        assert step.arrays["obs"].shape == (2, 64, 64, 3) and step.arrays["reward"].shape == (2,)
        futures = c.call("env_branch", {"env": env, "n": 3, "lane": 1, "seed": 5})
        assert futures.arrays["obs"].shape == (3, 64, 64, 3)
        real = c.call("env_make", {"id": "cosmos_sim/PushCube-v0"}).result["env"]
        obs = c.call("env_reset", {"env": real, "seed": 0}).arrays["obs"]
        step = c.call("env_step", {"env": real}, {"action": np.array([0.5, 0.0])})
        assert obs.shape == step.arrays["obs"].shape == (64, 64, 3)
        assert {"success", "cube_to_goal_m"} <= set(step.result["info"])
        with pytest.raises(SidecarError) as err:  # the real simulator has no futures to branch
            c.call("env_branch", {"env": real, "n": 2})
        assert err.value.code == ErrorCode.BAD_PARAMS


def test_env_paths_in_kwargs_stay_inside_the_data_dir(tmp_path):
    data, outside = tmp_path / "data", tmp_path / "outside"
    real_id, learned_id = "cosmos_sim/PushCube-v0", "cosmos_sim/LearnedPushCube-v0"
    with Server("tcp://127.0.0.1:*", data_dir=data) as srv, Client(srv.endpoint) as c:
        for env_id, name, value in (
            (real_id, "record_dir", str(outside)),
            (real_id, "record_dir", "../outside"),
            (learned_id, "episodes", [str(outside)]),
            (learned_id, "weights", "/etc/passwd"),
        ):
            with pytest.raises(SidecarError) as err:
                c.call("env_make", {"id": env_id, "kwargs": {name: value}})
            assert err.value.code == ErrorCode.BAD_PARAMS
            assert err.value.field == f"params.kwargs.{name}"
        env = c.call("env_make", {"id": real_id, "kwargs": {"record_dir": "pushes"}})
        handle = env.result["env"]
        c.call("env_reset", {"env": handle, "seed": 0})
        c.call("env_step", {"env": handle}, {"action": np.array([0.5, 0.0], np.float32)})
        c.call("env_close", {"env": handle})
    assert not outside.exists()
    assert any((data / "pushes").glob("episode_*/episode.json"))
