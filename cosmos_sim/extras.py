"""Optional dependencies: import one, or fail with the one-line `pip install` that adds it."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(ImportError):
    """A feature's optional package is not installed; the message is the fix, in one line."""


def require(module: str, extra: str, needed_for: str, note: str = "") -> ModuleType:
    """Import `module`, or raise MissingExtra naming the cosmos-sim extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(
            f"{needed_for} needs `{module}`: pip install 'cosmos-sim[{extra}]'{note}"
        ) from exc
