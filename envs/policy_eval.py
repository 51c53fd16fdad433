"""Does a learned env rank policies the way the real simulator does? (SIMPLER-style.)

Each policy runs N episodes in the real env and in the learned env. Per policy and env we
report the success rate and mean return with percentile-bootstrap confidence intervals;
across policies, Pearson and Spearman correlations and SIMPLER's mean maximum rank violation
(MMRV, `simpler_env/utils/metrics.py`) between learned and real, each with a bootstrap CI
(episodes resampled within each policy), plus a scatter plot.

Paired starts (the default): episode k of every policy starts, in both envs, from the
real env's first frame after `reset(seed=seed + k)`, passed to the learned env as
`reset(options={"frames": ...})`. Both envs then see the same initial scenes, so a
difference in success is the world model's, not the luck of the draw. A learned env that
takes no frames (not a LearnedEnv) resets with `seed + k` only, and the report says so.

A learned env built on `LearnedCore` runs all episodes of a policy as lanes of one
`LearnedVectorEnv` (one batched model call per step); any other env runs episode by episode.

Policies (`load_policies`): `module:attr` naming a callable `obs -> action` (a class is
instantiated with no arguments; a dict or list of callables expands to several policies),
a saved stable-baselines3 model (`path.zip`, `ALGO:path.zip`), a `PixelActorCritic` saved by
`cosmos_sim.envs.pixel_policy.save_policy` (`path.pt`, its mean action), or a cosmos-framework
action policy server (`http://HOST:PORT?prompt=...&domain_name=...`, envs/policy_client.py).
`label=` in front renames one. A policy with a `reseed(seed)` method is deep-copied and
reseeded per episode, so its noise is the same in both envs and independent of lane order.
"""

from __future__ import annotations

import copy
import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

SB3_ALGOS = ("PPO", "A2C", "SAC", "TD3", "DDPG", "DQN")


class PolicySpecError(ValueError):
    """A policy spec does not resolve to a policy; the message names the spec and the fix."""


@dataclass
class Policy:
    """A named policy: `act(obs) -> action`."""

    name: str
    spec: str
    act: Callable[[np.ndarray], Any]

    def for_episode(self, seed: int) -> Callable[[np.ndarray], Any]:
        """The callable for one episode: a reseeded copy when the policy keeps its own RNG."""
        if not hasattr(self.act, "reseed"):
            return self.act
        fresh = copy.deepcopy(self.act)
        fresh.reseed(seed)
        return fresh


def load_policies(specs: str | Sequence[str]) -> list[Policy]:
    """Policies from a comma-separated string or a list of specs (see module doc)."""
    items = [s.strip() for s in specs.split(",")] if isinstance(specs, str) else list(specs)
    items = [s for s in items if s]
    if not items:
        raise PolicySpecError("--policies is empty; pass module:function or model.zip specs")
    policies: list[Policy] = []
    for item in items:
        # "=" inside a URL's query is not a label: only look left of "://".
        label, _, spec = item.partition("=") if "=" in item.split("://")[0] else ("", "", item)
        found = _resolve(spec)
        if label:
            if len(found) != 1:
                raise PolicySpecError(
                    f"{item!r}: a label names one policy, {spec!r} has {len(found)}"
                )
            found = [Policy(label, spec, found[0].act)]
        policies.extend(found)
    names = [p.name for p in policies]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PolicySpecError(f"policy names {duplicates} repeat; rename with label=spec")
    return policies


def _resolve(spec: str) -> list[Policy]:
    if spec.startswith(("http://", "https://")):
        from cosmos_sim.envs.policy_client import PolicyServerError, ServedPolicy

        try:
            served = ServedPolicy.from_url(spec)
        except PolicyServerError as exc:
            raise PolicySpecError(f"policy spec {spec!r}: {exc}") from exc
        return [Policy(served.name, spec, served)]
    head, _, tail = spec.partition(":")
    if spec.endswith(".pt"):
        return [Policy(Path(spec).stem, spec, _load_pixel_policy(spec))]
    if spec.endswith(".zip"):
        algo, path = (head, tail) if tail and head.upper() in SB3_ALGOS else (None, spec)
        return [Policy(Path(path).stem, spec, _load_sb3(path, algo))]
    if not tail:
        raise PolicySpecError(
            f"policy spec {spec!r} is neither module:function nor a saved SB3 model .zip; "
            "write e.g. cosmos_sim.envs.pushcube_policies:scripted or runs/ppo.zip"
        )
    try:
        module = importlib.import_module(head)
    except Exception as exc:  # any import-time failure is the spec's problem, say which
        raise PolicySpecError(
            f"policy spec {spec!r}: module {head!r} does not import "
            f"({type(exc).__name__}: {exc}); check the module path and that it is installed"
        ) from exc
    obj: Any = module
    for part in tail.split("."):
        if not hasattr(obj, part):
            raise PolicySpecError(f"policy spec {spec!r}: {head} has no attribute {tail!r}")
        obj = getattr(obj, part)
    if isinstance(obj, dict):
        return [
            Policy(str(k), f"{spec}[{k}]", _callable(v, f"{spec}[{k}]")) for k, v in obj.items()
        ]
    if isinstance(obj, list | tuple):
        return [
            Policy(f"{tail}[{i}]", f"{spec}[{i}]", _callable(v, f"{spec}[{i}]"))
            for i, v in enumerate(obj)
        ]
    return [Policy(tail.rsplit(".", 1)[-1], spec, _callable(obj, spec))]


def _callable(obj: Any, spec: str) -> Callable[[np.ndarray], Any]:
    if isinstance(obj, type):
        obj = obj()
    if not callable(obj):
        raise PolicySpecError(
            f"policy spec {spec!r} is a {type(obj).__name__}, not a callable obs -> action"
        )
    return obj


def _load_pixel_policy(path: str) -> Callable[[np.ndarray], Any]:
    from cosmos_sim.envs.pixel_policy import load_policy

    try:
        return load_policy(path)
    except (FileNotFoundError, ValueError) as exc:
        raise PolicySpecError(f"policy spec {path!r}: {exc}") from exc


def _load_sb3(path: str, algo: str | None) -> Callable[[np.ndarray], Any]:
    if not Path(path).is_file():
        raise PolicySpecError(f"policy spec {path!r}: no such SB3 model file")
    try:
        import stable_baselines3 as sb3
        from stable_baselines3.common.save_util import load_from_zip_file
    except ImportError as exc:
        raise PolicySpecError(
            f"policy {path!r} is an SB3 model; pip install stable-baselines3"
        ) from exc
    if algo is None:
        data, _, _ = load_from_zip_file(path, load_data=True, device="cpu")
        module = getattr((data or {}).get("policy_class"), "__module__", "")
        algo = next((a for a in ("SAC", "TD3", "DQN") if f".{a.lower()}." in module), "PPO")
    model = getattr(sb3, algo.upper()).load(path, device="cpu")

    def act(obs: np.ndarray) -> np.ndarray:
        return model.predict(obs, deterministic=True)[0]

    return act


# -- running episodes -----------------------------------------------------------------


@dataclass
class Episodes:
    """Outcomes of N episodes of one policy in one env."""

    success: np.ndarray
    """[N] bool: `info["success"]` was true at some step."""
    returns: np.ndarray
    """[N] float: undiscounted return."""
    lengths: np.ndarray
    """[N] int: steps taken."""


def first_frames(env: gym.Env, n: int, seed: int) -> np.ndarray:
    """The env's first observation after `reset(seed=seed + k)` for k < n: [n, H, W, 3]."""
    return np.stack([env.reset(seed=seed + k)[0] for k in range(n)])


def run_episodes(
    env: gym.Env,
    policy: Policy,
    episodes: int,
    *,
    seed: int,
    starts: np.ndarray | None = None,
    max_steps: int = 1000,
    num_envs: int = 16,
    progress: Any = None,
) -> Episodes:
    """Run `episodes` episodes; episode k resets with seed `seed + k` or from `starts[k]`."""
    from cosmos_sim.envs.vector import core_of, vectorize

    try:
        core_of(env)
    except ValueError:
        return _run_sequential(env, policy, episodes, seed, starts, max_steps, progress)
    vec = vectorize(env, min(num_envs, episodes), autoreset_mode="Disabled")
    return _run_batched(vec, policy, episodes, seed, starts, max_steps, progress)


def _run_sequential(env, policy, episodes, seed, starts, max_steps, progress) -> Episodes:
    success = np.zeros(episodes, bool)
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, np.int64)
    for k in range(episodes):
        act = policy.for_episode(seed + k)
        options = None if starts is None else {"frames": starts[k]}
        obs, _ = env.reset(seed=seed + k, options=options)
        while lengths[k] < max_steps:
            obs, reward, terminated, truncated, info = env.step(act(obs))
            returns[k] += float(reward)
            lengths[k] += 1
            success[k] |= bool(info.get("success", False))
            if terminated or truncated:
                break
        if progress is not None:
            progress.update(1)
    return Episodes(success, returns, lengths)


def _run_batched(vec, policy, episodes, seed, starts, max_steps, progress) -> Episodes:
    lanes = vec.num_envs
    success = np.zeros(episodes, bool)
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, np.int64)
    lane_episode = np.arange(lanes)  # episode each lane runs; -1 when the lane is done
    acts = [policy.for_episode(seed + k) for k in range(lanes)]
    options = None if starts is None else {"frames": starts[:lanes, None]}
    obs, _ = vec.reset(seed=seed, options=options)
    next_episode = lanes
    idle_action = np.zeros(vec.single_action_space.shape, np.float32)
    idle_action = np.clip(idle_action, vec.single_action_space.low, vec.single_action_space.high)
    while (lane_episode >= 0).any():
        active = lane_episode >= 0
        # Policies are per-observation callables; the model call below is one batched step.
        actions = np.stack(
            [acts[i](obs[i]) if active[i] else idle_action for i in range(lanes)]
        ).astype(np.float32)
        obs, reward, terminated, truncated, info = vec.step(actions)
        ep = lane_episode[active]
        returns[ep] += reward[active]
        success[ep] |= info["success"][active]
        lengths[ep] += 1
        too_long = np.zeros(lanes, bool)
        too_long[active] = lengths[ep] >= max_steps
        ended = active & (terminated | truncated | too_long)
        if not ended.any():
            continue
        if progress is not None:
            progress.update(int(ended.sum()))
        restart = np.zeros(lanes, bool)
        for lane in np.flatnonzero(ended):
            if next_episode < episodes:
                lane_episode[lane] = next_episode
                acts[lane] = policy.for_episode(seed + next_episode)
                restart[lane] = True
                next_episode += 1
            else:
                lane_episode[lane] = -1
        if restart.any():
            options = {"reset_mask": restart}
            if starts is not None:
                options["frames"] = starts[lane_episode[restart]][:, None]
            fresh, _ = vec.reset(options=options)
            obs[restart] = fresh[restart]
    return Episodes(success, returns, lengths)


# -- statistics -----------------------------------------------------------------------


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation; None when either side is constant (undefined)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float((dx * dx).sum() * (dy * dy).sum()))
    return None if denom == 0 else float((dx * dy).sum() / denom)


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (as Spearman's rho needs)."""
    values = np.asarray(values, float)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho: Pearson on average ranks; None when either side is constant."""
    return pearson(average_ranks(x), average_ranks(y))


def mmrv(perf_learned: Sequence[float], perf_real: Sequence[float]) -> float:
    """Mean maximum rank violation, exactly as SIMPLER (`simpler_env/utils/metrics.py`):
    for each policy i, the largest real-performance gap |real_i - real_j| over policies j
    whose order the learned env gets wrong (strict comparisons, so a tie on one side and an
    order on the other counts), averaged over i. 0 is a perfect ranking; lower is better."""
    sim, real = np.asarray(perf_learned, float), np.asarray(perf_real, float)
    if sim.shape != real.shape or sim.ndim != 1:
        raise ValueError(f"mmrv: need two equal-length vectors, got {sim.shape} {real.shape}")
    wrong = (sim[:, None] > sim[None, :]) != (real[:, None] > real[None, :])
    gaps = np.where(wrong, np.abs(real[:, None] - real[None, :]), 0.0)
    return float(gaps.max(axis=1).mean())


def bootstrap_mean_ci(
    values: np.ndarray, rng: np.random.Generator, samples: int, confidence: float
) -> list[float]:
    """Percentile-bootstrap CI of the mean of `values` (episodes resampled)."""
    values = np.asarray(values, float)
    means = values[rng.integers(len(values), size=(samples, len(values)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return [float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))]


def compare(
    real: list[np.ndarray],
    learned: list[np.ndarray],
    rng: np.random.Generator,
    samples: int,
    confidence: float,
) -> dict[str, Any]:
    """Pearson, Spearman and MMRV of per-policy means, each with a bootstrap CI."""
    real_means = [float(v.mean()) for v in real]
    learned_means = [float(v.mean()) for v in learned]
    point = {
        "pearson": pearson(learned_means, real_means),
        "spearman": spearman(learned_means, real_means),
        "mmrv": mmrv(learned_means, real_means),
    }
    draws: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(samples):
        r = [v[rng.integers(len(v), size=len(v))].mean() for v in real]
        s = [v[rng.integers(len(v), size=len(v))].mean() for v in learned]
        for name, fn in (("pearson", pearson), ("spearman", spearman), ("mmrv", mmrv)):
            value = fn(s, r)
            if value is not None:
                draws[name].append(value)
    tail = (1 - confidence) / 2 * 100
    out: dict[str, Any] = {}
    for name, value in point.items():
        out[name] = value
        got = draws[name]
        out[f"{name}_ci"] = (
            [float(np.percentile(got, tail)), float(np.percentile(got, 100 - tail))]
            if got
            else None
        )
    return out


# -- the report -----------------------------------------------------------------------


def evaluate_policies(
    policies: str | Sequence[str] | Sequence[Policy],
    *,
    real: str | gym.Env,
    learned: str | gym.Env,
    episodes: int,
    out: str | Path,
    seed: int = 0,
    paired_starts: bool = True,
    num_envs: int = 16,
    max_steps: int = 1000,
    bootstrap_samples: int = 1000,
    confidence: float = 0.95,
    real_kwargs: dict[str, Any] | None = None,
    learned_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run every policy in both envs, write `out/report.json` and `out/scatter.png`."""
    from tqdm import tqdm

    from cosmos_sim.episode import ensure_empty_dir, write_json_atomic

    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an int >= 1, got {episodes!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if isinstance(policies, str) or (policies and not isinstance(policies[0], Policy)):
        policies = load_policies(policies)  # type: ignore[arg-type]
    policies = list(policies)  # type: ignore[arg-type]
    out = ensure_empty_dir(out, "policy-evaluation output folder")
    real_env = _make(real, real_kwargs, "real")
    learned_env = _make(learned, learned_kwargs, "learned")
    try:
        starts = _paired_starts(real_env, learned_env, episodes, seed) if paired_starts else None
        results: dict[str, dict[str, Episodes]] = {}
        total = 2 * episodes * len(policies)
        with tqdm(total=total, desc="eval-policies", unit="episode") as progress:
            for policy in policies:
                results[policy.name] = {
                    "real": run_episodes(
                        real_env,
                        policy,
                        episodes,
                        seed=seed,
                        max_steps=max_steps,
                        progress=progress,
                    ),
                    "learned": run_episodes(
                        learned_env,
                        policy,
                        episodes,
                        seed=seed,
                        starts=starts,
                        max_steps=max_steps,
                        num_envs=num_envs,
                        progress=progress,
                    ),
                }
    finally:
        for env, given in ((real_env, real), (learned_env, learned)):
            if isinstance(given, str):
                env.close()
    paired_starts = starts is not None
    rng = np.random.default_rng(seed)
    report: dict[str, Any] = {
        "real": _env_name(real),
        "learned": _env_name(learned),
        "episodes": episodes,
        "seed": seed,
        "paired_starts": paired_starts,
        "confidence": confidence,
        "bootstrap_samples": bootstrap_samples,
        "mmrv_definition": "SIMPLER simpler_env/utils/metrics.py (learned as sim)",
        "policies": [],
    }
    for policy in policies:
        entry: dict[str, Any] = {"name": policy.name, "spec": policy.spec}
        for env_name, runs in results[policy.name].items():
            entry[env_name] = {
                "success_rate": float(runs.success.mean()),
                "success_rate_ci": bootstrap_mean_ci(
                    runs.success, rng, bootstrap_samples, confidence
                ),
                "mean_return": float(runs.returns.mean()),
                "mean_return_ci": bootstrap_mean_ci(
                    runs.returns, rng, bootstrap_samples, confidence
                ),
                "mean_length": float(runs.lengths.mean()),
                "success": runs.success.astype(int).tolist(),
                "returns": [round(float(r), 6) for r in runs.returns],
            }
        report["policies"].append(entry)
    report["metrics"] = {
        "success_rate": compare(
            [results[p.name]["real"].success.astype(float) for p in policies],
            [results[p.name]["learned"].success.astype(float) for p in policies],
            rng,
            bootstrap_samples,
            confidence,
        ),
        "mean_return": compare(
            [results[p.name]["real"].returns for p in policies],
            [results[p.name]["learned"].returns for p in policies],
            rng,
            bootstrap_samples,
            confidence,
        ),
    }
    write_json_atomic(out / "report.json", report)
    scatter_plot(report, out / "scatter.png")
    report["files"] = {"report": str(out / "report.json"), "scatter": str(out / "scatter.png")}
    return report


def _paired_starts(
    real_env: gym.Env, learned_env: gym.Env, episodes: int, seed: int
) -> np.ndarray | None:
    """The real env's first frames, when the learned env can start from them (else None:
    both envs then reset with seed + k only)."""
    from cosmos_sim.envs.vector import core_of

    try:
        core = core_of(learned_env)
    except ValueError:
        return None
    starts = first_frames(real_env, episodes, seed)
    if tuple(starts.shape[1:]) != core.frame_shape:
        raise ValueError(
            f"paired starts: the real env's frames are {tuple(starts.shape[1:])} but the "
            f"learned env reads {core.frame_shape}; give both the same image size or pass "
            "--no-paired-starts"
        )
    return starts


def _make(env: str | gym.Env, kwargs: dict[str, Any] | None, role: str) -> gym.Env:
    if not isinstance(env, str):
        return env
    import cosmos_sim  # noqa: F401  (registers the cosmos_sim/ ids)

    try:
        return gym.make(env, **(kwargs or {}))
    except gym.error.Error as exc:
        raise ValueError(f"--{role} {env!r}: {exc}") from exc


def _env_name(env: str | gym.Env) -> str:
    if isinstance(env, str):
        return env
    spec = getattr(env, "spec", None)
    return spec.id if spec is not None else type(getattr(env, "unwrapped", env)).__name__


def scatter_plot(report: dict[str, Any], path: Path) -> Path:
    """Learned vs real, one point per policy with CI bars: success rate and mean return."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, (key, label) in zip(
        axes, (("success_rate", "success rate"), ("mean_return", "mean return")), strict=True
    ):
        xs, ys = [], []
        for entry in report["policies"]:
            x, y = entry["real"][key], entry["learned"][key]
            xci, yci = entry["real"][f"{key}_ci"], entry["learned"][f"{key}_ci"]
            ax.errorbar(
                x,
                y,
                xerr=[[x - xci[0]], [xci[1] - x]],
                yerr=[[y - yci[0]], [yci[1] - y]],
                fmt="o",
                capsize=3,
            )
            ax.annotate(
                entry["name"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8
            )
            xs.append(x)
            ys.append(y)
        lo, hi = min(xs + ys), max(xs + ys)
        pad = 0.05 * (hi - lo or 1)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8, label="learned = real")
        m = report["metrics"][key]
        ax.set_title(
            f"{label}: Pearson {_fmt(m['pearson'])}, Spearman {_fmt(m['spearman'])}, "
            f"MMRV {_fmt(m['mmrv'])}",
            fontsize=9,
        )
        ax.set_xlabel(f"real ({report['real']})")
        ax.set_ylabel(f"learned ({report['learned']})")
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(
        f"{report['episodes']} episodes per policy per env, "
        f"{report['confidence']:.0%} bootstrap CIs"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
