"""PPO on PushCube from 64×64 frames, in the real env or only in the learned one (issue 21).

One CleanRL-style file: the hyper-parameters are the `Args` dataclass, the loop reads top to
bottom. The same recipe runs in either env:

- `--env learned`: `cosmos_sim/LearnedPushCube-v0` (our embedded world model, not Cosmos) as
  a `DeviceVectorEnv`: observations, rewards, flags, autoresets and the rollout buffers stay
  on `--device` end to end (no per-step host copy; the host reads a few numbers once per
  update for the log). On a GPU the whole rollout step (policy, env, shaped reward) and
  the whole minibatch update (loss, backward, clipping, Adam) are each captured once in a
  CUDA graph and replayed (`--cuda-graph`, on by default): the same computation, one graph
  launch instead of one launch per op. Resets start from the real
  first frames shipped in `assets/world_model/pushcube_starts.npz`. Needs torch, numpy,
  gymnasium and cosmos_sim only (no PyBullet).
- `--env real`: `cosmos_sim/PushCube-v0` (PyBullet, CPU), `num_envs` envs stepped in
  this process, same-step autoreset, each episode seeded from the run's seed.

Reward shaping (the same in both envs, computed from the 64×64 frame the policy sees and the
env's success flag, so nothing privileged): `shaped = progress_scale · (Φ_t − Φ_{t−1}) +
success_bonus · success`, with Φ = −(|goal − cube| + ½·|behind − pusher|), `behind` the
point 5 cm behind the cube on the goal line (where a push toward the goal starts), from the
objects' colour centroids (`pixel_policy.colour_features`, in units of 0.2 m). The progress
term is 0 when an object is out of sight and on an episode's last step (its frame is already
the next episode's first: same-step autoreset). Progress toward the goal is paid as it
happens, standing still pays nothing, and the bonus makes success the best outcome. Why not
the env's own reward: it pays 0.5–0.8 on every step spent near the goal while success ends
the episode, so maximising it teaches hovering beside the goal, and its tanh(10·d) terms are
flat beyond ~15 cm, where most episodes start. The learned env's success comes from its
success head; its frames give Φ.

    python benchmarks/ppo_pushcube.py --env real --total-steps 400000 --out runs/ppo_real
    python benchmarks/ppo_pushcube.py --env learned --device cuda --out $OUT
    python benchmarks/ppo_pushcube.py --env learned --tiny           # CPU smoke test

Writes `OUT/policy.pt` (the `cosmos_sim.envs.pixel_policy` file; `load_policy(path)` is a
policy for `evaluate_policies` / `cosmos-sim eval-policies`) and `OUT/train.json` (steps,
wall time, steps/s, device, the args, the training log), and prints the JSON at the end.
Evaluate in the real env with benchmarks/eval_pushcube_ppo.py.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cosmos_sim.envs.pixel_policy import (
    PixelActorCritic,
    PolicyConfig,
    colour_features,
    save_policy,
)


@dataclass
class Args:
    env: str = "learned"
    """"learned" (the world model, any device) or "real" (PyBullet, CPU)."""
    total_steps: int = 300_000
    """Env steps (all envs together)."""
    num_envs: int = 32
    num_steps: int = 64
    """Rollout length per env per update (batch = num_envs · num_steps)."""
    update_epochs: int = 8
    num_minibatches: int = 4
    learning_rate: float = 3e-4
    anneal_lr: bool = True
    gamma: float = 0.98
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    progress_scale: float = 10.0
    """Weight of the per-step change of the distance potential Φ (see module doc)."""
    success_bonus: float = 5.0
    encoder: str = "colour"
    """Policy encoder of the 64×64 frame: "colour" or "cnn" (envs/pixel_policy.py)."""
    hidden: int = 256
    device: str = "cpu"
    dtype: str = "float32"
    """The learned env's model dtype (bfloat16 is faster on GPUs at large batches)."""
    compile: bool = False
    """torch.compile the learned env's step (GPU, large batches)."""
    cuda_graph: bool = True
    """On a GPU, replay the rollout step and the minibatch update from CUDA graphs
    (`cosmos_sim.envs.device_vector.GraphedStep`)."""
    seed: int = 0
    threads: int = 0
    """torch CPU threads (0: 1 for the real env, else torch's default)."""
    out: str = "runs/ppo_pushcube"
    tiny: bool = False
    """Smoke test: 4 envs, 8 steps each, 2 updates."""


# -- envs: both give torch tensors on the training device --------------------------------


class RealEnvs:
    """`num_envs` PyBullet PushCube-v0 envs in this process, same-step autoreset, as torch."""

    def __init__(self, num_envs: int, seed: int, device: str) -> None:
        from cosmos_sim.envs.pushcube import PushCubeEnv

        self.envs = [PushCubeEnv() for _ in range(num_envs)]
        self.num_envs, self.device = num_envs, torch.device(device)
        self.next_seed = seed * 10_000_000  # training seeds: far from the eval seeds
        self.obs = np.zeros((num_envs, 64, 64, 3), np.uint8)

    def _reset(self, i: int) -> np.ndarray:
        self.next_seed += 1
        return self.envs[i].reset(seed=self.next_seed)[0]

    def reset(self, seed: int | None = None) -> torch.Tensor:
        for i in range(self.num_envs):
            self.obs[i] = self._reset(i)
        return torch.from_numpy(self.obs.copy()).to(self.device)

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        acts = actions.clamp(-1, 1).cpu().numpy()
        reward = np.zeros(self.num_envs, np.float32)
        flags = np.zeros((3, self.num_envs), bool)  # terminated, truncated, success
        for i, env in enumerate(self.envs):
            obs, reward[i], term, trunc, info = env.step(acts[i])
            flags[:, i] = term, trunc, info["success"]
            self.obs[i] = self._reset(i) if term or trunc else obs
        out = [torch.from_numpy(self.obs.copy()), torch.from_numpy(reward)]
        out += [torch.from_numpy(f) for f in flags]
        return tuple(t.to(self.device) for t in out)

    def close(self) -> None:
        for env in self.envs:
            env.close()


STANDOFF = 0.25
"""Pusher-to-cube centre distance for a push, in units of 0.2 m (cube half-size + pusher
radius + 5 mm = 0.05 m)."""


def potential(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Φ [B], all three objects seen [B]) from a frame's colour features [B, 13] (see
    module doc)."""
    pusher, cube, to_goal = f[:, 0:2], f[:, 2:4], f[:, 8:10]
    dist = to_goal.norm(dim=1)
    behind = cube - STANDOFF * to_goal / dist.clamp(min=1e-3)[:, None]
    phi = -(dist + 0.5 * (behind - pusher).norm(dim=1))
    return phi, f[:, 10:].amin(dim=1) > 0


def make_envs(args: Args) -> Any:
    if args.env == "real":
        if args.device != "cpu":
            raise SystemExit("--env real runs PyBullet on the CPU: pass --device cpu")
        return RealEnvs(args.num_envs, args.seed, args.device)
    if args.env != "learned":
        raise SystemExit(f"--env: 'learned' or 'real', got {args.env!r}")
    import gymnasium as gym

    import cosmos_sim.envs  # noqa: F401  (registers the ids)
    from cosmos_sim.envs.device_vector import DeviceVectorEnv

    single = gym.make(
        "cosmos_sim/LearnedPushCube-v0", device=args.device, dtype=args.dtype, compile=args.compile
    )
    return DeviceVectorEnv.from_env(single, args.num_envs)


# -- training ------------------------------------------------------------------------------


def train(args: Args) -> dict[str, Any]:
    if args.tiny:
        args.num_envs, args.num_steps, args.total_steps = 4, 8, 64
    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.env == "real":  # PyBullet needs the cores; torch's idle threads spin (4x slower)
        torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = torch.device(args.device)
    t_start = time.perf_counter()
    envs = make_envs(args)
    agent = PixelActorCritic(PolicyConfig(encoder=args.encoder, hidden=args.hidden)).to(device)
    graphs = args.cuda_graph and device.type == "cuda"
    # On a GPU: fused (one kernel per step), and inside a CUDA graph capturable, with the
    # learning rate a device tensor the graph reads (annealed in place).
    optimizer = torch.optim.Adam(
        agent.parameters(),
        lr=torch.tensor(args.learning_rate, device=device) if graphs else args.learning_rate,
        eps=1e-5,
        fused=device.type == "cuda",
        capturable=graphs,
    )

    n, t_len = args.num_envs, args.num_steps
    batch = n * t_len
    if graphs and batch % args.num_minibatches:  # a graph replays one minibatch shape
        raise SystemExit(
            f"--num-minibatches {args.num_minibatches} must divide the batch num_envs · "
            f"num_steps = {batch} for --cuda-graph (or pass --no-cuda-graph)"
        )
    minibatch = batch // args.num_minibatches
    num_updates = max(1, args.total_steps // batch)
    act_buf = torch.zeros((t_len, n, 2), device=device)
    logp_buf, rew_buf, done_buf, val_buf, adv_buf, ret_buf = (
        torch.zeros((t_len, n), device=device) for _ in range(6)
    )

    def features(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the network's input, the colour features Φ reads) of uint8 frames; the colour
        encoder's input is those features, so they are computed once."""
        obs = agent.observe(frames)
        return obs, obs if agent.config.encoder == "colour" else colour_features(frames)

    def rollout_step(
        obs: torch.Tensor, prev_phi: torch.Tensor, prev_seen: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """Act, step every env, shape the reward; same-step autoreset (see module doc)."""
        action, logp, _, value = agent.act(obs)
        frames, _, terminated, truncated, success = envs.step(action)
        next_obs, feats = features(frames)
        ended = terminated | truncated
        # An ended lane's frame is already its next episode's first (same-step autoreset):
        # no progress term on that step; Φ restarts from that frame.
        phi, seen = potential(feats)
        valid = seen & prev_seen & ~ended
        progress = torch.where(valid, phi - prev_phi, torch.zeros_like(phi))
        reward = args.progress_scale * progress + args.success_bonus * success.float()
        return action, logp, value, next_obs, phi, seen, reward, ended, success

    frames = envs.reset(seed=args.seed)
    obs, feats = features(frames)
    prev_phi, prev_seen = potential(feats)
    # The rollout buffer holds what the network reads: 13 colour features, or the frames.
    obs_buf = torch.zeros((t_len, *obs.shape), dtype=obs.dtype, device=device)
    # The batch as flat views of the buffers (fixed addresses, which a CUDA graph reads).
    b_obs, b_act = obs_buf.view(batch, *obs.shape[1:]), act_buf.view(batch, 2)
    b_logp, b_adv = logp_buf.view(batch), adv_buf.view(batch)
    b_ret, b_val = ret_buf.view(batch), val_buf.view(batch)

    def minibatch_update(idx: torch.Tensor) -> tuple[torch.Tensor]:
        """One clipped-PPO gradient step on the batch rows `idx`; returns the loss."""
        _, new_logp, entropy, new_value = agent.act(b_obs[idx], b_act[idx])
        ratio = (new_logp - b_logp[idx]).exp()
        mb_adv = b_adv[idx]
        mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
        pg_loss = torch.max(
            -mb_adv * ratio, -mb_adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)
        ).mean()
        v_clipped = b_val[idx] + (new_value - b_val[idx]).clamp(-args.clip_coef, args.clip_coef)
        v_loss = (
            0.5 * torch.max((new_value - b_ret[idx]) ** 2, (v_clipped - b_ret[idx]) ** 2).mean()
        )
        loss = pg_loss - args.ent_coef * entropy.mean() + args.vf_coef * v_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
        optimizer.step()
        return (loss.detach(),)

    step_fn: Callable[..., tuple[torch.Tensor, ...]] = rollout_step
    update_fn: Callable[..., tuple[torch.Tensor, ...]] = minibatch_update
    if graphs:
        from cosmos_sim.envs.device_vector import GraphedStep

        update_fn = GraphedStep(minibatch_update)
        if args.env == "learned":
            step_fn = GraphedStep(rollout_step, generators=envs.generators)
    done = torch.zeros(n, device=device)
    ep_success = torch.zeros((), device=device)
    ep_count = torch.zeros((), device=device)
    log: list[dict[str, float]] = []
    t_loop = time.perf_counter()
    env_seconds = 0.0
    steps = 0
    for update in range(1, num_updates + 1):
        if args.anneal_lr:
            lr = args.learning_rate * (1 - (update - 1) / num_updates)
            group = optimizer.param_groups[0]
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        t_env = time.perf_counter()
        ep_success.zero_()
        ep_count.zero_()
        for t in range(t_len):
            obs_buf[t] = obs
            done_buf[t] = done
            with torch.no_grad():
                action, logp, value, obs, prev_phi, prev_seen, reward, ended, success = step_fn(
                    obs, prev_phi, prev_seen
                )
            act_buf[t], logp_buf[t], val_buf[t], rew_buf[t] = action, logp, value, reward
            done = ended.float()
            ep_success += (success & ended).sum()
            ep_count += ended.sum()
        steps += batch
        if device.type == "cuda":
            torch.cuda.synchronize()
        env_seconds += time.perf_counter() - t_env

        with torch.no_grad():  # GAE; truncation is treated as an end (CleanRL's convention)
            next_value = agent.value(obs)
            last = torch.zeros(n, device=device)
            for t in reversed(range(t_len)):
                nonterminal = 1.0 - (done if t == t_len - 1 else done_buf[t + 1])
                nv = next_value if t == t_len - 1 else val_buf[t + 1]
                delta = rew_buf[t] + args.gamma * nv * nonterminal - val_buf[t]
                last = delta + args.gamma * args.gae_lambda * nonterminal * last
                adv_buf[t] = last
            torch.add(adv_buf, val_buf, out=ret_buf)

        for _ in range(args.update_epochs):
            perm = torch.randperm(batch, device=device)
            for start in range(0, batch, minibatch):
                update_fn(perm[start : start + minibatch])

        if update == 1 or update == num_updates or update % max(1, num_updates // 20) == 0:
            episodes = float(ep_count)  # the one host read of the update
            entry = {
                "update": update,
                "steps": steps,
                "episodes": episodes,
                "train_success": float(ep_success) / max(episodes, 1.0),
                "shaped_return_per_step": float(rew_buf.mean()),
                "std": float(agent.log_std.detach().exp().mean()),
                "steps_per_s": steps / (time.perf_counter() - t_loop),
            }
            log.append(entry)
            print("[ppo]", json.dumps({k: round(v, 4) for k, v in entry.items()}), flush=True)

    if device.type == "cuda":
        torch.cuda.synchronize()
    loop_s = time.perf_counter() - t_loop
    total_s = time.perf_counter() - t_start
    out = Path(args.out)
    meta = {"env": args.env, "steps": steps, "seed": args.seed}
    policy_path = save_policy(agent, out / "policy.pt", meta=meta)
    result = {
        "env": args.env,
        "steps": steps,
        "updates": num_updates,
        "wall_s": round(total_s, 2),
        "train_loop_s": round(loop_s, 2),
        "steps_per_s": round(steps / loop_s, 1),
        "rollout_steps_per_s": round(steps / env_seconds, 1),
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "cuda_graph": {"rollout": step_fn is not rollout_step, "update": graphs},
        "policy": str(policy_path),
        "policy_bytes": policy_path.stat().st_size,
        "args": asdict(args),
        "log": log,
    }
    (out / "train.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k not in ("args", "log")}))
    if hasattr(envs, "close"):
        envs.close()
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name, default in asdict(Args()).items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(flag, type=type(default), default=default)
    train(Args(**vars(parser.parse_args())))
