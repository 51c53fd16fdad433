"""The `--augment` part of `cosmos-sim capture` (kept here so cli.py stays a thin dispatcher)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cosmos_sim.augment.capture import capture_augmented
from cosmos_sim.augment.writer import FOLDER


def capture_and_augment(
    capture: Callable[..., Path],
    out: Path,
    backend: str,
    prompt: str | None,
    overflow: str,
    say: Callable[[str, Any], None],
    **options: Any,
) -> Path:
    """Record with `capture(out, on_tick=..., **options)` and augment every tick as it comes."""
    path, stats = capture_augmented(
        lambda on_tick: capture(out, on_tick=on_tick, **options),
        out,
        backend=backend,
        prompt=prompt or "",
        seed=options.get("seed", 0),
        overflow=overflow,
    )
    figures = stats.as_dict()
    say("episode", path)
    say("augmented", Path(path) / FOLDER)
    say(
        "  frames",
        f"{figures['frames_out']} of {figures['ticks_in']} ticks, "
        f"{figures['chunks_skipped']} chunks skipped ({overflow}), "
        f"lag {figures['lag_s_mean']:.2f} s mean / {figures['lag_s_max']:.2f} s max, "
        f"{figures['frames_per_s']:.1f} frames/s",
    )
    return path
