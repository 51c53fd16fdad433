"""The second-language client (examples/clients/node) against the real server."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cosmos_sim import Episode
from cosmos_sim.controls import depth_control, edge_control, seg_control, seg_palette
from cosmos_sim.sidecar import ErrorCode, Limits, Server
from cosmos_sim.sidecar.methods import method_table

NODE_CLIENT = Path(__file__).resolve().parents[1] / "examples" / "clients" / "node"
NODE = shutil.which("node")
W, H = 64, 48


def synthetic_frame() -> dict[str, np.ndarray]:
    """The frame hello_controls.mjs builds, in numpy."""
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.stack([(x * 4) % 256, (y * 4) % 256, np.where(x < W / 2, 30, 220)], -1)
    depth = (1 + ((x + y) / (W + H)) * 4).astype(np.float32)
    ids = (np.where(y < H / 2, 1, 2) * np.where(x < W / 2, 1, 3)).astype(np.int32)
    return {"rgb": rgb.astype(np.uint8), "depth_m": depth, "instance_id": ids}


@pytest.mark.skipif(NODE is None, reason="node is not installed (apt-get install nodejs)")
@pytest.mark.skipif(
    not (NODE_CLIENT / "node_modules" / "zeromq").is_dir(),
    reason="node client deps missing: run `npm ci --prefix examples/clients/node`",
)
@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_node_client_hello_then_controls(tmp_path, transport):
    bind = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/node.sock"
    with Server(bind, workers=2, data_dir=tmp_path) as server:
        out = subprocess.run(
            [NODE, "hello_controls.mjs", server.endpoint, str(W), str(H)],
            cwd=NODE_CLIENT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        stats = server.stats.snapshot()
    summary = json.loads(out.stdout)
    assert summary["version"] == 1
    f = synthetic_frame()
    want = {
        "depth": depth_control(f["depth_m"], min_m=1.0, max_m=5.0),
        "seg": seg_control(f["instance_id"], seg_palette(np.unique(f["instance_id"]), 3)),
        "edge": edge_control(f["rgb"]),
    }
    assert set(summary["controls"]) == set(want)
    for name, arr in want.items():
        assert summary["controls"][name]["shape"] == [H, W, 3]
        assert summary["controls"][name]["sha256"] == hashlib.sha256(arr.tobytes()).hexdigest()
    assert stats["methods"]["controls"]["requests"] == 1 and stats["errors"] == 0


def test_pybullet_example_streams_through_the_sidecar(tmp_path):
    example = Path(__file__).resolve().parents[1] / "examples" / "sidecar_pybullet.py"
    out = subprocess.run(
        [sys.executable, str(example), "--ticks", "3", "--width", "96", "--height", "54",
         "--modalities", "depth,seg,edge", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "3 ticks of tabletop" in out.stdout and ", 0 errors" in out.stdout
    (episode_dir,) = [p for p in tmp_path.iterdir() if p.name.startswith("tabletop-")]
    episode = Episode(episode_dir)
    assert episode.complete and len(episode) == 3
    assert (episode_dir / "sidecar_controls.png").is_file()


def test_protocol_md_documents_every_method_param_array_and_error():
    text = (Path(__file__).resolve().parents[1] / "PROTOCOL.md").read_text()
    sections = text.split("\n### ")
    for name, method in method_table_with_hdmap().items():
        (section,) = [s for s in sections if s.startswith(f"{name}\n")]
        for param in method.params:
            assert f"`{param}`" in section, f"{name}: param {param} undocumented"
        for array in method.arrays or {}:
            assert f"`{array}`" in section, f"{name}: array {array} undocumented"
    for code in ErrorCode.all():
        assert f"| `{code}` |" in text, f"error code {code} undocumented"
    for key in Limits().to_dict():
        assert f"`{key}`" in text, f"limit {key} undocumented"


def method_table_with_hdmap():
    from cosmos_sim.sidecar.methods import hdmap

    return {**method_table(), **{m.name: m for m in hdmap.METHODS}}
