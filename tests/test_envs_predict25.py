"""Cosmos Predict 2.5 robot action-cond through the resident worker, against a stand-in
checkout (tests/fakes/predict25_checkout): the real worker process, socket and protocol;
only the 2B model and the guardrail networks are stand-ins."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from cosmos_sim.envs import LearnedEnv, LearnedVectorEnv
from cosmos_sim.envs.multiverse import branch
from cosmos_sim.envs.predict25 import (
    ACTION_HIGH,
    ACTION_LOW,
    Predict25Error,
    Predict25WorldModel,
)
from cosmos_sim.envs.world_model import WorldModelError

CHECKOUT = Path(__file__).parent / "fakes" / "predict25_checkout"
SCALE = np.array([20.0] * 6 + [1.0])


@pytest.fixture
def log(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    path = tmp_path / "standin_log.jsonl"
    monkeypatch.setenv("STANDIN_LOG", str(path))

    def events(kind: str) -> list[dict]:
        lines = path.read_text().splitlines() if path.is_file() else []
        return [e for e in map(json.loads, lines) if e["event"] == kind]

    return events


@pytest.fixture
def model(tmp_path):
    models = []

    def make(**kwargs) -> Predict25WorldModel:
        kwargs.setdefault("workdir", tmp_path / "work")
        made = Predict25WorldModel(
            CHECKOUT, frame_shape=(32, 32, 3), prompt="move the cup", resolution=None, **kwargs
        )
        models.append(made)
        return made

    yield make
    for made in models:
        made.close()


def judge(frames: torch.Tensor):
    level = frames.float().mean(dim=(1, 2, 3)) / 255.0
    return level, level > 0.99, level > 0.99


def starts(n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).integers(60, 120, (n, 1, 32, 32, 3), dtype=np.uint8)


def env_of(world_model, n: int = 1, **kwargs):
    options = dict(
        start_frames=starts(2), reward_fn=judge, action_low=ACTION_LOW, action_high=ACTION_HIGH
    )
    options.update(kwargs)
    if n == 1:
        return LearnedEnv(world_model, **options)
    return LearnedVectorEnv(world_model, n, **options)


def test_the_model_loads_once_for_many_steps_and_actions_arrive_scaled(model, log):
    world = model()
    env = env_of(world, chunk_mode="chunk")
    chunk = np.random.default_rng(1).uniform(ACTION_LOW, ACTION_HIGH, (12, 7)).astype(np.float32)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, reward, _, _, info = env.step(chunk)
    assert len(log("load")) == 1 and len(log("text_guardrail_loaded")) == 1
    steps = log("step")
    assert len(steps) == 3 and len({s["pid"] for s in steps}) == 1
    assert np.allclose(steps[0]["actions"], chunk * SCALE, atol=1e-5)  # motion ×20, gripper ×1
    assert steps[0]["prompt"] == "move the cup" and steps[0]["guidance"] == 0
    assert len(log("video_check")) == 3 and log("text_check")[0]["prompt"] == "move the cup"
    assert obs.shape == (32, 32, 3) and info["substeps"] == 12


def test_branches_get_distinct_seeds_and_differ_and_a_seed_repeats_them(model, log):
    env = env_of(model())
    env.reset(seed=0)
    action = np.array([0.01, 0, 0, 0, 0, 0, 1], np.float32)
    futures, _, _ = branch(env, 4, seed=3)
    first = futures.step(np.tile(action, (4, 1)))[0]
    seeds = [s["seed"] for s in log("step")]
    assert len(set(seeds)) == 4
    assert len({f.tobytes() for f in first}) == 4
    again = branch(env, 4, seed=3)[0].step(np.tile(action, (4, 1)))[0]
    assert np.array_equal(again, first) and [s["seed"] for s in log("step")][4:] == seeds
    assert len(log("load")) == 1  # the futures share the world model, and its one worker


def test_vector_lanes_go_in_one_request_and_resolution_reaches_the_model(model, log):
    world = Predict25WorldModel(
        CHECKOUT,
        frame_shape=(32, 32, 3),
        prompt="p",
        resolution="48,64",
        workdir=Path(os.environ["HF_HOME"]).parent / "w",
    )
    try:
        vec = env_of(world, 3, start_frames=starts(3))
        vec.reset(seed=0)
        actions = np.zeros((3, 7), np.float32)
        actions[:, 0] = [0.01, 0.02, 0.03]
        obs, *_ = vec.step(actions)
        steps = log("step")
        assert [round(s["actions"][0][0], 4) for s in steps] == [0.2, 0.4, 0.6]
        assert {s["resolution"] for s in steps} == {"48,64"}
        assert obs.shape == (3, 32, 32, 3)
        # Brighter Δx, brighter last frame: lanes did not get mixed up.
        assert obs[0].mean() < obs[1].mean() < obs[2].mean()
    finally:
        world.close()


def test_a_relative_workdir_works_from_another_directory(model, log, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    world = model(workdir="runs/predict")
    assert world.workdir == tmp_path / "runs" / "predict"
    env = env_of(world)
    env.reset(seed=0)
    env.step(np.zeros(7, np.float32))
    assert (tmp_path / "runs" / "predict" / "worker.log").is_file()
    assert len(log("step")) == 1


def test_guardrail_blocks_load_failures_and_bad_input_are_clear(model, log, monkeypatch):
    state_frames = torch.zeros(1, 1, 32, 32, 3, dtype=torch.uint8)
    blocked = model(setup={"offload_guardrail_models": True})
    blocked.settings["prompt"] = "an unsafe prompt"
    with pytest.raises(Predict25Error, match="text guardrail blocked the prompt"):
        blocked.step(blocked.start(state_frames), torch.zeros(1, 12, 7))
    world = model()
    state = world.start(state_frames)
    with pytest.raises(WorldModelError, match=r"\[B, 12, 7\]"):
        world.step(state, torch.zeros(1, 12, 2))
    monkeypatch.setenv("STANDIN_BLOCK_VIDEO", "1")
    with pytest.raises(Predict25Error, match="video guardrail blocked"):
        world.step(state, torch.zeros(1, 12, 7))
    monkeypatch.delenv("STANDIN_BLOCK_VIDEO")
    world.close()
    monkeypatch.setenv("STANDIN_FAIL_LOAD", "1")
    with pytest.raises(Predict25Error, match="CUDA out of memory"):
        world.step(state, torch.zeros(1, 12, 7))
    monkeypatch.delenv("HF_HOME")
    with pytest.raises(Predict25Error, match="HF_HOME"):
        world.step(state, torch.zeros(1, 12, 7))
    monkeypatch.setenv("HF_HOME", "/tmp")
    monkeypatch.delenv("STANDIN_FAIL_LOAD")
    bad = model(setup={"no_such_option": 1})
    with pytest.raises(Predict25Error, match="no_such_option"):  # the checkout's own check
        bad.step(state, torch.zeros(1, 12, 7))


def test_not_a_checkout_and_guardrail_switches_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a cosmos-predict2.5 checkout"):
        Predict25WorldModel(tmp_path / "nowhere", frame_shape=(32, 32, 3))
    with pytest.raises(WorldModelError, match="guardrail") as err:
        Predict25WorldModel(CHECKOUT, frame_shape=(32, 32, 3), setup={"disable_guardrails": True})
    assert "setup" in str(err.value)


def test_a_malformed_request_is_refused_and_the_worker_keeps_serving(model, log):
    from cosmos_sim.envs import predict25_worker

    world = model()
    env = env_of(world)
    env.reset(seed=0)
    env.step(np.zeros(7, np.float32))
    frames = np.zeros((2, 32, 32, 3), np.uint8)
    predict25_worker.send(
        world._sock, {"op": "step", "seeds": [1]}, frames, np.zeros((2, 12, 7), np.float32)
    )
    header, arrays = predict25_worker.recv(world._sock)
    assert header["op"] == "error" and header["kind"] == "protocol" and not arrays
    env.step(np.zeros(7, np.float32))
    assert len(log("load")) == 1 and len(log("step")) == 2
