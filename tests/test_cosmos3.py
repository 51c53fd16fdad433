"""Cosmos 3 forward dynamics (diffusers Cosmos3OmniPipeline components) as a learned env,
offline, on a tiny random pipeline: contract at the real modules, batching, branching."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fakes.safety_double import PassThroughSafetyChecker
from fakes.tiny_cosmos3 import save_tiny_cosmos3, tiny_cosmos3_pipeline

from cosmos_sim.envs import LearnedEnv, LearnedVectorEnv
from cosmos_sim.envs.cosmos3 import ActionStats, Cosmos3WorldModel
from cosmos_sim.envs.cosmos3_sampler import ForwardDynamicsSampler, distinct_frames
from cosmos_sim.envs.multiverse import branch
from cosmos_sim.envs.world_model import WorldModelError
from cosmos_sim.transfer import diffusers_backend
from cosmos_sim.transfer.diffusers_backend import SafetyError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
DOMAIN = "bridge_orig_lerobot"  # 10-D: 9-D end-effector pose delta + gripper
Q01 = np.linspace(-0.05, -0.01, 10).astype(np.float32)
Q99 = np.linspace(0.02, 0.9, 10).astype(np.float32)
SETTINGS = dict(chunk_size=4, fps=5.0, resolution_tier=256, num_inference_steps=2)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = save_tiny_cosmos3(
        tmp_path_factory.mktemp("cosmos3") / "pipe", PassThroughSafetyChecker()
    )
    (folder / "normalizer_stats").mkdir()
    (folder / "normalizer_stats" / "bridge_orig_lerobot_stats.json").write_text(
        json.dumps({"q01": Q01.tolist(), "q99": Q99.tolist(), "mean": [0.0] * 10})
    )
    return folder


def load(folder, checker, **kwargs):
    options = dict(SETTINGS, domain_name=DOMAIN)
    options.update(kwargs)
    return Cosmos3WorldModel.from_pretrained(
        folder,
        frame_shape=(32, 32, 3),
        prompt="put the spoon in the pot",
        device="cpu",
        dtype="float32",
        safety_checker=checker,
        **options,
    )


def brightness(frames: torch.Tensor):
    level = frames.float().mean(dim=(1, 2, 3)) / 255.0
    return level, level > 0.99, level > 0.99


def starts(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 1, 32, 32, 3), dtype=np.uint8)


class Recorder:
    """Records what the real VAE encoder and the real transformer receive."""

    def __init__(self, pipe):
        self.vae_inputs, self.action_tokens, self.lanes = [], [], []
        encode = pipe.vae.encode

        def spy(x, *args, **kwargs):
            self.vae_inputs.append(x.detach().clone())
            return encode(x, *args, **kwargs)

        pipe.vae.encode = spy

        def hook(_module, _args, kwargs):
            self.action_tokens.append([a.detach().clone() for a in kwargs["action_tokens"]])
            self.lanes.append(len(kwargs["vision_tokens"]))

        pipe.transformer.register_forward_pre_hook(hook, with_kwargs=True)


def test_uint8_frames_reach_the_vae_in_minus1_1_and_actions_are_quantile_normalised(
    tiny_folder,
):
    model = load(tiny_folder, PassThroughSafetyChecker())
    seen = Recorder(model.pipe)
    frames = starts(1)
    env = LearnedEnv(model, start_frames=frames, reward_fn=brightness, chunk_mode="chunk")
    raw = np.random.default_rng(1).uniform(Q01, Q99, (4, 10)).astype(np.float32)
    env.reset(seed=0)
    env.step(raw)
    [vae_in] = seen.vae_inputs
    assert vae_in.shape[:3] == (1, 3, 1) and vae_in.min() >= -1.0 and vae_in.max() <= 1.0
    content = vae_in[0, :, 0, :32, :32].permute(1, 2, 0).numpy()  # padded to the tier canvas
    assert np.allclose(content, frames[0, 0] / 127.5 - 1.0, atol=1e-5)  # not [-1, 509]
    tokens = seen.action_tokens[0][0]
    assert tokens.shape == (4, 16)  # chunk × the transformer's action_dim
    expected = 2 * (raw - Q01) / (Q99 - Q01) - 1
    assert np.allclose(tokens[:, :10].numpy(), expected, atol=1e-5)
    assert not tokens[:, 10:].any()


def test_one_lane_is_exactly_the_diffusers_pipeline_call(tiny_folder):
    from diffusers import UniPCMultistepScheduler
    from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import CosmosActionCondition

    model = load(tiny_folder, PassThroughSafetyChecker())
    pipe = model.pipe
    frame = starts(1)[0, 0]
    actions = torch.rand(1, 4, 10) * 2 - 1
    ours = model.sampler.sample(
        torch.from_numpy(frame)[None], actions, torch.Generator().manual_seed(3)
    )
    pipe.scheduler = UniPCMultistepScheduler.from_config(
        pipe.scheduler.config, flow_shift=10.0, use_karras_sigmas=False
    )
    theirs = pipe(
        "put the spoon in the pot",
        action=CosmosActionCondition(
            mode="forward_dynamics",
            chunk_size=4,
            domain_name=DOMAIN,
            resolution_tier=256,
            raw_actions=actions[0],
            image=frame.astype(np.float32) / 255.0,
        ),
        guidance_scale=1.0,
        num_inference_steps=2,
        fps=5.0,
        use_system_prompt=False,
        generator=torch.Generator().manual_seed(3),
        output_type="np",
        enable_safety_check=False,
    ).video
    assert ours.shape == (1, 5, 32, 32, 3)
    theirs_u8 = np.clip(np.asarray(theirs) * 255 + 0.5, 0, 255).astype(np.int16)
    assert np.abs(ours[0].numpy().astype(np.int16) - theirs_u8).max() <= 1


def test_lanes_in_one_batch_match_the_lanes_run_alone(tiny_folder):
    model = load(tiny_folder, PassThroughSafetyChecker())
    sampler: ForwardDynamicsSampler = model.sampler
    frames = torch.from_numpy(starts(3)[:, 0])
    actions = torch.rand(3, 4, 10) * 2 - 1
    latents = torch.randn(3, 16, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    together = sampler.sample(frames, actions, latents=latents)
    alone = torch.cat(
        [
            sampler.sample(frames[i : i + 1], actions[i : i + 1], latents=latents[i : i + 1])
            for i in range(3)
        ]
    )
    assert (together.int() - alone.int()).abs().max() <= 1
    assert not torch.equal(together[0], together[1])
    pushed = actions.clone()
    pushed[1] += 5.0  # another lane's actions never leak into lane 0
    assert torch.equal(sampler.sample(frames, pushed, latents=latents)[0], together[0])


def test_branches_share_one_encoding_differ_and_go_in_batches_of_batch_size(tiny_folder):
    checker = PassThroughSafetyChecker()
    model = load(tiny_folder, checker, batch_size=3)
    seen = Recorder(model.pipe)
    env = LearnedEnv(model, start_frames=starts(1), reward_fn=brightness)
    env.reset(seed=0)
    futures, _, _ = branch(env, 5, seed=7)
    obs, *_ = futures.step(np.zeros((5, 10), np.float32))
    assert [x.shape[0] for x in seen.vae_inputs] == [1, 1]  # one state, one encoding per batch
    assert seen.lanes == [3, 3, 2, 2]  # 5 futures, batch_size 3, two denoising steps each
    assert len({o.tobytes() for o in obs}) == 5  # five different futures
    again = branch(env, 5, seed=7)[0].step(np.zeros((5, 10), np.float32))[0]
    assert np.array_equal(again, obs)  # same seed, same futures
    assert checker.videos == 10 and set(checker.texts) == {model.prompt}


def test_duplicate_states_are_found_exactly_and_packs_are_built_once_per_shape(tiny_folder):
    model = load(tiny_folder, PassThroughSafetyChecker())
    sampler: ForwardDynamicsSampler = model.sampler
    seen = Recorder(model.pipe)
    a, b = (torch.from_numpy(f[0]) for f in starts(2))
    frames = torch.stack([a, a, b, a])
    nudged = frames.clone()
    nudged[3, 0, 0, 0] ^= 1  # one byte: another state
    unique, inverse = distinct_frames(nudged)
    assert inverse == [0, 0, 1, 2] and torch.equal(unique, nudged[[0, 2, 3]])
    builds = []
    pack = sampler._pack
    sampler._pack = lambda *args: builds.append(1) or pack(*args)
    actions = torch.rand(4, 4, 10) * 2 - 1
    latents = torch.randn(4, 16, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    together = sampler.sample(frames, actions, latents=latents)
    assert [x.shape[0] for x in seen.vae_inputs] == [2]  # a and b, each encoded once
    for lane in range(4):  # each lane got its own state's encoding back
        alone = sampler.sample(
            frames[lane : lane + 1], actions[lane : lane + 1], latents=latents[lane : lane + 1]
        )
        assert (alone[0].int() - together[lane].int()).abs().max() <= 1
    assert torch.equal(sampler.sample(frames, actions, latents=latents), together)
    assert len(builds) == 2  # one pack for 4 lanes, one for 1 lane, reused after that


def test_vector_env_lanes_step_together(tiny_folder):
    model = load(tiny_folder, PassThroughSafetyChecker())
    seen = Recorder(model.pipe)
    vec = LearnedVectorEnv(model, 2, start_frames=starts(2), reward_fn=brightness)
    vec.reset(seed=0)
    obs, reward, *_ = vec.step(np.zeros((2, 10), np.float32))
    assert obs.shape == (2, 32, 32, 3) and reward.shape == (2,)
    assert seen.lanes == [2, 2]


def test_action_statistics_are_never_guessed(tmp_path, tiny_folder):
    with pytest.raises(WorldModelError, match="normalizer_stats/droid_lerobot_stats.json"):
        load(tiny_folder, PassThroughSafetyChecker(), domain_name="droid_lerobot")
    with pytest.raises(WorldModelError, match="ships none for 'av'"):
        load(tiny_folder, PassThroughSafetyChecker(), domain_name="av", chunk_size=4)
    bad = tmp_path / "stats.json"
    bad.write_text(json.dumps({"q01": [0.0] * 3, "q99": [1.0] * 3}))
    with pytest.raises(WorldModelError, match="has 3/3 values"):
        load(tiny_folder, PassThroughSafetyChecker(), action_stats=bad)
    good = ActionStats(np.zeros(9, np.float32), np.ones(9, np.float32))
    model = load(
        tiny_folder, PassThroughSafetyChecker(), domain_name="av", action_stats=good, chunk_size=4
    )
    assert model.action_dim == 9


def test_recipe_defaults_and_bad_settings(tiny_folder):
    model = load(tiny_folder, PassThroughSafetyChecker(), chunk_size=None, fps=None)
    sampler = model.sampler
    assert (model.actions_per_call, sampler.fps) == (16, 5.0)  # bridge recipe
    assert (sampler.guidance_scale, sampler.num_inference_steps) == (1.0, 2)
    assert sampler.scheduler.config.flow_shift == 10.0 and not sampler.use_system_prompt
    with pytest.raises(WorldModelError, match="pass fps= and chunk_size="):
        load(tiny_folder, PassThroughSafetyChecker(), domain_name="umi", chunk_size=None)
    with pytest.raises(WorldModelError, match="multiple of the VAE's temporal factor 4"):
        load(tiny_folder, PassThroughSafetyChecker(), chunk_size=6)


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
            domain_name=DOMAIN,
        )


def test_bad_folders_ids_and_shapes_are_clear_errors(tmp_path, tiny_folder):
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
        model.step(state, torch.zeros(1, 4, 2))
