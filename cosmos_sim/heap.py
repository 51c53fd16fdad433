"""Keep the streamed pipeline's peak memory flat: glibc's heap settings for large arrays.

Each chunk makes and frees frames of a few MB on several threads (reader, controls, one
encoder per video). glibc raises its mmap threshold to the largest block freed (up to
32 MiB), after which such frames come from per-thread arenas that keep what they freed, so
peak RSS grows with the pipeline's depth. A fixed 1 MiB threshold (frames are mmapped and
given back on free) and two arenas keep it flat: `controls` on an 8 s 1280×704 tabletop
episode peaked at 1.53 GiB with glibc's defaults and 1.23 GiB with both (a 2 s one: 1.07
GiB), on the 2-core machine (benchmarks/pipeline_memory.py); either alone took off less
than a tenth (1.87 → 1.71 / 1.72 GiB at chunks of 16).

glibc fixes its arena limit when a second thread first allocates, which importing numpy or
torch already does, so `mallopt` from Python comes too late: the settings must be in the
environment when the process starts. `reexec_with_bounded_heap` starts the CLI again with
them (once; nothing is read or written before). No effect off Linux/glibc.
"""

from __future__ import annotations

import os
import platform
import sys

HEAP_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 20), "MALLOC_ARENA_MAX": "2"}
"""glibc tunables (environment form) for the streamed pipeline; see the module doc."""


def reexec_with_bounded_heap() -> None:
    """Replace this process by the same `cosmos-sim` command with HEAP_ENV set, unless it is
    set already (a user's own values win) or this is not glibc."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return
    if any(name in os.environ for name in HEAP_ENV):
        return
    env = {**os.environ, **HEAP_ENV}
    code = "from cosmos_sim.cli import main; main()"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-c", code, *sys.argv[1:]], env)
