"""A tiny random Cosmos 3 modular pipeline (transfer), saved the way a checkpoint is (tests only).

Diffusers' own `Cosmos3OmniBlocks().init_pipeline()` with the toy components of
`tiny_cosmos3` (real Cosmos3OmniTransformer, AutoencoderKLWan, UniPC scheduler, an offline
tokenizer), written with `save_pretrained`, so the backend loads it through `--model PATH`
like a real snapshot. No safety checker is saved (as in a converted checkpoint).
"""

from __future__ import annotations

from pathlib import Path

from fakes.safety_double import PassThroughSafetyChecker
from fakes.tiny_cosmos3 import tiny_cosmos3_pipeline


def save_tiny_cosmos3_transfer(folder: Path) -> Path:
    from diffusers.modular_pipelines.cosmos import Cosmos3OmniBlocks

    task = tiny_cosmos3_pipeline(PassThroughSafetyChecker())
    pipe = Cosmos3OmniBlocks().init_pipeline()
    pipe.update_components(
        transformer=task.transformer,
        vae=task.vae,
        text_tokenizer=task.text_tokenizer,
        scheduler=task.scheduler,
    )
    pipe.save_pretrained(str(folder), overwrite_modular_index=True)
    return folder
