"""Cosmos 3 forward dynamics (diffusers Cosmos3OmniPipeline) as a learned env, offline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fakes.safety_double import PassThroughSafetyChecker
from fakes.tiny_cosmos3 import save_tiny_cosmos3, tiny_cosmos3_pipeline

from cosmos_sim.envs import LearnedEnv
from cosmos_sim.envs.cosmos3 import Cosmos3WorldModel
from cosmos_sim.envs.world_model import WorldModelError
from cosmos_sim.transfer import diffusers_backend
from cosmos_sim.transfer.diffusers_backend import SafetyError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return save_tiny_cosmos3(
        tmp_path_factory.mktemp("cosmos3") / "pipe", PassThroughSafetyChecker()
    )


def load(folder, checker, **kwargs):
    return Cosmos3WorldModel.from_pretrained(
        folder,
        frame_shape=(32, 32, 3),
        prompt="push the blue cube onto the green disk",
        device="cpu",
        dtype="float32",
        safety_checker=checker,
        chunk_size=4,
        num_inference_steps=2,
        guidance_scale=1.0,
        **kwargs,
    )


def brightness(frames: torch.Tensor):
    level = frames.float().mean(dim=(1, 2, 3)) / 255.0
    return level, level > 0.99, level > 0.99


def test_forward_dynamics_env_runs_end_to_end_offline_with_tiny_components(tiny_folder):
    checker = PassThroughSafetyChecker()
    model = load(tiny_folder, checker)
    assert (model.action_dim, model.actions_per_call) == (2, 4)  # "pusht": 2-D actions
    starts = np.random.default_rng(0).integers(0, 255, (2, 1, 32, 32, 3), dtype=np.uint8)
    env = LearnedEnv(model, start_frames=starts, reward_fn=brightness, render_mode="rgb_array")
    assert env.action_space.shape == (2,) and env.observation_space.shape == (32, 32, 3)
    action = np.array([0.5, -0.5], np.float32)
    obs, _ = env.reset(seed=1)
    nxt, reward, terminated, truncated, info = env.step(action)
    assert env.observation_space.contains(nxt) and info["substeps"] == 4
    assert not np.array_equal(nxt, obs) and np.array_equal(env.render(), nxt)
    assert 0 < reward <= 4 and not terminated and not truncated  # 4 frames of brightness
    # Same seed, same future: the env's generator reaches the pipeline's noise.
    again, _ = env.reset(seed=1)
    assert np.array_equal(again, obs) and np.array_equal(env.step(action)[0], nxt)
    # Every chunk went through the (replacement) safety checker, prompt and video.
    assert checker.videos >= 2 and set(checker.texts) == {model.prompt}


def test_cosmos_weights_without_cosmos_guardrail_are_refused(tiny_folder):
    from diffusers.utils import is_cosmos_guardrail_available

    if is_cosmos_guardrail_available():
        pytest.skip("cosmos-guardrail is installed here")
    with pytest.raises(SafetyError, match="pip install cosmos-guardrail"):
        load(tiny_folder, None)


def test_a_replacement_checker_is_refused_for_a_pipeline_of_real_size(monkeypatch):
    monkeypatch.setattr(diffusers_backend, "MAX_PARAMS_WITHOUT_GUARDRAIL", 1000)
    with pytest.raises(SafetyError, match="real CosmosSafetyChecker"):
        Cosmos3WorldModel(
            tiny_cosmos3_pipeline(PassThroughSafetyChecker()),
            frame_shape=(32, 32, 3),
            prompt="p",
            chunk_size=4,
        )


def test_bad_folders_ids_and_settings_are_clear_errors(tmp_path, tiny_folder):
    other = tmp_path / "other"
    other.mkdir()
    (other / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(WorldModelError, match="not a Cosmos3OmniPipeline folder"):
        load(other, PassThroughSafetyChecker())
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load("nvidia/not-a-cached-model", PassThroughSafetyChecker())
    with pytest.raises(WorldModelError, match="domain_name"):
        load(tiny_folder, PassThroughSafetyChecker(), domain_name="spaceship")
    model = load(tiny_folder, PassThroughSafetyChecker())
    state = model.start(torch.zeros(1, 1, 32, 32, 3, dtype=torch.uint8))
    with pytest.raises(WorldModelError, match=r"\[B, chunk_size, D\]"):
        model.step(state, torch.zeros(1, 4, 10))
