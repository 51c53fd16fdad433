"""Video I/O at Cosmos' conventions: 16 fps, resolution buckets, mp4 that Cosmos can read.

- `bucket_size` maps a camera size to its Cosmos resolution bucket (shared by Transfer 1 and
  2.5). A camera's aspect ratio must be within `BUCKET_ASPECT_TOLERANCE` (3 %, relative) of a
  bucket's nominal ratio (16:9, 4:3, 1:1, 3:4, 9:16); the buckets' own pixel sizes (1280×704
  is 1.818, 2.3 % off 16:9) are accepted too. Anything else is an error rather than a
  silent stretch.
- `resample_indices` picks, for each output frame at `fps_dst`, the nearest source frame at
  or before its time (a sample-and-hold resampler: no frame blending, so seg ids and edges
  stay exact).
- `write_video` writes H.264 mp4 through PyAV: `yuv420p` (lossy, CRF 18) for natural images,
  `libx264rgb` with qp=0 (`rgb24`, bit-exact RGB) when `lossless=True`. yuv444p qp=0 is *not*
  RGB-lossless (the RGB↔YUV conversion rounds), which is why seg uses libx264rgb.
- `resize_frames` resizes to a bucket with the interpolation each kind of image needs
  (nearest for ids, area for downscaled RGB, bilinear for depth and upscaling).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from queue import Queue

import cv2
import numpy as np

from cosmos_sim.types import SpecError

COSMOS_FPS = 16
"""Frame rate of the Cosmos Transfer 2.5 models; control clips are resampled to it."""

FRAMES_PER_CHUNK = 93
"""Transfer 2.5 frames per chunk (24 latent frames × 4 − 3)."""

BUCKETS: dict[str, tuple[int, int]] = {
    "16:9": (1280, 704),
    "4:3": (960, 704),
    "1:1": (960, 960),
    "3:4": (704, 960),
    "9:16": (704, 1280),
}
"""Cosmos 720p resolution buckets, aspect name -> (width, height)."""

BUCKET_ASPECT_TOLERANCE = 0.03
"""Largest relative difference between a camera's width/height and a bucket's nominal ratio."""

_NOMINAL = {name: int(name.split(":")[0]) / int(name.split(":")[1]) for name in BUCKETS}

RESIZE_KINDS = ("nearest", "area", "linear")


def bucket_size(width: int, height: int) -> tuple[int, int]:
    """(W, H) of the Cosmos bucket for a `width`×`height` camera; SpecError if none fits."""
    if width <= 0 or height <= 0:
        raise SpecError(f"camera size {width}×{height}: width and height must be positive")
    aspect = width / height
    name, rel = min(
        ((n, abs(aspect - r) / r) for n, r in _NOMINAL.items()), key=lambda item: item[1]
    )
    bw, bh = BUCKETS[name]
    if rel <= BUCKET_ASPECT_TOLERANCE or (width * bh == height * bw):
        return bw, bh
    listing = ", ".join(f"{n} {w}×{h}" for n, (w, h) in BUCKETS.items())
    raise SpecError(
        f"camera size {width}×{height} (aspect {aspect:.3f}) has no Cosmos resolution bucket "
        f"(within {BUCKET_ASPECT_TOLERANCE:.0%}); buckets are {listing}. "
        "Set the camera's width/height to one of these aspect ratios"
    )


def resample_indices(n_src: int, fps_src: float, fps_dst: float = COSMOS_FPS) -> np.ndarray:
    """Source frame index for each output frame when resampling `fps_src` -> `fps_dst`.

    Output frame k is at time k / fps_dst and shows source frame floor(k · fps_src / fps_dst),
    the nearest source frame at or before that time. Output frames cover the source's
    duration n_src / fps_src: there are ceil(n_src · fps_dst / fps_src) of them.
    """
    if n_src <= 0:
        raise SpecError(f"resample_indices: n_src must be > 0, got {n_src}")
    if not (fps_src > 0 and fps_dst > 0):
        raise SpecError(f"resample_indices: fps must be > 0, got {fps_src} -> {fps_dst}")
    # Exact rational arithmetic: 29.97 or 1/3 s ticks must not drift by float rounding.
    src = Fraction(fps_src).limit_denominator(1_000_000)
    dst = Fraction(fps_dst).limit_denominator(1_000_000)
    n_out = math.ceil(n_src * dst / src)
    ratio = src / dst
    idx = np.array([math.floor(k * ratio) for k in range(n_out)], dtype=np.int64)
    return np.minimum(idx, n_src - 1)


def _as_video(frames: np.ndarray | Sequence[np.ndarray], name: str = "frames") -> np.ndarray:
    arr = np.asarray(frames)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise SpecError(f"{name}: expected uint8 T×H×W×3 RGB, got {arr.dtype} {arr.shape}")
    if arr.shape[0] == 0:
        raise SpecError(f"{name}: no frames to write")
    return arr


class VideoWriter:
    """Writes RGB frames to an H.264 mp4 one at a time (see module doc for the two modes).

    Use as a context manager; `write` takes uint8 H×W×3 frames of one size, fixed by the first
    frame. Streaming keeps long clips out of memory.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        *,
        lossless: bool = False,
        crf: int = 18,
        preset: str = "medium",
    ) -> None:
        self.path = Path(path)
        self.fps = fps
        self.lossless = lossless
        quality = {"qp": "0"} if lossless else {"crf": str(crf)}
        self.options = {**quality, "preset": preset}
        self.frames_written = 0
        self._container = None
        self._stream = None

    def write(self, frame: np.ndarray) -> None:
        import av  # PyAV: heavy, and only needed here

        arr = np.asarray(frame)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] != 3:
            raise SpecError(
                f"VideoWriter: expected a uint8 H×W×3 RGB frame, got {arr.dtype} {arr.shape}"
            )
        h, w = arr.shape[:2]
        if self._stream is None:
            if not self.lossless and (w % 2 or h % 2):
                raise SpecError(
                    f"write_video: yuv420p needs even width and height, got {w}×{h}; resize "
                    "to a bucket first or pass lossless=True"
                )
            self._container = av.open(str(self.path), mode="w")
            codec = "libx264rgb" if self.lossless else "libx264"
            rate = Fraction(self.fps).limit_denominator(1001)
            self._stream = self._container.add_stream(codec, rate=rate)
            self._stream.pix_fmt = "rgb24" if self.lossless else "yuv420p"
            self._stream.options = self.options
            self._stream.width, self._stream.height = w, h
        elif (h, w) != (self._stream.height, self._stream.width):
            raise SpecError(
                f"VideoWriter: frame {self.frames_written} is {w}×{h} but the video is "
                f"{self._stream.width}×{self._stream.height}"
            )
        frame_av = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
        for packet in self._stream.encode(frame_av):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
        if self._container is not None:
            self._container.close()
        self._container = self._stream = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:  # keep what was encoded so far, but never mask the error in flight
            with contextlib.suppress(Exception):
                self.close()


STREAM_PRESET = "veryfast"
"""x264 preset of the streamed pipeline's control videos. Against "medium" (measured on a
1280×704 clip, 2-core machine): encoder memory at steady state about half (its lookahead is
10 frames, not 40), encoding 1.3–4× faster, files up to ~1.35× larger at the same crf / qp=0
(lossless stays bit-exact: the preset changes the search, not the result)."""


class ParallelVideoWriters:
    """Several mp4s encoded at once, each by a `VideoWriter` on a thread of its own.

    `write(key, frames)` hands a uint8 T×H×W×3 batch to that video's thread and returns at
    once unless `depth` batches already wait there (bounded memory); libx264 and PyAV
    release the GIL, so the videos encode in parallel with each other and with whatever the
    caller computes next. `close()` flushes every video and raises the first encoder error.
    """

    def __init__(self, videos: dict[str, dict], *, depth: int = 1) -> None:
        self._error: BaseException | None = None
        self._queues: dict[str, Queue] = {}
        self._threads: list[threading.Thread] = []
        self.writers: dict[str, VideoWriter] = {}
        for key, options in videos.items():
            writer = VideoWriter(**options)
            queue: Queue = Queue(maxsize=depth)
            thread = threading.Thread(
                target=self._encode, args=(writer, queue), name=f"encode-{key}", daemon=True
            )
            self.writers[key], self._queues[key] = writer, queue
            self._threads.append(thread)
            thread.start()

    def _encode(self, writer: VideoWriter, queue: Queue) -> None:
        try:
            while (frames := queue.get()) is not None:
                if self._error is None:
                    for frame in frames:
                        writer.write(frame)
            writer.close()
        except BaseException as exc:  # raised in the caller's thread by write/close
            self._error = self._error or exc
            with contextlib.suppress(Exception):
                writer.close()
            while queue.get() is not None:  # keep draining so the caller never blocks
                pass

    def write(self, key: str, frames: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._queues[key].put(frames)

    def close(self) -> None:
        for queue in self._queues.values():
            queue.put(None)
        for thread in self._threads:
            thread.join()
        if self._error is not None:
            raise self._error


def write_video(
    path: str | Path,
    frames: np.ndarray | Sequence[np.ndarray],
    fps: float,
    *,
    lossless: bool = False,
    crf: int = 18,
    preset: str = "medium",
) -> Path:
    """Write uint8 T×H×W×3 RGB frames to an H.264 mp4 (see module doc for the two modes)."""
    arr = _as_video(frames)
    with VideoWriter(path, fps, lossless=lossless, crf=crf, preset=preset) as writer:
        for frame in arr:
            writer.write(frame)
    return Path(path)


def iter_video(path: str | Path) -> Iterator[np.ndarray]:
    """Decode a video frame by frame as uint8 H×W×3 RGB (long clips stay out of memory)."""
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_video: {path} does not exist")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """Decode a video to (uint8 T×H×W×3 RGB frames, fps)."""
    frames = list(iter_video(path))
    if not frames:
        raise SpecError(f"read_video: {path} has no video frames")
    return np.stack(frames), video_fps(path)


def video_fps(path: str | Path) -> float:
    """Frame rate of a video's first stream."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return float(stream.average_rate or stream.guessed_rate or 0)


def video_info(path: str | Path) -> dict[str, object]:
    """Codec, pixel format, size, frame count and fps of a video's first stream."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.demux(stream) if _.size)
        return {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "frames": frames,
            "fps": float(stream.average_rate or 0),
        }


_CV_INTERP = {"nearest": cv2.INTER_NEAREST, "area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR}


def resize_frames(frames: np.ndarray, size: tuple[int, int], kind: str) -> np.ndarray:
    """Resize a T×H×W or T×H×W×C stack to `size` = (W, H); a copy when already that size.

    kind: "nearest" for ids and labels (no new values), "area" for RGB (area when shrinking,
    bilinear when enlarging), "linear" for depth and other continuous fields.
    """
    if kind not in _CV_INTERP:
        raise SpecError(f"resize_frames: kind {kind!r} is not one of {RESIZE_KINDS}")
    arr = np.asarray(frames)
    if arr.ndim not in (3, 4):
        raise SpecError(f"resize_frames: expected T×H×W[×C], got shape {arr.shape}")
    w, h = size
    src_h, src_w = arr.shape[1:3]
    if (src_h, src_w) == (h, w):
        return arr.copy()
    interp = _CV_INTERP[kind]
    if kind == "area" and (w > src_w or h > src_h):
        interp = cv2.INTER_LINEAR
    return np.stack([cv2.resize(img, (w, h), interpolation=interp) for img in arr])


def scale_intrinsics(
    K: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int]
) -> np.ndarray:
    """K for an image resized from `src_size` to `dst_size` (both (W, H)).

    Pixel centres sit at integer coordinates (OpenCV, as the bridges' K), so the image
    spans [-0.5, W - 0.5]: focal lengths scale with the size and c' = (c + 0.5) · s − 0.5.
    """
    sx = dst_size[0] / src_size[0]
    sy = dst_size[1] / src_size[1]
    out = np.array(K, dtype=np.float64, copy=True)
    out[0, :] *= sx
    out[1, :] *= sy
    out[0, 2] += 0.5 * sx - 0.5
    out[1, 2] += 0.5 * sy - 0.5
    return out
