"""HD-map control: the marking table, carla.Map geometry, and render checks that could fail."""

from __future__ import annotations

from pathlib import Path

import carla
import numpy as np
import pytest

from cosmos_sim.bridges.carla_rig import default_rig
from cosmos_sim.controls import hdmap
from cosmos_sim.controls.opendrive import load_opendrive, map_geometry

STREET = Path(__file__).parent / "data" / "two_way_street.xodr"


@pytest.fixture(scope="module")
def street_map():
    return load_opendrive(STREET)


@pytest.fixture(scope="module")
def street_scene(street_map):
    return hdmap.compile_scene(map_geometry(street_map))


def test_marking_type_mapping_table_covers_carla_and_matches_cosmos():
    assert set(carla.LaneMarkingType.names) == set(hdmap.CARLA_MARKING_TYPES)
    assert set(carla.LaneMarkingColor.names) == set(hdmap.CARLA_MARKING_COLORS)
    table = {
        ("Solid", "White"): "WHITE_SOLID_SINGLE",
        ("Solid", "Standard"): "WHITE_SOLID_SINGLE",
        ("Broken", "Yellow"): "YELLOW_LONG_DASHED_SINGLE",
        ("SolidSolid", "Yellow"): "YELLOW_SOLID_GROUP",
        ("SolidBroken", "Yellow"): "YELLOW_SOLID_DASHED",
        ("BrokenSolid", "White"): "WHITE_DASHED_SOLID",
        ("BottsDots", "White"): "WHITE_DOTTED_SINGLE",
        ("Other", "Yellow"): "YELLOW_OTHER",
        ("Solid", "Blue"): "OTHER",
        ("NONE", "White"): None,
        ("Curb", "White"): None,
    }
    for (kind, color), want in table.items():
        assert hdmap.lane_line_type(kind, color) == want
    styles = hdmap.LANE_LINE_STYLES
    assert styles["WHITE_SOLID_SINGLE"].color == (255, 255, 255)
    assert styles["YELLOW_SOLID_GROUP"].color == (255, 255, 0)
    assert styles["YELLOW_SOLID_GROUP"].patterns == ("solid", "solid")
    assert styles["WHITE_OTHER"].thickness == 3.0
    assert styles["OTHER"].color == (181, 164, 71)
    assert hdmap.PATTERNS["long_dashed"] == (3.0, 9.0)
    assert hdmap.PATTERNS["short_dashed"] == (1.5, 1.5)
    with pytest.raises(ValueError, match="not a CARLA LaneMarkingType"):
        hdmap.lane_line_type("Zigzag", "White")


def test_own_opendrive_map_gives_lines_by_type_and_the_signals(street_map):
    geometry = map_geometry(street_map)
    lines = {kind: pts for pts, kind in geometry.lane_lines}
    # OpenDRIVE y is our y: the right-hand lanes have negative t.
    assert np.allclose(lines["YELLOW_LONG_DASHED_SINGLE"][:, 1], 0.0)
    assert np.allclose(lines["WHITE_LONG_DASHED_SINGLE"][:, 1], -3.5)
    solid_ys = sorted(
        {round(float(p[0, 1]), 2) for p, k in geometry.lane_lines if k == "WHITE_SOLID_SINGLE"}
    )
    assert solid_ys == [-7.0, 3.5]
    assert len(geometry.road_boundaries) == 2
    (crosswalk,) = geometry.crosswalks
    assert crosswalk[:, 0].min() == pytest.approx(118) and crosswalk[:, 1].max() == pytest.approx(7)
    (light,) = geometry.traffic_lights
    assert light["id"] == "20" and light["center"][0] == pytest.approx(100.25, abs=0.3)
    assert len(geometry.traffic_signs) == 1 and len(geometry.wait_lines) == 1
    assert len(geometry.poles) == 2


def _forward_camera(x: float, y: float, height: float = 1.7):
    cam = default_rig().cameras[0]
    ego = np.eye(4)
    ego[:3, 3] = [x, y, 0.0]
    return cam.K, ego @ cam.cam_to_body, cam.width, cam.height


def _lit(pixel: np.ndarray) -> bool:
    return int(pixel.max()) > 30


def test_lane_centre_waypoint_lands_between_two_rendered_lane_lines(street_map, street_scene):
    K, cam_to_world, w, h = _forward_camera(20.0, -1.75)
    image = hdmap.render_hdmap(street_scene, K, cam_to_world, w, h)
    wp = street_map.get_waypoint_xodr(1, -1, 36.0)  # a dash of both dashed lines at s=36
    loc = wp.transform.location
    point = np.array([loc.x, -loc.y, loc.z, 1.0])
    cam = np.linalg.inv(cam_to_world) @ point
    u, v = (K @ cam[:3])[:2] / cam[2]
    u, v = int(round(u)), int(round(v))
    assert 0 <= u < w and 0 <= v < h
    row = image[v]
    assert not _lit(row[u])
    left = next(i for i in range(u, -1, -1) if _lit(row[i]))
    right = next(i for i in range(u, w) if _lit(row[i]))
    # Left of the lane is the yellow centre line, right of it the white divider (the first
    # lit pixels are anti-aliased edges; judge each line by its brightest pixel).
    r, g, b = max(row[max(left - 12, 0) : left + 1].astype(int), key=sum)
    assert r > 100 and g > 100 and b < 40
    r, g, b = max(row[right : right + 13].astype(int), key=sum)
    assert min(r, g, b) > 100
    assert 50 < right - left < 600


def _top_down(x: float, y: float, height: float, width: int = 1280, h: int = 320):
    f = width * height / 60.0  # 60 m across the image
    K = np.array([[f, 0, width / 2], [0, f, h / 2], [0, 0, 1.0]])
    cam_to_world = np.eye(4)
    cam_to_world[:3, :3] = np.array([[1, 0, 0], [0, -1, 0], [0, 0, -1.0]]).T  # x→x, y→−y, z→−z
    cam_to_world[:3, 3] = [x, y, height]
    return K, cam_to_world, width, h, f / height


def test_solid_white_renders_white_and_broken_yellow_renders_yellow_with_its_period(street_scene):
    K, cam_to_world, w, h, px_per_m = _top_down(100.0, -3.5, 30.0)
    image = hdmap.render_hdmap(street_scene, K, cam_to_world, w, h, antialias=False)
    # World y maps to image rows downwards: v = cy − (y − y_cam) · px_per_m. Columns cover
    # x = 72…114 m, short of the crosswalk at 118 m.
    v_yellow = int(round(h / 2 - (0.0 - -3.5) * px_per_m))
    v_white = int(round(h / 2 - (-7.0 - -3.5) * px_per_m))
    cols = slice(int(w / 2 - 28 * px_per_m), int(w / 2 + 14 * px_per_m))
    image = image[:, cols]
    white = image[v_white].astype(int)
    assert (white.min(axis=1) > 150).all(), "the solid edge line has a gap"
    assert np.all(np.abs(white[:, 0] - white[:, 2]) < 3)  # white: equal channels
    yellow = image[v_yellow].astype(int)
    on = yellow.max(axis=1) > 100
    assert np.all(yellow[on][:, 2] < 5) and np.all(np.abs(yellow[on][:, 0] - yellow[on][:, 1]) < 3)
    starts = np.flatnonzero(on[1:] & ~on[:-1])
    period_m = np.diff(starts) / px_per_m
    assert len(period_m) >= 2
    np.testing.assert_allclose(period_m, 12.0, atol=0.1)
    runs = [np.argmax(~on[s + 1 :]) for s in starts[:-1]]
    # 3 m dashes; the 12 px round caps add 12 px (0.375 m at this scale) to each.
    np.testing.assert_allclose(np.array(runs) / px_per_m, 3.0 + 12 / px_per_m, atol=0.15)


def test_nothing_renders_from_behind_the_camera(street_scene):
    # At the road's start looking away from it: the whole road is behind the camera.
    cam = default_rig().cameras[0]
    ego = np.eye(4)
    ego[:3, :3] = np.diag([-1.0, -1.0, 1.0])  # yaw 180°
    ego[:3, 3] = [-1.0, -1.75, 0.0]
    image = hdmap.render_hdmap(street_scene, cam.K, ego @ cam.cam_to_body, cam.width, cam.height)
    assert image.max() == 0


def test_lines_crossing_the_camera_plane_do_not_wrap_into_the_sky():
    # One ground line from 50 m behind to 50 m ahead: only the part ahead may show, and a
    # ground line ahead lies below the horizon. Naive projection flips the rear half up.
    geometry = hdmap.MapGeometry(
        lane_lines=[(np.array([[-50.0, 1.0, 0.0], [50.0, 1.0, 0.0]]), "WHITE_SOLID_SINGLE")]
    )
    scene = hdmap.compile_scene(geometry)
    K, cam_to_world, w, h = _forward_camera(0.0, 0.0)
    image = hdmap.render_hdmap(scene, K, cam_to_world, w, h)
    horizon = int(K[1, 2])
    assert image[h // 2 + 10 :].max() > 0
    assert image[: horizon - 6].max() == 0


def test_a_long_segment_passing_the_camera_renders_although_both_ends_are_out_of_range():
    # A straight road edge given as two points 1 km apart, crossing 10 m ahead: its ends are
    # beyond the 200 m fade distance, the part in front of the camera is not.
    crossing = np.array([[10.0, -500.0, 0.0], [10.0, 500.0, 0.0]])
    sampled = np.stack([np.full(1001, 10.0), np.linspace(-500, 500, 1001), np.zeros(1001)], 1)
    K, cam_to_world, w, h = _forward_camera(0.0, 0.0)
    images = [
        hdmap.render_hdmap(
            hdmap.compile_scene(hdmap.MapGeometry(lane_lines=[(line, "WHITE_SOLID_SINGLE")])),
            K,
            cam_to_world,
            w,
            h,
        )
        for line in (crossing, sampled)
    ]
    lit = [int((image.max(axis=-1) > 0).sum()) for image in images]
    assert lit[1] > 0
    assert abs(lit[0] - lit[1]) <= 0.02 * lit[1]


def test_traffic_light_colour_follows_its_state_and_boxes_have_the_gradient(street_scene):
    K, cam_to_world, w, h = _forward_camera(80.0, -5.25)
    box = {
        "class": "Car",
        "corners": hdmap.cuboid_corners((95.0, -5.25, 0.8), (4.6, 2.0, 1.6), np.pi).tolist(),
    }
    red = hdmap.render_hdmap(
        street_scene, K, cam_to_world, w, h, hdmap.DynamicState([box], {"20": "red"})
    )
    green = hdmap.render_hdmap(
        street_scene, K, cam_to_world, w, h, hdmap.DynamicState([], {"20": "green"})
    )
    fade = 1 - 20 / 200

    def has(image, rgb, tol=6):
        return bool(
            np.any(np.all(np.abs(image.astype(int) - np.array(rgb) * fade) <= tol, axis=-1))
        )

    assert has(red, hdmap.TRAFFIC_LIGHT_COLORS["red"], tol=12)
    assert not has(green, hdmap.TRAFFIC_LIGHT_COLORS["red"], tol=12)
    assert has(green, hdmap.TRAFFIC_LIGHT_COLORS["green"], tol=12)
    # The car faces the camera (yaw π): its front face shows the gradient's front colour.
    assert has(red, hdmap.BOX_GRADIENTS["Car"][0], tol=12)


def test_v1_uses_transfer1_colours_and_wireframe_boxes(street_scene):
    geometry = map_geometry(load_opendrive(STREET))
    scene = hdmap.compile_scene(geometry, version="v1")
    K, cam_to_world, w, h = _forward_camera(20.0, -1.75)
    image = hdmap.render_hdmap(scene, K, cam_to_world, w, h)
    lit = image.reshape(-1, 3)[image.reshape(-1, 3).max(1) > 150].astype(int)
    laneline = np.array(hdmap.ELEMENT_COLORS["v1"]["laneline"])
    ratio = lit / laneline  # a faded v1 lane line: all three channels scaled alike
    assert np.any(np.ptp(ratio, axis=1) < 0.03)
    assert not np.any(np.all(lit > 240, axis=1)), "v1 has no white lane lines"
    with pytest.raises(ValueError, match="use 'v3'"):
        hdmap.compile_scene(geometry, version="v2")


def test_pattern_segments_and_polygon_clipping():
    line = np.array([[0.0, 0, 0], [30.0, 0, 0]])
    dashes = hdmap.pattern_segments(line, "long_dashed")
    lengths = np.linalg.norm(dashes[:, 1] - dashes[:, 0], axis=1)
    np.testing.assert_allclose(dashes[:, 0, 0], [0, 12, 24])
    np.testing.assert_allclose(lengths, 3.0)
    quad = np.array([[0, 0, -5.0], [1, 0, -5.0], [1, 0, 5.0], [0, 0, 5.0]])
    clipped = hdmap.clip_polygon(quad, 0.3, 200.0)
    assert clipped[:, 2].min() == pytest.approx(0.3) and len(clipped) == 4
