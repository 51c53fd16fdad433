"""benchmarks/ppo_pushcube.py end to end at smoke-test size, in both envs (CPU)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from cosmos_sim.envs.pixel_policy import load_agent

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ppo_pushcube.py"


def load_ppo():
    spec = importlib.util.spec_from_file_location("ppo_pushcube", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


ppo = load_ppo()


@pytest.mark.parametrize("env", ["learned", "real"])
def test_a_tiny_run_trains_and_saves_a_policy(tmp_path, env):
    result = ppo.train(ppo.Args(env=env, tiny=True, out=str(tmp_path), threads=1))
    assert result["steps"] == 64 and result["updates"] == 2
    assert result["cuda_graph"] == {"rollout": False, "update": False}  # CPU: eager
    saved = json.loads((tmp_path / "train.json").read_text())
    assert saved["env"] == env and len(saved["log"]) == 2
    agent = load_agent(tmp_path / "policy.pt")
    assert agent.meta == {"env": env, "steps": 64, "seed": 0}
    # 64 Adam steps moved what starts at a known value: log-std from -0.5, critic bias from 0
    assert not torch.allclose(agent.log_std, torch.full((2,), -0.5))
    assert agent.critic.bias.abs().item() > 0


def test_the_potential_rises_as_the_cube_nears_the_goal():
    # features: pusher, cube, goal, cube - pusher, goal - cube, seen flags (units of 0.2 m)
    def feats(cube_x: float) -> list[float]:
        pusher, cube, goal = [cube_x - 0.3, 0.0], [cube_x, 0.0], [1.0, 0.0]
        offsets = [cube[0] - pusher[0], 0.0, goal[0] - cube[0], 0.0]
        return [*pusher, *cube, *goal, *offsets, 1.0, 1.0, 1.0]

    phi, seen = ppo.potential(torch.tensor([feats(0.0), feats(0.5)]))
    assert seen.all() and phi[1] > phi[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_the_graphed_run_learns_what_the_eager_run_learns_on_a_gpu(tmp_path):
    runs = {}
    for graph in (False, True):
        out = tmp_path / f"graph_{graph}"
        args = ppo.Args(env="learned", device="cuda", tiny=True, cuda_graph=graph, out=str(out))
        result = ppo.train(args)
        assert result["cuda_graph"] == {"rollout": graph, "update": graph}
        runs[graph] = load_agent(out / "policy.pt").state_dict()
    for name, eager in runs[False].items():
        torch.testing.assert_close(runs[True][name], eager, rtol=1e-4, atol=1e-5, msg=name)
