"""GPU control kernels vs OpenCV on the CPU and kornia on the same GPU, on one Cosmos chunk.

The chunk is what one Transfer 2.5 call consumes: 93 frames at the 16:9 bucket (1280×704).
For each control (depth, seg, edge, vis, LiDAR) and for the whole set it prints:
- ours: `cosmos_sim.kernels` with inputs already on the device (Triton kernels on CUDA);
- torch: the same functions with impl="torch" (the plain torch path, on the same device);
- kornia: kornia's op on the same device where kornia has one (Canny, bilateral blur), the
  torch path where it has none;
- OpenCV: the CPU reference functions (`cosmos_sim.controls`, OpenCV inside, with OpenCV's
  own threading over all cores) on the host;
- floor: bytes the op must move (inputs read once, output written once) over the measured
  device-to-device copy bandwidth.
Device times are medians of repeated runs after warm-up, taken with CUDA events. Before
timing, the outputs are checked: Triton path against the torch path on the device, and both
against the CPU reference on the first frames.

    python benchmarks/kernels_gpu.py                     # H100 figures (needs CUDA)
    python benchmarks/kernels_gpu.py --device cpu --small   # smoke check anywhere
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from cosmos_sim import controls as cpu
from cosmos_sim import kernels as dev
from cosmos_sim.controls import hdmap
from cosmos_sim.controls.vis import VIS_PRESETS


@dataclass
class Config:
    device: str = "cuda"
    frames: int = 93
    height: int = 704
    width: int = 1280
    repeats: int = 10
    warmup: int = 2
    cpu_repeats: int = 1
    kornia_vis_frames: int = 8
    """kornia's bilateral_blur unfolds a 31×31 window per pixel (2.6 GB a frame): it is timed
    on this many frames in batches of 4 and scaled to the chunk."""
    lidar_points_per_sweep: int = 32 * 1024
    lidar_sweeps: int = 5
    edge_preset: str = "medium"
    vis_preset: str = "medium"
    check_frames: int = 4
    out: str | None = None
    cpu_timings_from: str | None = None
    """Reuse the OpenCV timings of an earlier run's JSON (same chunk, same host)."""


# ----------------------------------------------------------------------------- the chunk


def natural_frame(h: int, w: int, seed: int) -> np.ndarray:
    """Shapes, thin lines and text-like clutter, a soft blur and sensor noise."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rng.integers(0, 256, 3)
    scale = max(h, w) / 160
    for _ in range(60):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        p = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        q = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.circle(img, p, int(rng.integers(3, max(4, h // 4))), colour, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(img, p, q, colour, -1)
        else:
            cv2.line(img, p, q, colour, int(rng.integers(1, max(2, int(4 * scale)))), cv2.LINE_AA)
    img = cv2.GaussianBlur(img, (5, 5), 1.0)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def make_chunk(cfg: Config) -> dict:
    t, h, w = cfg.frames, cfg.height, cfg.width
    base = [natural_frame(h, w, s) for s in range(8)]
    rgb = np.stack([np.roll(base[k % 8], 3 * k, axis=1) for k in range(t)])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(0)
    ground = 1.5 + 80.0 * (1.0 - yy / h) ** 3 + 2.0 * np.sin(xx / 37.0)
    depth = np.stack([ground * (1 + 0.02 * np.sin(k / 5.0)) for k in range(t)]).astype(np.float32)
    depth *= 1 + 0.01 * rng.random(depth.shape, dtype=np.float32)
    depth[:, : h // 6] = 1000.0  # sky at the far plane
    ids = ((yy // 44).astype(np.int32) * 29 + (xx // 80).astype(np.int32)) % 180
    ids = np.stack([(ids + k) % 180 for k in range(t)]).astype(np.int32)
    ids[:, : h // 6] = 0
    K = np.array([[0.9 * w, 0, (w - 1) / 2], [0, 0.9 * w, (h - 1) / 2], [0, 0, 1]])
    poses = np.tile(np.eye(4), (t, 1, 1))
    poses[:, 0, 3] = np.arange(t) * 0.5
    n = cfg.lidar_points_per_sweep
    sweeps = [
        [
            (rng.random((n, 3), dtype=np.float32) * [80, 6, 78] + [-40 + 0.5 * k, -1, 1]).astype(
                np.float32
            )
            for _ in range(cfg.lidar_sweeps)
        ]
        for k in range(t)
    ]
    return {"rgb": rgb, "depth": depth, "ids": ids, "K": K, "poses": poses, "sweeps": sweeps}


def street_scene() -> hdmap.HDMapScene:
    """A 300 m street: eight lane lines of mixed styles, boundaries, crosswalks, poles."""
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
    """An OpenCV camera 1.7 m up, looking down +x, driving 0.5 m a frame."""
    poses = np.tile(np.eye(4), (t, 1, 1))
    poses[:, :3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]
    poses[:, 0, 3] = 5.0 + 0.5 * np.arange(t)
    poses[:, 2, 3] = 1.7
    return poses


def pixel_agreement(reference: np.ndarray, candidate: np.ndarray, tolerance: int) -> tuple:
    """(over all pixels, over pixels drawn in either) where no channel differs by > tolerance."""
    close = np.abs(reference.astype(np.int16) - candidate.astype(np.int16)).max(-1) <= tolerance
    drawn = (reference.max(-1) > 0) | (candidate.max(-1) > 0)
    return float(close.mean()), float(close[drawn].mean())


# ---------------------------------------------------------------------------------- timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_device(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int) -> float:
    """Median milliseconds of fn() on the device (CUDA events; host clock on the CPU)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def time_host(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def copy_bandwidth(device: torch.device) -> float:
    """Device-to-device copy, bytes read + bytes written per second."""
    n = (1 << 30) if device.type == "cuda" else (1 << 26)
    src = torch.empty(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = time_device(lambda: dst.copy_(src), device, repeats=20, warmup=3)
    return 2 * n / (ms * 1e-3)


# ------------------------------------------------------------------------------ the runs


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()})"


def kornia_ops(device: torch.device):
    try:
        import kornia
    except ImportError:
        return None

    def canny(rgb: torch.Tensor) -> torch.Tensor:
        x = rgb.permute(0, 3, 1, 2).float().div_(255)
        return kornia.filters.canny(x, low_threshold=0.1, high_threshold=0.2)[1]

    def vis(rgb: torch.Tensor, preset: str, batch: int = 4) -> torch.Tensor:
        p = VIS_PRESETS[preset]
        _, h, w, _ = rgb.shape
        small = (h // p.pre_downscale, w // p.pre_downscale)
        down = (int(h / p.downup), int(w / p.downup))
        outs = []
        for i in range(0, rgb.shape[0], batch):
            x = rgb[i : i + batch].permute(0, 3, 1, 2).float().div_(255)
            x = F.interpolate(x, size=small, mode="area")
            k = p.d // 2 * 2 + 1
            x = kornia.filters.bilateral_blur(
                x, (k, k), p.sigma_color / 255, (p.sigma_space, p.sigma_space),
                border_type="reflect", color_distance_type="l1",
            )  # fmt: skip
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
            x = F.interpolate(x, size=down, mode="bicubic", antialias=True)
            x = F.interpolate(x, size=(h, w), mode="bicubic", antialias=True)
            outs.append(x.clamp_(0, 1).mul_(255).round_().to(torch.uint8))
        return torch.cat(outs)

    return {"canny": canny, "vis": vis, "version": kornia.__version__}


def edge_f1(ref: np.ndarray, out: np.ndarray) -> float:
    a, b = ref > 0, out > 0
    denom = np.count_nonzero(a) + np.count_nonzero(b)
    return 1.0 if denom == 0 else 2 * np.count_nonzero(a & b) / denom


def vis_ssim(ref: np.ndarray, out: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return min(
        structural_similarity(r, o, channel_axis=-1, data_range=255)
        for r, o in zip(ref, out, strict=True)
    )


def run(cfg: Config) -> dict:
    device = torch.device(cfg.device)
    chunk = make_chunk(cfg)
    t, h, w = cfg.frames, cfg.height, cfg.width
    rgb = torch.from_numpy(chunk["rgb"]).to(device)
    depth = torch.from_numpy(chunk["depth"]).to(device)
    ids = torch.from_numpy(chunk["ids"]).to(device)
    K = torch.from_numpy(chunk["K"]).to(device)
    poses = torch.from_numpy(chunk["poses"]).to(device)
    points = [torch.from_numpy(np.concatenate(s)).to(device) for s in chunk["sweeps"]]
    palette = cpu.seg_palette(np.unique(chunk["ids"]), seed=0)
    n_points = sum(p.shape[0] for p in points)
    fixed = cpu.depth_range(chunk["depth"])
    scene = street_scene()
    hd_K = np.array([[0.7 * w, 0, w / 2], [0, 0.7 * w, h / 2], [0, 0, 1]])
    hd_poses = street_poses(t)
    hd_K_dev, hd_poses_dev = (
        torch.from_numpy(hd_K).to(device),
        torch.from_numpy(hd_poses).to(device),
    )

    ops: dict[str, Callable[[str], torch.Tensor]] = {
        "depth": lambda impl: dev.depth_control(depth, impl=impl),
        "depth_fixed_range": lambda impl: dev.depth_control(
            depth, min_m=fixed[0], max_m=fixed[1], impl=impl
        ),
        "seg": lambda impl: dev.seg_control(ids, palette, impl=impl),
        "edge": lambda impl: dev.edge_control(rgb, cfg.edge_preset, impl=impl),
        "vis": lambda impl: dev.vis_control(rgb, cfg.vis_preset, impl=impl),
        "lidar": lambda impl: dev.lidar_control(points, K, poses, h, w, impl=impl),
        "hdmap": lambda impl: dev.hdmap_control(scene, hd_K_dev, hd_poses_dev, h, w, impl=impl),
    }
    no_torch_path = {"hdmap"}  # dense per-pixel × per-segment: minutes at this size
    px = t * h * w
    floor_bytes = {
        "depth": px * (4 + 4 + 3),  # percentile pass reads depth once more
        "depth_fixed_range": px * (4 + 3),
        "seg": px * (4 + 3),
        "edge": px * (3 + 3),
        "vis": px * (3 + 3),
        "lidar": n_points * 12 + px * 3,
        "hdmap": px * 3,
    }
    whole = ("depth", "seg", "edge", "vis", "lidar", "hdmap")
    bandwidth = copy_bandwidth(device)
    results: dict = {
        "config": asdict(cfg),
        "device": device_name(device),
        "cpu_cores": os.cpu_count(),
        "opencv_threads": cv2.getNumThreads(),
        "opencv": cv2.__version__,
        "torch": torch.__version__,
        "triton": dev.HAS_TRITON,
        "copy_bandwidth_GBps": bandwidth / 1e9,
        "lidar_points": n_points,
        "ops": {},
        "checks": {},
    }
    print(f"device {results['device']}, copy bandwidth {bandwidth / 1e9:.0f} GB/s, "
          f"{t}×{h}×{w}, {n_points} LiDAR points", flush=True)  # fmt: skip

    # ---- OpenCV on the CPU, same chunk; its outputs are the reference for the checks
    cpu_ops = {
        "depth": lambda: cpu.depth_control(chunk["depth"]),
        "depth_fixed_range": lambda: cpu.depth_control(
            chunk["depth"], min_m=fixed[0], max_m=fixed[1]
        ),
        "seg": lambda: cpu.seg_control(chunk["ids"], palette),
        "edge": lambda: cpu.edge_control(chunk["rgb"], cfg.edge_preset),
        "vis": lambda: cpu.vis_control(chunk["rgb"], cfg.vis_preset),
        "lidar": lambda: np.stack([
            cpu.lidar_control(chunk["sweeps"][i], chunk["K"], chunk["poses"][i], h, w)
            for i in range(t)
        ]),
        "hdmap": lambda: np.stack([hdmap.render_hdmap(scene, hd_K, p, h, w) for p in hd_poses]),
    }  # fmt: skip
    cpu.vis_control(chunk["rgb"][:1], cfg.vis_preset)  # warm OpenCV's thread pool
    cpu_timing: dict[str, float] = {}
    ref: dict[str, np.ndarray] = {}
    earlier = json.loads(Path(cfg.cpu_timings_from).read_text()) if cfg.cpu_timings_from else {}
    for k, fn in cpu_ops.items():
        if k in earlier.get("ops", {}) and k != "hdmap":
            # Timed in an earlier run on the same chunk and host; only the outputs are needed.
            cpu_timing[k] = earlier["ops"][k]["opencv_ms"]
            ref[k] = fn() if k != "vis" else cpu.vis_control(chunk["rgb"][: cfg.check_frames])
            print(f"  {k}: OpenCV CPU {cpu_timing[k]:.1f} ms (from {cfg.cpu_timings_from})")
            continue
        t0 = time.perf_counter()
        ref[k] = fn()
        times = [(time.perf_counter() - t0) * 1e3]
        if cfg.cpu_repeats > 1:
            times.append(time_host(fn, cfg.cpu_repeats - 1))
        cpu_timing[k] = min(times)
        print(f"  {k}: OpenCV CPU {cpu_timing[k]:.1f} ms", flush=True)

    # ---- correctness: Triton path vs torch path on the device, both vs the CPU reference
    checks = results["checks"]
    n = min(cfg.check_frames, t)
    for k in ops:
        auto = ops[k]("auto").cpu().numpy()
        if k == "hdmap":
            for tol in (0, 8, 32):
                overall, drawn = pixel_agreement(ref[k], auto, tol)
                checks[f"hdmap: auto vs render_hdmap, agreement within {tol} levels"] = overall
                checks[f"hdmap: same, over drawn pixels within {tol} levels"] = drawn
            continue
        torch_path = ops[k]("torch").cpu().numpy()
        checks[f"{k}: auto vs torch path, differing bytes"] = int(
            np.count_nonzero(auto != torch_path)
        )
        if k == "vis":
            checks["vis: auto vs OpenCV recipe, min SSIM (first frames)"] = vis_ssim(
                ref[k][:n], auto[:n]
            )
            checks["vis: torch vs OpenCV recipe, min SSIM (first frames)"] = vis_ssim(
                ref[k][:n], torch_path[:n]
            )
        elif k == "edge":
            checks["edge: auto vs cv2.Canny, F1"] = edge_f1(ref[k], auto)
            checks["edge: auto vs cv2.Canny, differing pixels"] = int(
                np.count_nonzero(ref[k] != auto)
            )
        else:
            checks[f"{k}: auto vs CPU, differing bytes"] = int(np.count_nonzero(ref[k] != auto))
            checks[f"{k}: torch vs CPU, differing bytes"] = int(
                np.count_nonzero(ref[k] != torch_path)
            )
        del auto, torch_path
    for key, value in checks.items():
        print(f"  check {key}: {value}", flush=True)
    del ref

    # ---- device timings
    kornia = kornia_ops(device)
    results["kornia"] = None if kornia is None else kornia["version"]
    for k, fn in ops.items():
        row = {"floor_ms": floor_bytes[k] / bandwidth * 1e3, "opencv_ms": cpu_timing[k]}
        row["ours_ms"] = time_device(lambda fn=fn: fn("auto"), device, cfg.repeats, cfg.warmup)
        row["torch_ms"] = (
            None
            if k in no_torch_path
            else time_device(lambda fn=fn: fn("torch"), device, max(3, cfg.repeats // 3), 1)
        )
        results["ops"][k] = row
        print(f"  {k}: ours {row['ours_ms']:.3f} ms, torch {row['torch_ms']} ms", flush=True)
    if kornia is not None:
        results["ops"]["edge"]["kornia_ms"] = time_device(
            lambda: kornia["canny"](rgb), device, max(3, cfg.repeats // 3), 1
        )
        nk = min(cfg.kornia_vis_frames, t)
        ms = time_device(lambda: kornia["vis"](rgb[:nk], cfg.vis_preset), device, 3, 1)
        results["ops"]["vis"]["kornia_ms"] = ms * t / nk
        results["ops"]["vis"]["kornia_note"] = f"timed on {nk} frames, scaled to {t}"
        print(f"  kornia: edge {results['ops']['edge']['kornia_ms']:.2f} ms, "
              f"vis {results['ops']['vis']['kornia_ms']:.2f} ms", flush=True)  # fmt: skip
    results["ops"]["whole"] = {
        "ours_ms": time_device(
            lambda: [ops[k]("auto") for k in whole], device, cfg.repeats, cfg.warmup
        ),
        "floor_ms": sum(floor_bytes[k] for k in whole) / bandwidth * 1e3,
        # Where an op has no torch path (hdmap) or kornia op, the sums take our own time.
        "torch_ms": sum(
            results["ops"][k]["torch_ms"] or results["ops"][k]["ours_ms"] for k in whole
        ),
        "opencv_ms": sum(cpu_timing[k] for k in whole),
    }
    results["ops"]["whole"]["kornia_ms"] = sum(
        results["ops"][k].get("kornia_ms")
        or results["ops"][k]["torch_ms"]
        or results["ops"][k]["ours_ms"]
        for k in whole
    )
    try:
        results["stages"] = stage_times(cfg, rgb, depth, ids, palette, points, K, poses, device)
    except Exception as exc:  # a failed breakdown must not lose the figures above
        results["stages"] = {"error": repr(exc)}
        print(f"  stages failed: {exc!r}", flush=True)
    return results


def stage_times(cfg, rgb, depth, ids, palette, points, K, poses, device) -> dict:
    """Where the time of each op goes, and the tile shapes and kernel variants tried."""
    import importlib

    stages: dict = {}
    if not dev.HAS_TRITON or device.type != "cuda":
        return stages
    canny_mod = importlib.import_module("cosmos_sim.kernels.canny")
    vis_mod = importlib.import_module("cosmos_sim.kernels.vis")
    depth_mod = importlib.import_module("cosmos_sim.kernels.depth")
    seg_mod = importlib.import_module("cosmos_sim.kernels.seg")
    lidar_mod = importlib.import_module("cosmos_sim.kernels.lidar")
    from cosmos_sim.kernels import _canny_triton, _elementwise_triton, _lidar_triton, _vis_triton

    def timed(name: str, fn: Callable[[], object], repeats: int = cfg.repeats) -> None:
        try:
            stages[name] = time_device(fn, device, repeats, 1)
            print(f"  stage {name}: {stages[name]:.3f} ms", flush=True)
        except Exception as exc:
            stages[name] = repr(exc)
            print(f"  stage {name} failed: {exc!r}", flush=True)

    # depth and seg: the kernels alone, and the range search
    timed("depth_range", lambda: depth_mod.depth_range(depth))
    timed("depth_isfinite_check", lambda: bool(torch.isfinite(depth).all()))
    timed(
        "depth_kernel",
        lambda: _elementwise_triton.depth_to_grey_rgb(depth, 1.0, 80.0, 0.0125, 300.0),
    )
    lut = seg_mod.palette_lut(palette, device)
    timed("seg_palette_lut", lambda: seg_mod.palette_lut(palette, device))
    timed("seg_kernel", lambda: _elementwise_triton.lut_rgb(ids, lut))

    # canny
    low, high = cpu.EDGE_PRESETS[cfg.edge_preset]
    timed("canny_suppress", lambda: _canny_triton.suppress(rgb, low, high))
    state = _canny_triton.suppress(rgb, low, high)
    default_hysteresis_tile = _canny_triton.HYSTERESIS_TILE
    for tile in ((16, 16), (16, 32), (8, 32), (8, 16), (32, 16)):
        _canny_triton.HYSTERESIS_TILE = tile
        info: dict = {}
        _canny_triton.hysteresis(state.clone(), 64, info)
        stages[f"canny_hysteresis_{tile[0]}x{tile[1]}_launches"] = info["launches"]
        timed(
            f"canny_hysteresis_{tile[0]}x{tile[1]}",
            lambda: _canny_triton.hysteresis(state.clone(), 64),
        )
    _canny_triton.HYSTERESIS_TILE = default_hysteresis_tile
    timed("canny_torch_hysteresis", lambda: canny_mod.hysteresis_torch(state), 3)

    # vis
    p = VIS_PRESETS[cfg.vis_preset]
    h, w = cfg.height, cfg.width
    small_hw = (h // p.pre_downscale, w // p.pre_downscale)
    radius, coeff, space = vis_mod._bilateral_params(p.d, p.sigma_color, p.sigma_space, small_hw)
    space = space.to(device)
    timed("vis_shrink_pad_kernel", lambda: _vis_triton.shrink_pad(rgb, p.pre_downscale, radius))
    padded = _vis_triton.shrink_pad(rgb, p.pre_downscale, radius)
    default_tile = _vis_triton.BILATERAL_TILE, _vis_triton.BILATERAL_WARPS
    for warps in (4, 8):
        for tile in ((2, 128), (1, 128), (2, 256), (1, 256), (4, 128), (8, 64)):
            _vis_triton.BILATERAL_TILE, _vis_triton.BILATERAL_WARPS = tile, warps
            timed(
                f"vis_bilateral_{tile[0]}x{tile[1]}_w{warps}",
                lambda: _vis_triton.bilateral(padded, *small_hw, radius, coeff, space),
                3,
            )
    _vis_triton.BILATERAL_TILE, _vis_triton.BILATERAL_WARPS = default_tile
    bil = _vis_triton.bilateral(padded, *small_hw, radius, coeff, space)
    down_hw = (int(h / p.downup), int(w / p.downup))
    my = vis_mod._shrink_matrix(small_hw[0], h, down_hw[0], True, device)
    mx = vis_mod._shrink_matrix(small_hw[1], w, down_hw[1], True, device)
    shrink = "yh,tchw,xw->tcyx"
    timed("vis_fused_shrink_einsum", lambda: torch.einsum(shrink, my, bil, mx).round_())
    tiny = torch.einsum(shrink, my, bil, mx).round_().clamp_(0, 255)
    bands = (vis_mod._band(down_hw[0], h, device), vis_mod._band(down_hw[1], w, device))
    timed("vis_enlarge_kernel", lambda: _vis_triton.enlarge_to_rgb(tiny, h, w, *bands))

    # lidar
    timed("lidar_inputs", lambda: lidar_mod._inputs(points, K, poses))
    pts, frame, poses64, Ks = lidar_mod._inputs(points, K, poses)
    t = poses64.shape[0]
    timed("lidar_zbuffer_kernel",
          lambda: _lidar_triton.zbuffer(pts, frame, poses64, Ks, t, h, w, 3.0))  # fmt: skip
    zbits = _lidar_triton.zbuffer(pts, frame, poses64, Ks, t, h, w, 3.0)
    timed("lidar_finish_kernel", lambda: _lidar_triton.finish(zbits, 4, 76.0, 75.0, 3.4))
    return stages


def table(results: dict) -> str:
    rows = ["op | ours ms | torch ms | kornia ms | OpenCV CPU ms | floor ms | ours/floor | "
            "× OpenCV | × kornia", "---|---|---|---|---|---|---|---|---"]  # fmt: skip
    for k, r in results["ops"].items():
        kornia = r.get("kornia_ms")
        rows.append(" | ".join([
            k,
            f"{r['ours_ms']:.2f}",
            "—" if r["torch_ms"] is None else f"{r['torch_ms']:.2f}",
            "—" if kornia is None else f"{kornia:.2f}",
            f"{r.get('opencv_ms', float('nan')):.1f}",
            f"{r['floor_ms']:.3f}",
            f"{r['ours_ms'] / r['floor_ms']:.1f}",
            f"{r.get('opencv_ms', float('nan')) / r['ours_ms']:.0f}",
            "—" if kornia is None else f"{kornia / r['ours_ms']:.1f}",
        ]))  # fmt: skip
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--small", action="store_true", help="4×96×160 smoke run")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--cpu-repeats", type=int, default=1)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    parser.add_argument("--cpu-timings-from", default=None, help="reuse OpenCV timings (JSON)")
    args = parser.parse_args()
    cfg = Config(device=args.device, repeats=args.repeats, cpu_repeats=args.cpu_repeats,
                 out=args.out, cpu_timings_from=args.cpu_timings_from)  # fmt: skip
    if args.small:
        cfg.frames, cfg.height, cfg.width = 4, 96, 160
        cfg.lidar_points_per_sweep, cfg.kornia_vis_frames, cfg.repeats = 2048, 2, 3
    results = run(cfg)
    print()
    print(
        f"{results['device']}; host {results['cpu_cores']} cores, OpenCV {results['opencv']} "
        f"with {results['opencv_threads']} threads; kornia {results['kornia']}; "
        f"copy bandwidth {results['copy_bandwidth_GBps']:.0f} GB/s"
    )
    print(table(results))
    if cfg.out:
        Path(cfg.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
