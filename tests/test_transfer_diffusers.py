"""The diffusers backend end to end on CPU, from a tiny random pipeline saved to a folder.

The pipeline is Cosmos2_5_TransferPipeline built from tiny random components (fakes/
tiny_cosmos.py), saved with save_pretrained and loaded back through `--model PATH`, the
route a user takes. Two test-only stand-ins are injected: torchvision's resize (no CPU
torchvision wheel exists here) and a pass-through safety checker, which the backend accepts
only because the pipeline is far too small to be Cosmos weights.
"""

import json

import huggingface_hub.file_download as hub_download
import numpy as np
import pytest
from fakes import torchvision_stub
from fakes.clips import write_test_clip
from fakes.safety_double import PassThroughSafetyChecker
from fakes.tiny_cosmos import save_tiny_pipeline
from typer.testing import CliRunner

from cosmos_sim.cli import app
from cosmos_sim.transfer import ClipError, find_clips, run_transfer
from cosmos_sim.transfer import diffusers_backend as backend_module
from cosmos_sim.transfer.diffusers_backend import DiffusersBackend, SafetyError
from cosmos_sim.types import SpecError
from cosmos_sim.video import video_info

pytest.importorskip("diffusers")

W, H, FRAMES = 64, 32, 9
TINY = {
    "device": "cpu",
    "dtype": "float32",
    "num_inference_steps": 2,
    "num_frames_per_chunk": 5,
    "max_sequence_length": 16,
}


@pytest.fixture(autouse=True)
def torchvision_standin(monkeypatch):
    torchvision_stub.install(monkeypatch)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny") / "pipe", PassThroughSafetyChecker())


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    write_test_clip(root / "front", width=W, height=H, frames=FRAMES)
    return root


def test_tiny_pipeline_runs_end_to_end_from_a_saved_folder(model_dir, clips, tmp_path):
    checker = PassThroughSafetyChecker()
    out = run_transfer(
        clips,
        tmp_path / "out",
        backend="diffusers",
        model=str(model_dir),
        controlnet="edge",
        prompt="a rainy street",
        seed=3,
        safety_checker=checker,
        **TINY,
    )
    info = video_info(out / "front" / "output.mp4")
    assert (info["width"], info["height"], info["frames"], info["fps"]) == (W, H, FRAMES, 16)
    manifest = json.loads((out / "transfer.json").read_text())
    settings = manifest["backend_settings"]
    assert manifest["backend"] == "diffusers"
    assert settings["model"] == str(model_dir)
    assert settings["pipeline"] == "Cosmos2_5_TransferPipeline"
    assert settings["control_video"] == "edge"
    assert settings["num_frames_per_chunk"] == 5  # 9 frames: the pipeline's own chunking
    assert "a rainy street" in checker.texts  # the checker saw the prompt and the video
    assert checker.videos == 1


def test_same_seed_same_frames_other_seed_other_frames(model_dir, clips, tmp_path):
    engine = DiffusersBackend(str(model_dir), safety_checker=PassThroughSafetyChecker(), **TINY)
    clip = find_clips(clips)[0]
    first, again, other = (
        np.stack(list(engine.transfer(clip, "p", s, tmp_path))) for s in (7, 7, 8)
    )
    assert first.shape == (FRAMES, H, W, 3)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_without_cosmos_guardrail_the_error_says_how_to_install_it(model_dir, clips, tmp_path):
    with pytest.raises(SafetyError, match=r"pip install cosmos-guardrail.*License"):
        run_transfer(clips, tmp_path / "out", backend="diffusers", model=str(model_dir), **TINY)


def test_cli_cannot_bypass_the_guardrail(model_dir, clips, tmp_path):
    result = CliRunner().invoke(
        app,
        ["transfer", str(clips), "--backend", "diffusers", "--model", str(model_dir),
         "--device", "cpu", "--dtype", "float32", "--out", str(tmp_path / "out")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "cosmos-guardrail" in result.output


def test_a_replacement_checker_is_refused_for_cosmos_size_weights(
    model_dir, clips, tmp_path, monkeypatch
):
    monkeypatch.setattr(backend_module, "MAX_PARAMS_WITHOUT_GUARDRAIL", 1000)
    with pytest.raises(SafetyError, match="refusing a replacement safety checker"):
        run_transfer(
            clips,
            tmp_path / "out",
            backend="diffusers",
            model=str(model_dir),
            safety_checker=PassThroughSafetyChecker(),
            **TINY,
        )


def test_a_folder_that_is_not_a_transfer_pipeline_is_named(model_dir, tmp_path, clips):
    other = tmp_path / "other"
    other.mkdir()
    index = json.loads((model_dir / "model_index.json").read_text())
    (other / "model_index.json").write_text(json.dumps({**index, "_class_name": "FluxPipeline"}))
    with pytest.raises(SpecError, match="holds a FluxPipeline pipeline"):
        run_transfer(clips, tmp_path / "out", backend="diffusers", model=str(other), **TINY)
    with pytest.raises(FileNotFoundError, match="no model_index.json"):
        run_transfer(clips, tmp_path / "out2", backend="diffusers", model=str(tmp_path), **TINY)


def test_a_hub_id_without_a_local_copy_fails_without_downloading(clips, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError(f"the backend asked the hub for {args or kwargs}")

    monkeypatch.setattr(hub_download, "get_hf_file_metadata", no_network)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(FileNotFoundError, match="never downloads weights.*hf download"):
        run_transfer(
            clips,
            tmp_path / "out",
            backend="diffusers",
            model="nvidia/Cosmos-Transfer2.5-2B",
            safety_checker=PassThroughSafetyChecker(),
            **TINY,
        )
    assert not any((tmp_path / "hf").rglob("*.safetensors"))


def test_a_clip_without_the_chosen_control_is_named(model_dir, tmp_path):
    folder = write_test_clip(tmp_path / "clips" / "front", width=W, height=H, frames=3)
    (folder / "edge.mp4").unlink()
    with pytest.raises(ClipError, match=r"no edge\.mp4.*--controlnet edge"):
        run_transfer(
            tmp_path / "clips",
            tmp_path / "out",
            backend="diffusers",
            model=str(model_dir),
            safety_checker=PassThroughSafetyChecker(),
            **TINY,
        )
