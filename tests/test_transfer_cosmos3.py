"""The cosmos3 backend end to end on CPU: diffusers' real Cosmos 3 modular pipeline, tiny.

The pipeline is `Cosmos3OmniBlocks().init_pipeline()` with tiny random components
(fakes/tiny_cosmos3_transfer.py), saved with `save_pretrained` and loaded back through
`--model PATH`. The guardrail class diffusers builds is replaced by a stand-in
(fakes/guardrail_standin.py: the real one downloads its models); the backend accepts it only
because the network is far too small to be Cosmos weights. Contract tests record what the
pipeline's own VAE receives per hint.
"""

import json

import numpy as np
import pytest
from fakes import guardrail_standin
from fakes.clips import write_test_clip
from fakes.safety_double import PassThroughSafetyChecker
from fakes.tiny_cosmos3_transfer import save_tiny_cosmos3_transfer
from typer.testing import CliRunner

from cosmos_sim.cli import app
from cosmos_sim.transfer import ClipError, diffusers_backend, find_clips
from cosmos_sim.transfer.base import Chunk, GuardrailBlocked, SessionOptions, start_session
from cosmos_sim.transfer.cosmos3 import Cosmos3Backend, _to_uint8, canvas_for, resolve_hints
from cosmos_sim.transfer.diffusers_backend import SafetyError
from cosmos_sim.types import SpecError
from cosmos_sim.video import video_info, write_video

pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

W, H, FRAMES = 160, 96, 5
"""A 5:3 clip: tier 256 serves it on its 320×192 canvas (generated there, resized back).
The tiny VAE at that canvas is what costs time on CPU, so each test feeds few chunks."""
TINY = {"device": "cpu", "dtype": "float32", "num_inference_steps": 1, "resolution": 256}
ONE_PASS = {"guidance_scale": 1.0, "control_guidance": 1.0}
"""No CFG passes: one transformer pass per step."""
HINT_ORDER = ("edge", "vis", "depth", "seg")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_cosmos3_transfer(tmp_path_factory.mktemp("cosmos3") / "tiny")


def write_clip(folder, frames=FRAMES):
    from cosmos_sim.controls import vis_control
    from cosmos_sim.video import read_video

    write_test_clip(folder, width=W, height=H, frames=frames)
    write_video(folder / "vis.mp4", vis_control(read_video(folder / "rgb.mp4")[0]), 16)
    return folder


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    write_clip(root / "front")
    return root


def backend(model_dir, checker=None, **options):
    checker = checker or PassThroughSafetyChecker()
    return Cosmos3Backend(model_dir, safety_checker=checker, **{**TINY, **ONE_PASS, **options})


def test_cli_runs_several_controls_at_once_from_a_saved_tiny_pipeline(
    model_dir, clips, tmp_path, monkeypatch
):
    guardrail = guardrail_standin.install(monkeypatch)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["transfer", str(clips), "--out", str(out), "--backend", "cosmos3", "--model",
         str(model_dir), "--device", "cpu", "--dtype", "float32", "--steps", "1",
         "--resolution", "256", "--controls", "edge,vis", "--prompt", "a rainy street"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    info = video_info(out / "front" / "output.mp4")
    assert (info["width"], info["height"], info["frames"]) == (W, H, FRAMES)
    assert info["fps"] == pytest.approx(16)
    manifest = json.loads((out / "transfer.json").read_text())
    assert manifest["complete"] and manifest["backend"] == "cosmos3"
    settings = manifest["backend_settings"]
    assert settings["safety_checker"] == "StandInGuardrail" and settings["resolution_tier"] == 256
    assert settings["controls"] == ["edge", "vis"] and "none" in settings["per_hint_weights"]
    assert guardrail.built == 1  # one guardrail, built by the backend, for the whole run


def test_every_hint_reaches_the_vae_in_order_range_and_frames(model_dir, clips, tmp_path):
    """Contract: each hint's control video reaches the VAE as [1, 3, 4k+1, H, W] in [-1, 1]
    at the tier canvas, in Cosmos' hint order (edge, blur, depth, seg), then the target."""
    engine = backend(model_dir)
    seen = []
    real_encode = engine.pipe.vae.encode

    def recording_encode(x, *args, **kwargs):
        seen.append(x.detach().clone())
        return real_encode(x, *args, **kwargs)

    engine.pipe.vae.encode = recording_encode
    clip = find_clips(clips)[0]
    frames = np.stack(list(engine.transfer(clip, "a street", 0, tmp_path)))
    assert frames.shape == (FRAMES, H, W, 3) and frames.dtype == np.uint8
    cw, ch = canvas_for(W, H, 256)
    assert len(seen) == len(HINT_ORDER) + 1  # one chunk: every hint, then the target
    for name, x in zip(HINT_ORDER, seen, strict=False):
        assert tuple(x.shape) == (1, 3, FRAMES, ch, cw), name
        assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0, name
        want = clip.read(name).astype(np.float32) / 127.5 - 1
        means = x[0].mean(dim=(2, 3)).T.numpy()  # [T, 3] per-frame channel means
        assert np.abs(means - want.mean(axis=(1, 2))).max() < 0.05, name
    assert float(seen[0].max()) > 0.9 and float(seen[2].min()) < -0.5  # uint8 scaled to [-1, 1]
    assert float(seen[-1].abs().max()) == 0  # an unseeded first chunk: the target is blank


def test_sessions_chain_chunks_exactly_as_the_pipeline_does(model_dir, tmp_path):
    """One pipeline call per chunk (bounded memory, state kept between pushes) gives the
    pipeline's own multi-chunk output: same windows, seeds and noise draws; pushes of any
    size give the same frames; the guardrail checks the prompt and every chunk."""
    checker = PassThroughSafetyChecker()
    engine = backend(model_dir, checker, controls="edge", num_video_frames_per_chunk=5)
    clip = find_clips(write_clip(tmp_path / "long" / "front", frames=9))[0]
    session = start_session(engine, SessionOptions("front", W, H, "dusk", 5, 16.0))
    edge, rgb, got = clip.read("edge"), clip.read("rgb"), []
    for lo, hi in ((0, 2), (2, 7), (7, 9)):
        session.push(Chunk(np.arange(lo, hi), rgb[lo:hi], {"edge": edge[lo:hi]}))
        got += session.pull()
    got += session.pull(wait=True)
    assert [f.tick for f in got] == list(range(9))
    assert checker.texts == ["dusk"] * 2 and checker.videos == 2  # two chunks, both checked
    native_session = engine.start(SessionOptions("front", W, H, "dusk", 5, 16.0))
    videos = {"edge": edge.astype(np.float32) / 255}
    native = engine.pipe(**native_session.call_kwargs(videos))["videos"]
    ours = np.stack([f.frame for f in got]).astype(int)
    diff = np.abs(ours - _to_uint8(np.asarray(native), (W, H)))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.9999  # float rounding of the seed only
    session.close()


def test_a_blocked_prompt_is_a_guardrail_error_not_frames(model_dir, clips, tmp_path):
    class RefusingChecker(PassThroughSafetyChecker):
        def check_text_safety(self, prompt: str) -> bool:
            return False

    engine = backend(model_dir, RefusingChecker())
    with pytest.raises(GuardrailBlocked, match="refused the prompt for camera 'front'"):
        list(engine.transfer(find_clips(clips)[0], "anything", 0, tmp_path))


def test_without_cosmos_guardrail_it_fails_before_loading_weights(model_dir, monkeypatch):
    from diffusers import Cosmos3OmniModularPipeline

    def never(*_, **__):
        raise AssertionError("weights were loaded before the guardrail check")

    monkeypatch.setattr(Cosmos3OmniModularPipeline, "from_pretrained", never)
    with pytest.raises(SafetyError, match=r"pip install cosmos-guardrail.*License"):
        Cosmos3Backend(model_dir, **TINY)


def test_a_replacement_checker_is_refused_for_cosmos_size_weights(model_dir, monkeypatch):
    monkeypatch.setattr(diffusers_backend, "MAX_PARAMS_WITHOUT_GUARDRAIL", 1000)
    with pytest.raises(SafetyError, match="refusing a replacement safety checker"):
        Cosmos3Backend(model_dir, safety_checker=PassThroughSafetyChecker(), **TINY)
    guardrail_standin.install(monkeypatch)  # the CLI path: a non-real guardrail is refused too
    with pytest.raises(SafetyError, match="refusing"):
        Cosmos3Backend(model_dir, **TINY)


def test_a_prebuilt_pipeline_takes_a_replacement_only_with_random_weights(model_dir, monkeypatch):
    """`from_pipeline` (the GPU benchmark's path): weights built in this process may run with
    a pass-through checker at any size; the same networks loaded from a file may not."""
    from diffusers.modular_pipelines.cosmos import Cosmos3OmniBlocks

    loaded = backend(model_dir, PassThroughSafetyChecker()).pipe  # tiny test path: accepted
    monkeypatch.setattr(diffusers_backend, "MAX_PARAMS_WITHOUT_GUARDRAIL", 1000)  # "Cosmos size"
    with pytest.raises(SafetyError, match="refusing a replacement"):
        Cosmos3Backend.from_pipeline(loaded, safety_checker=PassThroughSafetyChecker(), **TINY)
    config = {k: v for k, v in loaded.transformer.config.items() if not k.startswith("_")}
    fresh = Cosmos3OmniBlocks().init_pipeline()
    fresh.update_components(
        transformer=type(loaded.transformer)(**config),  # same network, random weights
        vae=loaded.vae, text_tokenizer=loaded.text_tokenizer, scheduler=loaded.scheduler,
    )  # fmt: skip
    engine = Cosmos3Backend.from_pipeline(fresh, safety_checker=PassThroughSafetyChecker(), **TINY)
    assert engine.pipe.requires_safety_checker
    with pytest.raises(SafetyError, match="pip install cosmos-guardrail"):
        Cosmos3Backend.from_pipeline(Cosmos3OmniBlocks().init_pipeline(), **TINY)


def test_folders_that_are_not_a_cosmos3_transfer_pipeline_are_named(tmp_path):
    other = tmp_path / "t25"
    other.mkdir()
    (other / "model_index.json").write_text('{"_class_name": "Cosmos2_5_TransferPipeline"}')
    with pytest.raises(SpecError, match="not a Cosmos 3 pipeline folder.*Cosmos2_5"):
        Cosmos3Backend(other, safety_checker=PassThroughSafetyChecker(), **TINY)
    distilled = tmp_path / "distilled"
    distilled.mkdir()
    (distilled / "modular_model_index.json").write_text(
        '{"_class_name": "Cosmos3DistilledModularPipeline"}'
    )
    with pytest.raises(SpecError, match="no transfer mode"):
        Cosmos3Backend(distilled, safety_checker=PassThroughSafetyChecker(), **TINY)


def test_a_hub_id_without_a_local_copy_fails_without_downloading(tmp_path, monkeypatch):
    import huggingface_hub.file_download as hub_download

    def no_network(*_, **__):
        raise AssertionError("tried to reach the hub")

    monkeypatch.setattr(hub_download, "get_hf_file_metadata", no_network)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="never downloads.*hf download nvidia/Cosmos3-Nano"):
        Cosmos3Backend("nvidia/Cosmos3-Nano", safety_checker=PassThroughSafetyChecker(), **TINY)


def test_bad_options_fail_before_the_model_loads(tmp_path):
    missing = tmp_path / "nothing-here"
    with pytest.raises(SpecError, match="no lidar hint"):
        Cosmos3Backend(missing, controls="edge,lidar")
    with pytest.raises(SpecError, match="no per-hint weights.*cosmos-framework"):
        Cosmos3Backend(missing, control_weights={"edge": 0.5})
    with pytest.raises(SpecError, match="tier of"):
        Cosmos3Backend(missing, resolution=1080)
    with pytest.raises(SpecError, match="num_conditional_frames"):
        Cosmos3Backend(missing, num_video_frames_per_chunk=5, num_conditional_frames=5)


def test_hints_follow_cosmos_names_and_order():
    assert resolve_hints(["seg", "vis", "edge", "lidar", "depth"], None) == {
        "edge": "edge", "vis": "blur", "depth": "depth", "seg": "seg"
    }  # fmt: skip
    assert resolve_hints(["hdmap", "wsm"], None) == {"wsm": "wsm"}
    assert resolve_hints(["hdmap"], None) == {"hdmap": "wsm"}
    with pytest.raises(ClipError, match="no Cosmos 3 control"):
        resolve_hints(["lidar"], None)
    assert canvas_for(1280, 704, 720) == (1280, 720)
    assert canvas_for(1280, 704, 480) == (832, 480)
    with pytest.raises(ClipError, match="no Cosmos 3 canvas"):
        canvas_for(1280, 320, 720)


def test_a_clip_without_a_cosmos3_control_is_named(model_dir, tmp_path):
    engine = backend(model_dir)
    folder = tmp_path / "clips" / "front"
    folder.mkdir(parents=True)
    write_video(folder / "rgb.mp4", np.zeros((3, H, W, 3), np.uint8), 16)
    with pytest.raises(ClipError, match="no Cosmos 3 control"):
        list(engine.transfer(find_clips(tmp_path / "clips")[0], "p", 0, tmp_path))


def test_a_control_shorter_than_the_clip_is_named_before_generating(model_dir, tmp_path):
    folder = tmp_path / "clips" / "front"
    folder.mkdir(parents=True)
    write_video(folder / "rgb.mp4", np.zeros((FRAMES, H, W, 3), np.uint8), 16)
    write_video(folder / "edge.mp4", np.zeros((FRAMES - 2, H, W, 3), np.uint8), 16)
    engine = backend(model_dir)
    with pytest.raises(ClipError, match="edge.mp4 ends before rgb.mp4"):
        list(engine.transfer(find_clips(tmp_path / "clips")[0], "p", 0, tmp_path))


def test_needs_gives_an_augmenter_the_controls_a_session_feeds(model_dir):
    """`needs` (as the other backends declare it) is what an Augmenter computes when not
    told: every Cosmos 3 control it can make per chunk, or the backend's own `controls`; a
    stream of them goes through one resident model."""
    from fakes.clips import scene_frame

    from cosmos_sim.augment import Augmenter
    from cosmos_sim.transfer.base import backend_factory
    from cosmos_sim.types import CameraSpec, SensorFrame

    assert backend_factory("cosmos3").needs == ("edge", "vis", "depth", "seg")
    assert backend(model_dir, controls="depth,edge").needs == ("edge", "depth")
    engine = backend(model_dir, num_video_frames_per_chunk=5)
    augmenter = Augmenter(engine, prompt="a street", chunk_frames=5, resolution="camera")
    assert augmenter.controls == engine.needs == ("edge", "vis", "depth", "seg")
    cam = CameraSpec("front", W, H, fov_deg=60.0)
    with augmenter:
        for tick in range(5):
            rgb, depth, ids, _ = scene_frame(W, H, tick / 16)
            augmenter.submit([SensorFrame("front", tick, tick / 16, np.eye(4), camera=cam,
                                          rgb=rgb, depth_m=depth, instance_id=ids)])  # fmt: skip
        augmenter.close()
        out = augmenter.poll()
    assert [a.tick for a in out] == list(range(5)) and out[0].frame.shape == (H, W, 3)


def test_a_session_told_no_controls_feeds_those_of_its_first_chunk(model_dir):
    engine = backend(model_dir)
    session = engine.start(SessionOptions("front", W, H, "p", 0, 16.0))
    blank = np.zeros((1, H, W, 3), np.uint8)
    with pytest.raises(SpecError, match="no Cosmos 3 control"):
        session.push(Chunk(np.array([0]), blank, {}))
    session.push(Chunk(np.array([0]), blank, {"depth": blank, "edge": blank}))  # no chunk yet
    assert session.hints == {"edge": "edge", "depth": "depth"}
    assert (session.guidance, session.control_guidance) == (1.0, 1.0)  # the backend's own
    with pytest.raises(SpecError, match=r"needs \['depth'\]"):
        session.push(Chunk(np.array([1]), blank, {"edge": blank}))
    session.close()


def test_wsm_alone_is_chunked_at_101_frames_as_cosmos_framework_does(model_dir, tmp_path):
    """cosmos-framework's WSM window is 101 frames (at 10 fps); any other hint set is chunked
    at 93. A chunk size given explicitly wins."""
    from cosmos_sim.controls.spec_cosmos3 import cosmos3_spec
    from cosmos_sim.transfer.cosmos_framework import validate_sample

    engine = backend(model_dir)
    options = SessionOptions("front", 1280, 720, "p", 0, 10.0)
    assert engine.start(options, ["hdmap"]).chunk == 101
    assert engine.start(options, ["edge", "hdmap"]).chunk == 93
    assert backend(model_dir, num_video_frames_per_chunk=5).start(options, ["hdmap"]).chunk == 5
    assert engine.describe()["num_video_frames_per_chunk"].startswith("per hint")
    for name in ("rgb", "wsm", "edge"):
        (tmp_path / f"{name}.mp4").write_bytes(b"")
    wsm = cosmos3_spec("s", tmp_path / "rgb.mp4", {"hdmap": tmp_path / "wsm.mp4"},
                       num_frames=101, fps=10, size=(1280, 720), num_conditional_frames=95,
                       relative_to=tmp_path)  # fmt: skip
    assert wsm["num_video_frames_per_chunk"] == 101
    del wsm["num_video_frames_per_chunk"]  # the framework's own default
    assert validate_sample(wsm, tmp_path) == []
    both = {**wsm, "edge": {"control_path": "edge.mp4"}}
    with pytest.raises(SpecError, match="num_conditional_frames 95 must be below .* 93"):
        validate_sample(both, tmp_path)
