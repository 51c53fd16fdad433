"""`run_plan` on a local Ray with 2 CPUs: real PyBullet episodes through every stage, a worker
killed with SIGKILL mid-unit, a failing unit beside good ones, and a re-run that does nothing."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from cosmos_sim.batch import REPORT, load_plan, run_plan
from cosmos_sim.batch.units import DONE_MARKER, PARTIAL_SUFFIX
from cosmos_sim.video import video_info

ray = pytest.importorskip("ray")

STAGES = ("capture", "controls", "transfer", "dataset")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=2**27)
    yield
    ray.shutdown()


def small_plan(captures=None, **stages):
    return load_plan(
        {
            "name": "test",
            "captures": captures
            or [{"name": "tab", "seconds": 0.25, "seeds": [0, 1], "width": 160, "height": 88}],
            "stages": {
                "controls": {"modalities": ["depth", "seg", "edge"], "device": "cpu"},
                "transfer": {"backend": "appearance", "prompt": "at dusk"},
                "dataset": {},
                **stages,
            },
            "max_retries": 2,
        }
    )


def assert_every_output_once(out: Path, units: list[str]) -> None:
    """One published folder per unit and stage, each with its marker, and no partial left."""
    for stage in STAGES:
        assert sorted(p.name for p in (out / stage).iterdir()) == sorted(units), stage
        for unit in units:
            assert (out / stage / unit / DONE_MARKER).is_file()
    for unit in units:
        clips = json.loads((out / "controls" / unit / "clips.json").read_text())
        transfer = json.loads((out / "transfer" / unit / "transfer.json").read_text())
        assert transfer["complete"] and set(transfer["cameras"]) == set(clips["cameras"])
        for camera in clips["cameras"]:
            output = video_info(out / "transfer" / unit / camera / "output.mp4")
            assert output["frames"] == clips["num_frames"]
        coco = json.loads((out / "dataset" / unit / "annotations.json").read_text())
        names = [image["file_name"] for image in coco["images"]]
        assert len(names) == len(set(names)) == clips["num_frames"] * len(clips["cameras"])


def test_plan_runs_every_stage_once_and_a_rerun_does_nothing(tmp_path):
    plan, out = small_plan(), tmp_path / "out"
    seen = []
    report = run_plan(plan, out, on_progress=lambda p: seen.append(p.counts()))
    units = ["tab-s0", "tab-s1"]
    assert report["failed"] == []
    assert all(report["stages"][s]["done"] == 2 for s in STAGES)
    assert report["units_per_hour"] > 0 and len(report["transfer_workers"]) == 1
    assert report["transfer_workers"][0]["calls"] == 2  # one resident backend for both units
    assert json.loads((out / REPORT).read_text())["units"] == report["units"]
    assert any(c["controls"]["running"] for c in seen)
    assert_every_output_once(out, units)

    before = outputs(out)
    again = run_plan(plan, out)
    assert all(again["stages"][s]["skipped"] == 2 and again["stages"][s]["done"] == 0
               for s in STAGES)  # fmt: skip
    assert again["ray"].startswith("not started")
    assert outputs(out) == before


def outputs(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for s in STAGES for p in (out / s).rglob("*")}


def kill_first_attempt(out: Path, stage: str, killed: dict, stop: threading.Event) -> None:
    """SIGKILL the process writing the first partial folder seen in OUT/stage."""
    while not stop.is_set():
        folder = out / stage
        found = sorted(folder.glob(f".*{PARTIAL_SUFFIX}")) if folder.is_dir() else []
        if found:
            pid = int(found[0].name.removesuffix(PARTIAL_SUFFIX).rsplit("-", 1)[1])
            unit = found[0].name[1:].split(".")[0]
            os.kill(pid, signal.SIGKILL)
            killed[stage] = (unit, pid)
            return
        time.sleep(0.01)


def test_workers_killed_mid_unit_are_retried_and_write_once(tmp_path):
    plan, out = small_plan(), tmp_path / "out"
    killed: dict[str, tuple[str, int]] = {}
    stop = threading.Event()
    killers = [
        threading.Thread(target=kill_first_attempt, args=(out, stage, killed, stop), daemon=True)
        for stage in ("controls", "transfer")  # a task's worker and the resident actor
    ]
    for killer in killers:
        killer.start()
    try:
        report = run_plan(plan, out)
    finally:
        stop.set()
    assert set(killed) == {"controls", "transfer"}, "the killers saw no unit in flight"
    assert report["failed"] == []
    assert_every_output_once(out, ["tab-s0", "tab-s1"])
    for stage, (unit, pid) in killed.items():
        marker = json.loads((out / stage / unit / DONE_MARKER).read_text())
        assert marker["pid"] != pid, f"{stage} {unit} was finished by a new process"
        assert marker["abandoned_attempts"] == 1
        assert report["stages"][stage]["retried"] == [unit]
    # the restarted actor built its backend again and finished the killed unit
    assert sum(w["calls"] for w in report["transfer_workers"]) >= 1


def test_a_failing_unit_is_reported_and_the_others_finish(tmp_path):
    captures = [
        {"name": "good", "seconds": 0.25, "seeds": [0], "width": 160, "height": 88},
        {"name": "bad", "seconds": 0.25, "seeds": [0], "width": 160, "height": 88,
         "cameras": ["no_such_camera"]},
    ]  # fmt: skip
    out, plan = tmp_path / "out", small_plan(captures)
    plan = plan.model_copy(update={"max_units_in_flight": 1})
    in_flight = []
    report = run_plan(plan, out, on_progress=lambda p: in_flight.append(units_in_flight(p)))
    assert max(in_flight) == 1  # backpressure: the second unit starts when the first is over
    assert [(f["unit"], f["stage"]) for f in report["failed"]] == [("bad-s0", "controls")]
    assert "no_such_camera" in report["failed"][0]["error"]
    assert report["units"]["bad-s0"] == {
        "capture": "done", "controls": "failed", "transfer": "blocked", "dataset": "blocked"
    }  # fmt: skip
    assert all(state == "done" for state in report["units"]["good-s0"].values())
    assert not (out / "controls" / "bad-s0").exists()
    assert list((out / "controls").glob(f".*{PARTIAL_SUFFIX}")) == []


def units_in_flight(progress) -> int:
    """Units between their first and last stage: one running, or some done and some waiting."""
    count = 0
    for unit in progress.units:
        states = {progress.state[stage][unit] for stage in progress.stages}
        count += "running" in states or ("done" in states and "waiting" in states)
    return count


def test_a_model_that_cannot_load_fails_its_units_with_the_cause(tmp_path):
    missing = tmp_path / "no_cosmos_checkout"  # as on a node that lacks the checkout
    transfer = {"backend": "cosmos-cli", "options": {"cosmos_root": str(missing)},
                "gpus_per_worker": 0}  # fmt: skip
    report = run_plan(small_plan(transfer=transfer), tmp_path / "out")
    assert [(f["unit"], f["stage"]) for f in report["failed"]] == [
        ("tab-s0", "transfer"), ("tab-s1", "transfer")
    ]  # fmt: skip
    assert all(str(missing) in f["error"] for f in report["failed"]), report["failed"]
    assert report["stages"]["controls"]["done"] == 2  # the stages before transfer still ran
    assert not (tmp_path / "out" / "transfer" / "tab-s0").exists()
