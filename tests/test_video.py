import numpy as np
import pytest

from cosmos_sim.controls import seg_control, seg_palette
from cosmos_sim.types import SpecError
from cosmos_sim.video import (
    BUCKETS,
    COSMOS_FPS,
    bucket_size,
    read_video,
    resample_indices,
    resize_frames,
    scale_intrinsics,
    video_info,
    write_video,
)


def test_resample_30_to_16_fps_takes_the_frame_at_or_before_each_output_time():
    idx = resample_indices(30, 30.0)
    assert COSMOS_FPS == 16
    assert idx.tolist() == [0, 1, 3, 5, 7, 9, 11, 13, 15, 16, 18, 20, 22, 24, 26, 28]


def test_resample_10_to_16_fps_repeats_frames():
    idx = resample_indices(10, 10.0)
    assert idx.tolist() == [0, 0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 6, 7, 8, 8, 9]


def test_resample_keeps_the_duration_and_never_runs_past_the_source():
    assert resample_indices(16, 16).tolist() == list(range(16))
    assert len(resample_indices(93, 30)) == 50  # ceil(93 * 16 / 30)
    ntsc = resample_indices(300, 30000 / 1001)
    assert ntsc.max() <= 299 and np.all(np.diff(ntsc) >= 1)


def test_resample_rejects_bad_rates():
    with pytest.raises(SpecError, match="fps"):
        resample_indices(10, 0)
    with pytest.raises(SpecError, match="n_src"):
        resample_indices(0, 30)


@pytest.mark.parametrize(
    ("size", "bucket"),
    [
        ((1280, 720), (1280, 704)),
        ((1280, 704), (1280, 704)),
        ((1920, 1080), (1280, 704)),
        ((640, 480), (960, 704)),
        ((960, 704), (960, 704)),
        ((512, 512), (960, 960)),
        ((480, 640), (704, 960)),
        ((720, 1280), (704, 1280)),
    ],
)
def test_bucket_size_maps_cameras_to_cosmos_buckets(size, bucket):
    assert bucket_size(*size) == bucket
    assert bucket in BUCKETS.values()


@pytest.mark.parametrize("size", [(1280, 1024), (2000, 704), (640, 360 + 40)])
def test_bucket_size_refuses_an_aspect_without_a_bucket(size):
    with pytest.raises(SpecError) as err:
        bucket_size(*size)
    message = str(err.value)
    assert f"{size[0]}×{size[1]}" in message and "1280×704" in message and "960×704" in message


def test_seg_video_decodes_to_exactly_the_palette_colours(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 40, (5, 48, 64)).astype(np.int32)  # noisy ids: worst case for a codec
    palette = seg_palette(np.unique(ids), seed=0)
    frames = seg_control(ids, palette)
    path = write_video(tmp_path / "seg.mp4", frames, 16, lossless=True)
    decoded, fps = read_video(path)
    assert fps == 16
    assert np.array_equal(decoded, frames)
    assert {tuple(c) for c in decoded.reshape(-1, 3)} <= set(palette.values())
    info = video_info(path)
    assert info["codec"] == "h264" and info["pix_fmt"] == "gbrp" and info["frames"] == 5


def test_lossy_video_is_yuv420p_h264_at_the_given_fps(tmp_path):
    x = np.linspace(0, 255, 64, dtype=np.float32)
    frames = np.broadcast_to(x[None, None, :, None], (8, 48, 64, 3)).astype(np.uint8).copy()
    path = write_video(tmp_path / "rgb.mp4", frames, 16)
    decoded, fps = read_video(path)
    assert fps == 16 and decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 3
    assert video_info(path)["pix_fmt"] == "yuv420p"


def test_write_video_refuses_odd_sizes_for_yuv420p_and_bad_frames(tmp_path):
    with pytest.raises(SpecError, match="even"):
        write_video(tmp_path / "a.mp4", np.zeros((2, 15, 16, 3), np.uint8), 16)
    with pytest.raises(SpecError, match="uint8"):
        write_video(tmp_path / "b.mp4", np.zeros((2, 16, 16, 3), np.float32), 16)


@pytest.mark.slow
def test_bucket_size_encode_round_trip(tmp_path):
    w, h = BUCKETS["16:9"]
    rng = np.random.default_rng(1)
    ids = np.zeros((16, h, w), np.int32)
    for i in range(1, 30):
        y, x = rng.integers(0, h - 100), rng.integers(0, w - 100)
        ids[:, y : y + 100, x : x + 100] = i
    seg = seg_control(ids, seg_palette(range(30), seed=0))
    path = write_video(tmp_path / "seg.mp4", seg, COSMOS_FPS, lossless=True)
    decoded, _ = read_video(path)
    assert np.array_equal(decoded, seg)
    rgb_path = write_video(tmp_path / "rgb.mp4", seg, COSMOS_FPS)
    info = video_info(rgb_path)
    assert (info["width"], info["height"], info["frames"]) == (w, h, 16)


def test_resize_frames_nearest_keeps_ids_and_linear_keeps_depth_range():
    ids = np.zeros((2, 30, 40), np.int32)
    ids[:, 10:20, 10:30] = 123456
    out = resize_frames(ids, (64, 48), "nearest")
    assert out.shape == (2, 48, 64) and out.dtype == np.int32
    assert set(np.unique(out)) == {0, 123456}
    depth = np.linspace(1, 2, 30 * 40, dtype=np.float32).reshape(1, 30, 40)
    resized = resize_frames(depth, (20, 15), "linear")
    assert resized.dtype == np.float32 and 1 <= resized.min() and resized.max() <= 2


def test_scale_intrinsics_keeps_pixel_centres_at_integers():
    K = np.array([[100.0, 0, 63.5], [0, 100.0, 35.5], [0, 0, 1]])  # centred, OpenCV
    out = scale_intrinsics(K, (128, 72), (1280, 704))
    assert out[0, 0] == pytest.approx(1000) and out[1, 1] == pytest.approx(100 * 704 / 72)
    assert out[0, 2] == pytest.approx(639.5) and out[1, 2] == pytest.approx(351.5)


def test_seg_video_reads_back_exactly_through_imageio_ffmpeg_as_cosmos_reads_it(tmp_path):
    iio = pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    ids = np.random.default_rng(2).integers(0, 25, (3, 32, 48)).astype(np.int32)
    palette = seg_palette(np.unique(ids), seed=4)
    frames = seg_control(ids, palette)
    path = write_video(tmp_path / "seg.mp4", frames, 16, lossless=True)
    reader = iio.get_reader(path, "ffmpeg")
    decoded = np.stack([frame for frame in reader])  # list(reader) trips on len() == inf
    reader.close()
    assert np.array_equal(decoded, frames)
