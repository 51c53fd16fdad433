"""Cosmos 3 transfer at full size on one GPU: one control vs every control at once, against
Transfer 2.5 doing the same controls one controlnet at a time (random bf16 weights).

What runs. diffusers' real `Cosmos3OmniModularPipeline` (the pipeline our `cosmos3` backend
drives) built from the public nvidia/Cosmos3-Nano `transformer/config.json` architecture
(36 layers, hidden 4096, two MoT towers) and the Wan 2.2 VAE (z=48, 16x spatial), random bf16
weights, called as the backend calls it for one chunk: 93 frames at the tier-720 16:9 canvas
(1280x720), fps 16, guidance 3.0 and control_guidance 1.5 (three transformer passes per
step), `--steps` denoising steps. A transformer forward hook times each pass, so the report
splits a call into denoising steps and the rest (control and target VAE encodes, decode,
tokenising); the 35-step chunk figure is EXTRAPOLATED: rest + 35 x measured step time.

Baseline, same run: `cosmos_transfer_gpu.py` (Transfer 2.5 2B transformer + one controlnet,
CFG, Wan 2.1 VAE encode + decode of one chunk at 1280x704, 93 frames); N controls in
Transfer 2.5 are N such pipelines, one controlnet each, so N x one measured chunk (labelled).

Not measured: the guardrail (random weights are not Cosmos weights, so the pipeline's checker
is switched off here; our backend never does that with Cosmos weights), prompt upsampling.
A small warm-up call at 256p loads kernels first; the first timed step may still include
some autotuning (reported per step).

    python benchmarks/cosmos3_transfer_gpu.py --device cuda --json cosmos3_gpu.json
    python benchmarks/cosmos3_transfer_gpu.py --device cpu --tiny     # smoke test
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
HINT_SETS = {"one control (edge)": ["edge"], "four controls": ["edge", "blur", "depth", "seg"]}
"""Transfer 2.5 has edge, blur (vis), depth and seg: the controls both generations take."""
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
    pipe.disable_safety_checker()  # random weights, not Cosmos weights (see the module doc)
    pipe.set_progress_bar_config(disable=True)
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


def time_chunk(pipe, timer, hints, *, frames, height, width, steps, device) -> dict:
    """One chunk as the cosmos3 backend calls it; per-step and per-pass times."""
    rng = np.random.default_rng(0)
    controls = {h: rng.random((frames, height, width, 3), dtype=np.float32) for h in hints}
    timer.times.clear()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    pipe(
        prompt="w1 w2 w3 w4 w5 w6 w7 w8",
        control_videos=controls,
        height=height,
        width=width,
        num_frames=frames,
        num_video_frames_per_chunk=frames,
        num_conditional_frames=1,
        fps=16.0,
        num_inference_steps=steps,
        guidance_scale=3.0,
        control_guidance=1.5,
        generator=torch.Generator("cpu").manual_seed(0),
        output_type="np",
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - t0
    passes = len(timer.times) // steps
    step_s = [sum(timer.times[i * passes : (i + 1) * passes]) for i in range(steps)]
    rest = total - sum(timer.times)
    return {
        "hints": list(hints),
        "frames": frames,
        "height": height,
        "width": width,
        "video_tokens_per_stream": _tokens(pipe, frames, height, width),
        "streams": len(hints) + 1,
        "transformer_passes_per_step": passes,
        "measured_steps": steps,
        "step_s": step_s,
        "pass_s": timer.times,
        "rest_of_call_s": rest,
        "call_s": total,
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
    device = torch.device(args.device)
    frames, height, width = (9, 32, 48) if args.tiny else (args.frames, args.height, args.width)
    t0 = time.perf_counter()
    pipe = build_cosmos3(device, args.tiny)
    build_s = time.perf_counter() - t0
    timer = PassTimer(pipe.transformer, device)
    params = sum(p.numel() for p in pipe.transformer.parameters())
    warm = (5, 32, 48) if args.tiny else (5, 256, 448)
    time_chunk(pipe, timer, ["edge", "blur"], frames=warm[0], height=warm[1], width=warm[2],
               steps=1, device=device)  # fmt: skip
    cosmos3 = {
        name: time_chunk(
            pipe,
            timer,
            hints,
            frames=frames,
            height=height,
            width=width,
            steps=args.steps,
            device=device,
        )  # fmt: skip
        for name, hints in HINT_SETS.items()
    }
    del pipe, timer
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
        one = result["transfer25"]["one_controlnet_chunk_s"]
        for run in cosmos3.values():
            n = len(run["hints"])
            run["transfer25_same_controls_s (N x one measured controlnet chunk)"] = n * one
            run["speedup_vs_transfer25"] = n * one / run["extrapolated_35_step_chunk_s"]
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


def transfer25_baseline(args: argparse.Namespace, device: torch.device) -> dict:
    """Transfer 2.5 (2B + one controlnet, CFG) for one chunk, from cosmos_transfer_gpu.py."""
    sys.path.insert(0, str(Path(__file__).parent))
    import cosmos_transfer_gpu as t25

    cfg = t25.Config(device=str(device), steps=args.steps, vae=not args.tiny, frames=args.frames)
    if args.tiny:
        cfg.frames, cfg.height, cfg.width = 9, 32, 48
        t25.TRANSFORMER_2B.update(num_layers=1)
        t25.CONTROLNET_2B.update(n_controlnet_blocks=1)
    run = t25.main(cfg)
    chunk = run.get("projected_chunk_s", run["projected_chunk_denoise_s"])
    return {
        "mean_step_s": run["mean_step_s"],
        "warmup_step_s": run["warmup_step_s"],
        "vae_encode_s": run.get("vae_encode_s"),
        "vae_decode_s": run.get("vae_decode_s"),
        "one_controlnet_chunk_s": chunk,
        "note": "35-step chunk EXTRAPOLATED from measured steps, plus one VAE encode and decode",
        "frames": cfg.frames,
        "size": [cfg.width, cfg.height],
        "peak_gpu_gib": run["peak_gpu_gib"],
    }


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
            line += f"; Transfer 2.5 one controlnet at a time: {run['speedup_vs_transfer25']:.2f}x"
        print(line)
