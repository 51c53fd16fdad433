"""A tiny random Cosmos 3 omni pipeline with action generation, built fully offline (tests only).

Real diffusers classes (`Cosmos3OmniTransformer` with `action_gen=True`, `AutoencoderKLWan`,
`UniPCMultistepScheduler`) at toy sizes; the VAE and the word-level tokenizer are
`tiny_cosmos`'s (the tokenizer plus Cosmos 3's `<|vision_start|>` token), so nothing comes
from the hub.
"""

from __future__ import annotations

from pathlib import Path

from fakes.tiny_cosmos import save_without_checker, tiny_tokenizer, tiny_vae


def tiny_cosmos3_pipeline(safety_checker):
    import torch
    from diffusers import Cosmos3OmniPipeline, UniPCMultistepScheduler
    from diffusers.models.transformers.transformer_cosmos3 import Cosmos3OmniTransformer

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<|vision_start|>"]}
    )
    transformer = Cosmos3OmniTransformer(
        head_dim=16,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        num_hidden_layers=2,
        num_key_value_heads=1,
        latent_channel=16,
        latent_patch_size=2,
        patch_latent_dim=2 * 2 * 16,
        vocab_size=len(tokenizer),
        action_dim=16,
        action_gen=True,
        rope_axes_dim=[4, 2, 2],
        unified_3d_mrope_temporal_modality_margin=8,
    )
    vae = tiny_vae()
    return Cosmos3OmniPipeline(
        transformer=transformer,
        text_tokenizer=tokenizer,
        vae=vae,
        scheduler=UniPCMultistepScheduler(),
        safety_checker=safety_checker,
    )


def save_tiny_cosmos3(folder: Path, safety_checker) -> Path:
    """Save it as a converted checkpoint is saved: without a safety checker."""
    return save_without_checker(tiny_cosmos3_pipeline(safety_checker), folder)
