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
    check_cli_backend(backend)
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


def check_cli_backend(name: str) -> None:
    """Refuse, before anything is recorded, a backend the CLI cannot build (unknown, or one
    that needs options such as a model path: those are used from Python)."""
    import inspect

    from cosmos_sim.transfer.base import backend_factory, backend_names
    from cosmos_sim.types import SpecError

    if name not in backend_names():
        raise SpecError(
            f"--augment {name!r} is not a transfer backend; choose one of {backend_names()}",
            field="--augment",
            fix="pick a name from that list",
        )
    required = [
        p.name
        for p in inspect.signature(backend_factory(name)).parameters.values()
        if p.default is inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD
    ]
    if required:
        raise SpecError(
            f"--augment {name}: this backend needs {required} (e.g. a local model folder), "
            "which `capture` does not take; use it from Python: "
            f"Augmenter(make_backend({name!r}, ...)) (cosmos_sim.augment)",
            field="--augment",
            fix="use --augment appearance here, or the Python API for model backends",
        )
