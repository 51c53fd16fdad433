"""The README's base-install commands import nothing that only an extra installs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

AUDIT = Path(__file__).with_name("import_audit.py")


def _audit(tmp_path: Path, *commands: str) -> dict:
    report = tmp_path / "audit.json"
    subprocess.run([sys.executable, str(AUDIT), str(report), *commands], check=True, cwd=tmp_path)
    return json.loads(report.read_text())


def test_base_commands_import_only_base_dependencies(tmp_path):
    run, clips, styled, data = (tmp_path / name for name in ("run", "clips", "styled", "data"))
    report = _audit(
        tmp_path,
        f"demo --out {tmp_path / 'demo'} --seconds 0.25",
        f"capture --out {run} --scene street --seconds 0.25 --width 320 --height 176",
        f"controls {run} --out {clips}",
        f"transfer {clips} --out {styled} --prompt 'foggy evening'",
        f"dataset {run} {data} --transfer {styled}",
        f"keygen {tmp_path / 'keys'}",
    )
    assert report["exit_codes"] == [0] * len(report["commands"]), report
    assert report["outside_base"] == {}, (
        "a base-install command imports a package that only an extra installs: move it to "
        f"[project].dependencies or make the command name the extra: {report['outside_base']}"
    )


def test_the_audit_sees_an_import_from_an_extra(tmp_path, monkeypatch):
    """pycocotools was test-only when the dataset command needed it; the audit must see that."""
    import import_audit  # tests/ is on sys.path (pytest's rootdir insertion)

    monkeypatch.setattr(import_audit, "base_distributions", lambda: {"numpy"})
    stray = import_audit.outside_base({"numpy": "cosmos_sim.x", "pytest": "cosmos_sim.dataset"})
    assert list(stray) == ["pytest"]
    assert stray["pytest"]["imported_by"] == "cosmos_sim.dataset"


def test_no_top_level_folder_shadows_an_installed_package():
    """`python -m pytest` and `python -c` put the checkout first on sys.path, so a top-level
    package folder here hides any installed module of that name: a `kernels/` folder once hid
    Hugging Face's `kernels` (a transformers dependency) and broke every diffusers import."""
    from importlib.metadata import packages_distributions

    root = Path(__file__).resolve().parents[1]
    ours = {p.parent.name for p in root.glob("*/__init__.py")}
    installed = packages_distributions()
    clashes = {name: installed[name] for name in ours if name in installed and name != "cosmos_sim"}
    assert clashes == {}, (
        f"top-level folders {sorted(clashes)} shadow installed packages {clashes}: "
        "move them under cosmos_sim/ (the package map in pyproject.toml)"
    )
