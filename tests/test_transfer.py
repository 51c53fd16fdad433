"""Transfer protocol, run_transfer and the appearance backend (classical randomisation)."""

import json
import threading
import time

import numpy as np
import pytest
from fakes.clips import write_test_clip
from typer.testing import CliRunner

from cosmos_sim.cli import app
from cosmos_sim.controls import save_palette, seg_control, seg_palette
from cosmos_sim.transfer import (
    Clip,
    ClipError,
    SegDecoder,
    find_clips,
    prefetch,
    register_backend,
    resolve_prompts,
    run_transfer,
)
from cosmos_sim.transfer.appearance import (
    AppearanceRenderer,
    look_from_prompt,
    material,
)
from cosmos_sim.types import SpecError
from cosmos_sim.video import read_video, video_info, write_video

W, H = 128, 64


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    write_test_clip(root / "front", width=W, height=H, frames=6)
    write_test_clip(root / "side", width=W, height=H, frames=6, seed=3)
    return root


@pytest.fixture(scope="module")
def static_clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("static")
    return write_test_clip(root / "front", width=W, height=H, frames=8, static=True)


def test_seg_decoder_maps_colours_back_to_ids():
    ids = np.array([[0, 0, 7], [12, 7, 3]], dtype=np.int32)
    palette = seg_palette(np.unique(ids), seed=5)
    decoder = SegDecoder(palette)
    assert np.array_equal(decoder.ids_of(seg_control(ids, palette)), ids)


def test_seg_decoder_refuses_colours_outside_the_palette():
    palette = seg_palette([0, 1], seed=0)
    seg = seg_control(np.array([[0, 1]], np.int32), palette)
    seg[0, 1] ^= 1  # one bit off: what a lossy re-encode does
    with pytest.raises(ClipError, match="not in the palette"):
        SegDecoder(palette).index(seg)


def test_clip_reads_ids_from_the_lossless_seg_video(tmp_path):
    ids = np.zeros((3, 16, 32), np.int32)
    ids[:, 4:9, 3:20] = 41
    ids[1, 10:, 20:] = 9
    palette = seg_palette(np.unique(ids), seed=1)
    folder = tmp_path / "cam"
    folder.mkdir()
    save_palette(palette, folder / "seg_palette.json")
    write_video(folder / "rgb.mp4", np.zeros((3, 16, 32, 3), np.uint8), 16)
    write_video(folder / "seg.mp4", seg_control(ids, palette), 16, lossless=True)
    assert np.array_equal(np.stack(list(Clip(folder).instance_ids())), ids)


def test_find_clips_explains_an_empty_folder(tmp_path):
    with pytest.raises(ClipError, match="cosmos-sim controls"):
        find_clips(tmp_path)


def test_appearance_writes_one_frame_per_clip_frame_with_a_manifest(clips, tmp_path):
    out = run_transfer(clips, tmp_path / "out", prompt="a foggy sunset", seed=4)
    manifest = json.loads((out / "transfer.json").read_text())
    assert manifest["backend"] == "appearance"
    assert manifest["complete"] is True
    assert manifest["seed"] == 4
    assert manifest["backend_settings"]["method"] == "classical appearance randomisation"
    assert "Cosmos" not in manifest["backend_settings"]["method"]
    for camera in ("front", "side"):
        info = video_info(out / camera / "output.mp4")
        assert (info["width"], info["height"], info["frames"]) == (W, H, 6)
        assert info["fps"] == 16
        assert manifest["cameras"][camera]["prompt"] == "a foggy sunset"


def test_appearance_is_deterministic_per_seed_and_differs_across_seeds(clips, tmp_path):
    runs = {
        name: read_video(run_transfer(clips, tmp_path / name, seed=seed) / "front" / "output.mp4")[
            0
        ]
        for name, seed in (("a", 1), ("b", 1), ("c", 2))
    }
    assert np.array_equal(runs["a"], runs["b"])
    assert np.abs(runs["a"].astype(int) - runs["c"]).mean() > 5


def test_same_instance_does_not_flicker_when_the_sim_is_still(static_clip, tmp_path):
    out = run_transfer(static_clip, tmp_path / "out", prompt="sunny day", seed=0)
    frames = read_video(out / "front" / "output.mp4")[0].astype(np.float64)
    ids = np.stack(list(Clip(static_clip).instance_ids()))
    for inst in np.unique(ids[0]):
        mask = ids[0] == inst
        means = np.stack([f[mask].mean(axis=0) for f in frames])  # T×3 mean colour
        assert np.abs(means - means.mean(axis=0)).max() < 1.5, inst


def test_materials_are_keyed_by_instance_id_and_seed():
    assert material(12, seed=3) == material(12, seed=3)
    assert material(12, seed=3) != material(12, seed=4)
    assert material(12, seed=3) != material(13, seed=3)
    look, _ = look_from_prompt("", 0)
    small = AppearanceRenderer(32, 16, np.array([0, 5, 12]), look, 3)
    large = AppearanceRenderer(32, 16, np.array([0, 1, 2, 12, 99]), look, 3)
    assert np.array_equal(small.albedo[2], large.albedo[3])  # id 12 in both


def test_prompt_keywords_select_presets():
    assert look_from_prompt("a rainy night in the city", 0)[0].name == "night+rain"
    assert look_from_prompt("Foggy SUNSET", 0)[0].name == "sunset+fog"
    assert look_from_prompt("a robot arm", 0)[0].name == "day+clear"
    assert look_from_prompt("snow at dawn", 0)[1] == ["snow", "dawn"]


def test_night_is_darker_than_day(clips, tmp_path):
    day = read_video(run_transfer(clips, tmp_path / "d", prompt="day") / "front" / "output.mp4")
    night = read_video(run_transfer(clips, tmp_path / "n", prompt="night") / "front" / "output.mp4")
    assert night[0].mean() < 0.6 * day[0].mean()


def test_appearance_needs_seg_and_depth(tmp_path):
    folder = write_test_clip(tmp_path / "clips" / "front", width=W, height=H, frames=2)
    (folder / "depth.mp4").unlink()
    with pytest.raises(ClipError, match=r"no depth\.mp4.*--modalities") as err:
        run_transfer(tmp_path / "clips", tmp_path / "out")
    assert "appearance backend" in str(err.value)


class ShortBackend:
    """A test backend that drops the last frame: run_transfer must notice."""

    name = "short"

    def describe(self):
        return {}

    def transfer(self, clip, prompt, seed, workdir):
        frames = list(clip.frames("rgb"))
        return frames[:-1]


def test_a_short_backend_fails_naming_both_counts_and_keeps_its_output(clips, tmp_path):
    register_backend("short", ShortBackend)
    with pytest.raises(SpecError, match=r"returned 5 frames .* which has 6"):
        run_transfer(clips, tmp_path / "out", backend="short")
    assert (tmp_path / "out" / "front" / "output.mp4").is_file()
    assert json.loads((tmp_path / "out" / "transfer.json").read_text())["complete"] is False


def test_unknown_backend_lists_the_known_ones(clips, tmp_path):
    with pytest.raises(SpecError, match="appearance"):
        run_transfer(clips, tmp_path / "out", backend="magic")


def test_prompt_files_give_one_prompt_per_camera(clips, tmp_path):
    found = find_clips(clips)
    lines = tmp_path / "prompts.txt"
    lines.write_text("rain\nsnow\n")
    assert resolve_prompts(found, prompts=lines) == {"front": "rain", "side": "snow"}
    mapping = tmp_path / "prompts.json"
    mapping.write_text(json.dumps({"side": "fog", "front": "night"}))
    assert resolve_prompts(found, prompts=mapping) == {"front": "night", "side": "fog"}


def test_a_prompt_file_with_the_wrong_count_is_refused(clips, tmp_path):
    lines = tmp_path / "prompts.txt"
    lines.write_text("rain\nsnow\nfog\n")
    with pytest.raises(SpecError, match=r"3 prompts but there are 2 clips \(front, side\)"):
        run_transfer(clips, tmp_path / "out", prompts=lines)
    assert not (tmp_path / "out").exists()


def test_clip_spec_prompt_is_the_default(clips):
    (clips / "front" / "transfer25.json").write_text(json.dumps({"prompt": "from the spec"}))
    try:
        assert resolve_prompts(find_clips(clips))["front"] == "from the spec"
    finally:
        (clips / "front" / "transfer25.json").unlink()


def test_prefetch_keeps_order_and_hands_errors_to_the_consumer():
    def items():
        yield from range(5)
        raise RuntimeError("decoder broke")

    got = []
    with pytest.raises(RuntimeError, match="decoder broke"):
        for item in prefetch(items(), depth=2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]


def test_prefetch_stops_its_thread_when_the_consumer_stops():
    stream = prefetch(iter(range(10_000)), depth=2)
    assert next(stream) == 0
    stream.close()
    deadline = time.monotonic() + 5
    while any(t.name == "prefetch" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "prefetch thread still running"
        time.sleep(0.01)


def test_cli_transfer_runs_and_reports_bad_prompt_files(clips, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["transfer", str(clips), "--out", str(tmp_path / "a"), "--seed", "2"])
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "a" / "transfer.json").read_text())["seed"] == 2
    lines = tmp_path / "prompts.txt"
    lines.write_text("only one\n")
    bad = runner.invoke(
        app, ["transfer", str(clips), "--out", str(tmp_path / "b"), "--prompts", str(lines)]
    )
    assert bad.exit_code == 2
    assert "1 prompts but there are 2 clips" in bad.output
