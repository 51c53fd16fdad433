"""The `cosmos-sim` command line: capture, controls, demo and the commands each feature adds.

Heavy imports live inside each command so `cosmos-sim --help` stays fast.
"""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def main() -> None:
    app()
