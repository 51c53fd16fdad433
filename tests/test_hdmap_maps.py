"""OpenDRIVE maps -> HD-map geometry: no map crashes the process, elements by their meaning."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from opendrive_corpus import GENERATED

from cosmos_sim.bridges.carla_rig import default_rig
from cosmos_sim.bridges.opendrive import OpenDriveError, compile_map
from cosmos_sim.controls import hdmap
from cosmos_sim.video import scale_intrinsics

DATA = Path(__file__).parent / "data"
STREET = DATA / "two_way_street.xodr"
SHARED = sorted((DATA / "opendrive").glob("*.xodr"))  # real public maps (shared/data copies)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("xodr")
    paths = {}
    for name, build in GENERATED.items():
        paths[name] = folder / f"{name}.xodr"
        paths[name].write_text(build())
    return paths


def _corpus() -> list[str]:
    return [f"shared:{p.name}" for p in SHARED] + ["street"] + list(GENERATED)


def _path(name: str, generated: dict[str, Path]) -> Path:
    if name.startswith("shared:"):
        return DATA / "opendrive" / name.split(":", 1)[1]
    return STREET if name == "street" else generated[name]


@pytest.mark.parametrize("name", _corpus())
def test_every_map_compiles_without_crashing_and_every_frame_has_content(name, generated):
    """The merge and split maps killed the process (exit 139) in libcarla before."""
    compiled = compile_map(_path(name, generated), frames=6, fps=2.0)
    geometry = compiled.geometry
    assert geometry.lane_lines and geometry.road_boundaries, geometry.counts()
    scene = hdmap.compile_scene(geometry)
    cam = default_rig().cameras[0]
    K = scale_intrinsics(cam.K, (cam.width, cam.height), (320, 176))
    frames = hdmap.render_hdmap_clip(
        scene, [K] * 6, [pose @ cam.cam_to_body for pose in compiled.poses], 176, 320
    )
    lit = (frames.max(-1) > 0).mean(axis=(1, 2))
    assert (lit > 0.005).all(), lit


def test_a_crash_in_the_map_worker_is_an_error_naming_the_file_and_the_lane(tmp_path, monkeypatch):
    """A stand-in for libcarla dying mid-map: the worker reports its step, then segfaults."""
    fake = tmp_path / "python"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, os, signal, sys\n"
        "request = json.load(open(sys.argv[-2]))\n"
        "open(request['progress'], 'a').write('road 7 lane -2 (s 40.0-80.0 m)\\n')\n"
        "os.kill(os.getpid(), signal.SIGSEGV)\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    with pytest.raises(OpenDriveError) as caught:
        compile_map(STREET)
    message = str(caught.value)
    assert "crashed with signal 11" in message
    assert str(STREET) in message and "road 7 lane -2" in message


def test_broken_files_are_errors_that_name_them(tmp_path):
    broken = tmp_path / "broken.xodr"
    broken.write_text("<OpenDRIVE><road")
    with pytest.raises(OpenDriveError, match="broken.xodr.*as XML it is broken"):
        compile_map(broken)
    other = tmp_path / "other.xodr"
    other.write_text("<svg/>")
    with pytest.raises(OpenDriveError, match="root element is <svg>"):
        compile_map(other)
    with pytest.raises(FileNotFoundError, match="missing.xodr"):
        compile_map(tmp_path / "missing.xodr")


def test_stop_line_lies_across_the_lanes_it_governs_by_orientation(generated):
    # Street: a "+" stop line governs lanes -1, -2 (y < 0, travelling +x).
    (line,) = compile_map(STREET).geometry.wait_lines
    np.testing.assert_allclose(line[:, 0], 98.0, atol=0.05)
    assert line[:, 1].max() == pytest.approx(0.0, abs=0.05)
    assert line[:, 1].min() == pytest.approx(-7.0, abs=0.05)
    # Generated: a "-" stop line standing at t = -3.5 governs lane 1 (y > 0), where a
    # position-based choice would put it across lane -1.
    (line,) = compile_map(generated["signals"]).geometry.wait_lines
    assert line[:, 1].min() == pytest.approx(0.0, abs=0.05)
    assert line[:, 1].max() == pytest.approx(3.5, abs=0.05)


def test_crosswalks_are_polygons_across_the_road(generated):
    (street,) = compile_map(STREET).geometry.crosswalks  # an OpenDRIVE crosswalk object
    assert street[:, 0].min() == pytest.approx(118) and street[:, 1].max() == pytest.approx(7)
    geometry = compile_map(generated["signals"]).geometry  # a crosswalk marking signal
    (polygon,) = geometry.crosswalks
    assert len(polygon) == 4
    assert np.ptp(polygon[:, 1]) == pytest.approx(7.0, abs=0.05)  # both driving lanes
    assert np.ptp(polygon[:, 0]) == pytest.approx(4.0, abs=0.05)
    assert polygon[:, 0].mean() == pytest.approx(70.0, abs=0.05)
    assert len(geometry.traffic_signs) == 1  # the marking is not drawn as a sign


def test_lights_by_kind_with_heads_at_their_height_and_unknown_types_reported(generated):
    compiled = compile_map(generated["signals"])
    lights = {light["id"]: light for light in compiled.geometry.traffic_lights}
    vehicle, pedestrian = lights["33"], lights["34"]
    assert vehicle["kind"] == "vehicle" and pedestrian["kind"] == "pedestrian"
    # The 3.2 m box standing on the ground is the whole assembly: the head is its top 1.2 m.
    assert vehicle["size"][2] == pytest.approx(1.2)
    assert vehicle["center"][2] - vehicle["size"][2] / 2 == pytest.approx(2.0, abs=0.01)
    assert pedestrian["center"][2] - pedestrian["size"][2] / 2 == pytest.approx(2.5, abs=0.01)
    tops = sorted(round(float(p[1, 2]), 2) for p in compiled.geometry.poles)
    assert tops == [2.0, 2.0, 2.5]  # poles under the sign and both light heads
    assert compiled.unknown_signals == ["424242 (OpenDRIVE, s36)"]
    assert "36" not in lights and len(compiled.geometry.traffic_signs) == 1
    real = compile_map(DATA / "opendrive" / "fabriksgatan_traffic_lights.xodr").geometry
    kinds = sorted(light["kind"] for light in real.traffic_lights)
    assert kinds == ["pedestrian", "pedestrian", "vehicle"]
    assert all(light["center"][2] > 2.0 for light in real.traffic_lights)


def test_lane_lines_are_continuous_across_a_road_join(generated):
    geometry = compile_map(generated["joined"]).geometry
    # Lane -1's right edge (y = -3.5) is a broken white line on both roads.
    pieces = [pts for pts, kind in geometry.lane_lines if np.allclose(pts[:, 1], -3.5)]
    assert len(pieces) == 2
    ends = sorted((float(p[:, 0].min()), float(p[:, 0].max())) for p in pieces)
    assert ends[0][0] == pytest.approx(0.0, abs=0.01) and ends[1][1] == pytest.approx(100, abs=0.01)
    assert ends[1][0] - ends[0][1] < 0.01  # the first ends where the second starts: no gap
    # Rendered from above the join, the solid centre line is lit all the way through it.
    scene = hdmap.compile_scene(geometry)
    f = 20.0
    K = np.array([[f, 0, 200.0], [0, f, 40.0], [0, 0, 1]])
    cam_to_world = np.eye(4)
    cam_to_world[:3, :3] = np.diag([1.0, -1.0, -1.0])
    cam_to_world[:3, 3] = [50.0, 0.0, 10.0]
    image = hdmap.render_hdmap(scene, K, cam_to_world, 80, 400, antialias=False)
    centre_row = image[40, 120:280]  # x = 10…90 m, across the join at 50 m
    assert (centre_row.max(-1) > 150).all()


def test_default_trajectory_stops_smoothly_at_a_dead_end(generated):
    for name in ("dead_end", "one_way_dead_end"):
        poses = compile_map(generated[name], frames=60, fps=10.0, speed_mps=8.0).poses
        xy = np.array([p[:2, 3] for p in poses])
        steps = np.linalg.norm(np.diff(xy, axis=0), axis=1)
        assert steps.max() <= 0.8 + 1e-6  # never faster than 8 m/s, never a jump
        assert np.all(np.abs(np.diff(steps)) <= 3.0 * 0.1**2 + 0.05)  # braking ≤ 3 m/s²
        assert steps[-5:].max() < 1e-6  # standing still, 5 m before the lane's end at 30 m
        assert xy[-1, 0] == pytest.approx(24.5, abs=1.0)
        np.testing.assert_allclose(xy[:, 1], xy[0, 1], atol=1e-6)  # no swap to another lane
        yaw = [np.arctan2(p[1, 0], p[0, 0]) for p in poses]
        np.testing.assert_allclose(yaw, yaw[0], atol=1e-6)  # no turn on the spot


def test_geometry_round_trips_through_json(generated):
    geometry = compile_map(generated["signals"]).geometry
    again = hdmap.MapGeometry.from_json(json.loads(json.dumps(geometry.to_json())))
    assert again.counts() == geometry.counts()
    np.testing.assert_allclose(again.lane_lines[0][0], geometry.lane_lines[0][0], atol=1e-4)
