"""Parity of the device kernels' torch path (what runs on a CPU) with the CPU references.

Depth, seg and LiDAR must match bit for bit, Canny must reach edge F1 >= 0.95 against
cv2.Canny at every preset, vis SSIM >= 0.98 against the OpenCV recipe. The Triton kernels
are held to the same references in test_kernels_triton.py.
"""

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from cosmos_sim import controls as cpu
from cosmos_sim import kernels as dev
from cosmos_sim.controls import hdmap
from cosmos_sim.kernels.clip_backend import clip_backend
from cosmos_sim.types import SpecError

SMALL = (2, 96, 160)
LARGE = (1, 352, 640)


def natural_frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Rendered shapes (filled, anti-aliased, thin lines), a soft blur and sensor noise."""
    frames = []
    for k in range(t):
        rng = np.random.default_rng(seed * 1000 + k)
        img = np.empty((h, w, 3), np.uint8)
        img[:] = rng.integers(0, 256, 3)
        for _ in range(25):
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            p = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            q = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            kind = rng.integers(0, 3)
            if kind == 0:
                cv2.circle(img, p, int(rng.integers(3, h // 3)), colour, -1, cv2.LINE_AA)
            elif kind == 1:
                cv2.rectangle(img, p, q, colour, -1)
            else:
                cv2.line(img, p, q, colour, int(rng.integers(1, 6)), cv2.LINE_AA)
        img = cv2.GaussianBlur(img, (5, 5), 1.0)
        frames.append(np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8))
    return np.stack(frames)


def depth_clip(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    depth = 2.0 + 60.0 * (yy / h) ** 2 + 3.0 * np.sin(xx / 7.0)
    depth = depth[None] * (1 + 0.05 * rng.random((t, h, w)))
    depth[:, : h // 8] = 1000.0  # sky at the far plane
    depth[0, -3:, :10] = 0.0  # no return
    return depth.astype(np.float32)


def lidar_clip(t: int, h: int, w: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    K = np.array([[0.6 * w, 0, (w - 1) / 2], [0, 0.6 * w, (h - 1) / 2], [0, 0, 1]])
    poses = []
    for i in range(t):
        a = 0.1 * i
        pose = np.eye(4)
        pose[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
        pose[:3, 3] = [0.5 * i, 0.2, -1.0]
        poses.append(pose)
    sweeps = [
        [(rng.random((3000, 3)) * [60, 20, 90] - [30, 10, 5]).astype(np.float32) for _ in range(3)]
        for _ in range(t)
    ]
    return sweeps, K, np.stack(poses)


def street_scene() -> hdmap.HDMapScene:
    """Eight curved lane lines of mixed styles, two boundaries, crosswalks, wait lines, poles."""
    geometry = hdmap.MapGeometry()
    s = np.linspace(0, 300.0, 150)
    styles = list(hdmap.LANE_LINE_STYLES)[:6]
    for i in range(8):
        line = np.stack([s, -14 + 3.5 * i + 2 * np.sin(s / 40.0), np.zeros_like(s)], 1)
        geometry.lane_lines.append((line, styles[i % len(styles)]))
    for y in (-16, 16):
        geometry.road_boundaries.append(np.stack([s, y + 2 * np.sin(s / 40), 0 * s], 1))
    for k in range(6):
        x = 20 + 45 * k
        geometry.crosswalks.append(
            np.array([[x, -14, 0], [x + 4, -14, 0], [x + 4, 14, 0], [x, 14, 0]], float)
        )
        geometry.wait_lines.append(np.array([[x - 2, -14, 0], [x - 2, 0, 0]], float))
        geometry.poles.append(np.array([[x, 17, 0], [x, 17, 6]], float))
    return hdmap.compile_scene(geometry)


def street_poses(t: int) -> np.ndarray:
    """An OpenCV camera 1.7 m up, looking down +x, moving 7 m a frame."""
    poses = np.tile(np.eye(4), (t, 1, 1))
    poses[:, :3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]
    poses[:, :3, 3] = np.stack(
        [5.0 + 7 * np.arange(t), 0 * np.arange(t), 1.7 + 0 * np.arange(t)], 1
    )
    return poses


def pixel_agreement(reference: np.ndarray, candidate: np.ndarray, tolerance: int = 32):
    """(over all pixels, over pixels drawn in either) where no channel of the candidate differs
    by > tolerance from the reference at that pixel or one of its 8 neighbours: the kernel's
    anti-aliased edges approximate cv2's and may land a pixel apart."""
    if reference.ndim == 3:  # one frame
        reference, candidate = reference[None], candidate[None]
    ref = np.pad(reference.astype(int), [(0, 0), (1, 1), (1, 1), (0, 0)], mode="edge")
    out = candidate.astype(int)
    h, w = out.shape[1:3]
    close = np.zeros(out.shape[:3], bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            near = ref[:, dy : dy + h, dx : dx + w]
            close |= np.abs(near - out).max(-1) <= tolerance
    drawn = (reference.max(-1) > 0) | (candidate.max(-1) > 0)
    return float(close.mean()), float(close[drawn].mean())


def edge_f1(reference: np.ndarray, candidate: np.ndarray) -> float:
    ref, out = reference > 0, candidate > 0
    true_pos = np.count_nonzero(ref & out)
    if not ref.any() and not out.any():
        return 1.0
    return 2 * true_pos / (np.count_nonzero(ref) + np.count_nonzero(out))


@pytest.mark.parametrize("depth_range", [None, (0.5, 40.0)])
def test_depth_control_is_exact(depth_range):
    depth = depth_clip(*SMALL)
    kw = {} if depth_range is None else {"min_m": depth_range[0], "max_m": depth_range[1]}
    ref = cpu.depth_control(depth, **kw)
    out = dev.depth_control(torch.from_numpy(depth), impl="torch", **kw)
    assert out.dtype == torch.uint8 and out.shape == (*SMALL, 3)
    np.testing.assert_array_equal(out.numpy(), ref)


def test_depth_range_equals_numpy_percentiles():
    depth = depth_clip(3, 40, 50, seed=4)
    assert dev.depth_range(torch.from_numpy(depth)) == cpu.depth_range(depth)
    rng = np.random.default_rng(0)
    for trial in range(60):  # ties, zeros, tiny clips, float64
        n = int(rng.integers(1, 2000))
        values = rng.random((1, 1, n)) * rng.choice([1.0, 10.0, 1000.0])
        values = values.astype(np.float64 if trial % 2 else np.float32)
        if trial % 3 == 0:
            values = np.round(values, 1)
        values[rng.random(values.shape) < 0.2] = 0
        if (values > 0).any():
            assert dev.depth_range(torch.from_numpy(values)) == cpu.depth_range(values), trial


def test_depth_control_rejects_nan_like_the_reference():
    depth = depth_clip(*SMALL)
    depth[0, 0, 0] = np.nan
    with pytest.raises(SpecError, match="NaN"):
        dev.depth_control(torch.from_numpy(depth), impl="torch")


def test_seg_control_is_exact_for_dense_and_sparse_ids():
    rng = np.random.default_rng(1)
    dense = rng.integers(0, 50, SMALL).astype(np.int32)
    sparse = np.where(dense % 3 == 0, 0, dense.astype(np.int64) * 10_000_019)
    for ids in (dense, sparse):
        palette = cpu.seg_palette(np.unique(ids), seed=7)
        out = dev.seg_control(torch.from_numpy(ids), palette, impl="torch")
        np.testing.assert_array_equal(out.numpy(), cpu.seg_control(ids, palette))


def test_seg_control_names_ids_missing_from_the_palette():
    ids = np.array([[[0, 1], [2, 3]]], np.int32)
    palette = cpu.seg_palette([0, 1, 2], seed=0)
    with pytest.raises(SpecError, match=r"\[3\]"):
        dev.seg_control(torch.from_numpy(ids), palette, impl="torch")


@pytest.mark.parametrize("shape", [SMALL, LARGE])
def test_canny_matches_opencv_at_every_preset(shape):
    frames = natural_frames(*shape)
    for preset in cpu.EDGE_PRESETS:
        ref = cpu.edge_control(frames, preset)
        out = dev.edge_control(torch.from_numpy(frames), preset, impl="torch").numpy()
        assert out.shape == ref.shape
        assert edge_f1(ref, out) >= 0.95, preset


def test_canny_on_noise_and_grey_frames():
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (2, 50, 70, 3), dtype=np.uint8)
    grey = noise[..., 0]
    for frames, ref in (
        (noise, np.stack([cv2.Canny(f, 50, 100) for f in noise])),
        (grey, np.stack([cv2.Canny(f, 50, 100) for f in grey])),
    ):
        out = dev.canny(torch.from_numpy(frames), 50, 100, impl="torch").numpy()
        assert edge_f1(ref, out) >= 0.95


def vis_ssim(reference: np.ndarray, candidate: np.ndarray) -> float:
    return min(
        structural_similarity(r, c, channel_axis=-1, data_range=255)
        for r, c in zip(reference, candidate, strict=True)
    )


@pytest.mark.parametrize(
    ("shape", "preset"),
    [(SMALL, "medium"), (SMALL, "low"), (SMALL, "very_low"), (LARGE, "medium")],
)
def test_vis_control_ssim_against_the_opencv_recipe(shape, preset):
    frames = natural_frames(*shape, seed=2)
    ref = cpu.vis_control(frames, preset)
    out = dev.vis_control(torch.from_numpy(frames), preset, impl="torch").numpy()
    assert out.shape == ref.shape and out.dtype == np.uint8
    assert vis_ssim(ref, out) >= 0.98


def test_bilateral_filter_matches_opencv():
    frame = natural_frames(1, 60, 90, seed=5)[0]
    ref = cv2.bilateralFilter(frame, 15, 100, 50)
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    out = dev.bilateral_filter(x, 15, 100, 50)[0].permute(1, 2, 0).numpy()
    # Float accumulation order differs from OpenCV's: rounding flips by one level at most.
    assert np.abs(out - ref.astype(np.float32)).max() <= 1
    assert np.mean(out != ref) < 0.01


def lidar_parity(shape: tuple[int, int, int], dilate_px: int, impl: str) -> np.ndarray:
    """The kernel's LiDAR clip (`impl`) and the CPU reference on one synthetic clip; returns
    the reference after checking the two are byte-identical."""
    t, h, w = shape
    sweeps, K, poses = lidar_clip(t, h, w)
    ref = np.stack(
        [cpu.lidar_control(sweeps[i], K, poses[i], h, w, dilate_px=dilate_px) for i in range(t)]
    )
    points = [[torch.from_numpy(s) for s in frame] for frame in sweeps]
    out = dev.lidar_control(
        points, torch.from_numpy(K), torch.from_numpy(poses), h, w, dilate_px=dilate_px, impl=impl
    )
    np.testing.assert_array_equal(out.numpy(), ref)
    return ref


@pytest.mark.parametrize("dilate_px", [4, 3, 1])
def test_lidar_control_is_exact(dilate_px):
    ref = lidar_parity(SMALL, dilate_px, impl="torch")
    assert (ref > 0).mean() > 0.2  # the test sees real returns


def test_clip_backend_keeps_the_cpu_signatures():
    backend = clip_backend("cpu")
    frames = natural_frames(2, 48, 64)
    np.testing.assert_array_equal(
        backend["edge"](frames[0], "low"), cpu.edge_control(frames[0], "low")
    )
    depth = depth_clip(2, 48, 64)
    np.testing.assert_array_equal(
        backend["depth"](depth, min_m=1.0, max_m=50.0),
        cpu.depth_control(depth, min_m=1.0, max_m=50.0),
    )
    ids = np.arange(48 * 64, dtype=np.int32).reshape(1, 48, 64) % 5
    palette = cpu.seg_palette(range(5), seed=1)
    np.testing.assert_array_equal(backend["seg"](ids, palette), cpu.seg_control(ids, palette))
    assert backend["vis"](frames, "medium").shape == frames.shape


def test_available_device_and_resolve():
    assert dev.available_device() in ("cpu", "cuda")
    assert dev.resolve_device("cpu") == torch.device("cpu")
    assert dev.resolve_device("auto").type == dev.available_device()


def test_write_clips_dispatch_picks_the_device_kernels():
    from cosmos_sim.controls.backend import control_backend

    assert control_backend("cpu")["edge"] is cpu.edge_control
    auto = control_backend("auto")
    if dev.available_device() == "cpu":
        assert auto["edge"] is cpu.edge_control
        with pytest.raises(SpecError, match="cuda"):
            control_backend("cuda")
    else:
        assert auto["edge"] is not cpu.edge_control
        frames = natural_frames(1, 48, 64)
        np.testing.assert_array_equal(auto["edge"](frames), cpu.edge_control(frames))


def test_hdmap_control_agrees_with_the_reference_renderer():
    scene, w, h = street_scene(), 240, 128
    K = np.array([[0.7 * w, 0, w / 2], [0, 0.7 * w, h / 2], [0, 0, 1]])
    poses = street_poses(2)
    ref = np.stack([hdmap.render_hdmap(scene, K, pose, h, w) for pose in poses])
    out = dev.hdmap_control(
        scene, torch.from_numpy(K), torch.from_numpy(poses), h, w, impl="torch"
    ).numpy()
    assert out.shape == ref.shape and out.dtype == np.uint8
    overall, drawn = pixel_agreement(ref, out)
    assert (ref.max(-1) > 0).mean() > 0.2  # the scene fills the frame
    assert overall >= 0.98 and drawn >= 0.95, (overall, drawn)
