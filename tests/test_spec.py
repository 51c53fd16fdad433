import json

import numpy as np
import pydantic
import pytest
from fakes.transfer1_specs import load_transfer1_spec
from fakes.transfer25_config import InferenceArguments, load_spec_file, load_spec_files

from cosmos_sim.controls.spec import (
    DEFAULT_CONTROL_WEIGHTS,
    DEFAULT_PROMPT,
    TRANSFER1_AV_FPS,
    TRANSFER25_CONTROL_FIELDS,
    TRANSFER25_FIELDS,
    sample_name,
    transfer1_av_spec,
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
        {"depth": clip_dir / "depth.mp4", "seg": clip_dir / "seg.mp4"},
        prompt="a street",
        control_weights={"seg": 0.3},
    )
    assert set(spec) == {"prompt", "input_video_path", "seed", "num_steps", "guidance", "fps",
                         "seg", "depth"}  # fmt: skip
    assert spec["input_video_path"] == str((clip_dir / "rgb.mp4").absolute())
    assert spec["seg"] == {
        "input_control": str((clip_dir / "seg.mp4").absolute()),
        "control_weight": 0.3,
    }
    assert spec["depth"]["control_weight"] == 1.0
    assert spec["fps"] == 16 and spec["prompt"] == "a street"
    path = write_spec_json(spec, clip_dir / "transfer1.json")
    controls, args = load_transfer1_spec(path)  # as transfer.py reads it
    assert set(controls) == {"seg", "depth"} and args["is_av_sample"] is False


def test_transfer1_rejects_unknown_controls():
    with pytest.raises(SpecError, match="normals"):
        transfer1_spec("rgb.mp4", {"normals": "n.mp4"})


def test_transfer1_general_and_av_controls_are_separate_runs(clip_dir, tmp_path, monkeypatch):
    # The old writer put hdmap/lidar next to vis/seg in one spec, without is_av_sample: the
    # general base model has no hdmap/lidar controlnet, so no single run could serve it.
    with pytest.raises(SpecError, match="transfer1_av_spec"):
        transfer1_spec(clip_dir / "rgb.mp4", {"edge": "e.mp4", "lidar": "l.mp4"})
    with pytest.raises(SpecError, match="transfer1_spec"):
        transfer1_av_spec({"hdmap": "h.mp4", "vis": "v.mp4"})
    spec = transfer1_av_spec(
        {"hdmap": clip_dir / "edge.mp4", "lidar": clip_dir / "depth.mp4"}, seed=4
    )
    assert spec["is_av_sample"] is True and spec["sigma_max"] == 80.0
    assert spec["fps"] == TRANSFER1_AV_FPS == 30
    assert "input_video_path" not in spec  # sigma_max 80: generated from the controls alone
    path = write_spec_json(spec, clip_dir / "transfer1_av.json")
    monkeypatch.chdir(tmp_path)  # transfer.py runs in the cosmos-transfer1 checkout
    controls, args = load_transfer1_spec(path)
    assert set(controls) == {"hdmap", "lidar"}
    assert (args["is_av_sample"], args["sigma_max"], args["seed"]) == (True, 80.0, 4)


def test_transfer25_guided_generation_and_control_masks_pass_the_parser(clip_dir):
    np.savez(clip_dir / "guide.npz", np.zeros((2, 4, 4), np.int32))
    (clip_dir / "edge_mask.mp4").write_bytes(b"\0")
    spec = transfer25_spec(
        "ep-front", clip_dir / "rgb.mp4",
        {"edge": clip_dir / "edge.mp4", "depth": clip_dir / "depth.mp4"},
        relative_to=clip_dir, control_masks={"edge": clip_dir / "edge_mask.mp4"},
        guided_generation_mask=clip_dir / "guide.npz",
        guided_generation_foreground_labels=[10, 11],
    )  # fmt: skip
    assert spec["guided_generation_mask"] == "guide.npz"
    assert spec["edge"]["mask_path"] == "edge_mask.mp4" and "mask_path" not in spec["depth"]
    (parsed,) = load_spec_file(write_spec_json(spec, clip_dir / "t.json"))
    assert parsed.guided_generation_mask == (clip_dir / "guide.npz").absolute()
    assert parsed.guided_generation_foreground_labels == [10, 11]
    assert parsed.guided_generation_step_threshold == 25  # Cosmos' default, left to it
    assert parsed.edge.mask_path == (clip_dir / "edge_mask.mp4").absolute()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"guided_generation_foreground_labels": [1]}, "need guided_generation_mask"),
        ({"guided_generation_mask": "m.png"}, r"\.npz"),
        ({"guided_generation_mask": "m.npz", "guided_generation_foreground_labels": []}, "empty"),
        ({"guided_generation_mask": "m.mp4", "guided_generation_foreground_labels": [1]}, "npz"),
        ({"control_masks": {"seg": "m.mp4"}}, "not among the controls"),
    ],
)
def test_guided_generation_and_masks_reject_what_cosmos_cannot_use(kwargs, match):
    with pytest.raises(SpecError, match=match):
        transfer25_spec("front", "rgb.mp4", {"edge": "edge.mp4"}, **kwargs)


def test_sample_names_are_unique_across_episodes(tmp_path):
    # Camera names alone collide as soon as two episodes share a batch; Cosmos then refuses
    # the whole batch ("Inference samplename front is not unique").
    assert sample_name(tmp_path / "runs" / "ep_001", "front") == "ep_001-front"
    assert sample_name("runs/ep 2", "front") == "ep_2-front"
    assert sample_name(None, "front") == "front"
    folders = []
    for episode in ("ep_001", "ep_002"):
        folder = tmp_path / episode / "front"
        folder.mkdir(parents=True)
        for name in ("rgb", "edge"):
            (folder / f"{name}.mp4").write_bytes(b"\0")
        spec = transfer25_spec(
            sample_name(tmp_path / episode, "front"), folder / "rgb.mp4",
            {"edge": folder / "edge.mp4"}, relative_to=folder,
        )  # fmt: skip
        folders.append(write_spec_json(spec, folder / "transfer25.json"))
    assert [s.name for s in load_spec_files(folders)] == ["ep_001-front", "ep_002-front"]
    with pytest.raises(ValueError, match="samplename ep_001-front is not unique"):
        load_spec_files([folders[0], folders[0]])


def test_masks_from_instance_ids_mask_video_label_npz_and_transfer1_weight_map(tmp_path):
    import torch

    from cosmos_sim.controls.masks import write_label_npz, write_mask_video, write_weight_map
    from cosmos_sim.video import read_video

    ids = np.zeros((3, 8, 16), np.int32)
    ids[:, 2:5, 3:9] = 42  # one object
    ids[:, 6:, :] = 7  # the ground
    video = read_video(write_mask_video(tmp_path / "m.mp4", iter(ids), [42], 16))[0]
    assert np.array_equal(video[..., 0] > 127, ids == 42)  # lossless: exactly the object
    labels = np.load(write_label_npz(tmp_path / "g.npz", iter(ids), 3))["arr_0"]
    assert labels.dtype == np.int32 and np.array_equal(labels, ids)
    weights = torch.load(write_weight_map(tmp_path / "w.pt", iter(ids), [42, 7], 3, 0.5))
    assert weights.shape == (3, 8, 16)
    assert np.array_equal(weights.float().numpy(), np.isin(ids, [42, 7]) * 0.5)
    with pytest.raises(SpecError, match="expected 4"):
        write_weight_map(tmp_path / "x.pt", iter(ids), [42], 4)

    for name in ("rgb", "edge", "seg"):
        (tmp_path / f"{name}.mp4").write_bytes(b"\0")
    spec = transfer1_spec(
        tmp_path / "rgb.mp4", {"edge": tmp_path / "edge.mp4", "seg": tmp_path / "seg.mp4"},
        weight_maps={"edge": tmp_path / "w.pt"},
    )  # fmt: skip
    assert spec["edge"]["control_weight"] == str(tmp_path / "w.pt")
    assert spec["seg"]["control_weight"] == 1.0
    controls, _ = load_transfer1_spec(write_spec_json(spec, tmp_path / "t1.json"))
    assert controls["edge"]["control_weight"].endswith("w.pt")
    with pytest.raises(SpecError, match=r"\.pt tensor"):
        transfer1_spec("rgb.mp4", {"edge": "e.mp4"}, weight_maps={"edge": "w.npy"})
    with pytest.raises(SpecError, match="does not have"):
        transfer1_spec("rgb.mp4", {"edge": "e.mp4"}, weight_maps={"seg": "w.pt"})
