"""The `cosmos-sim batch` command's body: check, run with a live view, print the summary.

Imported only after `cosmos_sim.cli` has checked that the `ray` extra is installed.
"""

from __future__ import annotations

from pathlib import Path

import typer


def batch_command(
    plan_path: Path, out: Path, *, address: str | None, num_cpus: int | None, num_gpus: int | None
) -> None:
    """Validate the plan, run it on Ray with a live per-stage view, print the summary."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    from cosmos_sim.batch import REPORT, load_plan, run_plan, summary

    plan = load_plan(plan_path)
    console = Console(stderr=True)
    with Live(Text("starting Ray"), console=console, refresh_per_second=2, transient=True) as live:
        report = run_plan(
            plan, out, address=address, num_cpus=num_cpus, num_gpus=num_gpus,
            on_progress=lambda progress: live.update(Text("\n".join(progress.lines()))),
        )  # fmt: skip
    typer.echo("\n".join(summary(report)))
    typer.echo(f"  report             {Path(out) / REPORT}")
    if report["failed"]:
        raise typer.Exit(code=1)
