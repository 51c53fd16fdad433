"""Open-loop fidelity of the embedded world model against the real PushCube-v0 frames.

From held-out episodes (never trained on), the model is started on real context frames and
rolled out 16 steps open loop with the real recorded actions; each predicted frame is
compared with the real simulator's frame at the same tick (PSNR, SSIM). Starts are taken
at tick 0 (one real frame, as an env reset sees it) and at tick 8 (four real frames of
context). Prints a per-step table, writes a plot and a multiverse grid (one start, several
noise seeds, real frames on the top row).

    python benchmarks/world_model_fidelity.py --data runs/pushcube_data --out runs/fidelity
    # without packed data, held-out episodes are recorded first (seeds as collect_pushcube's):
    python benchmarks/world_model_fidelity.py --episodes 64 --out runs/fidelity
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cosmos_sim.envs.embedded import PushCubeWorldModel


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM per image of uint8 [N, H, W, 3] batches (Gaussian window 11, σ 1.5)."""
    x = a.permute(0, 3, 1, 2).float() / 255.0
    y = b.permute(0, 3, 1, 2).float() / 255.0
    coords = torch.arange(11, dtype=torch.float32) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    g = (g / g.sum()).to(x.device)
    window = (g[:, None] * g[None, :]).expand(3, 1, 11, 11)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, padding=5, groups=3)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3))


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = ((a.float() - b.float()) ** 2).mean(dim=(1, 2, 3)).clamp(min=1e-10)
    return 10 * torch.log10(255.0**2 / mse)


def load_heldout(data: str | None, episodes: int) -> dict[str, np.ndarray]:
    if data and (Path(data) / "heldout.npz").is_file():
        with np.load(Path(data) / "heldout.npz") as npz:
            return {k: npz[k] for k in ("frames", "actions", "episode_lengths")}
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from collect_pushcube import CollectConfig, collect

    folder = tempfile.mkdtemp(prefix="pushcube_heldout_")
    collect(
        CollectConfig(
            out=folder, train_episodes=0, graze_episodes=0, heldout_episodes=episodes, workers=0
        )
    )
    return load_heldout(folder, episodes)


def windows(
    held: dict[str, np.ndarray], start_tick: int, context: int, horizon: int, limit: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Context frames/actions ending at `start_tick` and the next `horizon` real frames/actions
    for every held-out episode long enough."""
    lengths = held["episode_lengths"]
    offsets = np.cumsum(lengths) - lengths
    ctx_f, ctx_a, fut_f, fut_a = [], [], [], []
    for off, length in zip(offsets, lengths, strict=True):
        if length <= start_tick + horizon or len(ctx_f) >= limit:
            continue
        lo = max(0, start_tick - context + 1)
        ctx_f.append(held["frames"][off + lo : off + start_tick + 1])
        ctx_a.append(held["actions"][off + lo : off + start_tick + 1])
        fut = slice(off + start_tick + 1, off + start_tick + 1 + horizon)
        fut_f.append(held["frames"][fut])
        fut_a.append(held["actions"][fut])
    return tuple(np.stack(v) for v in (ctx_f, ctx_a, fut_f, fut_a))  # type: ignore[return-value]


@torch.no_grad()
def rollout(
    model: PushCubeWorldModel, ctx_f: np.ndarray, ctx_a: np.ndarray, fut_a: np.ndarray, seed: int
) -> torch.Tensor:
    device = model.device
    state = model.start(torch.from_numpy(ctx_f).to(device), torch.from_numpy(ctx_a).to(device))
    generator = torch.Generator(device=device).manual_seed(seed)
    frames = []
    for k in range(fut_a.shape[1]):
        state, result = model.step(
            state, torch.from_numpy(fut_a[:, k : k + 1]).to(device), generator
        )
        frames.append(result.frames[:, 0])
    return torch.stack(frames, dim=1)


def multiverse_grid(
    model: PushCubeWorldModel,
    ctx_f: np.ndarray,
    ctx_a: np.ndarray,
    fut_f: np.ndarray,
    fut_a: np.ndarray,
    seeds: int,
    path: Path,
) -> Path:
    """Top row: real frames; below: one row per noise seed, same start and actions."""
    from PIL import Image

    rows = [fut_f[0]]
    for seed in range(seeds):
        rows.append(rollout(model, ctx_f[:1], ctx_a[:1], fut_a[:1], seed)[0].cpu().numpy())
    grid = np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="runs/pushcube_data", help="folder with heldout.npz")
    parser.add_argument("--episodes", type=int, default=128, help="held-out episodes to use")
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--weights", default=None, help="safetensors (default: shipped)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", help="model dtype, e.g. bfloat16")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/fidelity")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = PushCubeWorldModel.load(
        args.weights, device=args.device, dtype=getattr(torch, args.dtype)
    )
    held = load_heldout(args.data, args.episodes)
    per_start = {}
    for start_tick in (0, 8):
        ctx_f, ctx_a, fut_f, fut_a = windows(
            held, start_tick, model.context_frames, args.horizon, args.episodes
        )
        pred = rollout(model, ctx_f, ctx_a, fut_a, args.seed).cpu()
        real = torch.from_numpy(fut_f)
        n, h = real.shape[:2]
        flat_p, flat_r = pred.reshape(n * h, *pred.shape[2:]), real.reshape(n * h, *real.shape[2:])
        # Baseline: the last context frame held still (what a model that learned nothing
        # about motion would score on these mostly static scenes).
        still = torch.from_numpy(ctx_f[:, -1:]).expand(-1, h, -1, -1, -1).reshape(flat_r.shape)
        per_start[start_tick] = {
            "windows": n,
            "psnr": psnr(flat_p, flat_r).reshape(n, h).mean(0).tolist(),
            "ssim": ssim(flat_p, flat_r).reshape(n, h).mean(0).tolist(),
            "baseline_psnr": psnr(still, flat_r).reshape(n, h).mean(0).tolist(),
            "baseline_ssim": ssim(still, flat_r).reshape(n, h).mean(0).tolist(),
        }
        if start_tick == 0:
            grid = multiverse_grid(
                model, ctx_f, ctx_a, fut_f, fut_a, 4, out / "multiverse_grid.png"
            )
    print(f"open-loop fidelity, {args.horizon} steps, held-out PushCube-v0 episodes")
    print("model PSNR / SSIM, and in brackets the hold-the-last-frame baseline's PSNR")
    head = f"{'PSNR':>8} {'(base)':>7} {'SSIM':>8}"
    print(f"{'':>4} | {'start at tick 0':^25} | {'start at tick 8':^25}")
    print(f"{'step':>4} | {head} | {head}")
    for k in range(args.horizon):
        a, b = per_start[0], per_start[8]
        print(
            f"{k + 1:>4} | {a['psnr'][k]:>8.2f} {a['baseline_psnr'][k]:>7.2f} "
            f"{a['ssim'][k]:>8.3f} | "
            f"{b['psnr'][k]:>8.2f} {b['baseline_psnr'][k]:>7.2f} {b['ssim'][k]:>8.3f}"
        )
    summary = {
        f"start_t{t}": {
            "windows": v["windows"],
            "psnr_mean": float(np.mean(v["psnr"])),
            "ssim_mean": float(np.mean(v["ssim"])),
            "baseline_psnr_mean": float(np.mean(v["baseline_psnr"])),
            "baseline_ssim_mean": float(np.mean(v["baseline_ssim"])),
            "psnr_per_step": v["psnr"],
            "ssim_per_step": v["ssim"],
        }
        for t, v in per_start.items()
    }
    for t, v in summary.items():
        print(
            f"{t}: {v['windows']} windows, mean PSNR {v['psnr_mean']:.2f} dB "
            f"(hold-last-frame baseline {v['baseline_psnr_mean']:.2f} dB), "
            f"mean SSIM {v['ssim_mean']:.3f} (baseline {v['baseline_ssim_mean']:.3f})"
        )
    (out / "fidelity.json").write_text(json.dumps(summary, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    steps = np.arange(1, args.horizon + 1)
    for t, v in per_start.items():
        axes[0].plot(steps, v["psnr"], marker="o", label=f"start tick {t}")
        axes[1].plot(steps, v["ssim"], marker="o", label=f"start tick {t}")
        axes[0].plot(steps, v["baseline_psnr"], ls=":", label=f"hold last frame, tick {t}")
    axes[0].axhline(25, color="gray", ls="--", lw=1, label="target 25 dB")
    axes[0].set(xlabel="open-loop step", ylabel="PSNR (dB)")
    axes[1].set(xlabel="open-loop step", ylabel="SSIM")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "fidelity.png", dpi=120)
    print(f"wrote {out / 'fidelity.json'}, {out / 'fidelity.png'}, {grid}")


if __name__ == "__main__":
    main()
