"""`device` in `write_clips` and the sidecar: both take their control functions from
`controls.backend.control_backend`, which on a CUDA machine gives every modality (LiDAR and
HD map included) to the device kernels, with outputs within the parity tolerances of the
kernel tests (depth, seg, LiDAR exact; Canny F1 >= 0.95; vis SSIM >= 0.98; HD map pixel
agreement >= 0.98).

This machine has no GPU: `cuda_visible` makes the device selection see one and hands the
kernels CPU tensors, so the kernels' torch path runs (the one the parity tests pin), and
spies count the kernel calls.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity
from test_clips import synthetic_episode
from test_kernels import edge_f1, lidar_clip, pixel_agreement, street_poses, street_scene
from typer.testing import CliRunner

from cosmos_sim import kernels
from cosmos_sim.cli import app
from cosmos_sim.controls import backend as backends
from cosmos_sim.controls import clips, hdmap
from cosmos_sim.controls.lidar import lidar_control_clip
from cosmos_sim.kernels import clip_backend as device_backend
from cosmos_sim.sidecar import Client, Server
from cosmos_sim.types import SpecError
from cosmos_sim.video import read_video

KERNELS = {
    "depth": "depth_control",
    "seg": "seg_control",
    "edge": "edge_control",
    "vis": "vis_control",
    "lidar": "lidar_control",
    "hdmap": "hdmap_control",
}


@pytest.fixture
def cuda_visible(monkeypatch) -> Counter:
    """The device selection sees a GPU; the kernels get CPU tensors; returns kernel calls."""
    monkeypatch.setattr(kernels, "available_device", lambda: "cuda")
    monkeypatch.setattr(device_backend, "resolve_device", lambda device="auto": torch.device("cpu"))
    calls: Counter = Counter()

    def spy(modality, kernel):
        def counted(*args, **kwargs):
            calls[modality] += 1
            return kernel(*args, **kwargs)

        return counted

    for modality, name in KERNELS.items():
        monkeypatch.setattr(device_backend, name, spy(modality, getattr(device_backend, name)))
    return calls


def test_cuda_and_auto_pick_the_kernels_for_every_modality(cuda_visible):
    reference = backends.cpu_backend()
    assert set(reference) == set(clips.MODALITIES)
    assert backends.control_backend("cpu") == reference
    for device in ("auto", "cuda", "cuda:0"):
        chosen = backends.control_backend(device)
        assert set(chosen) == set(reference)
        assert all(chosen[m] is not reference[m] for m in reference), device


def test_device_names_are_checked():
    with pytest.raises(SpecError, match=r"device='tpu' is not known"):
        backends.control_backend("tpu")
    with pytest.raises(SpecError, match="device='cuda:x'"):
        backends.check_device("cuda:x")
    if kernels.available_device() == "cpu":
        assert backends.control_backend("auto") == backends.cpu_backend()
        with pytest.raises(SpecError, match="no CUDA device"):
            backends.control_backend("cuda")


def test_lidar_kernel_entry_equals_lidar_control_clip(cuda_visible, monkeypatch):
    monkeypatch.setattr(device_backend, "CLIP_BATCH", 2)  # 5 frames: batches of 2, 2, 1
    t, h, w = 5, 72, 128
    frames, K, poses = lidar_clip(t, h, w, seed=3)
    sweeps = [frame[0] for frame in frames] + [None, frames[0][1]]  # a tick without a sweep
    ticks = [0, 1, 3, 5, 6]
    Ks = [K @ np.diag([1 + 0.1 * i, 1 + 0.1 * i, 1]) for i in range(t)]  # focal lengths vary
    ref = lidar_control_clip(sweeps, Ks, list(poses), h, w, ticks=ticks)
    out = backends.control_backend("cuda")["lidar"](sweeps, Ks, list(poses), h, w, ticks=ticks)
    assert cuda_visible["lidar"] == 3
    assert (ref > 0).mean() > 0.1  # real returns in view
    np.testing.assert_array_equal(out, ref)


def test_hdmap_kernel_entry_agrees_with_render_hdmap_clip(cuda_visible, monkeypatch):
    monkeypatch.setattr(device_backend, "CLIP_BATCH", 2)
    scene, w, h = street_scene(), 128, 72
    K = np.array([[0.7 * w, 0, w / 2], [0, 0.7 * w, h / 2], [0, 0, 1]])
    poses = list(street_poses(3))
    car = {"class": "Car", "corners": hdmap.cuboid_corners([25.0, 3.0, 0.8], [4, 2, 1.6], 0.3)}
    dynamics = [hdmap.DynamicState(boxes=[car]), None, hdmap.DynamicState()]
    ref = hdmap.render_hdmap_clip(scene, [K] * 3, poses, h, w, dynamics)
    out = backends.control_backend("cuda")["hdmap"](scene, [K] * 3, poses, h, w, dynamics)
    assert cuda_visible["hdmap"] == 2
    assert out.shape == ref.shape and out.dtype == np.uint8
    overall, drawn = pixel_agreement(ref, out)
    assert (ref[0] != hdmap.render_hdmap(scene, K, poses[0], h, w)).any()  # the car is drawn
    assert overall >= 0.98 and drawn >= 0.95, (overall, drawn)


def test_hdmap_polygons_of_any_corner_count_go_to_the_kernel(cuda_visible):
    """compile_scene keeps at most 6 corners of a polygon's hull: the kernel takes them all."""
    geometry = hdmap.MapGeometry()
    geometry.road_markings.append(
        np.array([[15, -2, 0], [16, -2.8, 0], [17, -3, 0], [18, -2.8, 0], [19, -2, 0],
                  [19, 2, 0], [17, 3, 0], [15, 2, 0]], float)
    )  # fmt: skip
    scene, w, h = hdmap.compile_scene(geometry), 256, 144
    assert scene.poly_count.max() <= 6
    K = np.array([[0.7 * w, 0, w / 2], [0, 0.7 * w, h / 2], [0, 0, 1]])
    poses = list(street_poses(1))
    out = backends.control_backend("cuda")["hdmap"](scene, [K], poses, h, w)
    assert cuda_visible["hdmap"] == 1
    ref = hdmap.render_hdmap_clip(scene, [K], poses, h, w)
    assert pixel_agreement(ref, out)[0] >= 0.99
    # Seen at a grazing angle the polygon is a few pixels tall: cv2's anti-aliased fill
    # reaches about a pixel further than the kernel's, so compare the covered areas.
    lit_ref, lit_out = ref.max(-1) > 0, out.max(-1) > 0
    assert (lit_ref & lit_out).sum() / (lit_ref | lit_out).sum() >= 0.85


def test_write_clips_on_cuda_makes_the_lidar_video_of_the_cpu_path(cuda_visible, tmp_path):
    episode = synthetic_episode(tmp_path / "ep", ticks=3)
    for device in ("cpu", "auto"):
        clips.write_clips(
            episode, tmp_path / device, modalities=["lidar", "seg"], device=device, progress=False
        )
    assert cuda_visible["lidar"] == 1 and cuda_visible["seg"] == 1  # only the "auto" run
    for modality in ("lidar", "seg"):
        cpu, _ = read_video(tmp_path / "cpu" / "front" / f"{modality}.mp4")
        gpu, _ = read_video(tmp_path / "auto" / "front" / f"{modality}.mp4")
        assert cpu.max() > 0
        np.testing.assert_array_equal(gpu, cpu)  # lossless videos: the frames themselves


def test_write_clips_draws_the_hdmap_through_the_backend(tmp_path, monkeypatch):
    """The whole clip goes to backend["hdmap"] in one call, with each frame's K, pose and
    dynamic state (the kernel's torch path is minutes at 1280×704 on a CPU, so this pins the
    routing; the entry's parity is the test above)."""
    from test_clips_hdmap import STREET, _street_episode

    seen = []
    reference = backends.cpu_backend()

    def hdmap_entry(scene, Ks, poses, height, width, dynamics):
        seen.append((len(Ks), len(poses), len(dynamics), height, width))
        return reference["hdmap"](scene, Ks, poses, height, width, dynamics)

    monkeypatch.setattr(
        clips, "control_backend", lambda device: {**reference, "hdmap": hdmap_entry}
    )
    episode = _street_episode(tmp_path / "ep", ticks=3)
    clips.write_clips(episode, tmp_path / "out", modalities=["hdmap"], xodr=STREET, progress=False)
    assert seen == [(3, 3, 3, 704, 1280)]
    frames, _ = read_video(tmp_path / "out" / "front" / "hdmap.mp4")
    assert frames.shape[0] == 5 and frames.max() > 0


def sidecar_controls(server: Server) -> dict[str, np.ndarray]:
    """depth, seg, edge, vis and lidar for one 72×128 frame; hdmap of the street at 128×72."""
    from test_clips_hdmap import STREET

    rng = np.random.default_rng(2)
    rgb = np.stack([np.linspace(0, 255, 128)] * 72).astype(np.uint8)[..., None].repeat(3, -1)
    rgb[20:50, 30:90] = (200, 40, 40)
    rgb = np.clip(rgb + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8)
    ids = np.zeros((72, 128), np.int32)
    ids[20:50, 30:90] = 7
    depth = rng.uniform(1.0, 40.0, (72, 128)).astype(np.float32)
    frames, K, poses = lidar_clip(1, 72, 128)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = (0, -1, 0), (0, 0, -1), (1, 0, 0)
    pose[:3, 3] = (20.0, -1.75, 1.5)
    street_K = [[90.0, 0, 64], [0, 90.0, 36], [0, 0, 1]]
    server.data_dir.mkdir(parents=True, exist_ok=True)
    (server.data_dir / "street.xodr").write_bytes(STREET.read_bytes())
    with Client(server.endpoint, timeout_s=60) as c:
        images = c.controls(
            ["depth", "seg", "edge", "vis"], rgb=rgb, depth_m=depth, instance_id=ids
        )
        lidar = c.controls(
            ["lidar"], points_world=frames[0][0], K=K.tolist(), cam_to_world=poses[0].tolist(),
            height=72, width=128,
        )  # fmt: skip
        handle = c.call("hdmap_load", {"path": "street.xodr"}).result["hdmap"]
        street = c.controls(
            ["hdmap"], hdmap=handle, K=street_K, cam_to_world=pose.tolist(), width=128, height=72
        )
    return {**images, **lidar, **street}


def test_sidecar_on_cuda_runs_every_control_through_the_kernels(cuda_visible, tmp_path):
    pytest.importorskip("carla")  # hdmap_load reads the map with CARLA's parser
    outputs = {}
    for device in ("cpu", "auto"):
        with Server("tcp://127.0.0.1:*", data_dir=tmp_path / device, device=device) as srv:
            outputs[device] = sidecar_controls(srv)
        if device == "cpu":
            assert not cuda_visible  # a "cpu" server never touches the kernels
    assert dict(cuda_visible) == dict.fromkeys(KERNELS, 1)
    cpu, gpu = outputs["cpu"], outputs["auto"]
    for modality in ("depth", "seg", "lidar"):
        np.testing.assert_array_equal(gpu[modality], cpu[modality])
    assert cpu["lidar"].any() and cpu["hdmap"].any()
    assert edge_f1(cpu["edge"], gpu["edge"]) >= 0.95
    assert structural_similarity(cpu["vis"], gpu["vis"], channel_axis=-1) >= 0.98
    assert pixel_agreement(cpu["hdmap"], gpu["hdmap"])[0] >= 0.98


def test_server_device_is_checked_at_start(tmp_path):
    with pytest.raises(SpecError, match="device='tpu'"):
        Server("tcp://127.0.0.1:*", data_dir=tmp_path, device="tpu")
    result = CliRunner().invoke(app, ["serve", "--device", "tpu", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "device='tpu' is not known" in result.output
    if kernels.available_device() == "cpu":
        with pytest.raises(SpecError, match="no CUDA device"):
            Server("tcp://127.0.0.1:*", data_dir=tmp_path, device="cuda")
