"""Score PPO policies (benchmarks/ppo_pushcube.py's `policy.pt`) in the real PushCube env.

Every policy runs the same episodes: episode k starts, in the real env and in the learned
one, from the real env's first frame after `reset(seed=seed + k)`
(`cosmos_sim.envs.policy_eval.evaluate_policies`, paired starts), with the scripted and
random baselines beside them. Printed: real and learned success with 95 % bootstrap CIs per
policy, then, for each pair named by `--compare A/B`, the paired real-success ratio A / B
and difference A − B with bootstrap CIs (episodes resampled jointly, so the shared starts
cancel out of the comparison).

    python benchmarks/eval_pushcube_ppo.py real=runs/ppo_real/policy.pt \\
        learned=runs/ppo_learned/policy.pt --compare learned/real --out runs/eval_ppo

Writes `OUT/report.json` (evaluate_policies' report plus the comparisons) and
`OUT/scatter.png`. Needs PyBullet (the real env): run it on the CPU machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from cosmos_sim.envs.policy_eval import evaluate_policies

BASELINES = "cosmos_sim.envs.pushcube_policies"


def paired_comparison(
    a: np.ndarray, b: np.ndarray, rng: np.random.Generator, samples: int = 2000
) -> dict[str, float | list[float] | None]:
    """Ratio mean(a) / mean(b) and difference of two per-episode success arrays over the
    same starts, with 95 % percentile-bootstrap CIs (episodes resampled jointly)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    idx = rng.integers(len(a), size=(samples, len(a)))
    ma, mb = a[idx].mean(axis=1), b[idx].mean(axis=1)
    diff = ma - mb
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mb > 0, ma / mb, np.nan)
    ok = ratio[np.isfinite(ratio)]
    return {
        "ratio": float(a.mean() / b.mean()) if b.mean() > 0 else None,
        "ratio_ci": [float(v) for v in np.percentile(ok, [2.5, 97.5])] if len(ok) else None,
        "difference": float(a.mean() - b.mean()),
        "difference_ci": [float(v) for v in np.percentile(diff, [2.5, 97.5])],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("policies", nargs="+", help="label=path/to/policy.pt (one or more)")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=30_000_000, help="eval starts: seed + k")
    parser.add_argument("--num-envs", type=int, default=100, help="learned-env lanes")
    parser.add_argument("--compare", action="append", default=[], help="A/B: labels to pair")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/eval_pushcube_ppo"))
    args = parser.parse_args()

    specs = list(args.policies)
    if not args.no_baselines:
        specs += [f"{BASELINES}:scripted", f"{BASELINES}:random_policy"]
    t0 = time.perf_counter()
    report = evaluate_policies(
        specs,
        real="cosmos_sim/PushCube-v0",
        learned="cosmos_sim/LearnedPushCube-v0",
        episodes=args.episodes,
        out=args.out,
        seed=args.seed,
        num_envs=args.num_envs,
        max_steps=60,
    )
    wall_s = time.perf_counter() - t0
    by_name = {e["name"]: e for e in report["policies"]}
    print(f"\n{'policy':<22} {'real success [95% CI]':<26} {'learned success [95% CI]':<26}")
    for entry in report["policies"]:
        cells = []
        for env in ("real", "learned"):
            r = entry[env]
            lo, hi = r["success_rate_ci"]
            cells.append(f"{r['success_rate']:.2f} [{lo:.2f}, {hi:.2f}]")
        print(f"{entry['name']:<22} {cells[0]:<26} {cells[1]:<26}")
    rng = np.random.default_rng(args.seed)
    comparisons = {}
    for pair in args.compare:
        a, _, b = pair.partition("/")
        if a not in by_name or b not in by_name:
            raise SystemExit(f"--compare {pair}: labels must be among {sorted(by_name)}")
        comp = paired_comparison(by_name[a]["real"]["success"], by_name[b]["real"]["success"], rng)
        comparisons[pair] = comp
        ratio = "n/a" if comp["ratio"] is None else f"{comp['ratio']:.2f}"
        ratio_ci = comp["ratio_ci"] and "[{:.2f}, {:.2f}]".format(*comp["ratio_ci"])
        print(
            f"real success {a} / {b}: ratio {ratio} {ratio_ci or ''}, difference "
            f"{comp['difference']:+.2f} [{comp['difference_ci'][0]:+.2f}, "
            f"{comp['difference_ci'][1]:+.2f}]"
        )
    report["comparisons"] = comparisons
    report["wall_s"] = round(wall_s, 1)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    print(f"{wall_s:.0f} s; report: {args.out / 'report.json'}")


if __name__ == "__main__":
    main()
