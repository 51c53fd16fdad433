"""Batch throughput on Ray against a plain loop over the same work, in one run.

--mode cpu (this machine): a plan (default examples/plans/demo.yaml) through `run_plan` on a
local Ray with 1 CPU and then 2 CPUs, and through a plain loop in this process calling the
same stage functions (no Ray), each into a fresh folder. Prints wall time, units/hour and
mean seconds per unit and stage.

--mode gpu (the GPU machine): transfer work on every GPU present through resident Ray actors
(`cosmos_sim.batch.workers.ResidentWorkers`, the transfer stage's dispatch: one actor per GPU,
model built once, chunks handed to whichever actor is idle), against a plain loop over the
same chunks in this process on one GPU. One chunk of work is `--steps` denoising steps
(controlnet + transformer, twice for CFG) of Cosmos Transfer 2.5 2B at full size with random
bf16 weights on the latents of one 93-frame 1280×704 chunk (the architecture and call of
benchmarks/cosmos_transfer_gpu.py). chunks/hour are measured for that work and projected to
a 35-step chunk (per-step time × 35); the VAE and text encoder are not run. Random weights:
the timings are real, the frames would be noise (and are not Cosmos output).

    python benchmarks/batch.py --mode cpu --json cpu.json
    python benchmarks/batch.py --mode gpu --device cuda --json gpu.json   # ≤ 4 min, 1 H200
    python benchmarks/batch.py --mode gpu --device cpu --tiny             # smoke test
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FULL_STEPS = 35
"""Denoising steps of one Transfer 2.5 chunk (cosmos-transfer2.5 default)."""


def _load() -> tuple[str, float]:
    one, five, _ = os.getloadavg()
    return f"{one:.1f}/{five:.1f}", one


# --- CPU: run_plan on 1 and 2 CPUs vs a plain loop ------------------------------------------


def cpu_mode(args: argparse.Namespace) -> dict:
    from cosmos_sim.batch import load_plan, run_plan

    plan = load_plan(args.plan)
    work = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    result: dict = {"plan": str(args.plan), "units": len(plan.units()), "cpu_count": os.cpu_count()}
    load_before, _ = _load()
    started = time.perf_counter()
    loop_stage_s = plain_loop(plan, work / "loop")
    result["plain_loop"] = {
        "wall_s": time.perf_counter() - started,
        "mean_unit_s": {k: sum(v) / len(v) for k, v in loop_stage_s.items()},
        "load_before": load_before,
    }
    for cpus in args.cpus:
        load_before, _ = _load()
        report = run_plan(plan, work / f"ray{cpus}", num_cpus=cpus)
        if report["failed"]:
            raise RuntimeError(f"units failed: {report['failed']}")
        result[f"ray_{cpus}cpu"] = {
            "wall_s": report["wall_s"],
            "ray_start_s": report["ray_start_s"],
            "mean_unit_s": {k: v["mean_unit_s"] for k, v in report["stages"].items()},
            "load_before": load_before,
        }
    for entry in result.values():
        if isinstance(entry, dict) and "wall_s" in entry:
            entry["units_per_hour"] = result["units"] * 3600 / entry["wall_s"]
    if len(args.cpus) >= 2:
        first, last = (result[f"ray_{c}cpu"]["wall_s"] for c in (args.cpus[0], args.cpus[-1]))
        result["speedup"] = first / last
    result["load_after"] = _load()[0]
    return result


def plain_loop(plan, out: Path) -> dict[str, list[float]]:
    """The plan's units one after another in this process: the same stage functions, no Ray."""
    from cosmos_sim.batch.runner import TransferUnits, capture_task, controls_task, dataset_task

    transfer = TransferUnits(out, plan.stages.transfer) if plan.stages.transfer else None
    seconds: dict[str, list[float]] = {s: [] for s in plan.stage_names()}
    for unit in plan.units():
        for stage in plan.stage_names():
            if stage == "capture":
                marker = capture_task(out, unit)
            elif stage == "transfer":
                marker = transfer(unit)
            else:
                task = controls_task if stage == "controls" else dataset_task
                marker = task(out, unit, plan)
            seconds[stage].append(marker["seconds"])
    return seconds


# --- GPU: resident transfer actors over the GPUs vs a plain loop ----------------------------


def model_configs(tiny: bool) -> tuple[dict, dict, dict]:
    """Transformer and controlnet configs (Transfer 2.5 2B, or a tiny one) and the chunk size."""
    from cosmos_transfer_gpu import CONTROLNET_2B, TRANSFORMER_2B

    chunk = {"frames": 93, "height": 704, "width": 1280, "text_tokens": 512}
    if not tiny:
        return TRANSFORMER_2B, CONTROLNET_2B, chunk
    shared = {"num_attention_heads": 2, "attention_head_dim": 16, "adaln_lora_dim": 8,
              "text_embed_dim": 32, "max_size": (8, 16, 16), "crossattn_proj_in_channels": 64,
              "encoder_hidden_states_channels": 32, "img_context_dim_in": 16,
              "img_context_dim_out": 32}  # fmt: skip
    transformer = {**TRANSFORMER_2B, **shared, "num_layers": 2, "controlnet_block_every_n": 1,
                   "img_context_num_tokens": 4}  # fmt: skip
    controlnet = {**CONTROLNET_2B, **shared, "n_controlnet_blocks": 2, "model_channels": 32}
    return transformer, controlnet, {"frames": 9, "height": 64, "width": 96, "text_tokens": 8}


class ChunkDenoiser:
    """A resident model: Transfer 2.5's controlnet + transformer, built once on this
    process's GPU, then `steps` CFG denoising steps per chunk (seeded random latents)."""

    def __init__(self, device: str, tiny: bool, steps: int) -> None:
        import torch
        from diffusers import CosmosControlNetModel, CosmosTransformer3DModel

        transformer_cfg, controlnet_cfg, self.chunk = model_configs(tiny)
        self.torch, self.steps = torch, steps
        self.device, self.dtype = torch.device(device), torch.bfloat16
        torch.cuda.reset_peak_memory_stats() if self.device.type == "cuda" else None
        started = time.perf_counter()
        with self.device:
            self.transformer = CosmosTransformer3DModel(**transformer_cfg).to(self.dtype).eval()
            self.controlnet = CosmosControlNetModel(**controlnet_cfg).to(self.dtype).eval()
        self.build_s = time.perf_counter() - started
        self.text_dim = transformer_cfg["crossattn_proj_in_channels"]
        self.image_dim = transformer_cfg["img_context_dim_in"]
        self.image_tokens = transformer_cfg["img_context_num_tokens"]
        started = time.perf_counter()
        self(-1, steps=1)  # warm-up: first-call kernels and allocator, as a real worker pays
        self.warmup_s = time.perf_counter() - started

    def __call__(self, chunk_id: int, steps: int | None = None) -> dict:
        torch, c = self.torch, self.chunk
        generator = torch.Generator(self.device).manual_seed(chunk_id + 1)
        lt, lh, lw = (c["frames"] - 1) // 4 + 1, c["height"] // 8, c["width"] // 8

        def randn(*shape):
            return torch.randn(*shape, generator=generator, device=self.device, dtype=self.dtype)

        latents, controls = randn(1, 16, lt, lh, lw), randn(1, 16, lt, lh, lw)
        zeros = {"device": self.device, "dtype": self.dtype}
        cond_mask = torch.zeros(1, 1, lt, lh, lw, **zeros)
        padding = torch.zeros(1, 1, c["height"], c["width"], **zeros)
        image = torch.zeros(1, self.image_tokens, self.image_dim, **zeros)
        prompts = [(randn(1, c["text_tokens"], self.text_dim), image) for _ in range(2)]  # CFG
        self._sync()
        started = time.perf_counter()
        with torch.no_grad():
            for step in range(steps or self.steps):
                timestep = torch.full((1, 1, lt, 1, 1), 1.0 - step / FULL_STEPS, **zeros)
                for context in prompts:
                    blocks = self.controlnet(
                        controls_latents=controls, latents=latents, timestep=timestep,
                        encoder_hidden_states=context, condition_mask=cond_mask,
                        padding_mask=padding, return_dict=False,
                    )[0]  # fmt: skip
                    self.transformer(
                        hidden_states=latents, timestep=timestep, encoder_hidden_states=context,
                        block_controlnet_hidden_states=blocks, condition_mask=cond_mask,
                        padding_mask=padding, return_dict=False,
                    )  # fmt: skip
        self._sync()
        return {"chunk": chunk_id, "seconds": time.perf_counter() - started, "pid": os.getpid(),
                "build_s": self.build_s, "peak_gib": self._peak_gib()}  # fmt: skip

    def _sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def _peak_gib(self) -> float | None:
        cuda = self.device.type == "cuda"
        return self.torch.cuda.max_memory_allocated() / 2**30 if cuda else None


def gpu_mode(args: argparse.Namespace) -> dict:
    import torch

    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    workers = max(gpus, 1) if args.device == "cuda" else args.cpu_workers
    chunks = list(range(args.chunks_per_gpu * workers))
    loop_chunk_ids = chunks[: args.loop_chunks or args.chunks_per_gpu]
    result: dict = {
        "device": torch.cuda.get_device_name() if gpus else "cpu",
        "gpus": gpus,
        "torch": torch.__version__,
        "model": "tiny" if args.tiny else "Cosmos-Transfer2.5-2B architecture, random bf16",
        "chunks": len(chunks),
        "loop_chunks": len(loop_chunk_ids),
        "steps_per_chunk": args.steps,
    }

    # Baseline: a plain loop in this process, one model on one GPU, over the same chunks (with
    # several GPUs, over one GPU's share of them by default, so the run stays short).
    started = time.perf_counter()
    model = ChunkDenoiser(args.device, args.tiny, args.steps)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    loop_chunks = [model(i) for i in loop_chunk_ids]
    loop_s = time.perf_counter() - started
    result["plain_loop"] = {
        "load_s": load_s,
        "build_s": model.build_s,
        "warmup_s": model.warmup_s,
        "wall_s": loop_s,
        "chunk_s": [c["seconds"] for c in loop_chunks],
        "peak_gib": loop_chunks[-1]["peak_gib"],
    }
    del model
    if gpus:
        torch.cuda.empty_cache()

    # Ray: one resident actor per GPU, chunks to whichever is idle.
    import ray

    from cosmos_sim.batch.workers import ResidentWorkers

    # Ray workers import cosmos_transfer_gpu (the model configs) from here; cosmos_sim comes
    # from wherever this process found it (an install, or gpu_session.sh's layout).
    os.environ["PYTHONPATH"] = os.pathsep.join([str(BENCH), os.environ.get("PYTHONPATH", "")])
    started = time.perf_counter()
    ray.init(num_gpus=gpus, include_dashboard=False, log_to_driver=False,
             object_store_memory=2**28)  # fmt: skip
    ray_start_s = time.perf_counter() - started
    try:
        started = time.perf_counter()
        pool = ResidentWorkers(
            functools.partial(ChunkDenoiser, args.device, args.tiny, args.steps),
            count=workers, num_gpus=1 if gpus else 0, max_restarts=0,
        )  # fmt: skip
        ray.get([actor.stats.remote() for actor in pool.actors])  # every model built
        ready_s = time.perf_counter() - started
        started = time.perf_counter()
        ray_chunks = list(pool.map_unordered((i,) for i in chunks))
        wall_s = time.perf_counter() - started
        actors = pool.stats()
        pool.close()
    finally:
        ray.shutdown()
    by_pid: dict[int, list[dict]] = {}
    for chunk in ray_chunks:
        by_pid.setdefault(chunk["pid"], []).append(chunk)
    result["ray"] = {
        "workers": workers,
        "ray_start_s": ray_start_s,
        "actors_ready_s": ready_s,
        "wall_s": wall_s,
        "actors": [
            {
                **a,
                "chunks": len(by_pid.get(a["pid"], [])),
                "busy_fraction": a["busy_s"] / wall_s,
                "peak_gib": max(
                    (c["peak_gib"] or 0) for c in by_pid.get(a["pid"], [{"peak_gib": 0}])
                ),
            }
            for a in actors
        ],  # fmt: skip
        "chunk_s": [c["seconds"] for c in ray_chunks],
    }
    loop_rate = len(loop_chunk_ids) * 3600 / loop_s
    ray_rate = len(chunks) * 3600 / wall_s
    step_s = sum(result["plain_loop"]["chunk_s"]) / len(loop_chunk_ids) / args.steps
    result["summary"] = {
        "loop_chunks_per_hour": loop_rate,
        "ray_chunks_per_hour": ray_rate,
        "ray_vs_loop": ray_rate / loop_rate,
        "scaling_efficiency": ray_rate / (loop_rate * workers),
        "mean_chunk_s_loop": sum(result["plain_loop"]["chunk_s"]) / len(loop_chunk_ids),
        "mean_chunk_s_ray": sum(result["ray"]["chunk_s"]) / len(chunks),
        # actor time not spent in a chunk: dispatch, queue and end-of-run imbalance
        "idle_s_per_chunk": (wall_s * workers - sum(result["ray"]["chunk_s"])) / len(chunks),
        "mean_step_s": step_s,
        "projected_35_step_chunk_s": step_s * FULL_STEPS,
        "projected_35_step_chunks_per_hour": workers * 3600 / (step_s * FULL_STEPS),
        "note": f"measured chunks are {args.steps} denoising step(s); 35-step figures projected",
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--plan", type=Path, default=ROOT / "examples" / "plans" / "demo.yaml")
    parser.add_argument("--cpus", type=int, nargs="+", default=[1, 2], help="cpu mode")
    parser.add_argument("--device", default="cuda", help="gpu mode: cuda, or cpu to smoke-test")
    parser.add_argument("--tiny", action="store_true", help="gpu mode: tiny model (smoke test)")
    parser.add_argument("--steps", type=int, default=1, help="gpu mode: denoising steps a chunk")
    parser.add_argument("--chunks-per-gpu", type=int, default=3, help="gpu mode")
    parser.add_argument("--loop-chunks", type=int, help="gpu mode [default: chunks per GPU]")
    parser.add_argument("--cpu-workers", type=int, default=2, help="gpu mode with --device cpu")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH))
    result = cpu_mode(args) if args.mode == "cpu" else gpu_mode(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
