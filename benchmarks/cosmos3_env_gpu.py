"""Cosmos 3 forward dynamics as a batched, branching env on one GPU (full size, random bf16).

What it measures: `ForwardDynamicsSampler` (envs/cosmos3_sampler.py, what
`Cosmos3WorldModel.step` runs for all lanes of an env step) on a diffusers
`Cosmos3OmniPipeline` with the architecture of nvidia/Cosmos3-Nano's transformer (its
published config.json: 36 layers, hidden 4096, two towers, action head) and the Wan 2.2 VAE
(z 48, 16x spatial), random weights, bf16. Bridge forward-dynamics geometry: 16 actions per
chunk (17 frames, 5 latent frames), fps 5, frames 256x320 (tier 256) and 480x640 (tier 480).

Per configuration it runs one warm-up chunk, then one timed chunk of `--steps` denoising
steps. CUDA-synchronised hooks split the chunk's wall time into the VAE encode, the
transformer passes (one per denoising step), the scheduler steps, the VAE decode and the
rest ("fixed": per-call host work such as canvases, packing, scheduler setup and syncs).
Per-chunk figures for the 30-step recipe and a 4-step sampler are **extrapolated**: encode +
fixed + N x (transformer + scheduler per step) + decode. `per_step_s` keeps the old figure
((total - encode - decode) / steps, fixed costs folded in) for comparison with earlier runs.
One env step = one chunk per lane (chunk_mode "repeat"/"chunk"); "actions/s" counts
the chunk's 16 actions (frames) per lane, the unit of the issue's reference figures.

- Batching: lanes 1, 4, 16 with distinct frames, one packed transformer pass per step.
- Branching: k futures of one state (one frame, encoded once), k = 1, 8, 16; cost relative
  to k = 1.
- Baseline (same run): diffusers' own `Cosmos3OmniPipeline.__call__`, one sample per call,
  which a serial env would call once per lane (same steps, tier 256).

`--profile` adds a torch.profiler table (top ops by device and by host time) for one
timed chunk of diffusers' own call and of the sampler at 1 and 16 lanes (tier 256), written
as cosmos3_env_profile.txt next to `--json`; `--decode-probe` times the VAE decode of 16
lanes alone at decode batch 4 and 16, with and without cudnn.benchmark.

Not measured: the guardrail (cosmos-guardrail cannot be built offline; it runs once per
prompt and once per generated chunk), model load from disk. Needs torch with CUDA, diffusers
0.42.1, transformers, tokenizers; not cosmos-sim itself (the sampler module is loaded from
its file).

    python benchmarks/cosmos3_env_gpu.py --device cuda --json cosmos3_env_gpu.json
    python benchmarks/cosmos3_env_gpu.py --device cpu --size tiny --tiers 256 --batches 1,2 \
        --branches 1,2 --profile --json /tmp/env.json   # smoke test
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
NANO_TRANSFORMER = {  # nvidia/Cosmos3-Nano transformer/config.json (sound head left out)
    "head_dim": 128,
    "hidden_size": 4096,
    "intermediate_size": 12288,
    "num_attention_heads": 32,
    "num_hidden_layers": 36,
    "num_key_value_heads": 8,
    "latent_channel": 48,
    "latent_patch_size": 2,
    "patch_latent_dim": 192,
    "rope_axes_dim": [24, 20, 20],
    "rope_theta": 5000000.0,
    "action_gen": True,
    "action_dim": 64,
    "num_embodiment_domains": 32,
}
WAN22_VAE = {  # Wan-AI/Wan2.2-TI2V-5B vae/config.json geometry
    "base_dim": 160,
    "decoder_base_dim": 256,
    "z_dim": 48,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "is_residual": True,
    "in_channels": 12,
    "out_channels": 12,
    "patch_size": 2,
    "scale_factor_spatial": 16,
    "scale_factor_temporal": 4,
    "latents_mean": [0.0] * 48,
    "latents_std": [1.0] * 48,
}
TINY_TRANSFORMER = dict(
    NANO_TRANSFORMER,
    head_dim=16,
    hidden_size=32,
    intermediate_size=64,
    num_attention_heads=2,
    num_hidden_layers=2,
    num_key_value_heads=1,
    rope_axes_dim=[4, 2, 2],
)
TINY_VAE = dict(WAN22_VAE, base_dim=8, decoder_base_dim=8, z_dim=48, num_res_blocks=1)
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
)
PROMPT = "put the spoon in the pot"
TIERS = {256: (256, 320), 480: (480, 640)}


def load_sampler_module():
    spec = importlib.util.spec_from_file_location(
        "cosmos3_sampler", REPO / "envs" / "cosmos3_sampler.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def word_tokenizer():
    """A word-level tokenizer with Cosmos 3's special tokens (the real one is Qwen's; the
    JSON action caption is ~100 tokens either way)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<|pad|>", "<|unk|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>"]
    words += [chr(c) for c in range(33, 127)] + [f"w{i}" for i in range(400)]
    model = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<|unk|>"))
    model.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=model, pad_token="<|pad|>", unk_token="<|unk|>", eos_token="<|im_end|>"
    )
    tok.add_special_tokens(
        {"additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<|vision_start|>"]}
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_pipeline(size: str, device: str, dtype: torch.dtype):
    from diffusers import AutoencoderKLWan, Cosmos3OmniPipeline, UniPCMultistepScheduler
    from diffusers.models.transformers.transformer_cosmos3 import Cosmos3OmniTransformer

    torch.manual_seed(0)
    config, vae_config = (
        (NANO_TRANSFORMER, WAN22_VAE) if size == "full" else (TINY_TRANSFORMER, TINY_VAE)
    )
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            transformer = Cosmos3OmniTransformer(**config).eval()
            vae = AutoencoderKLWan(**vae_config).eval()
    finally:
        torch.set_default_dtype(default)
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=10.0
    )
    pipe = Cosmos3OmniPipeline(
        transformer=transformer,
        text_tokenizer=word_tokenizer(),
        vae=vae,
        scheduler=scheduler,
        safety_checker=None,
        enable_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Timers:
    """CUDA-synchronised wall time spent in the VAE encode and decode, the transformer passes
    and the scheduler steps, per call of `sample` (or of the pipeline)."""

    def __init__(self, pipe, device: str) -> None:
        self.device = device
        self.seconds = {"encode": 0.0, "decode": 0.0, "transformer": 0.0, "scheduler": 0.0}
        self.calls = dict.fromkeys(self.seconds, 0)
        for name, owner, attr in (
            ("encode", pipe, "_encode_video"),
            ("decode", pipe.vae, "decode"),
        ):
            setattr(owner, attr, self._timed(name, getattr(owner, attr)))
        # the sampler deep-copies its scheduler per call: time the class's step
        scheduler_cls = type(pipe.scheduler)
        if not getattr(scheduler_cls.step, "_timed", False):
            scheduler_cls.step = self._timed("scheduler", scheduler_cls.step)
        self._start = 0.0
        pipe.transformer.register_forward_pre_hook(lambda *_: self._enter())
        pipe.transformer.register_forward_hook(lambda *_: self._leave("transformer"))

    def _enter(self) -> None:
        sync(self.device)
        self._start = time.perf_counter()

    def _leave(self, name: str) -> None:
        sync(self.device)
        self.seconds[name] += time.perf_counter() - self._start
        self.calls[name] += 1

    def _timed(self, name, fn):
        def wrapper(*args, **kwargs):
            sync(self.device)
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            sync(self.device)
            self.seconds[name] += time.perf_counter() - start
            self.calls[name] += 1
            return out

        wrapper._timed = True
        return wrapper

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        self.calls = dict.fromkeys(self.calls, 0)

    def split(self, total: float, steps: int) -> dict:
        """The chunk's wall time by part; `fixed_s` is what no hook saw."""
        sec = self.seconds
        return {
            "total_s": total,
            "encode_s": sec["encode"],
            "decode_s": sec["decode"],
            "transformer_s": sec["transformer"],
            "transformer_calls": self.calls["transformer"],
            "scheduler_s": sec["scheduler"],
            "fixed_s": total - sum(sec.values()),
            "per_step_transformer_s": sec["transformer"] / steps,
            "per_step_scheduler_s": sec["scheduler"] / steps,
            "per_step_s": (total - sec["encode"] - sec["decode"]) / steps,
        }


def run_chunk(sampler, timers, frames, actions, steps, device) -> dict:
    """One timed chunk: total, encode, decode and per-denoising-step seconds."""
    sampler.num_inference_steps = steps
    timers.reset()
    generator = torch.Generator(device).manual_seed(0)
    sync(device)
    start = time.perf_counter()
    sampler.sample(frames, actions, generator)
    sync(device)
    return timers.split(time.perf_counter() - start, steps)


def extrapolate(measured: dict, lanes: int, chunk: int, steps: int) -> dict:
    fixed = measured["encode_s"] + measured["decode_s"] + measured["fixed_s"]
    per_step = measured["per_step_transformer_s"] + measured["per_step_scheduler_s"]
    seconds = fixed + steps * per_step
    return {
        "chunk_s": seconds,
        "env_steps_per_s": lanes / seconds,
        "actions_per_s": lanes * chunk / seconds,
    }


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps timed per chunk")
    parser.add_argument("--batches", default="1,4,16")
    parser.add_argument("--branches", default="1,8,16")
    parser.add_argument("--tiers", default="256,480")
    parser.add_argument("--budget-s", type=float, default=150.0, help="skip configs after this")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--decode-batch", type=int, default=4, help="lanes per VAE decode")
    parser.add_argument(
        "--profile", action="store_true", help="write cosmos3_env_profile.txt next to --json"
    )
    parser.add_argument(
        "--decode-probe", action="store_true", help="time the decode alone at batch 4 / 16"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    dtype = torch.bfloat16 if args.size == "full" else torch.float32
    chunk, fps = 16, 5.0
    pipe = build_pipeline(args.size, args.device, dtype)
    build_s = time.perf_counter() - started
    module = load_sampler_module()
    timers = Timers(pipe, args.device)
    results: dict = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "size": args.size,
        "transformer_params_B": sum(p.numel() for p in pipe.transformer.parameters()) / 1e9,
        "vae_params_M": sum(p.numel() for p in pipe.vae.parameters()) / 1e6,
        "build_s": build_s,
        "chunk_actions": chunk,
        "timed_steps": args.steps,
        "note": "chunk_s / env_steps_per_s / actions_per_s for 30 and 4 steps are extrapolated "
        "from the timed steps: encode + fixed + N x (per_step_transformer + per_step_scheduler) "
        "+ decode; guardrail not included",
        "decode_batch": args.decode_batch,
        "batching": [],
        "branching": [],
        "baseline_pipeline_call": None,
    }

    def sampler_for(tier: int, lanes: int):
        return module.ForwardDynamicsSampler(
            pipe,
            prompt=PROMPT,
            domain_name="bridge_orig_lerobot",
            chunk_size=chunk,
            fps=fps,
            resolution_tier=tier,
            batch_size=lanes,
            decode_batch_size=args.decode_batch,
        )

    def inputs(tier: int, lanes: int, distinct: bool):
        height, width = TIERS[tier]
        count = lanes if distinct else 1
        frames = torch.randint(0, 256, (count, height, width, 3), dtype=torch.uint8)
        frames = frames.expand(lanes, -1, -1, -1).to(args.device)
        actions = torch.rand(lanes, chunk, 10, device=args.device) * 2 - 1
        return frames, actions

    def measure(tier: int, lanes: int, distinct: bool) -> dict | None:
        if time.perf_counter() - started > args.budget_s:
            return None
        sampler = sampler_for(tier, lanes)
        frames, actions = inputs(tier, lanes, distinct)
        run_chunk(sampler, timers, frames, actions, 1, args.device)  # warm-up
        measured = run_chunk(sampler, timers, frames, actions, args.steps, args.device)
        peak = torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else 0
        return {
            "tier": tier,
            "frame_hw": TIERS[tier],
            "lanes": lanes,
            "measured": measured,
            "peak_GiB": peak,
            "extrapolated_30_steps": extrapolate(measured, lanes, chunk, 30),
            "extrapolated_4_steps": extrapolate(measured, lanes, chunk, 4),
        }

    for tier in (int(t) for t in args.tiers.split(",")):
        for lanes in (int(b) for b in args.batches.split(",")):
            row = measure(tier, lanes, distinct=True)
            results["batching"].append(row or {"tier": tier, "lanes": lanes, "skipped": "budget"})
            print(json.dumps(results["batching"][-1]), flush=True)
    base_tier = int(args.tiers.split(",")[0])
    for k in (int(b) for b in args.branches.split(",")):
        row = measure(base_tier, k, distinct=False)
        results["branching"].append(row or {"tier": base_tier, "lanes": k, "skipped": "budget"})
        print(json.dumps(results["branching"][-1]), flush=True)
    ones = [r for r in results["branching"] if r.get("lanes") == 1 and "measured" in r]
    for row in results["branching"]:
        if ones and "measured" in row:
            for key in ("extrapolated_30_steps", "extrapolated_4_steps"):
                row[key]["cost_vs_one_future"] = row[key]["chunk_s"] / ones[0][key]["chunk_s"]
    results["baseline_pipeline_call"] = baseline(pipe, timers, args, base_tier, chunk, fps)
    print(json.dumps({"baseline_pipeline_call": results["baseline_pipeline_call"]}), flush=True)
    if args.decode_probe:
        results["decode_probe"] = decode_probe(pipe, sampler_for(base_tier, 16), args.device)
        print(json.dumps(results["decode_probe"]), flush=True)
    if args.profile:
        folder = args.json.parent if args.json else Path.cwd()
        path = folder / "cosmos3_env_profile.txt"
        runs = {
            "diffusers Cosmos3OmniPipeline.__call__, 1 sample": lambda: baseline_call(
                pipe, args, base_tier, chunk, fps, args.steps
            ),
        }
        for lanes in (1, 16 if args.device.startswith("cuda") else 2):
            sampler = sampler_for(base_tier, lanes)
            frames, actions = inputs(base_tier, lanes, distinct=True)
            sampler.num_inference_steps = args.steps
            runs[f"ForwardDynamicsSampler, {lanes} lanes"] = functools.partial(
                sampler.sample, frames, actions, torch.Generator(args.device)
            )
        path.write_text(profile_tables(runs, args.device, args.steps, base_tier))
        results["profile"] = str(path)
    results["total_s"] = time.perf_counter() - started
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


def baseline_call(pipe, args, tier: int, chunk: int, fps: float, steps: int) -> None:
    """One diffusers call: one forward-dynamics sample, the recipe's settings."""
    from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import CosmosActionCondition

    height, width = TIERS[tier]
    pipe(
        PROMPT,
        action=CosmosActionCondition(
            mode="forward_dynamics",
            chunk_size=chunk,
            domain_name="bridge_orig_lerobot",
            resolution_tier=tier,
            raw_actions=torch.rand(chunk, 10) * 2 - 1,
            image=torch.rand(height, width, 3).numpy(),
        ),
        guidance_scale=1.0,
        num_inference_steps=steps,
        fps=fps,
        use_system_prompt=False,
        output_type="np",
        generator=torch.Generator(args.device).manual_seed(0),
    )


def baseline(pipe, timers, args, tier: int, chunk: int, fps: float) -> dict:
    """diffusers' own call: one sample (what a serial env does per lane), same steps."""

    def call(steps: int) -> float:
        timers.reset()
        sync(args.device)
        start = time.perf_counter()
        baseline_call(pipe, args, tier, chunk, fps, steps)
        sync(args.device)
        return time.perf_counter() - start

    call(1)
    measured = timers.split(call(args.steps), args.steps)
    return {
        "tier": tier,
        "lanes": 1,
        "measured": measured,
        "extrapolated_30_steps": extrapolate(measured, 1, chunk, 30),
        "extrapolated_4_steps": extrapolate(measured, 1, chunk, 4),
    }


def profile_tables(runs: dict, device: str, steps: int, tier: int) -> str:
    """torch.profiler's top ops by device and by host time, one timed call per run (after
    a warm-up call); a few KB of text."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    by_device = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    text = [f"cosmos3_env_gpu.py --profile: tier {tier}, {steps} denoising steps, {device}\n"]
    for name, run in runs.items():
        run()
        sync(device)
        with profile(activities=activities) as prof:
            run()
            sync(device)
        table = prof.key_averages()
        text.append(f"\n=== {name}: top ops by {by_device}\n")
        text.append(table.table(sort_by=by_device, row_limit=12, max_name_column_width=48))
        text.append(f"\n=== {name}: top ops by cpu_time_total (host, inclusive)\n")
        text.append(table.table(sort_by="cpu_time_total", row_limit=12, max_name_column_width=48))
    return "".join(text)


def decode_probe(pipe, sampler, device: str) -> dict:
    """The VAE decode of 16 lanes' latents alone: decode batch 4 vs 16, cudnn.benchmark off
    vs on (each after a warm-up, which is where cudnn.benchmark tunes)."""
    cuda = device.startswith("cuda")
    lanes = 16 if cuda else 1  # the CPU smoke test keeps it short
    latents = torch.randn(lanes, pipe.vae.config.z_dim, 5, 16, 20, device=device)  # tier 256
    rows = []
    saved = torch.backends.cudnn.benchmark
    try:
        for bench in (False, True) if cuda else (False,):
            torch.backends.cudnn.benchmark = bench
            for batch in (4, 16) if cuda else (1,):
                sampler.decode_batch_size = batch
                row = {"cudnn_benchmark": bench, "decode_batch": batch}
                try:
                    sampler._decode(latents)
                    sync(device)
                    start = time.perf_counter()
                    sampler._decode(latents)
                    sync(device)
                    row["decode_s"] = time.perf_counter() - start
                except torch.OutOfMemoryError:  # a finding, not a crash: the rows so far stand
                    row["decode_s"] = "out of memory"
                    torch.cuda.empty_cache()
                rows.append(row)
    finally:
        torch.backends.cudnn.benchmark = saved
    return {"tier": 256, "lanes": lanes, "rows": rows}


if __name__ == "__main__":
    main()
