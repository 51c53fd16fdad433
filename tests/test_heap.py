"""The CLI restarts itself once with glibc's heap bounded (cosmos_sim/heap.py)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from cosmos_sim import heap

glibc = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)


@glibc
def test_the_cli_process_runs_with_the_bounded_heap(tmp_path):
    probe = (
        "import os, sys; sys.argv = ['cosmos-sim', '--help'];"
        "from cosmos_sim import heap; heap.reexec_with_bounded_heap()"
    )
    env = {k: v for k, v in os.environ.items() if k not in heap.HEAP_ENV}
    # after the re-exec the process is `cosmos-sim --help`: it prints usage with our name
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Usage: cosmos-sim" in done.stdout


@glibc
def test_arguments_pass_through_and_a_users_own_setting_wins(monkeypatch):
    calls = []
    monkeypatch.setattr(os, "execve", lambda *args: calls.append(args))
    monkeypatch.setattr(sys, "argv", ["cosmos-sim", "controls", "run", "--out", "x y"])
    for name in heap.HEAP_ENV:
        monkeypatch.delenv(name, raising=False)
    heap.reexec_with_bounded_heap()
    ((executable, argv, env),) = calls
    assert executable == sys.executable and argv[-4:] == ["controls", "run", "--out", "x y"]
    assert {k: env[k] for k in heap.HEAP_ENV} == heap.HEAP_ENV
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    heap.reexec_with_bounded_heap()
    assert len(calls) == 1
