import json

import pydantic
import pytest
from fakes.transfer25_config import InferenceArguments, load_spec_file

from cosmos_sim.controls.spec import (
    DEFAULT_CONTROL_WEIGHTS,
    DEFAULT_PROMPT,
    TRANSFER25_CONTROL_FIELDS,
    TRANSFER25_FIELDS,
    transfer1_spec,
    transfer25_spec,
    write_spec_json,
    write_spec_jsonl,
)
from cosmos_sim.types import SpecError

CONTROLS = {"edge": "edge.mp4", "depth": "depth.mp4", "vis": "vis.mp4", "seg": "seg.mp4"}


@pytest.fixture
def clip_dir(tmp_path):
    folder = tmp_path / "clips" / "front"
    folder.mkdir(parents=True)
    for name in ("rgb", *CONTROLS):
        (folder / f"{name}.mp4").write_bytes(b"\0")
    return folder


def test_transfer25_spec_fields(clip_dir):
    paths = {k: clip_dir / v for k, v in CONTROLS.items()}
    spec = transfer25_spec(
        "front",
        clip_dir / "rgb.mp4",
        paths,
        relative_to=clip_dir,
        control_weights={"depth": 0.25},
        vis_preset="high",
    )
    assert set(spec) == {
        "name",
        "prompt",
        "video_path",
        "seed",
        "guidance",
        "num_steps",
        "resolution",
        "num_video_frames_per_chunk",
        "num_conditional_frames",
        "edge",
        "depth",
        "vis",
        "seg",
    }
    assert set(spec) <= TRANSFER25_FIELDS
    assert spec["name"] == "front" and spec["prompt"] == DEFAULT_PROMPT
    assert spec["video_path"] == "rgb.mp4"
    assert (spec["seed"], spec["guidance"], spec["num_steps"]) == (2025, 3, 35)
    assert spec["resolution"] == "720" and spec["num_video_frames_per_chunk"] == 93
    assert spec["num_conditional_frames"] == 1
    assert spec["edge"] == {
        "control_path": "edge.mp4",
        "control_weight": 1.0,
        "preset_edge_threshold": "medium",
    }
    assert spec["vis"] == {
        "control_path": "vis.mp4",
        "control_weight": DEFAULT_CONTROL_WEIGHTS["vis"],
        "preset_blur_strength": "high",
    }
    assert spec["depth"] == {"control_path": "depth.mp4", "control_weight": 0.25}
    assert spec["seg"] == {"control_path": "seg.mp4", "control_weight": 1.0}
    for key in CONTROLS:
        assert set(spec[key]) <= TRANSFER25_CONTROL_FIELDS[key]


def test_transfer25_spec_validates_against_the_cosmos_parser_from_another_cwd(
    clip_dir, tmp_path, monkeypatch
):
    spec = transfer25_spec(
        "front",
        clip_dir / "rgb.mp4",
        {k: clip_dir / v for k, v in CONTROLS.items()},
        relative_to=clip_dir,
    )
    path = write_spec_json(spec, clip_dir / "transfer25.json")
    monkeypatch.chdir(
        tmp_path
    )  # the user runs inference.py from the cosmos checkout, not the clip folder
    (parsed,) = load_spec_file(path)
    assert parsed.video_path == (clip_dir / "rgb.mp4").absolute()
    assert parsed.seg.control_path == (clip_dir / "seg.mp4").absolute()
    assert parsed.vis.control_weight == DEFAULT_CONTROL_WEIGHTS["vis"]


def test_the_cosmos_parser_mirror_rejects_unknown_fields(clip_dir, monkeypatch):
    spec = transfer25_spec("front", "rgb.mp4", {"edge": "edge.mp4"})
    monkeypatch.chdir(clip_dir)
    InferenceArguments.model_validate(spec)
    with pytest.raises(pydantic.ValidationError, match="fps"):
        InferenceArguments.model_validate({**spec, "fps": 16})
    with pytest.raises(pydantic.ValidationError, match="video_path"):
        InferenceArguments.model_validate({**spec, "video_path": "missing.mp4"})


def test_transfer25_batch_jsonl_resolves_paths_from_its_own_folder(clip_dir):
    root = clip_dir.parent
    specs = [
        transfer25_spec(
            name, clip_dir / "rgb.mp4", {"depth": clip_dir / "depth.mp4"}, relative_to=root
        )
        for name in ("front", "front_again")
    ]
    path = write_spec_jsonl(specs, root / "transfer25_batch.jsonl")
    assert [json.loads(line)["video_path"] for line in path.read_text().splitlines()] == [
        "front/rgb.mp4",
        "front/rgb.mp4",
    ]
    assert [p.name for p in load_spec_file(path)] == ["front", "front_again"]


def test_write_spec_jsonl_refuses_repeated_names(tmp_path):
    spec = transfer25_spec("front", "rgb.mp4", {"edge": "edge.mp4"})
    with pytest.raises(SpecError, match="front"):
        write_spec_jsonl([spec, spec], tmp_path / "batch.jsonl")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"controls": {"lidar": "lidar.mp4"}}, "Transfer 1"),
        ({"controls": {}}, "at least one"),
        ({"control_weights": {"edge": 1.5}}, r"\[0, 1\]"),
        ({"guidance": 9}, "guidance"),
        ({"num_conditional_frames": 3}, "num_conditional_frames"),
        ({"edge_preset": "extreme"}, "edge_preset"),
    ],
)
def test_transfer25_spec_rejects_what_cosmos_would(kwargs, match):
    args = {"controls": {"edge": "edge.mp4"}, **kwargs}
    with pytest.raises(SpecError, match=match):
        transfer25_spec("front", "rgb.mp4", **args)


def test_transfer1_spec_fields_use_absolute_paths(clip_dir):
    spec = transfer1_spec(
        clip_dir / "rgb.mp4",
        {"lidar": clip_dir / "depth.mp4", "seg": clip_dir / "seg.mp4"},
        prompt="a street",
        control_weights={"seg": 0.3},
    )
    assert set(spec) == {
        "prompt",
        "input_video_path",
        "seed",
        "num_steps",
        "guidance",
        "fps",
        "seg",
        "lidar",
    }
    assert spec["input_video_path"] == str((clip_dir / "rgb.mp4").absolute())
    assert spec["seg"] == {
        "input_control": str((clip_dir / "seg.mp4").absolute()),
        "control_weight": 0.3,
    }
    assert spec["lidar"]["control_weight"] == 1.0
    assert spec["fps"] == 16 and spec["prompt"] == "a street"
    # transfer.py treats every top-level dict as a control; only known keys may be dicts.
    assert {k for k, v in spec.items() if isinstance(v, dict)} <= {
        "vis",
        "seg",
        "edge",
        "depth",
        "keypoint",
        "upscale",
        "hdmap",
        "lidar",
    }


def test_transfer1_spec_rejects_unknown_controls():
    with pytest.raises(SpecError, match="normals"):
        transfer1_spec("rgb.mp4", {"normals": "n.mp4"})
