"""The learned-env examples run as scripts on the shipped embedded world model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def require_shipped_weights() -> None:
    embedded = pytest.importorskip("cosmos_sim.envs.embedded")
    if not (embedded.ASSET_DIR / embedded.WEIGHTS_FILE).is_file():
        pytest.skip("the embedded world model's weights are not in assets/ yet")


def test_multiverse_example_writes_grid_video_and_summary(tmp_path):
    require_shipped_weights()
    out = tmp_path / "mv"
    subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "multiverse.py"),
            "--futures",
            "3",
            "--steps",
            "4",
            "--warmup-steps",
            "1",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["return"]) == len(summary["success"]) == 3
    assert (out / "multiverse.png").stat().st_size > 0 and (out / "multiverse.mp4").is_file()
