"""Exactly-once on disk: each unit of a stage is written into a private folder and renamed.

`OUT/<stage>/<unit>/` appears in one `rename`, already holding its done-marker (`_DONE.json`),
so a reader sees a whole unit or none. An attempt writes into
`OUT/<stage>/.<unit>.<host>-<pid>.partial`; an attempt that raises removes its folder, and
one killed with SIGKILL leaves it for the next attempt of that unit (or the next run) to
remove. Two attempts of one unit (a retry racing a worker thought dead) both may finish, but
only the first rename lands; the second sees the done-marker and drops its copy.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cosmos_sim.episode import write_json_atomic

DONE_MARKER = "_DONE.json"
PARTIAL_SUFFIX = ".partial"


def unit_dir(out: Path, stage: str, unit: str) -> Path:
    return Path(out) / stage / unit


def done_marker(out: Path, stage: str, unit: str) -> dict[str, Any] | None:
    """The done-marker of a finished unit, or None when the unit has not finished."""
    path = unit_dir(out, stage, unit) / DONE_MARKER
    return json.loads(path.read_text()) if path.is_file() else None


def partials(out: Path, stage: str, unit: str | None = None) -> list[Path]:
    """Folders left by attempts that did not finish (of one unit, or of the whole stage)."""
    folder = Path(out) / stage
    if not folder.is_dir():
        return []
    prefix = f".{unit}." if unit is not None else "."
    return sorted(
        p for p in folder.iterdir() if p.name.startswith(prefix) and p.name.endswith(PARTIAL_SUFFIX)
    )


def write_unit(
    out: Path, stage: str, unit: str, make: Callable[[Path], dict[str, Any]]
) -> dict[str, Any]:
    """Run `make(folder)` into a private folder and publish it as OUT/stage/unit; returns
    the done-marker (`make`'s summary plus who wrote it and how long it took).

    `make` gets a path that does not exist yet (the writers of this project create their
    output folder themselves and refuse a non-empty one).
    """
    final = unit_dir(out, stage, unit)
    finished = done_marker(out, stage, unit)
    if finished is not None:
        return finished
    final.parent.mkdir(parents=True, exist_ok=True)
    host, pid = socket.gethostname(), os.getpid()
    partial = final.parent / f".{unit}.{host}-{pid}{PARTIAL_SUFFIX}"
    shutil.rmtree(partial, ignore_errors=True)  # this process's own earlier attempt
    started = time.time()
    try:
        summary = make(partial)
        stale = [p for p in partials(out, stage, unit) if p != partial]
        marker = {
            "unit": unit,
            "stage": stage,
            "host": host,
            "pid": pid,
            "started_unix_s": started,
            "seconds": time.time() - started,
            "abandoned_attempts": len(stale),  # attempts whose process died mid-unit
            **summary,
        }
        partial.mkdir(exist_ok=True)
        write_json_atomic(partial / DONE_MARKER, marker)
        try:
            os.rename(partial, final)
        except OSError:
            winner = done_marker(out, stage, unit)
            if winner is None:
                raise
            shutil.rmtree(partial, ignore_errors=True)
            return winner
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    for folder in partials(out, stage, unit):  # attempts killed before they could clean up
        shutil.rmtree(folder, ignore_errors=True)
    return marker
