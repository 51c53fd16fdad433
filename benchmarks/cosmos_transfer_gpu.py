"""`cosmos-sim transfer --backend diffusers` at full Cosmos Transfer 2.5 size on one GPU.

What runs: the path `cosmos-sim transfer --backend diffusers` takes (`run_transfer` ->
`DiffusersBackend.transfer` -> diffusers' Cosmos2_5_TransferPipeline -> `write_output`), on a
two-chunk clip (default 181 frames at 1280×704, 16 fps, edge control written by cosmos-sim's
own edge control), with every network at the size of nvidia/Cosmos-Transfer2.5-2B and random
bf16 weights: CosmosTransformer3DModel (2.4 B) + CosmosControlNetModel (0.47 B), the Wan 2.1
VAE, and the Qwen2.5-VL-7B text encoder (Cosmos-Reason1-7B's architecture). The model is
built once; the clip runs through it once. Weights cannot be downloaded here, so the networks
are built from random initialisation in this process, which is also what lets the backend
accept a pass-through safety checker (`DiffusersBackend.from_pipeline`): the real
`CosmosSafetyChecker` fetches its own guard models from the hub and cannot be built offline,
so it is **not** timed here.

It times `--steps` denoising steps per chunk (the released model uses 35) and reports, all
measured: seconds per step (every step, CFG = controlnet + transformer on the prompt and on the
negative prompt), seconds per chunk at `--steps` steps (conditioning + control VAE encodes,
the steps, the VAE decode), text encoding, output writing, peak GPU memory, and that the output
video has the input's frame count. Per chunk at 35 steps is **extrapolated**: the chunk's
measured non-denoising time + 35 × the mean steady step (steps after the first of the run).

Baseline measured in the same run: the raw denoiser step, i.e. the controlnet and transformer
called directly on the same latent shapes twice (CFG), outside the pipeline and the backend;
the pipeline step over the raw step is the overhead of everything around the networks. The
published figure (H100 NVL, 93-frame 720p chunk, seg control, 445.5 s; cosmos-transfer2.5
docs) is printed for context only.

    python benchmarks/cosmos_transfer_gpu.py --device cuda --steps 2 --json transfer_gpu.json

Needs diffusers 0.42.1, PyAV, OpenCV, gymnasium, torchvision (real, on the GPU), transformers,
and cosmos-sim installed (`pip install --no-deps -e .`). `--tiny` runs toy sizes (CPU smoke).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
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
"""diffusers' scripts/convert_cosmos_to_diffusers.py, "Cosmos-2.5-Transfer-General-2B"."""
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
QWEN25_VL_7B_TEXT = {
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,  # 28 layers × 3584 = 100352, the transformer's text input width
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "rope_theta": 1000000.0,
    "rope_scaling": {"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"},
}
QWEN25_VL_7B_VISION = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "out_hidden_size": 3584,
}
PUBLISHED_H100_NVL_CHUNK_S = 445.52
"""Transfer2.5-2B, 93 frames 720p, seg control, one H100 NVL (cosmos-transfer2.5 docs)."""
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for part in message['content'] %}{{ part['text'] }}{% endfor %}<|im_end|>\n{% endfor %}"
)
PROMPT = "A rainy city street at dusk, wet asphalt reflecting headlights, filmed from a car."


@dataclass
class Config:
    device: str = "cuda"
    frames: int = 181
    width: int = 1280
    height: int = 704
    steps: int = 2
    """Denoising steps per chunk actually run."""
    extrapolate_steps: int = 35
    """The released model's steps per chunk, for the extrapolated chunk time."""
    max_sequence_length: int = 512
    tiny: bool = False
    """Toy sizes for a CPU smoke run (not Cosmos' architecture)."""
    json: str | None = None


class RandomWeightsChecker:
    """Stands in for CosmosSafetyChecker on random weights (it cannot be built offline)."""

    def __init__(self) -> None:
        self.texts = self.videos = 0

    def to(self, *_, **__):
        return self

    def check_text_safety(self, prompt: str) -> bool:
        self.texts += 1
        return True

    def check_video_safety(self, frames):
        self.videos += 1
        return frames


def build_pipeline(cfg: Config, device: torch.device, dtype: torch.dtype):
    """Cosmos2_5_TransferPipeline with random weights, built on `device` in `dtype`."""
    from diffusers import (
        AutoencoderKLWan,
        Cosmos2_5_TransferPipeline,
        CosmosControlNetModel,
        CosmosTransformer3DModel,
        UniPCMultistepScheduler,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    transformer_cfg, controlnet_cfg = dict(TRANSFORMER_2B), dict(CONTROLNET_2B)
    text_cfg, vision_cfg, vae_cfg = dict(QWEN25_VL_7B_TEXT), dict(QWEN25_VL_7B_VISION), {}
    if cfg.tiny:
        transformer_cfg.update(
            num_attention_heads=2,
            attention_head_dim=16,
            num_layers=2,
            adaln_lora_dim=4,
            crossattn_proj_in_channels=2 * 16,
            encoder_hidden_states_channels=32,
            text_embed_dim=32,
            controlnet_block_every_n=1,
            img_context_dim_in=32,
            img_context_dim_out=32,
            img_context_num_tokens=4,
        )
        controlnet_cfg.update(
            n_controlnet_blocks=2,
            model_channels=32,
            num_attention_heads=2,
            attention_head_dim=16,
            adaln_lora_dim=4,
            text_embed_dim=32,
            crossattn_proj_in_channels=2 * 16,
            encoder_hidden_states_channels=32,
            img_context_dim_in=32,
            img_context_dim_out=32,
        )
        text_cfg.update(
            hidden_size=16,
            intermediate_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            vocab_size=512,
            rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
        )
        vision_cfg = {
            "depth": 1,
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_heads": 2,
            "out_hidden_size": 16,
        }
        vae_cfg = {"base_dim": 8, "dim_mult": [1, 1, 1, 1], "num_res_blocks": 1}
    text_config = Qwen2_5_VLConfig(
        text_config=text_cfg,
        vision_config=vision_cfg,
        hidden_size=text_cfg["hidden_size"],
        vocab_size=text_cfg["vocab_size"],
    )
    # diffusers' Cosmos 2.5 conversion config; built before the bf16/device context below, so
    # its sigma tables stay float32 on the host as from_pretrained leaves them
    scheduler = UniPCMultistepScheduler(
        use_karras_sigmas=True,
        use_flow_sigmas=True,
        prediction_type="flow_prediction",
        sigma_max=200.0,
        sigma_min=0.01,
    )
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # initialise straight into bf16 on the GPU: no fp32 copy
    try:
        with device:
            pipe = Cosmos2_5_TransferPipeline(
                text_encoder=Qwen2_5_VLForConditionalGeneration(text_config).eval(),
                tokenizer=_tokenizer(text_cfg["vocab_size"]),
                transformer=CosmosTransformer3DModel(**transformer_cfg).eval(),
                vae=AutoencoderKLWan(**vae_cfg).eval(),
                scheduler=scheduler,
                controlnet=CosmosControlNetModel(**controlnet_cfg).eval(),
                safety_checker=RandomWeightsChecker(),
            )
    finally:
        torch.set_default_dtype(default_dtype)
    return pipe


def _tokenizer(vocab_size: int):
    """A character-level tokenizer with Qwen's chat markup (token ids only matter for shape)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<|pad|>", "<|unk|>", "<|im_start|>", "<|im_end|>"]
    words += [chr(c) for c in range(33, 127)]
    model = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<|unk|>"))
    model.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Split("", "isolated")]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=model, pad_token="<|pad|>", unk_token="<|unk|>", eos_token="<|im_end|>"
    )
    tok.chat_template = CHAT_TEMPLATE
    assert len(words) <= vocab_size
    return tok


def write_clip(folder: Path, cfg: Config) -> Path:
    """A clip folder as `cosmos-sim controls` lays it out: rgb.mp4 + edge.mp4, 16 fps."""
    from cosmos_sim.controls.edge import edge_control
    from cosmos_sim.video import COSMOS_FPS, VideoWriter

    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0 : cfg.height, 0 : cfg.width]
    with (
        VideoWriter(folder / "rgb.mp4", COSMOS_FPS, preset="veryfast") as rgb_out,
        VideoWriter(folder / "edge.mp4", COSMOS_FPS, lossless=True, preset="veryfast") as edge_out,
    ):
        for t in range(cfg.frames):  # a road scene stand-in: horizon, lanes, a moving box
            frame = np.full((cfg.height, cfg.width, 3), (140, 170, 210), np.uint8)
            frame[yy > cfg.height * 0.4] = (90, 90, 90)
            lane = np.abs(xx - cfg.width / 2 - (yy - cfg.height * 0.4) * 0.8) < 3
            frame[lane & (yy > cfg.height * 0.4)] = (240, 240, 240)
            x0 = int((0.1 + 0.4 * t / max(1, cfg.frames)) * cfg.width)
            frame[cfg.height // 2 : cfg.height * 3 // 4, x0 : x0 + cfg.width // 8] = (180, 30, 30)
            rgb_out.write(frame)
            edge_out.write(edge_control(frame))
    return folder


class Timeline:
    """Wall-clock marks (after a device sync) around the real modules of one run."""

    def __init__(self, pipe, device: torch.device) -> None:
        self.device = device
        self.marks: list[tuple[str, float]] = []
        pipe.text_encoder.register_forward_pre_hook(lambda *_: self.mark("text_encoder>"))
        pipe.text_encoder.register_forward_hook(lambda *_: self.mark("text_encoder<"))
        self._wrap(pipe.vae, "encode")
        self._wrap(pipe.vae, "decode")
        self._wrap(pipe.scheduler, "step")

    def _wrap(self, owner, method: str) -> None:
        inner = getattr(owner, method)

        def timed(*args, **kwargs):
            self.mark(f"{method}>")
            out = inner(*args, **kwargs)
            self.mark(f"{method}<")
            return out

        setattr(owner, method, timed)

    def mark(self, name: str) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.marks.append((name, time.perf_counter()))

    def summary(self) -> dict:
        """Per chunk: start (first VAE encode after the previous decode), steps, end (decode)."""
        chunks, current, last_end = [], None, None
        text_s = 0.0
        start_text = None
        for name, t in self.marks:
            if name == "text_encoder>":
                start_text = t
            elif name == "text_encoder<":
                text_s += t - start_text
            elif name == "encode>" and current is None:
                current = {"start": t, "step_ends": [], "encode_s": 0.0, "enc_t": t}
            elif name == "encode>":
                current["enc_t"] = t
            elif name == "encode<":
                current["encode_s"] += t - current["enc_t"]
                current["steps_from"] = t
            elif name == "step<":
                current["step_ends"].append(t)
            elif name == "decode>":
                current["decode_from"] = t
            elif name == "decode<":
                ends = current["step_ends"]
                steps = np.diff([current["steps_from"], *ends]).tolist()
                chunks.append(
                    {
                        "chunk_s": t - current["start"],
                        "step_s": steps,
                        "vae_encode_s": current["encode_s"],
                        "vae_decode_s": t - current["decode_from"],
                    }
                )
                last_end, current = t, None
        return {"text_encode_s": text_s, "chunks": chunks, "last_decode_end": last_end}


def chunk_frames(cfg: Config) -> int:
    """Frames per chunk: Transfer 2.5's 93, or 5 for the toy smoke run."""
    return 5 if cfg.tiny else 93


def raw_denoiser_step(pipe, cfg: Config, device: torch.device, dtype: torch.dtype) -> float:
    """Baseline: controlnet + transformer called directly, twice (CFG), on one chunk's shapes."""
    lt, lh, lw = (chunk_frames(cfg) - 1) // 4 + 1, cfg.height // 8, cfg.width // 8
    latents = torch.randn(1, 16, lt, lh, lw, device=device, dtype=dtype)
    mask = torch.zeros(1, 1, lt, lh, lw, device=device, dtype=dtype)
    timestep = torch.full((1, 1, lt, 1, 1), 0.5, device=device, dtype=dtype)
    padding = torch.zeros(1, 1, cfg.height, cfg.width, device=device, dtype=dtype)
    width = pipe.transformer.config.crossattn_proj_in_channels
    text = torch.randn(1, cfg.max_sequence_length, width, device=device, dtype=dtype)
    image = torch.zeros(
        1,
        pipe.transformer.config.img_context_num_tokens,
        pipe.transformer.config.img_context_dim_in,
        device=device,
        dtype=dtype,
    )

    def forward():
        blocks = pipe.controlnet(
            controls_latents=latents,
            latents=latents,
            timestep=timestep,
            encoder_hidden_states=(text, image),
            condition_mask=mask,
            padding_mask=padding,
            return_dict=False,
        )[0]
        pipe.transformer(
            hidden_states=latents,
            timestep=timestep,
            encoder_hidden_states=(text, image),
            block_controlnet_hidden_states=blocks,
            condition_mask=mask,
            padding_mask=padding,
            return_dict=False,
        )

    with torch.no_grad():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        forward()
        forward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def main(cfg: Config) -> dict:
    from cosmos_sim.transfer import register_backend, run_transfer
    from cosmos_sim.transfer.diffusers_backend import DiffusersBackend
    from cosmos_sim.video import video_info

    device, dtype = torch.device(cfg.device), torch.bfloat16
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    pipe = build_pipeline(cfg, device, dtype)
    build_s = time.perf_counter() - t0
    params = {
        name: sum(p.numel() for p in getattr(pipe, name).parameters())
        for name in ("transformer", "controlnet", "text_encoder", "vae")
    }
    backend = DiffusersBackend.from_pipeline(
        pipe,
        controlnet="edge",
        device=cfg.device,
        dtype="bfloat16",
        num_inference_steps=cfg.steps,
        max_sequence_length=cfg.max_sequence_length,
        num_frames_per_chunk=chunk_frames(cfg),
    )
    register_backend("diffusers-random-full-size", lambda: backend)
    timeline = Timeline(pipe, device)
    with tempfile.TemporaryDirectory() as tmp:
        clips = Path(tmp) / "clips"
        t0 = time.perf_counter()
        write_clip(clips / "front", cfg)
        clip_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = run_transfer(
            clips, Path(tmp) / "out", backend="diffusers-random-full-size", prompt=PROMPT, seed=1
        )
        run_s = time.perf_counter() - t0
        run_end = time.perf_counter()
        info = video_info(out / "front" / "output.mp4")
        manifest = json.loads((out / "transfer.json").read_text())
    timing = timeline.summary()
    baseline_s = raw_denoiser_step(pipe, cfg, device, dtype)
    steps = [s for chunk in timing["chunks"] for s in chunk["step_s"]]
    steady = steps[1:] or steps  # the run's first step carries one-off warm-up costs
    mean_step = float(np.mean(steady))
    chunks = [
        {
            **chunk,
            "measured_steps": len(chunk["step_s"]),
            "non_denoise_s": chunk["chunk_s"] - sum(chunk["step_s"]),
            f"extrapolated_chunk_s_at_{cfg.extrapolate_steps}_steps": chunk["chunk_s"]
            - sum(chunk["step_s"])
            + cfg.extrapolate_steps * mean_step,
        }
        for chunk in timing["chunks"]
    ]
    return {
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "config": asdict(cfg),
        "params": params,
        "build_s": build_s,
        "write_clip_s": clip_s,
        "transfer_wall_s": run_s,
        "text_encode_s": timing["text_encode_s"],
        "write_output_tail_s": run_end - timing["last_decode_end"],
        "step_s": steps,
        "mean_steady_step_s": mean_step,
        "chunks": chunks,
        "baseline_raw_denoiser_step_s": baseline_s,
        "pipeline_step_over_raw": mean_step / baseline_s,
        "peak_gpu_gib": torch.cuda.max_memory_allocated(device) / 2**30
        if device.type == "cuda"
        else None,
        "input_frames": cfg.frames,
        "output_frames": int(info["frames"]),
        "output_size": [int(info["width"]), int(info["height"])],
        "frames_match": int(info["frames"]) == cfg.frames,
        "safety_checker": manifest["backend_settings"]["safety_checker"],
        "published_h100_nvl_chunk_s": PUBLISHED_H100_NVL_CHUNK_S,
    }


def _print_summary(r: dict) -> None:
    n = r["config"]["extrapolate_steps"]
    print(
        f"\n{r['gpu']}: cosmos-sim transfer --backend diffusers, "
        f"{'TOY sizes (--tiny)' if r['config']['tiny'] else 'full-size Transfer 2.5'}, "
        f"random bf16 weights, {r['input_frames']} frames {r['output_size'][0]}x"
        f"{r['output_size'][1]}, {len(r['chunks'])} chunks x {r['config']['steps']} steps"
    )
    print(f"  build (random init, once)        {r['build_s']:8.1f} s")
    print(f"  text encoding (prompt + negative) {r['text_encode_s']:7.2f} s")
    print(
        f"  step (measured, CFG)             {', '.join(f'{s:.2f}' for s in r['step_s'])} s;"
        f" steady mean {r['mean_steady_step_s']:.2f} s"
    )
    print(
        f"  baseline: raw denoiser step      {r['baseline_raw_denoiser_step_s']:8.2f} s "
        f"(pipeline step / raw = {r['pipeline_step_over_raw']:.2f})"
    )
    for i, c in enumerate(r["chunks"]):
        print(
            f"  chunk {i + 1}: measured {c['chunk_s']:.1f} s at {c['measured_steps']} steps "
            f"(VAE encode {c['vae_encode_s']:.1f} s, decode {c['vae_decode_s']:.1f} s); "
            f"EXTRAPOLATED to {n} steps: {c[f'extrapolated_chunk_s_at_{n}_steps']:.0f} s"
        )
    print(f"  transfer wall (measured)         {r['transfer_wall_s']:8.1f} s")
    print(f"  peak GPU memory                  {r['peak_gpu_gib']} GiB")
    print(f"  output frames {r['output_frames']} == input {r['input_frames']}: {r['frames_match']}")
    print(f"  context: published H100 NVL 93-frame chunk {r['published_h100_nvl_chunk_s']} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in asdict(Config()).items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(
                flag, type=type(default) if default is not None else str, default=default
            )
    cfg = Config(**vars(parser.parse_args()))
    result = main(cfg)
    print(json.dumps(result, indent=2))
    if cfg.json:
        Path(cfg.json).write_text(json.dumps(result, indent=2))
    _print_summary(result)
