"""Batch plans checked before anything starts, and the exactly-once unit folders (no Ray)."""

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cosmos_sim.batch import PlanError, load_plan, run_plan
from cosmos_sim.batch.units import DONE_MARKER, done_marker, partials, write_unit
from cosmos_sim.cli import app

DEMO = Path(__file__).parents[1] / "examples" / "plans" / "demo.yaml"


def plan(**changes):
    base = {
        "captures": [{"name": "tab", "seconds": 0.25, "seeds": [0, 1]}],
        "stages": {"controls": {}, "transfer": {"backend": "appearance"}, "dataset": {}},
    }
    base.update(changes)
    return base


def test_demo_plan_is_valid_and_lists_its_units():
    demo = load_plan(DEMO)
    assert [u.id for u in demo.units()] == [f"tabletop-s{i}" for i in range(4)]
    assert demo.stage_names() == ["capture", "controls", "transfer", "dataset"]


def test_campaign_plan_lists_a_thousand_episodes_on_gpu_workers():
    campaign = load_plan(DEMO.with_name("campaign_gpu.yaml"))
    units = campaign.units()
    assert len(units) == 1000 and units[-1].id == "street-s999"
    assert campaign.stages.transfer.worker_gpus == 1.0  # one resident model per GPU


def test_seed_range_expands_like_range():
    units = load_plan(plan(captures=[{"name": "a", "seconds": 1, "seed_range": [3, 6]}])).units()
    assert [(u.id, u.seed) for u in units] == [("a-s3", 3), ("a-s4", 4), ("a-s5", 5)]


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"captures": [{"name": "a", "seconds": -1, "seeds": [0]}]}, "captures[0].seconds", "0"),
        ({"captures": [{"name": "a", "seconds": 1, "seedz": [0]}]}, "captures[0].seedz", "seeds"),
        ({"captures": [{"name": "a", "seconds": 1}]}, "captures[0]", "seed_range"),
        ({"captures": [{"name": "../x", "seconds": 1, "seeds": [0]}]}, "captures[0].name", ""),
        ({"captures": [{"name": "a", "seconds": 1, "seeds": [0], "scene": "moon"}]},
         "captures[0]", "tabletop"),
        ({"captures": [{"name": "a", "seconds": 1, "seeds": [0], "port": 2000}]},
         "captures[0]", "carla"),
        ({"stages": {"controls": {}, "transfer": {"bakend": "appearance"}}},
         "stages.transfer.bakend", "did you mean 'backend'"),
        ({"stages": {"controls": {}, "transfer": {"backend": "magic"}}},
         "stages.transfer.backend", "appearance"),
        ({"stages": {"transfer": {}}}, "stages", "controls"),
        ({"stages": {"controls": {}, "transfer": {"options": {"depth_ratoi": 3}}}},
         "stages.transfer.options", "depth_ratio"),
        ({"stages": {"controls": {}, "transfer": {"backend": "cosmos-cli"}}},
         "stages.transfer.options", "['cosmos_root'] required"),
        ({"captures": []}, "captures", "at least 1"),
    ],
)  # fmt: skip
def test_bad_field_is_named_with_the_fix(changes, field, words):
    with pytest.raises(PlanError) as caught:
        load_plan(plan(**changes))
    assert caught.value.field == field
    assert str(caught.value).startswith(field + ":")
    assert words in str(caught.value)


def test_missing_replay_is_named_relative_to_the_plan(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("captures: [{name: c, simulator: carla, seconds: 1, replays: [no.log]}]\n")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert caught.value.field == "captures[0].replays[0]"
    assert str(tmp_path / "no.log") in str(caught.value)


def test_cli_refuses_a_bad_plan_before_anything_starts(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("captures: [{name: a, seconds: 1, seeds: [0], widht: 64}]\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["batch", str(path), "--out", str(out)])
    assert result.exit_code == 2
    assert "captures[0].widht" in result.output and "width" in result.output
    assert not out.exists()


def test_rerun_with_other_stage_settings_is_refused_before_ray_starts(tmp_path):
    first = load_plan(plan(stages={"controls": {}}))
    second = load_plan(plan(stages={"controls": {"device": "cpu"}}))
    out = tmp_path / "out"
    out.mkdir()
    from cosmos_sim.batch.outdir import check_same_plan

    check_same_plan(first, out)
    with pytest.raises(PlanError) as caught:
        run_plan(second, out)
    assert caught.value.field == "stages.controls.device"
    more_seeds = load_plan(plan(captures=[{"name": "tab", "seconds": 0.25, "seeds": [0, 1, 2]}],
                                stages={"controls": {}}))  # fmt: skip
    check_same_plan(more_seeds, out)  # adding episodes is allowed
    wider = load_plan(plan(captures=[{"name": "tab", "seconds": 0.25, "seeds": [0], "width": 64}],
                           stages={"controls": {}}))  # fmt: skip
    with pytest.raises(PlanError) as caught:
        check_same_plan(wider, out)
    assert caught.value.field == "captures.tab.width"


def test_write_unit_publishes_the_folder_with_its_marker(tmp_path):
    def make(folder):
        folder.mkdir()
        (folder / "data.txt").write_text("x")
        return {"frames": 3}

    marker = write_unit(tmp_path, "stage", "u1", make)
    assert marker["frames"] == 3 and marker["pid"] == os.getpid()
    assert marker["abandoned_attempts"] == 0
    assert (tmp_path / "stage" / "u1" / "data.txt").read_text() == "x"
    assert done_marker(tmp_path, "stage", "u1") == marker
    assert write_unit(tmp_path, "stage", "u1", make) == marker  # finished: not redone
    assert partials(tmp_path, "stage") == []


def test_write_unit_that_raises_leaves_nothing(tmp_path):
    def make(folder):
        folder.mkdir()
        (folder / "half.txt").write_text("x")
        raise RuntimeError("backend failed")

    with pytest.raises(RuntimeError, match="backend failed"):
        write_unit(tmp_path, "stage", "u1", make)
    assert list((tmp_path / "stage").iterdir()) == []


def test_write_unit_removes_a_killed_attempt_and_a_losing_copy(tmp_path):
    stale = tmp_path / "stage" / ".u1.otherhost-999999.partial"
    stale.mkdir(parents=True)
    (stale / "half.txt").write_text("x")

    def make_losing(folder):
        # another attempt of the same unit finishes first, while this one is writing
        write_unit(tmp_path, "stage", "u1", lambda f: f.mkdir() or {"winner": True})
        folder.mkdir()
        return {"winner": False}

    marker = write_unit(tmp_path, "stage", "u1", make_losing)
    assert marker["winner"] is True and marker["abandoned_attempts"] == 1
    assert sorted(p.name for p in (tmp_path / "stage").iterdir()) == ["u1"]
    assert sorted(p.name for p in (tmp_path / "stage" / "u1").iterdir()) == [DONE_MARKER]


def test_cli_without_ray_names_the_extra_in_one_line(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    result = CliRunner().invoke(app, ["batch", str(DEMO), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "pip install 'cosmos-sim[ray]'" in result.output
    assert not (tmp_path / "out").exists()
