"""Build a tiny random Cosmos Transfer 2.5 pipeline fully offline (tests only).

The component configs are the ones diffusers' own fast tests use (COSMOS_REFERENCE.md); the
tokenizer is a word-level `tokenizers` model wrapped in `PreTrainedTokenizerFast` with a
Qwen-style chat template, so nothing is fetched from the hub.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}"
    "{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
)
VOCAB_SIZE = 512


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    special = ["<|pad|>", "<|unk|>", "<|im_start|>", "<|im_end|>"]
    words = special + [chr(c) for c in range(33, 127)] + [f"w{i}" for i in range(VOCAB_SIZE)]
    vocab = {w: i for i, w in enumerate(words[:VOCAB_SIZE])}
    model = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|unk|>"))
    model.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Split("", "isolated")]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=model, pad_token="<|pad|>", unk_token="<|unk|>", eos_token="<|im_end|>"
    )
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_vae():
    """The Wan VAE at toy size (16 latent channels, as both Cosmos pipelines expect)."""
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )


def save_without_checker(pipe, folder: Path) -> Path:
    """Save `pipe` the way a converted checkpoint is saved: without a safety checker."""
    pipe.register_modules(safety_checker=None)
    pipe.save_pretrained(folder)
    return folder


def tiny_pipeline(safety_checker):
    """A Cosmos2_5_TransferPipeline with random tiny weights and the given safety checker."""
    import torch
    from diffusers import (
        Cosmos2_5_TransferPipeline,
        CosmosControlNetModel,
        CosmosTransformer3DModel,
        UniPCMultistepScheduler,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    transformer = CosmosTransformer3DModel(
        in_channels=16 + 1,
        out_channels=16,
        num_attention_heads=2,
        attention_head_dim=16,
        num_layers=2,
        mlp_ratio=2,
        text_embed_dim=32,
        adaln_lora_dim=4,
        max_size=(4, 32, 32),
        patch_size=(1, 2, 2),
        rope_scale=(2.0, 1.0, 1.0),
        concat_padding_mask=True,
        extra_pos_embed_type="learnable",
        controlnet_block_every_n=1,
        img_context_dim_in=32,
        img_context_num_tokens=4,
        img_context_dim_out=32,
    )
    controlnet = CosmosControlNetModel(
        n_controlnet_blocks=2,
        in_channels=16 + 1 + 1,
        latent_channels=16 + 1 + 1,
        model_channels=32,
        num_attention_heads=2,
        attention_head_dim=16,
        mlp_ratio=2,
        text_embed_dim=32,
        adaln_lora_dim=4,
        patch_size=(1, 2, 2),
        max_size=(4, 32, 32),
        rope_scale=(2.0, 1.0, 1.0),
        extra_pos_embed_type="learnable",
        img_context_dim_in=32,
        img_context_dim_out=32,
        use_crossattn_projection=False,
    )
    vae = tiny_vae()
    config = Qwen2_5_VLConfig(
        text_config={
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1000000.0,
            "vocab_size": VOCAB_SIZE,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_heads": 2,
            "out_hidden_size": 16,
        },
        hidden_size=16,
        vocab_size=VOCAB_SIZE,
        vision_end_token_id=VOCAB_SIZE - 1,
        vision_start_token_id=VOCAB_SIZE - 2,
        vision_token_id=VOCAB_SIZE - 3,
    )
    return Cosmos2_5_TransferPipeline(
        text_encoder=Qwen2_5_VLForConditionalGeneration(config),
        tokenizer=tiny_tokenizer(),
        transformer=transformer,
        vae=vae,
        scheduler=UniPCMultistepScheduler(),
        controlnet=controlnet,
        safety_checker=safety_checker,
    )


def save_tiny_pipeline(folder: Path, safety_checker) -> Path:
    return save_without_checker(tiny_pipeline(safety_checker), folder)
