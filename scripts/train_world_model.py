"""Train the embedded PushCube world model (CleanRL style: read top to bottom).

Data: the packed episodes of `python scripts/collect_pushcube.py` (train.npz and
heldout.npz). Model: `cosmos_sim.envs.embedded.PushCubeWorldModel`, a few-step rectified
flow over pixel-unshuffled frames with reward/success heads. Output: safetensors weights
(EMA), metrics.json and the log in `--out`.

    # full run (one H200: 540 s of optimisation, ~9.5 minutes in all):
    python scripts/train_world_model.py --data runs/pushcube_data --out runs/wm
    # CPU smoke run (seconds):
    python scripts/train_world_model.py --smoke --data runs/pushcube_small --out /tmp/wm
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cosmos_sim.envs.embedded import PushCubeWorldModel, WorldModelConfig


@dataclass
class Args:
    data: str = "runs/pushcube_data"
    """Folder with train.npz and heldout.npz."""
    out: str = "runs/world_model"
    seed: int = 0
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    # model
    channels: tuple[int, int] = (64, 128)
    context_frames: int = 4
    sampling_steps: int = 2
    head_channels: int = 48
    # optimisation
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 300
    total_steps: int = 40_000
    budget_s: float = 540.0
    """Wall-clock budget for the optimisation; the LR schedule follows whichever of
    steps and time runs out first, so the schedule completes inside the budget."""
    ema_decay: float = 0.999
    bf16: bool = True
    # loss
    moving_weight: float = 9.0
    """Extra loss weight on cells that change between the last and the next frame."""
    head_weight: float = 1.0
    rollout_fraction: float = 0.25
    """Share of each batch whose last context frames are the model's own predictions."""
    rollout_steps: int = 1
    """Those frames come from EMA rollouts of 1..rollout_steps steps (cycled over training
    steps) from the real frames before them, so training sees multi-step drift."""
    context_noise: float = 0.02
    # logging / eval
    log_every: int = 250
    eval_windows: int = 256
    eval_horizon: int = 16
    smoke: bool = False
    """Tiny CPU configuration for tests (seconds)."""


def smoke_args(args: Args) -> Args:
    return Args(
        **{
            **asdict(args),
            "device": "cpu",
            "channels": (16, 32),
            "head_channels": 8,
            "batch_size": 16,
            "lr": 2e-3,
            "warmup_steps": 5,
            "total_steps": 40,
            "budget_s": 60.0,
            "ema_decay": 0.9,
            "bf16": False,
            "rollout_fraction": 0.25,
            "log_every": 10,
            "eval_windows": 4,
            "eval_horizon": 4,
        }
    )


# -- data -----------------------------------------------------------------------------------


class Frames:
    """A packed split on the training device, with window indexing inside episodes."""

    def __init__(self, path: Path, device: torch.device, context: int) -> None:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        self.device = device
        self.context = context
        self.frames = torch.from_numpy(arrays["frames"]).to(device)
        self.actions = torch.from_numpy(arrays["actions"]).to(device)
        states = torch.from_numpy(arrays["states"]).to(device)
        self.distances = torch.stack(
            [
                (states[:, 0:2] - states[:, 2:4]).norm(dim=1),
                (states[:, 2:4] - states[:, 5:7]).norm(dim=1),
            ],
            dim=1,
        )
        self.success = torch.from_numpy(arrays["success"]).to(device)
        lengths = torch.from_numpy(arrays["episode_lengths"]).long()
        starts = torch.cumsum(lengths, 0) - lengths
        self.episode_start = torch.repeat_interleave(starts, lengths).to(device)
        self.episode_starts, self.episode_lengths = starts, lengths
        ends = starts + lengths - 1
        last = torch.zeros(len(self.frames), dtype=torch.bool)
        last[ends] = True
        # Transitions i -> i+1 inside an episode.
        self.sources = torch.nonzero(~last).squeeze(1).to(device)

    def window(self, ends: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Context frames [B, T, H, W, 3] ending at frame `ends`, left-padded inside episodes,
        and the actions that led to them [B, T, A] (zeros where padded)."""
        offsets = torch.arange(-self.context + 1, 1, device=self.device)
        raw = ends[:, None] + offsets[None]
        start = self.episode_start[ends][:, None]
        index = torch.maximum(raw, start)
        actions = self.actions[index] * (raw >= start)[..., None]
        return self.frames[index], actions


# -- training -------------------------------------------------------------------------------


def flow_loss(
    model: PushCubeWorldModel,
    ctx_cells: torch.Tensor,
    actions: torch.Tensor,
    target: torch.Tensor,
    moving_weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rectified-flow x-prediction loss, weighted up on changing cells; returns (loss, x1_hat)."""
    batch = target.shape[0]
    steps = model.config.sampling_steps
    grid_tau = torch.randint(0, steps, (batch,), device=target.device).float() / steps
    tau = torch.where(
        torch.rand(batch, device=target.device) < 0.5,
        grid_tau,
        torch.rand(batch, device=target.device) * 0.98,
    )
    noise = torch.randn_like(target)
    t = tau[:, None, None, None]
    x_tau = (1 - t) * noise + t * target
    cell = model.config.cell_channels
    last = ctx_cells[:, -cell:]
    pred = model.denoise(x_tau, tau, last, model.encode_context(ctx_cells, actions))
    moving = ((target - last).abs() > 0.04).float()
    weight = 1.0 + moving_weight * moving
    loss = (weight * (pred.float() - target.float()) ** 2).mean()
    return loss, pred


def head_loss(
    model: PushCubeWorldModel, cells: torch.Tensor, distances: torch.Tensor, success: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    pred_dist, logit = model.heads(cells)
    reg = F.smooth_l1_loss(pred_dist * 10.0, distances * 10.0)
    cls = F.binary_cross_entropy_with_logits(
        logit, success.float(), pos_weight=torch.tensor(4.0, device=logit.device)
    )
    accuracy = ((logit > 0) == success).float().mean()
    return reg + cls, accuracy


def lr_at(args: Args, step: int, elapsed_s: float) -> float:
    if step < args.warmup_steps:
        return args.lr * (step + 1) / args.warmup_steps
    progress = min(1.0, max(step / args.total_steps, elapsed_s / args.budget_s))
    return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def open_loop_psnr(
    model: PushCubeWorldModel, data: Frames, windows: int, horizon: int, seed: int
) -> list[float]:
    """Mean PSNR per step of `horizon`-step open-loop rollouts from episode starts, given the
    real actions (episodes shorter than the horizon are skipped)."""
    long_enough = torch.nonzero(data.episode_lengths > horizon).squeeze(1)
    pick = long_enough[: min(windows, len(long_enough))]
    starts = data.episode_starts[pick].to(data.device)
    state = model.start(*data.window(starts))
    generator = torch.Generator(device=data.device).manual_seed(seed)
    psnr = []
    for k in range(horizon):
        actions = data.actions[starts + k + 1][:, None]
        state, result = model.step(state, actions, generator)
        pred = result.frames[:, 0].float()
        real = data.frames[starts + k + 1].float()
        mse = ((pred - real) ** 2).mean(dim=(1, 2, 3)).clamp(min=1e-10)
        psnr.append(float((10 * torch.log10(255.0**2 / mse)).mean()))
    return psnr


def main(args: Args) -> dict:
    if args.smoke:
        args = smoke_args(args)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = open(out / "train_log.txt", "a")

    def log(msg: str) -> None:
        print(msg, flush=True)
        log_file.write(msg + "\n")
        log_file.flush()

    log(f"[args] {json.dumps(asdict(args))}")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        log(f"[device] {torch.cuda.get_device_name(device)}")
    train = Frames(Path(args.data) / "train.npz", device, args.context_frames)
    heldout = Frames(Path(args.data) / "heldout.npz", device, args.context_frames)
    log(
        f"[data] train {len(train.frames)} frames / {len(train.episode_lengths)} episodes, "
        f"heldout {len(heldout.frames)} frames / {len(heldout.episode_lengths)} episodes"
    )

    config = WorldModelConfig(
        image_size=int(train.frames.shape[1]),
        context_frames=args.context_frames,
        channels=tuple(args.channels),
        sampling_steps=args.sampling_steps,
        head_channels=args.head_channels,
    )
    model = PushCubeWorldModel(config).to(device)
    ema = copy.deepcopy(model).eval()
    for param in ema.parameters():
        param.requires_grad_(False)
    log(f"[model] {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.99)
    )
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
    generator = torch.Generator(device=device).manual_seed(args.seed)

    history = []
    start_time = time.time()
    step = 0
    running = {"flow": 0.0, "head": 0.0, "acc": 0.0, "n": 0}
    while step < args.total_steps and time.time() - start_time < args.budget_s:
        elapsed = time.time() - start_time
        for group in optimizer.param_groups:
            group["lr"] = lr_at(args, step, elapsed)
        pick = torch.randint(
            len(train.sources), (args.batch_size,), device=device, generator=generator
        )
        ends = train.sources[pick]
        frames, actions = train.window(ends)
        new_action = train.actions[ends + 1][:, None]
        all_actions = torch.cat([actions, new_action], dim=1)
        with autocast:
            ctx_cells = model.to_cells(frames)
            cell = config.cell_channels
            # Self-conditioning on own predictions: the last k context frames of a share of
            # the batch are an EMA-model rollout from the real frames before them.
            n_roll = int(args.rollout_fraction * args.batch_size)
            if n_roll and step > args.warmup_steps:
                k = 1 + step % max(1, args.rollout_steps)
                roll_ends = ends[:n_roll]
                first = roll_ends - k
                valid = first >= train.episode_start[roll_ends]
                first = torch.where(valid, first, roll_ends)
                prev_frames, roll_actions = train.window(first)
                with torch.no_grad():
                    own = ema.to_cells(prev_frames)
                    for j in range(1, k + 1):
                        at = (first + j).clamp(max=len(train.actions) - 1)
                        new = train.actions[at][:, None]
                        own_next = ema.sample(own, torch.cat([roll_actions, new], 1), generator)
                        own = torch.cat([own[:, cell:], own_next.to(own.dtype)], dim=1)
                        roll_actions = torch.cat([roll_actions[:, 1:], new], dim=1)
                ctx_cells = ctx_cells.clone()
                ctx_cells[:n_roll] = torch.where(
                    valid[:, None, None, None], own.to(ctx_cells.dtype), ctx_cells[:n_roll]
                )
            if args.context_noise:
                ctx_cells = ctx_cells + args.context_noise * torch.randn_like(ctx_cells)
            target = model.to_cells(train.frames[ends + 1][:, None])
            loss_flow, pred = flow_loss(model, ctx_cells, all_actions, target, args.moving_weight)
            head_cells = torch.cat([target, pred.detach()])
            head_dist = train.distances[ends + 1].repeat(2, 1)
            head_succ = train.success[ends + 1].repeat(2)
            loss_head, acc = head_loss(model, head_cells, head_dist, head_succ)
            loss = loss_flow + args.head_weight * loss_head
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            decay = min(args.ema_decay, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                pe.lerp_(pm, 1 - decay)
            for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
                be.copy_(bm)
        running["flow"] += float(loss_flow.detach())
        running["head"] += float(loss_head.detach())
        running["acc"] += float(acc)
        running["n"] += 1
        step += 1
        if step % args.log_every == 0 or step == 1:
            n = running["n"]
            entry = {
                "step": step,
                "elapsed_s": round(time.time() - start_time, 1),
                "lr": optimizer.param_groups[0]["lr"],
                "flow_loss": running["flow"] / n,
                "head_loss": running["head"] / n,
                "head_acc": running["acc"] / n,
            }
            history.append(entry)
            log(f"[train] {json.dumps(entry)}")
            running = {"flow": 0.0, "head": 0.0, "acc": 0.0, "n": 0}

    train_s = time.time() - start_time
    metrics = evaluate(ema, heldout, args)
    metrics.update({"steps": step, "train_seconds": train_s, "history": history})
    log(f"[eval] {json.dumps({k: v for k, v in metrics.items() if k != 'history'})}")
    ema.save(
        out / "pushcube_world_model.safetensors",
        {
            "steps": step,
            "seed": args.seed,
            "open_loop_psnr_mean": metrics["open_loop_psnr_mean"],
            "data": str(args.data),
        },
    )
    (out / "metrics.json").write_text(json.dumps({"args": asdict(args), **metrics}, indent=2))
    log_file.close()
    return metrics


@torch.no_grad()
def evaluate(model: PushCubeWorldModel, heldout: Frames, args: Args) -> dict:
    """Held-out one-step flow loss, head accuracy, success recall and open-loop PSNR."""
    model.eval()
    generator = torch.Generator(device=heldout.device).manual_seed(args.seed + 1)
    idx = heldout.sources[: min(len(heldout.sources), 4096)]
    flow, acc, recall_hits, positives = [], [], 0.0, 0.0
    for chunk in idx.split(512):
        frames, actions = heldout.window(chunk)
        all_actions = torch.cat([actions, heldout.actions[chunk + 1][:, None]], dim=1)
        ctx = model.to_cells(frames)
        target = model.to_cells(heldout.frames[chunk + 1][:, None])
        loss, _ = flow_loss(model, ctx, all_actions, target, args.moving_weight)
        flow.append(float(loss))
        sampled = model.sample(ctx, all_actions, generator)
        _, logit = model.heads(sampled)
        truth = heldout.success[chunk + 1]
        acc.append(float(((logit > 0) == truth).float().mean()))
        recall_hits += float(((logit > 0) & truth).sum())
        positives += float(truth.sum())
    psnr = open_loop_psnr(model, heldout, args.eval_windows, args.eval_horizon, args.seed)
    return {
        "heldout_flow_loss": float(np.mean(flow)),
        "heldout_success_acc_on_sampled": float(np.mean(acc)),
        "heldout_success_recall_on_sampled": recall_hits / max(positives, 1.0),
        "open_loop_psnr_per_step": psnr,
        "open_loop_psnr_mean": float(np.mean(psnr)),
    }


def parse_args(argv: list[str] | None = None) -> Args:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for f in fields(Args):
        default = getattr(Args, f.name, None)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif isinstance(default, tuple):
            parser.add_argument(flag, type=int, nargs=len(default), default=default)
        else:
            parser.add_argument(flag, type=type(default), default=default)
    ns = parser.parse_args(argv)
    values = vars(ns)
    values["channels"] = tuple(values["channels"])
    return Args(**values)


if __name__ == "__main__":
    main(parse_args())
