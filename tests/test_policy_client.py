"""A served Cosmos 3 policy as a policy: the HTTP client against a stand-in
cosmos-framework action policy server on loopback, in eval-policies and closed loop."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fakes.policy_server import StandInPolicyServer
from typer.testing import CliRunner

from cosmos_sim.cli import app
from cosmos_sim.envs.policy_client import PolicyServerError, ServedPolicy
from cosmos_sim.envs.policy_eval import PolicySpecError, load_policies
from cosmos_sim.envs.pushcube import PushCubeEnv
from cosmos_sim.envs.pushcube_policies import push_action


@pytest.fixture
def servers():
    started = []

    def start(**kwargs) -> StandInPolicyServer:
        started.append(StandInPolicyServer(**kwargs))
        return started[-1]

    yield start
    for server in started:
        server.close()


def frame(seed: int = 0) -> np.ndarray:
    return PushCubeEnv(image_size=64).reset(seed=seed)[0]


def test_requests_carry_the_frame_task_and_seeds_and_chunks_are_queued(servers):
    server = servers(chunk=4)
    policy = ServedPolicy(
        server.url, prompt="push the cube", domain_name="pusht", action_horizon=3, seed=10
    )
    assert policy.info["action_chunk_size"] == 4 and policy.info["raw_action_dim"] == 2
    obs = frame()
    actions = [policy(obs) for _ in range(7)]
    assert len(server.requests) == 3  # horizon 3: requests at steps 0, 3 and 6
    first = server.requests[0]
    assert (first["prompt"], first["domain_name"], first["image_size"]) == (
        "push the cube",
        "pusht",
        64,
    )
    assert first["image_shape"] == [64, 64, 3]
    seeds = np.random.default_rng(10).integers(2**31, size=3).tolist()
    assert [r["seed"] for r in server.requests] == seeds
    assert np.allclose(actions[0], push_action(obs), atol=1e-6)  # the PNG round trip is lossless
    policy.reseed(10)
    policy(obs)
    assert server.requests[-1]["seed"] == seeds[0]


def test_lanes_share_one_predict_batch_request(servers):
    server = servers(chunk=2)
    policy = ServedPolicy(server.url, prompt="p", domain_name="pusht", seed=0)
    lanes = np.stack([frame(s) for s in range(3)])
    first = policy.act_batch(lanes)
    assert first.shape == (3, 2) and server.batches == [3]
    policy.act_batch(lanes)  # the second action of each chunk: no request
    assert server.batches == [3]
    policy.act_batch(lanes)
    assert server.batches == [3, 3]
    assert np.allclose(first, np.stack([push_action(f) for f in lanes]), atol=1e-6)


def test_eval_policies_ranks_served_policies_in_the_real_and_learned_env(servers, tmp_path):
    good, noisy = servers(sigma=0.0), servers(sigma=3.0)
    query = "?prompt=push%20the%20cube%20onto%20the%20disk&domain_name=pusht&action_horizon=2"
    result = CliRunner().invoke(
        app,
        [
            "eval-policies",
            "--policies",
            f"good={good.url}{query},noisy={noisy.url}{query}",
            "--real",
            "cosmos_sim/PushCube-v0",
            "--learned",
            "cosmos_sim/LearnedPushCube-v0",
            "--episodes",
            "2",
            "--num-envs",
            "2",
            "--out",
            str(tmp_path / "eval"),
            "--real-kwargs",
            '{"max_episode_steps": 4}',
            "--learned-kwargs",
            '{"max_episode_steps": 4}',
            "--bootstrap",
            "20",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert [p["name"] for p in report["policies"]] == ["good", "noisy"]
    for entry in report["policies"]:
        assert len(entry["real"]["returns"]) == len(entry["learned"]["returns"]) == 2
    # Both envs ran closed loop on the servers: 4-step episodes, one request per 2 steps.
    for server, entry in zip((good, noisy), report["policies"], strict=True):
        assert entry["real"]["mean_length"] == entry["learned"]["mean_length"] == 4
        assert len(server.requests) == 2 * 2 * 4 // 2  # 2 envs x 2 episodes x 4 steps / 2
    assert {r["prompt"] for r in good.requests} == {"push the cube onto the disk"}
    # Episode k reseeds the policy with seed + k: its own seeds, the same in both envs.
    seeds = [r["seed"] for r in noisy.requests]
    assert len(set(seeds[:4])) == 4 and sorted(seeds[:4]) == sorted(seeds[4:])


def test_server_errors_and_bad_specs_are_clear(servers):
    server = servers()
    with pytest.raises(
        ValueError, match=r"unknown field\(s\) \['colour'\].*missing \['domain_name'\]"
    ):
        ServedPolicy.from_url(f"{server.url}?prompt=p&colour=red")
    policy = ServedPolicy(server.url, prompt="p", domain_name=7)  # type: ignore[arg-type]
    with pytest.raises(PolicyServerError, match="'domain_name' must be a str"):
        policy(frame())  # the server answers HTTP 200 with an error, as upstream does
    with pytest.raises(ValueError, match=r"uint8 \[H, W, 3\]"):
        policy(np.zeros((8, 8), np.float32))
    url = server.url
    server.close()
    with pytest.raises(PolicySpecError, match="no policy server answers.*action_policy_server"):
        load_policies(f"{url}?prompt=p&domain_name=pusht")


def test_a_malformed_reply_is_an_error_not_an_action(servers, monkeypatch):
    server = servers()
    policy = ServedPolicy(server.url, prompt="p", domain_name="pusht")
    monkeypatch.setattr(server, "predict", lambda req: np.array([np.nan, 1.0]))
    with pytest.raises(PolicyServerError, match=r"expected a non-empty \[T, D\]"):
        policy(frame())
