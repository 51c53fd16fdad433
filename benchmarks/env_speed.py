"""Env-steps per second: the real PyBullet PushCube-v0 against the learned LearnedPushCube-v0.

The real env runs in one process with rendering (64×64 TinyRenderer, random actions). The
learned env runs as `gymnasium.make_vec("cosmos_sim/LearnedPushCube-v0", num_envs=B,
vectorization_mode="vector_entry_point")` — all lanes in one batched model call per step —
at each batch size B, on the chosen device; the ratio to the real env is printed per B.
Where pybullet is missing (the GPU machine), pass the real env's figure measured elsewhere
with `--real-steps-per-s`.

    python benchmarks/env_speed.py --device cpu --threads 2 --batches 1 16 256
    python benchmarks/env_speed.py --device cuda --batches 1 16 256 1024 --real-steps-per-s 900
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def real_env_steps_per_s(steps: int, seed: int = 0) -> float:
    from cosmos_sim.envs.pushcube import PushCubeEnv

    env = PushCubeEnv()
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def learned_env_steps_per_s(
    batch: int,
    device: str,
    dtype: str,
    compile: bool,
    min_seconds: float,
    weights: str | None,
    seed: int = 0,
) -> float:
    import gymnasium

    import cosmos_sim.envs  # noqa: F401  (registers the ids)

    kwargs = {"device": device, "dtype": dtype, "compile": compile}
    if weights is not None:
        kwargs["weights"] = weights
    env = gymnasium.make_vec(
        "cosmos_sim/LearnedPushCube-v0",
        num_envs=batch,
        vectorization_mode="vector_entry_point",
        **kwargs,
    )
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (64, batch, 2)).astype(np.float32)
    env.reset(seed=seed)
    for k in range(3):  # warm-up (allocator, cuDNN autotune, torch.compile)
        env.step(actions[k])
    steps, start = 0, time.perf_counter()
    while True:
        env.step(actions[steps % len(actions)])  # returns numpy: synchronises the device
        steps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and steps >= 5:
            break
    env.close()
    return batch * steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 256, 1024])
    parser.add_argument("--dtype", default="float32", help="model dtype, e.g. bfloat16")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model step")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--real-steps", type=int, default=600)
    parser.add_argument("--real-steps-per-s", type=float, default=None)
    parser.add_argument("--seconds", type=float, default=5.0, help="minimum time per batch")
    parser.add_argument("--weights", default=None, help="safetensors (default: shipped)")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True  # fixed shapes per batch size
    device_name = (
        torch.cuda.get_device_name(0)
        if args.device.startswith("cuda")
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    if args.real_steps_per_s is not None:
        real, real_source = args.real_steps_per_s, "given (--real-steps-per-s)"
    else:
        real, real_source = real_env_steps_per_s(args.real_steps), "measured here"
    print(
        f"real PushCube-v0 (PyBullet, TinyRenderer 64x64, 1 process): {real:.0f} steps/s "
        f"[{real_source}]"
    )
    compiled = ", torch.compile" if args.compile else ""
    print(f"learned LearnedPushCube-v0 on {device_name}, {args.dtype}{compiled}")
    print(f"{'batch':>6} {'steps/s':>12} {'x real':>8}")
    rows = []
    for batch in args.batches:
        sps = learned_env_steps_per_s(
            batch, args.device, args.dtype, args.compile, args.seconds, args.weights
        )
        rows.append({"batch": batch, "steps_per_s": sps, "ratio_to_real": sps / real})
        print(f"{batch:>6} {sps:>12.1f} {sps / real:>8.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "device": device_name,
                    "dtype": args.dtype,
                    "compile": args.compile,
                    "real_steps_per_s": real,
                    "real_source": real_source,
                    "learned": rows,
                },
                fh,
                indent=2,
            )


if __name__ == "__main__":
    main()
