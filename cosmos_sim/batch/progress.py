"""Where a plan stands: each unit's state per stage, throughput, ETA and the final report."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

STATES = ("skipped", "done", "running", "waiting", "failed", "blocked")
"""skipped: finished by an earlier run; blocked: an earlier stage of the unit failed."""


class Progress:
    """Unit states per stage, updated by the driver as Ray work starts, ends or fails."""

    def __init__(self, stages: list[str], units: list[str], finished: set[tuple[str, str]]):
        self.stages, self.units = stages, units
        self.started_unix_s = time.time()
        self.state = {
            stage: {u: "skipped" if (stage, u) in finished else "waiting" for u in units}
            for stage in stages
        }
        self.seconds: dict[str, list[float]] = {stage: [] for stage in stages}
        self.retried: dict[str, list[str]] = {stage: [] for stage in stages}
        """Units finished after an attempt's process died mid-unit (Ray retried them)."""
        self.errors: dict[str, dict[str, str]] = {}
        """unit -> {"stage", "error"} of its failure."""

    def start(self, stage: str, unit: str) -> None:
        self.state[stage][unit] = "running"

    def finish(self, stage: str, unit: str, marker: dict[str, Any]) -> None:
        self.state[stage][unit] = "done"
        self.seconds[stage].append(float(marker.get("seconds", 0.0)))
        if marker.get("abandoned_attempts"):
            self.retried[stage].append(unit)

    def fail(self, stage: str, unit: str, error: str) -> None:
        self.state[stage][unit] = "failed"
        self.errors[unit] = {"stage": stage, "error": error}
        for later in self.stages[self.stages.index(stage) + 1 :]:
            self.state[later][unit] = "blocked"

    def counts(self) -> dict[str, dict[str, int]]:
        return {s: {k: Counter(self.state[s].values())[k] for k in STATES} for s in self.stages}

    def elapsed_s(self) -> float:
        return time.time() - self.started_unix_s

    def units_per_hour(self) -> float | None:
        """Units that finished their last stage in this run, per hour of this run."""
        finished = self.counts()[self.stages[-1]]["done"]
        return finished * 3600 / self.elapsed_s() if finished else None

    def eta_s(self) -> float | None:
        rate = self.units_per_hour()
        last = self.counts()[self.stages[-1]]
        remaining = last["waiting"] + last["running"]
        return None if rate is None else remaining * 3600 / rate

    def lines(self) -> list[str]:
        """The live view: one line per stage plus throughput and ETA."""
        lines = [f"{'stage':<10}" + "".join(f"{k:>9}" for k in STATES)]
        for stage, count in self.counts().items():
            lines.append(f"{stage:<10}" + "".join(f"{count[k]:>9}" for k in STATES))
        rate, eta = self.units_per_hour(), self.eta_s()
        lines.append(
            f"elapsed {self.elapsed_s():.0f} s"
            + (f", {rate:.0f} units/h" if rate else "")
            + (f", ETA {eta:.0f} s" if eta is not None else "")
        )
        return lines

    def report(self, **extra: Any) -> dict[str, Any]:
        """The batch_report.json content."""
        counts = self.counts()
        return {
            "format": "cosmos-sim-batch-report",
            "version": 1,
            **extra,
            "started_unix_s": self.started_unix_s,
            "wall_s": self.elapsed_s(),
            "units_per_hour": self.units_per_hour(),
            "stages": {
                s: {**counts[s], "mean_unit_s": _mean(self.seconds[s]), "retried": self.retried[s]}
                for s in self.stages
            },
            # plan order, not completion order: two runs of one plan give one report
            "failed": [{"unit": u, **self.errors[u]} for u in self.units if u in self.errors],
            "units": {u: {s: self.state[s][u] for s in self.stages} for u in self.units},
        }


def summary(report: dict[str, Any]) -> list[str]:
    """The one-screen summary printed at the end of a run."""
    stages = report["stages"]
    lines = [
        f"cosmos-sim batch {report['plan']!r}: {len(report['units'])} units, "
        f"{report['wall_s']:.1f} s, {report['ray']}",
        f"{'stage':<10}{'done':>8}{'skipped':>9}{'failed':>8}{'blocked':>9}{'mean s':>9}",
    ]
    for name, s in stages.items():
        mean = "-" if s["mean_unit_s"] is None else f"{s['mean_unit_s']:.1f}"
        lines.append(
            f"{name:<10}{s['done']:>8}{s['skipped']:>9}{s['failed']:>8}{s['blocked']:>9}{mean:>9}"
        )
    if report["units_per_hour"]:
        lines.append(f"throughput {report['units_per_hour']:.0f} units/h (all stages, this run)")
    retried = [f"{u} ({name})" for name, s in stages.items() for u in s["retried"]]
    if retried:
        lines.append(f"finished after a lost worker was retried: {', '.join(retried)}")
    for failure in report["failed"][:10]:
        lines.append(f"FAILED {failure['unit']} at {failure['stage']}: {failure['error']}")
    if len(report["failed"]) > 10:
        lines.append(f"... and {len(report['failed']) - 10} more failures (see the report)")
    return lines


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
