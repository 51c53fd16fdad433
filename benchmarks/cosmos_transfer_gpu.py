"""Time Cosmos Transfer 2.5's denoiser at full size on one GPU (random weights, bf16).

What it measures: the diffusers CosmosTransformer3DModel + CosmosControlNetModel with the
architecture of nvidia/Cosmos-Transfer2.5-2B (configs below, from diffusers'
scripts/convert_cosmos_to_diffusers.py, "Cosmos-2.5-Transfer-General-2B"), random weights,
bf16, on the latents of one 93-frame 1280×704 chunk (24 × 88 × 160 latents, 84 480 tokens).
One denoising step is what Cosmos2_5_TransferPipeline does per step with guidance > 1:
controlnet + transformer on the prompt, then again on the negative prompt (CFG, 2 passes).
It times `--steps` steps after a warm-up step and extrapolates to a chunk of 35 steps (the
cosmos-transfer2.5 default; diffusers' default is 36). Optionally (`--vae`) it also times the
Wan 2.1 VAE (diffusers' AutoencoderKLWan default config) encoding the control chunk and
decoding the output, which the pipeline does once per chunk.

Baseline: the published Transfer2.5-2B figure for one 93-frame 720p chunk with seg control,
H100 NVL 445.5 s (cosmos-transfer2.5 docs/inference.md), printed next to the projection.
Not measured: the text encoder (Cosmos-Reason1 7B, once per prompt) and the guardrails.

    python benchmarks/cosmos_transfer_gpu.py --steps 2 --vae
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass

import torch

TRANSFORMER_2B = {
    "in_channels": 16 + 1,
    "out_channels": 16,
    "num_attention_heads": 16,
    "attention_head_dim": 128,
    "num_layers": 28,
    "mlp_ratio": 4.0,
    "text_embed_dim": 1024,
    "adaln_lora_dim": 256,
    "max_size": (128, 240, 240),
    "patch_size": (1, 2, 2),
    "rope_scale": (1.0, 3.0, 3.0),
    "concat_padding_mask": True,
    "extra_pos_embed_type": None,
    "use_crossattn_projection": True,
    "crossattn_proj_in_channels": 100352,
    "encoder_hidden_states_channels": 1024,
    "controlnet_block_every_n": 7,
    "img_context_dim_in": 1152,
    "img_context_dim_out": 2048,
    "img_context_num_tokens": 256,
}
CONTROLNET_2B = {
    "n_controlnet_blocks": 4,
    "model_channels": 2048,
    "in_channels": 130,
    "latent_channels": 18,
    "num_attention_heads": 16,
    "attention_head_dim": 128,
    "mlp_ratio": 4.0,
    "text_embed_dim": 1024,
    "adaln_lora_dim": 256,
    "patch_size": (1, 2, 2),
    "max_size": (128, 240, 240),
    "rope_scale": (1.0, 3.0, 3.0),
    "extra_pos_embed_type": None,
    "img_context_dim_in": 1152,
    "img_context_dim_out": 2048,
    "use_crossattn_projection": True,
    "crossattn_proj_in_channels": 100352,
    "encoder_hidden_states_channels": 1024,
}
PUBLISHED_H100_NVL_S = 445.52
"""Transfer2.5-2B, 93 frames 720p, seg control, one H100 NVL (docs/inference.md)."""


@dataclass
class Config:
    frames: int = 93
    height: int = 704
    width: int = 1280
    steps: int = 2
    """Timed denoising steps (after one warm-up step)."""
    chunk_steps: int = 35
    text_tokens: int = 512
    vae: bool = False
    device: str = "cuda"


def main(cfg: Config) -> dict:
    from diffusers import CosmosControlNetModel, CosmosTransformer3DModel

    device, dtype = torch.device(cfg.device), torch.bfloat16
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with device:
        transformer = CosmosTransformer3DModel(**TRANSFORMER_2B).to(dtype).eval()
        controlnet = CosmosControlNetModel(**CONTROLNET_2B).to(dtype).eval()
    build_s = time.perf_counter() - t0
    params = {
        "transformer": sum(p.numel() for p in transformer.parameters()),
        "controlnet": sum(p.numel() for p in controlnet.parameters()),
    }
    lt, lh, lw = (cfg.frames - 1) // 4 + 1, cfg.height // 8, cfg.width // 8
    latents = torch.randn(1, 16, lt, lh, lw, device=device, dtype=dtype)
    controls = torch.randn_like(latents)
    cond_mask = torch.zeros(1, 1, lt, lh, lw, device=device, dtype=dtype)
    timestep = torch.full((1, 1, lt, 1, 1), 0.5, device=device, dtype=dtype)
    padding = torch.zeros(1, 1, cfg.height, cfg.width, device=device, dtype=dtype)
    text = torch.randn(1, cfg.text_tokens, 100352, device=device, dtype=dtype)
    image_context = torch.zeros(1, 256, 1152, device=device, dtype=dtype)
    prompts = [(text, image_context), (torch.randn_like(text), image_context)]  # CFG pair

    def forward(context):
        blocks = controlnet(
            controls_latents=controls, latents=latents, timestep=timestep,
            encoder_hidden_states=context, condition_mask=cond_mask, padding_mask=padding,
            return_dict=False,
        )[0]  # fmt: skip
        return transformer(
            hidden_states=latents, timestep=timestep, encoder_hidden_states=context,
            block_controlnet_hidden_states=blocks, condition_mask=cond_mask,
            padding_mask=padding, return_dict=False,
        )[0]  # fmt: skip

    def step():
        for context in prompts:
            forward(context)

    with torch.no_grad():
        warmup_s = _timed(step, device)
        times = [_timed(step, device) for _ in range(cfg.steps)]
    step_s = sum(times) / len(times)
    result = {
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "config": asdict(cfg),
        "latents": [16, lt, lh, lw],
        "tokens": lt * (lh // 2) * (lw // 2),
        "params": params,
        "build_s": build_s,
        "warmup_step_s": warmup_s,
        "step_s": times,
        "mean_step_s": step_s,
        "projected_chunk_denoise_s": step_s * cfg.chunk_steps,
        "peak_gpu_gib": _peak_gib(device),
        "published_h100_nvl_chunk_s": PUBLISHED_H100_NVL_S,
    }
    if cfg.vae:
        del transformer, controlnet
        torch.cuda.empty_cache()
        result.update(time_vae(cfg, device, dtype))
        result["projected_chunk_s"] = (
            result["projected_chunk_denoise_s"] + result["vae_encode_s"] + result["vae_decode_s"]
        )
    return result


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def _timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def time_vae(cfg: Config, device: torch.device, dtype: torch.dtype) -> dict:
    """Wan 2.1 VAE: encode the control chunk and decode the output chunk, once each."""
    from diffusers import AutoencoderKLWan

    with device:
        vae = AutoencoderKLWan().to(dtype).eval()
    video = torch.randn(1, 3, cfg.frames, cfg.height, cfg.width, device=device, dtype=dtype)
    latents = []
    with torch.no_grad():
        vae.encode(video[:, :, :5])  # warm-up
        encode_s = _timed(lambda: latents.append(vae.encode(video).latent_dist.mode()), device)
        decode_s = _timed(lambda: vae.decode(latents[0]), device)
    return {
        "vae_encode_s": encode_s,
        "vae_decode_s": decode_s,
        "peak_gpu_gib_vae": _peak_gib(device),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in asdict(Config()).items():
        kind = type(default)
        if kind is bool:
            parser.add_argument(f"--{name.replace('_', '-')}", action="store_true")
        else:
            parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default)
    result = main(Config(**vars(parser.parse_args())))
    print(json.dumps(result, indent=2))
    print(
        f"\n{result['gpu']}: one denoising step (controlnet + transformer, ×2 for CFG) "
        f"{result['mean_step_s']:.2f} s; {result['config']['chunk_steps']} steps "
        f"{result['projected_chunk_denoise_s']:.0f} s"
        + (f", + VAE {result['projected_chunk_s']:.0f} s" if "projected_chunk_s" in result else "")
        + f" per 93-frame chunk vs published H100 NVL {PUBLISHED_H100_NVL_S:.0f} s"
    )
