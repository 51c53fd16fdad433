"""The batch output folder: one run at a time, the plan that made it, nothing foreign in it."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cosmos_sim.batch.plan import Plan, PlanError, Unit
from cosmos_sim.batch.units import unit_dir
from cosmos_sim.episode import write_json_atomic

PLAN_RECORD = "plan.json"
LOCK = ".batch.lock"
EPISODE_LIST = ("seeds", "seed_range", "replays", "runs")
"""Capture fields that say which episodes to make, not how: a re-run may change them."""


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold OUT/.batch.lock for the run, so two runs never clean up each other's attempts."""
    with open(out / LOCK, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FileExistsError(
                f"another cosmos-sim batch is running into {out}; wait for it or pick another --out"
            ) from None
        yield


def check_same_plan(plan: Plan, out: Path) -> None:
    """Refuse a plan that would make OUT's finished units differently; record the plan.

    A re-run may add episodes (seeds, replays, new capture groups), not change a stage's
    settings or how an existing capture group records.
    """
    record = out / PLAN_RECORD
    current = plan.model_dump(mode="json")
    if record.is_file():
        before = json.loads(record.read_text())
        old, new = _settings(before), _settings(current)
        shared = old["captures"].keys() & new["captures"].keys()
        for side in (old, new):
            side["captures"] = {name: side["captures"][name] for name in shared}
        field = _first_difference(old, new)
        if field is not None:
            raise PlanError(
                f"differs from the plan that wrote {out} ({record})",
                field=field,
                fix="keep the earlier value, or run into a new --out",
            )
        names = {c["name"] for c in current["captures"]}
        current["captures"] += [c for c in before["captures"] if c["name"] not in names]
    write_json_atomic(record, current)


def check_no_foreign_folders(
    out: Path, stages: Iterable[str], units: Iterable[Unit], finished: set[tuple[str, str]]
) -> None:
    """A unit folder without a done-marker was not written by a batch run: refuse to touch it."""
    for unit in units:
        for stage in stages:
            folder = unit_dir(out, stage, unit.id)
            if (stage, unit.id) not in finished and folder.exists():
                raise FileExistsError(
                    f"{folder} exists without a done-marker, so cosmos-sim batch did not write "
                    "it; move it away (nothing was changed)"
                )


def _settings(plan: dict[str, Any]) -> dict[str, Any]:
    captures = {
        f"captures.{c['name']}": {k: v for k, v in c.items() if k not in EPISODE_LIST}
        for c in plan["captures"]
    }
    return {"stages": plan["stages"], "captures": captures}


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The dotted path of the first value that differs between two JSON trees, or None."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return None if a == b else path
    for key in sorted(set(a) | set(b)):
        field = key if path in ("", "captures") else f"{path}.{key}"
        if key not in a or key not in b:
            return field
        found = _first_difference(a[key], b[key], field)
        if found:
            return found
    return None
