"""Cosmos 3 transfer at full size on one GPU: one control vs every control at once, against
Transfer 2.5 doing the same controls one controlnet at a time (random bf16 weights).

What runs: the `cosmos3` backend's own path (`Cosmos3Backend` session -> diffusers' real
`Cosmos3OmniModularPipeline`) with the public nvidia/Cosmos3-Nano `transformer/config.json`
architecture (36 layers, hidden 4096, two MoT towers, ~16 B parameters) and the Wan 2.2 VAE
(z=48, 16x spatial), random bf16 weights built in this process, for one chunk: 93 frames at
1280x720 (tier 720, 16:9), 16 fps, guidance 3.0 and control_guidance 1.5 (three transformer
passes per step), `--steps` denoising steps. A transformer forward hook times each pass, so a
chunk splits into measured denoising steps and the rest (uint8 -> [-1, 1] conversion, the
control and target VAE encodes, the decode, tokenising). Per chunk at 35 steps is
EXTRAPOLATED: the measured rest + 35 x the last measured step. A small warm-up chunk at 256p
runs first.

Baseline, same run: Transfer 2.5's denoiser at nvidia/Cosmos-Transfer2.5-2B size
(`cosmos_transfer_gpu.py`'s configs and raw step: controlnet + transformer, twice for CFG, on
one 93-frame 1280x704 chunk) and its Wan 2.1 VAE encoding the control and decoding the output.
Transfer 2.5 runs one controlnet per pipeline, so N controls are N such chunks: N x (35 x the
measured step + VAE), EXTRAPOLATED and labelled. It leaves out the Transfer 2.5 text encoder
and pipeline overhead, so the speed-up it gives Cosmos 3 is a lower bound.

Not measured: the guardrail. Random weights cannot be Cosmos weights, so the backend accepts
a pass-through checker for them (`Cosmos3Backend.from_pipeline`); the real CosmosSafetyChecker
downloads its own models and cannot run offline. Peak GPU memory is per run.

    python benchmarks/cosmos3_transfer_gpu.py --device cuda --json cosmos3_gpu.json
    python benchmarks/cosmos3_transfer_gpu.py --device cpu --tiny     # smoke test

Needs diffusers 0.42.1, transformers, tokenizers, OpenCV, gymnasium, torchvision (real, for
the Transfer 2.5 baseline) and cosmos-sim (`pip install --no-deps -e .`).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

NANO = {
    "action_dim": 64,
    "action_gen": True,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "intermediate_size": 12288,
    "latent_channel": 48,
    "latent_patch_size": 2,
    "num_attention_heads": 32,
    "num_embodiment_domains": 32,
    "num_hidden_layers": 36,
    "num_key_value_heads": 8,
    "patch_latent_dim": 192,
    "qk_norm_for_text": True,
    "rms_norm_eps": 1e-6,
    "rope_axes_dim": [24, 20, 20],
    "rope_theta": 5000000,
    "sound_dim": 64,
    "sound_gen": True,
    "timestep_scale": 0.001,
    "unified_3d_mrope_temporal_modality_margin": 15000,
    "vocab_size": 151936,
}
"""nvidia/Cosmos3-Nano transformer/config.json (public), the fields diffusers' constructor takes."""
WAN22_VAE = {
    "base_dim": 160,
    "decoder_base_dim": 256,
    "z_dim": 48,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "temperal_downsample": [False, True, True],
    "in_channels": 12,
    "out_channels": 12,
    "patch_size": 2,
    "is_residual": True,
    "scale_factor_spatial": 16,
    "scale_factor_temporal": 4,
    "latents_mean": [0.0] * 48,
    "latents_std": [1.0] * 48,
}
"""Wan-AI/Wan2.2-TI2V-5B vae/config.json architecture (statistics irrelevant to timing)."""
TINY = {
    "head_dim": 16,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "num_key_value_heads": 1,
    "latent_channel": 16,
    "latent_patch_size": 2,
    "patch_latent_dim": 64,
    "rope_axes_dim": [4, 2, 2],
    "vocab_size": 600,
}
TINY_VAE = {
    "base_dim": 3,
    "z_dim": 16,
    "dim_mult": [1, 1, 1, 1],
    "num_res_blocks": 1,
    "temperal_downsample": [False, True, True],
}
CONTROL_SETS = {"one control (edge)": ["edge"], "four controls": ["edge", "vis", "depth", "seg"]}
"""Our control names (vis = Cosmos' blur): the four controls both generations take."""
PROMPT = "A rainy city street at dusk, wet asphalt reflecting headlights, filmed from a car."
CHAT = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def offline_tokenizer(vocab: int = 512):
    """A word-level tokenizer with Cosmos 3's special tokens (the real one is a hub download;
    prompt length barely matters next to 10^5 video tokens)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    special = ["<|pad|>", "<|unk|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>"]
    words = special + [f"w{i}" for i in range(vocab - len(special))]
    model = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<|unk|>"))
    model.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=model, pad_token="<|pad|>", unk_token="<|unk|>", eos_token="<|im_end|>"
    )
    tok.add_special_tokens({"additional_special_tokens": special[2:]})
    tok.chat_template = CHAT
    return tok


def build_cosmos3(device: torch.device, tiny: bool):
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler
    from diffusers.models.transformers.transformer_cosmos3 import Cosmos3OmniTransformer
    from diffusers.modular_pipelines.cosmos import Cosmos3OmniBlocks

    torch.manual_seed(0)
    dtype = torch.float32 if tiny else torch.bfloat16
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build the weights in bf16 directly on the device
    try:
        with device:
            transformer = Cosmos3OmniTransformer(**(TINY if tiny else NANO)).eval()
            vae = AutoencoderKLWan(**(TINY_VAE if tiny else WAN22_VAE)).eval()
    finally:
        torch.set_default_dtype(previous)
    for name in transformer._keep_in_fp32_modules:  # as from_pretrained keeps them
        getattr(transformer, name).float()
    pipe = Cosmos3OmniBlocks().init_pipeline()
    pipe.update_components(
        transformer=transformer,
        vae=vae,
        text_tokenizer=offline_tokenizer(),
        scheduler=UniPCMultistepScheduler(flow_shift=10.0),
    )
    return pipe


class PassTimer:
    """Times every transformer forward (CUDA-synchronised)."""

    def __init__(self, module: torch.nn.Module, device: torch.device) -> None:
        self.device, self.times, self._t0 = device, [], 0.0
        module.register_forward_pre_hook(lambda *_: self._start())
        module.register_forward_hook(lambda *_: self._stop())

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def _start(self) -> None:
        self._sync()
        self._t0 = time.perf_counter()

    def _stop(self) -> None:
        self._sync()
        self.times.append(time.perf_counter() - self._t0)


class RandomWeightsChecker:
    """Stands in for CosmosSafetyChecker on random weights (it cannot be built offline)."""

    def to(self, *_, **__):
        return self

    def check_text_safety(self, prompt: str) -> bool:
        return True

    def check_video_safety(self, frames):
        return frames


def time_chunk(backend, timer, controls, *, frames, width, height, device) -> dict:
    """One chunk through a backend session (as in the loop); per-step and per-pass times."""
    from cosmos_sim.transfer.base import SessionOptions

    rng = np.random.default_rng(0)
    videos = {c: rng.integers(0, 256, (frames, height, width, 3), np.uint8) for c in controls}
    session = backend.start(SessionOptions("bench", width, height, PROMPT, 0, 16.0), controls)
    timer.times.clear()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    session.push_frames(np.arange(frames), videos)  # a whole chunk: it runs now
    out = session.pull(wait=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - t0
    session.close()
    steps = backend.steps
    passes = len(timer.times) // steps
    step_s = [sum(timer.times[i * passes : (i + 1) * passes]) for i in range(steps)]
    rest = total - sum(timer.times)
    pipe = backend.pipe
    return {
        "controls": list(controls),
        "frames": frames,
        "frames_returned": len(out),
        "width": width,
        "height": height,
        "video_tokens_per_stream": _tokens(pipe, frames, height, width),
        "streams": len(controls) + 1,
        "transformer_passes_per_step": passes,
        "measured_steps": steps,
        "step_s": step_s,
        "pass_s": timer.times[:],
        "rest_of_chunk_s": rest,
        "chunk_s": total,
        "extrapolated_35_step_chunk_s": rest + 35 * step_s[-1],
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30
        if device.type == "cuda"
        else None,
    }


def _tokens(pipe, frames: int, height: int, width: int) -> int:
    sf, p = pipe.vae_scale_factor_spatial, pipe.transformer.config.latent_patch_size
    lt = (frames - 1) // pipe.vae_scale_factor_temporal + 1
    return lt * -(-height // sf // p) * -(-width // sf // p)


def main(args: argparse.Namespace) -> dict:
    from cosmos_sim.transfer.cosmos3 import Cosmos3Backend

    device = torch.device(args.device)
    frames, width, height = (9, 320, 192) if args.tiny else (args.frames, args.width, args.height)
    t0 = time.perf_counter()
    pipe = build_cosmos3(device, args.tiny)
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for p in pipe.transformer.parameters())
    settings = {"device": args.device, "dtype": "float32" if args.tiny else "bfloat16",
                "num_inference_steps": args.steps, "num_video_frames_per_chunk": frames,
                "resolution": 256 if args.tiny else 720}  # fmt: skip
    warm = Cosmos3Backend.from_pipeline(
        pipe, safety_checker=RandomWeightsChecker(), **{**settings, "num_inference_steps": 1,
        "num_video_frames_per_chunk": 5, "resolution": 256})  # fmt: skip
    timer = PassTimer(pipe.transformer, device)
    time_chunk(warm, timer, ["edge", "vis"], frames=5, width=320, height=192, device=device)
    backend = Cosmos3Backend.from_pipeline(pipe, safety_checker=RandomWeightsChecker(), **settings)
    cosmos3 = {
        name: time_chunk(
            backend, timer, controls, frames=frames, width=width, height=height, device=device
        )  # fmt: skip
        for name, controls in CONTROL_SETS.items()
    }
    del pipe, warm, backend, timer
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    result = {
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "architecture": "tiny (smoke test)" if args.tiny else "Cosmos3-Nano + Wan2.2 VAE",
        "transformer_params": params,
        "build_s": build_s,
        "cosmos3": cosmos3,
    }
    if not args.no_baseline:
        result["transfer25"] = transfer25_baseline(args, device)
        one = result["transfer25"]["extrapolated_one_controlnet_chunk_s"]
        for run in cosmos3.values():
            n = len(run["controls"])
            run["transfer25_same_controls_extrapolated_s"] = n * one
            run["speedup_vs_transfer25"] = n * one / run["extrapolated_35_step_chunk_s"]
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


def transfer25_baseline(args: argparse.Namespace, device: torch.device) -> dict:
    """Transfer 2.5 (2B + one controlnet, CFG) raw denoiser step and VAE for one chunk."""
    sys.path.insert(0, str(Path(__file__).parent))
    import cosmos_transfer_gpu as t25

    cfg = t25.Config(device=str(device), tiny=args.tiny, width=1280, height=704)
    if args.tiny:
        cfg.width, cfg.height = 64, 32
    dtype = torch.float32 if args.tiny else torch.bfloat16
    t0 = time.perf_counter()
    pipe = t25.build_pipeline(cfg, device, dtype)
    build_s = time.perf_counter() - t0
    warmup_s = t25.raw_denoiser_step(pipe, cfg, device, dtype)
    step_s = [t25.raw_denoiser_step(pipe, cfg, device, dtype) for _ in range(args.steps)]
    frames = t25.chunk_frames(cfg)
    video = torch.rand(1, 3, frames, cfg.height, cfg.width, device=device, dtype=dtype) * 2 - 1
    with torch.no_grad():
        encode_s, latents = _timed(lambda: pipe.vae.encode(video).latent_dist.mode(), device)
        decode_s, _ = _timed(lambda: pipe.vae.decode(latents), device)
    return {
        "frames": frames,
        "size": [cfg.width, cfg.height],
        "build_s": build_s,
        "warmup_step_s": warmup_s,
        "step_s": step_s,
        "vae_encode_s": encode_s,
        "vae_decode_s": decode_s,
        "extrapolated_one_controlnet_chunk_s": 35 * step_s[-1] + encode_s + decode_s,
        "note": "35 x measured raw denoiser step (controlnet + transformer, CFG) + one VAE "
        "encode and decode; no text encoder or pipeline overhead (a lower bound)",
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30
        if device.type == "cuda"
        else None,
    }


def _timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frames", type=int, default=93)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--steps", type=int, default=1, help="Timed denoising steps per run.")
    parser.add_argument("--tiny", action="store_true", help="Toy sizes (CPU smoke test).")
    parser.add_argument("--no-baseline", action="store_true", help="Skip Transfer 2.5.")
    parser.add_argument("--json", default=None, help="Also write the results here.")
    result = main(parser.parse_args())
    print(json.dumps(result, indent=2))
    for name, run in result["cosmos3"].items():
        line = (
            f"Cosmos 3 {name}: {run['step_s'][-1]:.2f} s/step (measured), "
            f"{run['extrapolated_35_step_chunk_s']:.0f} s per 35-step chunk (extrapolated)"
        )
        if "speedup_vs_transfer25" in run:
            line += (
                f"; Transfer 2.5, one controlnet at a time: "
                f"{run['transfer25_same_controls_extrapolated_s']:.0f} s (extrapolated), "
                f"{run['speedup_vs_transfer25']:.2f}x"
            )
        print(line)
