"""The Triton kernels against the same references, through Triton's CPU interpreter.

Skipped where Triton is not installed (CI's CPU-only torch); on a machine with Triton but no
GPU, run `TRITON_INTERPRET=1 python -m pytest tests/test_kernels_triton.py`. The interpreter
must be switched on before the kernel modules are first imported, so this module sets it when
nothing has imported Triton yet and skips otherwise. On a GPU the benchmark
(benchmarks/kernels_gpu.py) checks the compiled kernels against the torch path.
"""

import importlib.util
import os
import sys

import numpy as np
import pytest

if importlib.util.find_spec("triton") is None:
    pytest.skip("Triton is not installed", allow_module_level=True)
if os.environ.get("TRITON_INTERPRET") != "1":
    # triton.jit reads the switch when a function is decorated, Triton's own library
    # (tl.max, ...) included, so nothing Triton may be imported yet.
    if "triton" in sys.modules:
        pytest.skip("Triton was imported without TRITON_INTERPRET=1", allow_module_level=True)
    os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402
from test_kernels import (  # noqa: E402
    depth_clip,
    edge_f1,
    lidar_parity,
    natural_frames,
    pixel_agreement,
    street_poses,
    street_scene,
    vis_ssim,
)

from cosmos_sim import controls as cpu  # noqa: E402
from cosmos_sim import kernels as dev  # noqa: E402
from cosmos_sim.controls import hdmap  # noqa: E402

pytestmark = pytest.mark.slow
SHAPE = (2, 48, 80)


def test_depth_triton_is_exact():
    depth = depth_clip(*SHAPE)
    out = dev.depth_control(torch.from_numpy(depth), impl="triton")
    np.testing.assert_array_equal(out.numpy(), cpu.depth_control(depth))


def test_seg_triton_is_exact_and_flags_missing_ids():
    ids = np.random.default_rng(1).integers(0, 30, SHAPE).astype(np.int32)
    palette = cpu.seg_palette(np.unique(ids), seed=7)
    out = dev.seg_control(torch.from_numpy(ids), palette, impl="triton")
    np.testing.assert_array_equal(out.numpy(), cpu.seg_control(ids, palette))
    del palette[int(ids[0, 0, 0])]
    with pytest.raises(ValueError, match="no colour"):
        dev.seg_control(torch.from_numpy(ids), palette, impl="triton")


@pytest.mark.parametrize("preset", ["very_low", "medium", "very_high"])
def test_canny_triton_matches_opencv(preset):
    frames = natural_frames(*SHAPE)
    out = dev.edge_control(torch.from_numpy(frames), preset, impl="triton").numpy()
    assert edge_f1(cpu.edge_control(frames, preset), out) >= 0.95


def test_vis_triton_ssim():
    frames = natural_frames(1, 64, 96, seed=2)
    out = dev.vis_control(torch.from_numpy(frames), "medium", impl="triton").numpy()
    assert vis_ssim(cpu.vis_control(frames, "medium"), out) >= 0.98


@pytest.mark.parametrize("dilate_px", [4, 1])
def test_lidar_triton_is_exact(dilate_px):
    lidar_parity(SHAPE, dilate_px, impl="triton")


def test_hdmap_triton_matches_the_torch_path_and_the_reference():
    scene, w, h = street_scene(), 160, 96
    K = np.array([[0.7 * w, 0, w / 2], [0, 0.7 * w, h / 2], [0, 0, 1]])
    poses = street_poses(1)
    args = (scene, torch.from_numpy(K), torch.from_numpy(poses), h, w)
    out = dev.hdmap_control(*args, impl="triton").numpy()
    assert np.abs(out.astype(int) - dev.hdmap_control(*args, impl="torch").numpy()).max() <= 1
    ref = hdmap.render_hdmap(scene, K, poses[0], h, w)[None]
    overall, drawn = pixel_agreement(ref, out)
    assert overall >= 0.98 and drawn >= 0.95, (overall, drawn)
