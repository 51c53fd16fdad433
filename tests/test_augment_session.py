"""Transfer sessions: a resident backend fed chunk by chunk (cosmos_sim.transfer.base)."""

from __future__ import annotations

import numpy as np
import pytest
from fakes.clips import write_test_clip

from cosmos_sim.controls import depth_control, seg_control, seg_palette
from cosmos_sim.transfer import (
    Chunk,
    ChunkSession,
    Clip,
    SessionOptions,
    TransferSession,
    make_backend,
    start_session,
)
from cosmos_sim.transfer.appearance import AppearanceSession
from cosmos_sim.types import SpecError

W, H = 128, 96


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Clip:
    folder = tmp_path_factory.mktemp("clip") / "front"
    write_test_clip(folder, width=W, height=H, frames=9)
    return Clip(folder)


def _chunks(clip: Clip, sizes: list[int]):
    rgb, seg, depth = clip.read("rgb"), clip.read("seg"), clip.read("depth")
    start = 0
    for size in sizes:
        part = slice(start, start + size)
        controls = {"seg": seg[part], "depth": depth[part]}
        yield Chunk(np.arange(start, start + size), rgb[part], controls, clip.palette)
        start += size


def _options(clip: Clip, **kw) -> SessionOptions:
    return SessionOptions(clip.camera, W, H, prompt=kw.pop("prompt", "a sunny day"), **kw)


def test_appearance_stream_in_any_chunking_equals_the_whole_clip(clip, tmp_path):
    backend = make_backend("appearance")
    whole = list(backend.transfer(clip, "a sunny day", 3, tmp_path))
    session = start_session(backend, _options(clip, seed=3))
    assert isinstance(session, AppearanceSession) and isinstance(session, TransferSession)
    out = []
    for chunk in _chunks(clip, [2, 4, 1, 2]):
        session.push(chunk)
        out += session.pull()
    session.close()
    assert [f.tick for f in out] == list(range(9))
    for streamed, reference in zip(out, whole, strict=True):
        np.testing.assert_array_equal(streamed.frame, reference)


def test_a_new_instance_mid_stream_leaves_the_others_looking_the_same():
    rng = np.random.default_rng(0)
    ids = np.ones((2, H, W), np.int32)
    ids[:, :, : W // 2] = 7
    rgb = rng.integers(0, 255, (2, H, W, 3), dtype=np.uint8)
    depth = depth_control(np.full((2, H, W), 2.0, np.float32), min_m=1, max_m=4)
    later = ids.copy()
    later[:, :10, -10:] = 99  # a new instance in a corner of instance 1
    options = SessionOptions("front", W, H, prompt="day")
    streams = {}
    for name, second in (("same", ids), ("new id", later)):
        session = start_session(make_backend("appearance"), options)
        session.push(
            Chunk(
                np.array([0, 1]),
                rgb,
                {"seg": seg_control(ids, seg_palette([1, 7], 0)), "depth": depth},
                seg_palette([1, 7], 0),
            )
        )
        palette = seg_palette(np.unique(second), 0)
        session.push(
            Chunk(
                np.array([2, 3]),
                rgb,
                {"seg": seg_control(second, palette), "depth": depth},
                palette,
            )
        )
        streams[name] = [f.frame for f in session.pull()]
    away = np.zeros((H, W), bool)
    away[:, : W // 2 - 4] = True  # instance 7, away from where its lighting blurs into 1
    for a, b in zip(streams["same"], streams["new id"], strict=True):
        diff = np.abs(a.astype(int) - b.astype(int))[away]
        assert diff.max() <= 2, "instance 7 changed look when another appeared"
    assert not np.array_equal(streams["same"][2], streams["new id"][2])


def test_a_backend_without_start_streams_through_its_per_clip_transfer(clip):
    backend = make_backend("appearance")
    chunked = ChunkSession(backend, _options(clip))
    in_process = start_session(backend, _options(clip))
    got, want = [], []
    for chunk in _chunks(clip, [4, 5]):
        chunked.push(chunk)
        in_process.push(chunk)
        got += chunked.pull(wait=True)
        want += in_process.pull()
    assert [f.tick for f in got] == list(range(9))
    for a, b in zip(got, want, strict=True):
        # the same renderer; only the lossy depth video of the temporary clip differs
        assert np.abs(a.frame.astype(int) - b.frame.astype(int)).mean() < 3


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda c: Chunk(np.array([0]), np.zeros((1, H, W + 2, 3), np.uint8),
                         {"seg": np.zeros((1, H, W + 2, 3), np.uint8),
                          "depth": np.zeros((1, H, W + 2, 3), np.uint8)}, {0: (0, 0, 0)}),
         "resize"),
        (lambda c: next(_chunks(c, [1])).__class__(
            np.array([0]), np.zeros((1, H, W, 3), np.uint8), {}), "needs"),
        (lambda c: Chunk(np.array([0]), np.zeros((1, H, W, 3), np.uint8),
                         {"seg": np.zeros((1, H, W, 3), np.uint8)}), "palette"),
        (lambda c: Chunk(np.array([1, 0]), np.zeros((2, H, W, 3), np.uint8)), "increase"),
        (lambda c: Chunk(np.array([0]), np.zeros((1, H, W, 3), np.float32)), "uint8"),
        (lambda c: Chunk(np.array([0]), np.zeros((1, H, W, 3), np.uint8),
                         {"lidr": np.zeros((1, H, W, 3), np.uint8)}), "lidr"),
        (lambda c: Chunk(np.array([0, 1]), np.zeros((1, H, W, 3), np.uint8)), "one"),
    ],
)  # fmt: skip
def test_bad_chunks_are_refused_naming_the_field(clip, make, match):
    session = start_session(make_backend("appearance"), _options(clip))
    with pytest.raises(SpecError, match=match):
        session.push(make(clip))


def test_a_tick_pushed_twice_is_refused(clip):
    session = start_session(make_backend("appearance"), _options(clip))
    first = next(_chunks(clip, [2]))
    session.push(first)
    with pytest.raises(SpecError, match="each tick once"):
        session.push(first)
    assert [f.tick for f in session.pull()] == [0, 1]  # what was rendered is kept
