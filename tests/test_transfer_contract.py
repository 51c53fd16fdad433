"""Contract tests: what the real diffusers Transfer 2.5 modules receive from the diffusers backend.

The pipeline is the real Cosmos2_5_TransferPipeline from tiny random components (fakes/
tiny_cosmos.py), saved and loaded back through `--model PATH`. Spies on the real modules
record their inputs: the Wan VAE's `encode` (control video and conditioning video, per chunk),
the controlnet's forward (control latents, conditioning scale) and the Qwen text encoder's
forward (token ids of the prompt and the negative prompt). The asserts are what the full-size
model expects: video in [-1, 1], layout B×C×T×H×W at the clip's size, RGB order, each control
video exactly the clip's control frames, chunks of `num_frames_per_chunk` frames carrying the
previous chunk's last frame, as many output frames as the clip, Transfer 2.5's own negative
prompt padded to `max_sequence_length` tokens. Scaled down: 8 frames in chunks of 5 plays the
role of 181 frames in chunks of 93 (two chunks, the second padded by repeating its last frame).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fakes import torchvision_stub
from fakes.clips import write_test_clip
from fakes.safety_double import PassThroughSafetyChecker
from fakes.tiny_cosmos import save_tiny_pipeline, tiny_pipeline

from cosmos_sim.controls.spec import TRANSFER25_NEGATIVE_PROMPT
from cosmos_sim.controls.vis import vis_control
from cosmos_sim.transfer import find_clips, register_backend, run_transfer
from cosmos_sim.transfer.diffusers_backend import (
    DiffusersBackend,
    GuardrailBlocked,
    SafetyError,
)
from cosmos_sim.video import read_video, write_video

pytest.importorskip("diffusers")

W, H, FRAMES, CHUNK = 64, 32, 8, 5
TINY = {"device": "cpu", "dtype": "float32", "num_inference_steps": 2,
        "num_frames_per_chunk": CHUNK, "max_sequence_length": 48}  # fmt: skip
HINTS = {"edge": "edge", "depth": "depth", "seg": "seg", "blur": "vis"}


@pytest.fixture(autouse=True)
def torchvision_standin(monkeypatch):
    torchvision_stub.install(monkeypatch)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny") / "pipe", PassThroughSafetyChecker())


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    folder = write_test_clip(root / "front", width=W, height=H, frames=FRAMES)
    rgb, fps = read_video(folder / "rgb.mp4")
    write_video(folder / "vis.mp4", vis_control(rgb), fps)
    return root


class Spy:
    """Records the inputs of the real modules during one backend run."""

    def __init__(self, pipe) -> None:
        self.encoded: list[torch.Tensor] = []
        self.control_latents: list[tuple[int, ...]] = []
        self.scales: list[float] = []
        self.token_ids: list[torch.Tensor] = []
        encode = pipe.vae.encode

        def spy_encode(x, *args, **kwargs):
            self.encoded.append(x.detach().clone())
            return encode(x, *args, **kwargs)

        pipe.vae.encode = spy_encode
        pipe.controlnet.register_forward_pre_hook(self._controlnet, with_kwargs=True)
        pipe.text_encoder.register_forward_pre_hook(self._text, with_kwargs=True)

    def _controlnet(self, module, args, kwargs):
        self.control_latents.append(tuple(kwargs["controls_latents"].shape))
        self.scales.append(float(kwargs["conditioning_scale"]))

    def _text(self, module, args, kwargs):
        self.token_ids.append((args[0] if args else kwargs["input_ids"]).detach().clone())


def _run(model_dir, clips, controlnet: str, **settings):
    engine = DiffusersBackend(
        str(model_dir), controlnet=controlnet, safety_checker=PassThroughSafetyChecker(),
        **{**TINY, **settings},
    )  # fmt: skip
    spy = Spy(engine.pipe)
    clip = find_clips(clips)[0]
    frames = np.stack(list(engine.transfer(clip, "a rainy street at dusk", 5)))
    return engine, spy, clip, frames


@pytest.mark.parametrize("controlnet", sorted(HINTS))
def test_each_control_reaches_the_vae_as_the_clips_frames_in_minus_one_to_one(
    model_dir, clips, controlnet
):
    engine, spy, clip, frames = _run(model_dir, clips, controlnet)
    control = clip.read(HINTS[controlnet])  # T×H×W×3 uint8, as written by the controls stage
    conds, controls = spy.encoded[0::2], spy.encoded[1::2]  # per chunk: conditioning, control
    assert len(controls) == 2  # 8 frames in chunks of 5 overlapping by 1: two chunks
    expected_chunks = [control[0:5], np.concatenate([control[4:8], control[7:8]])]  # padded
    for got, want in zip(controls, expected_chunks, strict=True):
        assert got.shape == (1, 3, CHUNK, H, W)  # B×C×T×H×W at the clip's own size
        assert got.min() >= -1.0 and got.max() <= 1.0
        want = torch.from_numpy(want).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)  # RGB order, /127.5 - 1
    if controlnet == "edge":  # white-on-black Canny lines: both ends of the range
        assert controls[0].min() < -0.95 and controls[0].max() > 0.95
    if controlnet == "depth":  # grey: the three channels agree
        assert torch.allclose(controls[0][:, 0], controls[0][:, 2], atol=0.05)
    # Chunk 1 starts from nothing (-1 = black); chunk 2 carries chunk 1's last output frame.
    assert conds[0].shape == (1, 3, CHUNK, H, W) and bool((conds[0] == -1).all())
    assert bool((conds[1][:, :, 1:] == -1).all()) and not bool((conds[1][:, :, 0] == -1).all())
    assert spy.control_latents[0] == (1, 16, (CHUNK - 1) // 4 + 1, H // 8, W // 8)
    assert frames.shape == (FRAMES, H, W, 3) and frames.dtype == np.uint8
    assert engine.describe()["control_video"] == HINTS[controlnet]


def test_the_text_encoder_gets_the_prompt_and_transfer25s_own_negative_prompt(model_dir, clips):
    engine, spy, _, _ = _run(
        model_dir, clips, "edge", controls_conditioning_scale=0.7, max_sequence_length=512
    )
    assert len(spy.token_ids) == 2  # prompt, then negative prompt (guidance 3: CFG)
    tokenizer = engine.pipe.tokenizer

    def text(ids):  # the tiny tokenizer is character-level: compare without spaces
        return tokenizer.decode(ids[0], skip_special_tokens=True).replace(" ", "")

    for ids in spy.token_ids:
        assert ids.shape == (1, 512)  # padded to max_sequence_length, as the full model
    prompt, negative = text(spy.token_ids[0]), text(spy.token_ids[1])
    assert prompt.startswith("system") and prompt.endswith("userarainystreetatdusk")
    # diffusers' default negative prompt is a generic quality list; Transfer 2.5's own names
    # the game-engine look the transfer should leave behind.
    assert negative.endswith("user" + TRANSFER25_NEGATIVE_PROMPT.replace(" ", ""))
    assert set(spy.scales) == {0.7}


def test_a_blocked_video_is_an_error_never_black_frames(model_dir, clips, tmp_path):
    class BlocksVideos(PassThroughSafetyChecker):
        def check_video_safety(self, frames):
            super().check_video_safety(frames)
            return None  # what CosmosSafetyChecker returns for an unsafe video

    checker = BlocksVideos()
    engine = DiffusersBackend(str(model_dir), safety_checker=checker, **TINY)
    register_backend("blocked-diffusers", lambda: engine)
    with pytest.raises(GuardrailBlocked, match="refused the generated video"):
        run_transfer(clips, tmp_path / "out", backend="blocked-diffusers", prompt="a road")
    assert engine.guardrail_blocks == 1 and checker.videos == 1
    assert not (tmp_path / "out" / "front" / "output.mp4").exists()
    manifest = json.loads((tmp_path / "out" / "transfer.json").read_text())
    assert "guardrail" in manifest["cameras"]["front"]["error"]
    assert manifest["complete"] is False
    # The checker is the pipeline's own again after the run.
    assert engine.pipe.safety_checker.check_video_safety.__func__ is BlocksVideos.check_video_safety


def test_a_blocked_prompt_is_an_error_naming_the_clip(model_dir, clips):
    class BlocksText(PassThroughSafetyChecker):
        def check_text_safety(self, prompt):
            return False

    engine = DiffusersBackend(str(model_dir), safety_checker=BlocksText(), **TINY)
    with pytest.raises(GuardrailBlocked, match="refused the prompt for clip .*front"):
        list(engine.transfer(find_clips(clips)[0], "a road", 1))
    assert engine.guardrail_blocks == 1


def test_a_pipeline_built_in_process_runs_with_a_replacement_only_from_random_weights(
    model_dir, clips, monkeypatch
):
    from cosmos_sim.transfer import diffusers_backend as module

    monkeypatch.setattr(module, "MAX_PARAMS_WITHOUT_GUARDRAIL", 1000)  # as if full size
    random_pipe = tiny_pipeline(PassThroughSafetyChecker())  # never loaded from a file
    engine = DiffusersBackend.from_pipeline(random_pipe, **TINY)
    frames = list(engine.transfer(find_clips(clips)[0], "p", 1))
    assert len(frames) == FRAMES
    from diffusers import Cosmos2_5_TransferPipeline

    loaded = Cosmos2_5_TransferPipeline.from_pretrained(
        str(model_dir), safety_checker=PassThroughSafetyChecker()
    )  # weights from files: they could be Cosmos weights
    with pytest.raises(SafetyError, match="refusing a replacement safety checker"):
        DiffusersBackend.from_pipeline(loaded, **TINY)
