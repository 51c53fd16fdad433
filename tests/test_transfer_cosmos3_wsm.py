"""HD-map (`wsm`) clips through the cosmos3 backend, end to end on CPU, on a real map.

`cosmos-sim hdmap --target cosmos3` writes control-only clips (`<camera>/wsm.mp4`, no rgb):
Cosmos 3 transfer generates from controls alone, so the backend runs them at the control
video's size, fps and length. `cosmos-sim controls --xodr` writes `hdmap.mp4` beside rgb.mp4,
fed to Cosmos 3 as its `wsm` hint. The model is diffusers' real modular pipeline with tiny
random components, saved and loaded back through `--model PATH` (see
test_transfer_cosmos3.py); contract tests record what its VAE and its sequence packing
receive. The tiny VAE at the 256 tier's canvas is what costs time, so clips are short.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from fakes import guardrail_standin
from fakes.safety_double import PassThroughSafetyChecker
from fakes.tiny_cosmos3_transfer import save_tiny_cosmos3_transfer
from typer.testing import CliRunner

from cosmos_sim import CameraSpec, EpisodeWriter, SensorFrame
from cosmos_sim.cli import app
from cosmos_sim.transfer import ClipError, find_clips, run_transfer
from cosmos_sim.transfer.cosmos3 import Cosmos3Backend, canvas_for, chunk_frames
from cosmos_sim.types import SpecError
from cosmos_sim.video import video_info, write_video

pytest.importorskip("diffusers")
pytest.importorskip("carla")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

MAP = Path(__file__).parent / "data" / "opendrive" / "fabriksgatan_traffic_lights.xodr"
"""A real public OpenDRIVE map (a copy of shared/data's): a signalled junction."""
TINY = {"device": "cpu", "dtype": "float32", "num_inference_steps": 1, "resolution": 256}
ONE_PASS = {"guidance_scale": 1.0, "control_guidance": 1.0}
NVIDIA_CAMERAS = 7


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_cosmos3_transfer(tmp_path_factory.mktemp("cosmos3") / "tiny")


def hdmap(out: Path, *args: str) -> Path:
    result = CliRunner().invoke(
        app, ["hdmap", "--xodr", str(MAP), "--out", str(out), "--target", "cosmos3", *args]
    )
    assert result.exit_code == 0, result.output
    return out


def cli_transfer(clips: Path, out: Path, model_dir: Path, *extra: str):
    return CliRunner().invoke(
        app,
        ["transfer", str(clips), "--out", str(out), "--backend", "cosmos3", "--model",
         str(model_dir), "--device", "cpu", "--dtype", "float32", "--steps", "1",
         "--resolution", "256", *extra],
    )  # fmt: skip


def recording(engine: Cosmos3Backend) -> tuple[list, list]:
    """Record the tensors the pipeline's VAE encodes and the fps its sequence packing uses."""
    encoded, fps = [], []
    encode, segment = engine.pipe.vae.encode, engine.pipe._prepare_vision_segment

    def recording_encode(x, *args, **kwargs):
        encoded.append(x.detach().clone())
        return encode(x, *args, **kwargs)

    def recording_segment(*args, **kwargs):
        fps.append(kwargs["vision_fps"])
        return segment(*args, **kwargs)

    engine.pipe.vae.encode = recording_encode
    engine.pipe._prepare_vision_segment = recording_segment
    return encoded, fps


def check_hint(x, video: np.ndarray, canvas: tuple[int, int], name: str) -> None:
    """A hint as the pipeline's VAE receives it: [1, 3, 4k+1, H, W] in [-1, 1] at the canvas,
    frame by frame the control video (per-frame channel means; the pipeline reflect-pads a
    short chunk to 4k+1 frames)."""
    cw, ch = canvas
    assert tuple(x.shape) == (1, 3, chunk_frames(len(video)), ch, cw), name
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0, name
    want = video.astype(np.float32) / 127.5 - 1
    means = x[0, :, : len(video)].mean(dim=(2, 3)).T.numpy()  # [T, 3]
    assert np.abs(means - want.mean(axis=(1, 2))).max() < 0.05, name


def test_hdmap_wsm_clips_of_the_nvidia_rig_run_through_the_cli(model_dir, tmp_path, monkeypatch):
    """`hdmap --rig nvidia --target cosmos3` -> `transfer --backend cosmos3`: one output per
    camera at the wsm video's size, fps and frame count, with no rgb.mp4 anywhere."""
    guardrail_standin.install(monkeypatch)
    clips = hdmap(tmp_path / "wsm", "--rig", "nvidia", "--seconds", "0.1")
    found = find_clips(clips)  # camera folders, not the grid preview beside them
    assert len(found) == NVIDIA_CAMERAS and not list(clips.rglob("rgb.mp4"))
    manifest = json.loads((clips / "wsm.json").read_text())
    assert sorted(manifest["cameras"]) == [c.camera for c in found]
    out = tmp_path / "out"
    result = cli_transfer(clips, out, model_dir, "--prompt", "a rainy junction")
    assert result.exit_code == 0, result.output
    written = json.loads((out / "transfer.json").read_text())
    assert written["complete"] and written["backend_settings"]["hints"]["wsm"] == "wsm"
    for camera in manifest["cameras"]:
        info = video_info(out / camera / "output.mp4")
        assert (info["width"], info["height"]) == (1280, 720), camera
        assert info["frames"] == manifest["frames"] == 1 and info["fps"] == pytest.approx(10)


def test_a_wsm_clip_is_chained_at_its_own_fps_and_length(model_dir, tmp_path):
    """Contract, control-only clip: wsm alone reaches the VAE in [-1, 1] at the canvas, frame
    for frame the wsm video, then the blank target; the model runs at the clip's 10 fps; two
    chained pipeline chunks give one output frame per control frame."""
    clips = hdmap(tmp_path / "wsm", "--seconds", "0.6")  # the default rig: one front camera
    clip = find_clips(clips)[0]
    assert clip.reference == "wsm" and clip.num_frames == 6 and clip.fps == 10
    engine = Cosmos3Backend(
        model_dir, safety_checker=PassThroughSafetyChecker(), num_video_frames_per_chunk=5,
        **TINY, **ONE_PASS,
    )  # fmt: skip
    encoded, fps = recording(engine)
    frames = list(engine.transfer(clip, "a junction at dusk", 0, tmp_path))
    assert len(frames) == 6 and frames[0].shape == (720, 1280, 3)
    wsm, canvas = clip.read("wsm"), canvas_for(1280, 720, 256)
    assert len(encoded) == 4  # chunk 1: wsm, target; chunk 2: wsm, target (seeded)
    check_hint(encoded[0], wsm[:5], canvas, "wsm chunk 1")
    # chunk 2: the last frame of chunk 1 (the conditional overlap), then frame 6
    check_hint(encoded[2], wsm[4:6], canvas, "wsm chunk 2")
    assert float(encoded[0].max()) > 0.5 and float(encoded[0].min()) == -1.0  # lines on black
    assert float(encoded[1].abs().max()) == 0  # an unseeded first chunk: the target is blank
    assert set(fps) == {10.0}


def test_controls_xodr_hdmap_is_fed_as_wsm_with_the_other_hints(model_dir, tmp_path):
    """`controls --xodr` on a non-CARLA episode driving a real map: hdmap.mp4 is Cosmos 3's
    wsm, fed after edge in Cosmos' hint order, at the clip's 16 fps; the CLI writes a video
    with the clip's frame count."""
    from cosmos_sim.bridges.carla_rig import default_rig
    from cosmos_sim.bridges.opendrive import compile_map

    ego = compile_map(MAP, frames=2, fps=10.0).poses  # drives the map's first lane
    mount = default_rig().cameras[0].cam_to_body
    cam = CameraSpec("front", 64, 36, fov_deg=90.0)
    with EpisodeWriter(tmp_path / "ep", cameras=[cam], fps=10.0, simulator="pybullet") as writer:
        for i, pose in enumerate(ego):
            rgb = np.full((36, 64, 3), 90, np.uint8)
            rgb[18:, 20:44] = 200  # something for the edge control
            writer.append([SensorFrame("front", i, i / 10.0, pose @ mount, camera=cam, rgb=rgb)])
    result = CliRunner().invoke(
        app,
        ["controls", str(tmp_path / "ep"), "--out", str(tmp_path / "clips"), "--modalities",
         "edge,hdmap", "--xodr", str(MAP), "--prompt", "a junction in the rain"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    clip = find_clips(tmp_path / "clips")[0]
    assert clip.videos == ("rgb", "edge", "hdmap") and clip.reference == "rgb"
    engine = Cosmos3Backend(model_dir, safety_checker=PassThroughSafetyChecker(), **TINY)
    encoded, fps = recording(engine)
    out = run_transfer(tmp_path / "clips", tmp_path / "out", backend=engine)
    info = video_info(out / "front" / "output.mp4")
    assert (info["width"], info["height"], info["frames"]) == (*clip.size, clip.num_frames)
    canvas = canvas_for(*clip.size, 256)
    check_hint(encoded[0], clip.read("edge"), canvas, "edge")
    check_hint(encoded[1], clip.read("hdmap"), canvas, "wsm")
    assert float(encoded[1].max()) > 0.5  # the map is in view
    assert len(encoded) == 3 and set(fps) == {16.0}
    written = json.loads((out / "transfer.json").read_text())
    assert written["backend_settings"]["guidance_scale"].startswith("per hint")
    assert written["cameras"]["front"]["prompt"] == "a junction in the rain"  # the clip's own


def test_a_clip_with_only_a_cosmos3_spec_keeps_its_prompt(tmp_path):
    """hdmap alone writes no transfer25.json: the prompt comes from cosmos3.json."""
    from cosmos_sim.transfer.run import resolve_prompts

    folder = tmp_path / "clips" / "front"
    folder.mkdir(parents=True)
    write_video(folder / "hdmap.mp4", np.zeros((1, 36, 64, 3), np.uint8), 16, lossless=True)
    (folder / "cosmos3.json").write_text(json.dumps({"prompt": "snow at night"}))
    assert resolve_prompts(find_clips(tmp_path / "clips")) == {"front": "snow at night"}
    (folder / "transfer25.json").write_text(json.dumps({"prompt": "from transfer25"}))
    assert resolve_prompts(find_clips(tmp_path / "clips")) == {"front": "from transfer25"}


def test_a_control_only_clip_is_refused_by_backends_that_need_rgb(tmp_path):
    folder = tmp_path / "clips" / "front"
    folder.mkdir(parents=True)
    write_video(folder / "wsm.mp4", np.zeros((2, 36, 64, 3), np.uint8), 10, lossless=True)
    clip = find_clips(tmp_path / "clips")[0]
    assert (clip.reference, clip.size, clip.num_frames, clip.fps) == ("wsm", (64, 36), 2, 10)
    with pytest.raises(ClipError, match=r"no rgb\.mp4 \(it has: wsm\).*--backend cosmos3"):
        run_transfer(tmp_path / "clips", tmp_path / "out", backend="appearance")


def test_a_wsm_video_shorter_than_another_control_is_named(model_dir, tmp_path):
    folder = tmp_path / "clips" / "front"
    folder.mkdir(parents=True)
    write_video(folder / "edge.mp4", np.zeros((5, 96, 160, 3), np.uint8), 10, lossless=True)
    write_video(folder / "wsm.mp4", np.zeros((3, 96, 160, 3), np.uint8), 10, lossless=True)
    engine = Cosmos3Backend(model_dir, safety_checker=PassThroughSafetyChecker(), **TINY)
    with pytest.raises(ClipError, match=r"wsm\.mp4 ends before edge\.mp4"):
        list(engine.transfer(find_clips(tmp_path / "clips")[0], "p", 0, tmp_path))


def test_an_augmenter_given_the_map_streams_wsm_to_a_cosmos3_session(model_dir):
    """In the loop: with `xodr=` the Augmenter draws the HD map per chunk from each frame's K
    and pose (and adds it to the default controls); a cosmos3 session told no controls feeds
    it as wsm, which reaches the VAE frame for frame as the renderer draws it."""
    from cosmos_sim.augment import Augmenter
    from cosmos_sim.bridges.carla_rig import default_rig
    from cosmos_sim.bridges.opendrive import compile_map
    from cosmos_sim.controls.hdmap import compile_scene, render_hdmap

    engine = Cosmos3Backend(
        model_dir, safety_checker=PassThroughSafetyChecker(), num_video_frames_per_chunk=5,
        **TINY, **ONE_PASS,
    )  # fmt: skip
    with Augmenter(engine, xodr=MAP) as defaults:
        assert defaults.controls == (*engine.needs, "hdmap")
        defaults.close()
    with pytest.raises(SpecError, match=r"\['hdmap'\].*xodr="):
        Augmenter(engine, controls=("edge", "hdmap"))
    compiled = compile_map(MAP, frames=5, fps=16.0)
    mount = default_rig().cameras[0].cam_to_body
    cam = CameraSpec("front", 160, 96, fov_deg=60.0)
    poses = [ego @ mount for ego in compiled.poses]
    encoded, fps = recording(engine)
    augmenter = Augmenter(
        engine, xodr=MAP, controls=("hdmap",), chunk_frames=5, resolution="camera"
    )
    with augmenter:
        for tick, pose in enumerate(poses):
            rgb = np.zeros((96, 160, 3), np.uint8)
            augmenter.submit([SensorFrame("front", tick, tick / 16, pose, camera=cam, rgb=rgb)])
        augmenter.close()
        out = augmenter.poll()
    assert [a.tick for a in out] == list(range(5))
    scene = compile_scene(compiled.geometry)
    drawn = np.stack([render_hdmap(scene, cam.intrinsics, p, 96, 160) for p in poses])
    assert drawn.max() > 200  # the map is in view
    assert len(encoded) == 2  # wsm, then the target
    check_hint(encoded[0], drawn, canvas_for(160, 96, 256), "wsm")
    assert set(fps) == {16.0}
