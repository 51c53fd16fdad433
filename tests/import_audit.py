"""Run `cosmos-sim` commands and list what our code imported from outside the base install.

Usage: `python tests/import_audit.py REPORT.json 'demo --out X' 'capture --out Y' ...`

Only imports made *by cosmos_sim modules* count: a base dependency that tries an optional
package of its own (and copes without it) is its business, not a missing requirement of ours.
The base install is computed from the installed metadata (cosmos-sim's requirements without
extras, and theirs, recursively), so no list is kept by hand.
"""

from __future__ import annotations

import builtins
import json
import shlex
import sys
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def base_distributions(root: str = "cosmos-sim") -> set[str]:
    """Every distribution a plain `pip install cosmos-sim` (no extras) brings in."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requirements:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def _record_our_imports(imported: dict[str, str]) -> None:
    """Wrap `__import__` to note each top-level module a cosmos_sim module asks for."""
    original = builtins.__import__

    def audited(name, globals=None, locals=None, fromlist=(), level=0):
        caller = (globals or {}).get("__name__", "")
        if level == 0 and caller.startswith("cosmos_sim"):
            imported.setdefault(name.partition(".")[0], caller)
        return original(name, globals, locals, fromlist, level)

    builtins.__import__ = audited


def outside_base(imported: dict[str, str]) -> dict[str, dict[str, object]]:
    """The imported top-level modules whose distributions are not in the base install."""
    base = base_distributions()
    owners = metadata.packages_distributions()
    stray: dict[str, dict[str, object]] = {}
    for module, caller in sorted(imported.items()):
        if module in sys.stdlib_module_names or module == "cosmos_sim":
            continue
        dists = {canonicalize_name(d) for d in owners.get(module, [])}
        if dists and not dists & base:
            stray[module] = {"distributions": sorted(dists), "imported_by": caller}
    return stray


def main(argv: list[str]) -> int:
    report_path, commands = argv[0], argv[1:]
    imported: dict[str, str] = {}
    _record_our_imports(imported)
    from cosmos_sim.cli import app

    exit_codes = []
    for command in commands:
        # standalone_mode=False: click returns typer.Exit's code instead of exiting.
        exit_codes.append(app(shlex.split(command), standalone_mode=False) or 0)
    stray = outside_base(imported)
    with open(report_path, "w") as file:
        json.dump({"commands": commands, "exit_codes": exit_codes, "outside_base": stray}, file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
