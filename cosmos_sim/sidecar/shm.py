"""Shared-memory regions for frames when client and server share a machine.

A region is a POSIX shared-memory object (`shm_open(3)` name `/cosmos-sim-<random>`; on
Linux the file `/dev/shm/cosmos-sim-<random>`), created by the server for one session
with mode 0600 (the server's user only) and mapped by both sides. Arrays placed in it
cross the process boundary without going through a socket: the request and reply headers
still travel over ZeroMQ and say where each array lies. The server owns the region and
unlinks it when the session ends, so a crashed client leaves nothing behind.
"""

from __future__ import annotations

import mmap
import os
import secrets
from pathlib import Path

SHM_DIR = Path("/dev/shm")
PREFIX = "cosmos-sim-"


class SharedRegion:
    """A mapped shared-memory object: `view` is its writable bytes."""

    def __init__(self, path: Path, size: int, *, owner: bool) -> None:
        self.path = path
        self.size = size
        self.owner = owner
        fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.view = memoryview(self._map)

    @property
    def name(self) -> str:
        """The `shm_open(3)` name (a leading slash, no folder)."""
        return f"/{self.path.name}"

    @classmethod
    def create(cls, size: int) -> SharedRegion:
        """A new zero-filled region of `size` bytes that only this user can open."""
        if not SHM_DIR.is_dir():
            raise OSError(f"{SHM_DIR} does not exist: shared memory needs Linux")
        path = SHM_DIR / f"{PREFIX}{secrets.token_hex(8)}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
        return cls(path, size, owner=True)

    @classmethod
    def attach(cls, name_or_path: str, size: int) -> SharedRegion:
        """Map a region another process created (its `shm_open` name or its path)."""
        path = Path(name_or_path)
        if not path.is_absolute() or path.parent == Path("/"):
            path = SHM_DIR / path.name
        return cls(path, size, owner=False)

    def close(self) -> None:
        """Unmap (and unlink, for the owner). Views still alive keep the mapping."""
        if self.owner:
            self.path.unlink(missing_ok=True)
        try:
            self.view.release()
            self._map.close()
        except BufferError:  # a numpy view still uses it: unmapped when that view goes
            pass
