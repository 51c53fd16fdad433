"""Running a Cosmos checkout's own tool: the cosmos-cli Transfer backend and the Predict 2.5
world model both drive an NVIDIA checkout (cosmos-transfer2.5, cosmos-predict2.5) this way.

`find_checkout` checks that a folder is the checkout, `checkout_python` picks the Python
that runs the tool (the checkout's `.venv`, what `uv sync` makes there, when it exists) and
`run_tool` runs it in the checkout, streaming its log to a file and to the console with a
progress bar, and raises with the tool's own output verbatim when it fails.
"""

from __future__ import annotations

import codecs
import os
import re
import subprocess
import sys
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tqdm import tqdm

_PROGRESS = re.compile(r"(\d+)/(\d+) \[")
FAILURE_TAIL_LINES = 200


class CosmosToolError(RuntimeError):
    """The Cosmos tool failed or wrote no output; the message holds its output verbatim."""


def find_checkout(
    root: str | Path, *, markers: Sequence[str], repo: str, field: str, setup: str = ""
) -> Path:
    """`root` resolved, or FileNotFoundError naming `field`, the missing paths and the fix."""
    path = Path(root).expanduser().resolve()
    missing = [m for m in markers if not (path / m).exists()]
    if missing:
        url = repo if "/" in repo else f"nvidia-cosmos/{repo}"  # an owner/name is used as is
        raise FileNotFoundError(
            f"{field} {path} is not a {repo.split('/')[-1]} checkout (no {', '.join(missing)}); "
            f"clone https://github.com/{url}, follow its setup guide{setup}, then "
            "pass that folder"
        )
    return path


def checkout_python(root: Path, python: str | Path | None = None) -> str:
    """`python` if given, else the checkout's `.venv` interpreter, else this one."""
    venv = root / ".venv" / "bin" / "python"
    return str(python or (venv if venv.is_file() else sys.executable))


def run_tool(
    cmd: list[str],
    root: Path,
    log_path: Path,
    label: str,
    error: type[Exception] = CosmosToolError,
    echo: bool = True,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run `cmd` in `root`, streaming its output to `log_path` (and to the console when
    `echo`) with a progress bar; raise `error` with that output on failure.

    The tool runs with `root` as its working directory, so every path in `cmd` must be
    absolute (callers resolve theirs). `env` adds variables to the tool's environment.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    tail: deque[str] = deque(maxlen=FAILURE_TAIL_LINES)
    bar = tqdm(desc=label, unit="step", total=None)
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(
            cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert proc.stdout is not None
        for line in _lines(proc.stdout):
            log.write(line + "\n")
            log.flush()
            tail.append(line)
            match = _PROGRESS.search(line)
            if match:
                bar.total = int(match.group(2))
                bar.n = int(match.group(1))
                bar.refresh()
            elif echo and line.strip():
                bar.write(f"[cosmos] {line}")
        code = proc.wait()
    bar.close()
    if code != 0:
        raise error(
            f"the Cosmos tool failed (exit code {code}) running `{' '.join(cmd)}` in "
            f"{root}; its output (last {len(tail)} lines, full log {log_path}):\n" + "\n".join(tail)
        )


def _lines(stream) -> Iterator[str]:
    """Lines of a byte pipe as they arrive, also split at the carriage returns of progress bars."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    buffer = ""
    while chunk := os.read(stream.fileno(), 65536):
        buffer += decoder.decode(chunk)
        *done, buffer = re.split(r"\r\n|\r|\n", buffer)
        yield from done
    if buffer:
        yield buffer
