"""HD-map control: Cosmos' tables, the depth-ordered rendering, and checks that could fail."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from cosmos_sim.bridges.carla_rig import default_rig
from cosmos_sim.bridges.opendrive import compile_map, load_opendrive
from cosmos_sim.controls import hdmap
from cosmos_sim.controls.hdmap_geometry import offset_polyline
from cosmos_sim.controls.hdmap_raster import clip_polygon
from cosmos_sim.controls.hdmap_style import ELEMENT_COLORS, LINE_WIDTH_PX

STREET = Path(__file__).parent / "data" / "two_way_street.xodr"


@pytest.fixture(scope="module")
def street_geometry():
    return compile_map(STREET).geometry


@pytest.fixture(scope="module")
def street_scene(street_geometry):
    return hdmap.compile_scene(street_geometry)


def test_lane_line_table_is_upstream_s_fifteen_types_and_unknown_types_fall_back_to_other():
    styles = hdmap.LANE_LINE_STYLES
    assert len(styles) == 15
    assert styles["WHITE SOLID_SINGLE"].color == (255, 255, 255)
    assert styles["YELLOW SOLID_GROUP"].patterns == ("solid", "solid")
    assert styles["WHITE OTHER"].thickness == 3.0 and styles["YELLOW OTHER"].thickness == 3.0
    assert styles["OTHER"].color == (181, 164, 71)
    # Dotted is yellow only: a 5 cm dot every 50 cm.
    assert styles["YELLOW DOT_SOLID_SINGLE"].patterns == ("dotted_1_9",)
    dots = hdmap.pattern_segments(np.array([[0.0, 0, 0], [5.0, 0, 0]]), "dotted_1_9")
    np.testing.assert_allclose(dots[:, 0, 0], np.arange(0, 5.0, 0.5))
    np.testing.assert_allclose(dots[:, 1, 0] - dots[:, 0, 0], 0.05)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            style = hdmap.lane_line_style("WHITE DASHED_GROUP_TEST")
    assert style == styles["OTHER"]
    assert len(caught) == 1 and "drawn as OTHER" in str(caught[0].message)  # reported once
    scene = hdmap.compile_scene(
        hdmap.MapGeometry(lane_lines=[(np.array([[0.0, 0, 0], [4, 0, 0]]), "BLUE SOLID_SINGLE")])
    )
    np.testing.assert_array_equal(np.unique(scene.seg_color, axis=0), [[181, 164, 71]])


@pytest.mark.parametrize(
    ("kind", "left_solid"), [("YELLOW DASHED_SOLID", True), ("YELLOW SOLID_DASHED", False)]
)
def test_dual_line_order_is_upstream_s_first_pattern_on_the_left(kind, left_solid):
    # A line running along +x: its left (counter-clockwise of the direction) is +y.
    line = np.stack([np.linspace(0, 48, 49), np.zeros(49), np.zeros(49)], 1)
    scene = hdmap.compile_scene(hdmap.MapGeometry(lane_lines=[(line, kind)]))
    mid = 0.5 * (scene.seg_a + scene.seg_b)
    left, right = mid[:, 1] > 0, mid[:, 1] < 0
    np.testing.assert_allclose(np.abs(mid[:, 1]), 0.1)  # each line 0.1 m off the centre

    def drawn_m(side):
        return float(np.linalg.norm(scene.seg_b[side] - scene.seg_a[side], axis=1).sum())

    solid, dashed = (
        (drawn_m(left), drawn_m(right)) if left_solid else (drawn_m(right), drawn_m(left))
    )
    assert solid == pytest.approx(48.0, rel=1e-6)
    assert dashed == pytest.approx(12.0, rel=1e-6)  # 3 m on / 9 m off over 48 m


def test_v1_palette_is_transfer1_s_exactly_without_patterns_or_double_lines():
    assert ELEMENT_COLORS["v1"] == {
        "laneline": (98, 183, 249),
        "pole": (66, 40, 144),
        "road_boundary": (200, 36, 35),
        "wait_line": (185, 63, 34),
        "crosswalk": (206, 131, 63),
        "road_marking": (126, 204, 205),
        "traffic_sign": (131, 175, 155),
        "traffic_light": (252, 157, 155),
    }
    assert LINE_WIDTH_PX == {"v3": 12, "v1": 8}
    line = np.stack([np.linspace(0, 48, 49), np.zeros(49), np.zeros(49)], 1)
    scene = hdmap.compile_scene(
        hdmap.MapGeometry(lane_lines=[(line, "YELLOW DASHED_SOLID")]), version="v1"
    )
    np.testing.assert_array_equal(np.unique(scene.seg_color, axis=0), [[98, 183, 249]])
    np.testing.assert_allclose(np.linalg.norm(scene.seg_b - scene.seg_a, axis=1).sum(), 48.0)
    np.testing.assert_allclose(scene.seg_a[:, 1], 0.0)  # one line, on the centre
    light = {"id": "7", "kind": "vehicle", "center": [10, 0, 3], "size": [0.3, 0.4, 1], "yaw": 0}
    scene = hdmap.compile_scene(hdmap.MapGeometry(traffic_lights=[light]), version="v1")
    assert tuple(scene.cuboid_color[0]) == (252, 157, 155)
    with pytest.raises(ValueError, match="use 'v3'"):
        hdmap.compile_scene(hdmap.MapGeometry(), version="v2")


def _forward_camera(x: float, y: float):
    cam = default_rig().cameras[0]
    ego = np.eye(4)
    ego[:3, 3] = [x, y, 0.0]
    return cam.K, ego @ cam.cam_to_body, cam.height, cam.width


def _project(K, cam_to_world, point):
    cam = np.linalg.inv(cam_to_world) @ np.append(point, 1.0)
    u, v = (K @ cam[:3])[:2] / cam[2]
    return int(round(u)), int(round(v))


def test_a_box_in_front_hides_the_line_behind_it():
    # A white line across the road 30 m ahead and a car 15 m ahead standing on it in view.
    line = np.array([[30.0, -3.0, 0.0], [30.0, 3.0, 0.0]])
    geometry = hdmap.MapGeometry(lane_lines=[(line, "WHITE SOLID_SINGLE")])
    scene = hdmap.compile_scene(geometry)
    K, cam_to_world, h, w = _forward_camera(0.0, 0.0)
    car = {"class": "Car", "corners": hdmap.cuboid_corners((15.0, 0.0, 1.0), (4.0, 2.0, 2.0), 0.0)}
    u, v = _project(K, cam_to_world, np.array([30.0, 0.0, 0.0]))
    free = hdmap.render_hdmap(scene, K, cam_to_world, h, w)
    hidden = hdmap.render_hdmap(scene, K, cam_to_world, h, w, hdmap.DynamicState([car]))
    assert free[v, u].min() > 200  # the white line, nothing in front
    r, g, b = hidden[v, u].astype(int)
    assert r < 150 and b > r + 60  # the car's blue face (Car gradient), not the white line
    # A line in front of a box is drawn over it.
    near = hdmap.compile_scene(
        hdmap.MapGeometry(
            lane_lines=[(np.array([[8.0, -3, 0], [8.0, 3, 0]]), "WHITE SOLID_SINGLE")]
        )
    )
    u, v = _project(K, cam_to_world, np.array([8.0, 0.0, 0.0]))
    over = hdmap.render_hdmap(near, K, cam_to_world, h, w, hdmap.DynamicState([car]))
    assert over[v, u].min() > 200


def _top_down(x: float, y: float, height: float, width: int = 1280, h: int = 320):
    f = width * height / 60.0  # 60 m across the image
    K = np.array([[f, 0, width / 2], [0, f, h / 2], [0, 0, 1.0]])
    cam_to_world = np.eye(4)
    cam_to_world[:3, :3] = np.array([[1, 0, 0], [0, -1, 0], [0, 0, -1.0]]).T  # x→x, y→−y, z→−z
    cam_to_world[:3, 3] = [x, y, height]
    return K, cam_to_world, h, width, f / height


def test_line_width_tapers_with_depth_as_upstream_s_shader():
    # A long line straight ahead on the ground: its width in pixels is 12 · (1 − z/200)
    # (the 1 m band's middle), measured across image rows at three depths.
    line = np.stack([np.linspace(2, 190, 189), np.zeros(189), np.zeros(189)], 1)
    scene = hdmap.compile_scene(hdmap.MapGeometry(lane_lines=[(line, "WHITE SOLID_SINGLE")]))
    h, w = 400, 400
    K = np.array([[1000.0, 0, w / 2], [0, 1000.0, 0.0], [0, 0, 1]])  # row 0: the horizon
    cam_to_world = np.eye(4)
    cam_to_world[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]  # looking along +x
    cam_to_world[:3, 3] = [0.0, 0.0, 3.0]
    image = hdmap.render_hdmap(scene, K, cam_to_world, h, w, antialias=False)
    widths = {}
    for x in (10.0, 60.0, 100.0):
        u, v = _project(K, cam_to_world, np.array([x, 0.0, 0.0]))
        depth = float((np.linalg.inv(cam_to_world) @ np.array([x, 0, 0, 1.0]))[2])
        widths[x] = (int((image[v].max(-1) > 0).sum()), 12 * (1 - (np.floor(depth) + 0.5) / 200))
    for measured, expected in widths.values():  # cv2 covers up to 2 px past a thickness
        assert 0 <= measured - max(1, round(expected)) <= 2, widths
    assert widths[10.0][0] > widths[60.0][0] > widths[100.0][0]


def test_lines_have_round_caps():
    line = np.array([[0.0, 0, 0], [2.0, 0, 0]])
    scene = hdmap.compile_scene(hdmap.MapGeometry(road_boundaries=[line]))
    K, cam_to_world, h, w, px_per_m = _top_down(1.0, 0.0, 5.0, 640, 320)
    image = hdmap.render_hdmap(scene, K, cam_to_world, h, w, antialias=False)
    ys, xs = np.nonzero(image.max(-1))
    row = image[int(ys.mean())].max(-1) > 0
    end = np.flatnonzero(row).max()
    thickness = ys.max() - ys.min() + 1
    # A round cap reaches half the width past the end; its corner rows fall short of it.
    assert end - (w / 2 + 1.0 * px_per_m) == pytest.approx(thickness / 2, abs=1.5)
    top_row = image[ys.min()].max(-1) > 0
    assert np.flatnonzero(top_row).max() < end - thickness / 4


def test_solid_white_and_broken_yellow_with_its_period(street_scene):
    K, cam_to_world, h, w, px_per_m = _top_down(80.0, -3.5, 30.0)
    image = hdmap.render_hdmap(street_scene, K, cam_to_world, h, w, antialias=False)
    # Columns: x = 52…94 m, short of the stop line at 98 m.
    # Rows: v = cy − (y − y_cam) · px_per_m. The solid white edge at y = −7 is covered by
    # the road boundary drawn over it (boundaries win over coplanar lane lines).
    v_yellow = int(round(h / 2 - (0.0 - -3.5) * px_per_m))
    v_white = int(round(h / 2 - (-3.5 - -3.5) * px_per_m))
    cols = slice(int(w / 2 - 28 * px_per_m), int(w / 2 + 14 * px_per_m))
    image = image[:, cols]
    white = image[v_white].astype(int)
    on = white.max(axis=1) > 100
    assert on.any()
    assert np.all(np.abs(white[on][:, 0] - white[on][:, 2]) < 3)  # white: equal channels
    yellow = image[v_yellow].astype(int)
    on = yellow.max(axis=1) > 100
    assert np.all(yellow[on][:, 2] < 5) and np.all(np.abs(yellow[on][:, 0] - yellow[on][:, 1]) < 3)
    starts = np.flatnonzero(on[1:] & ~on[:-1])
    period_m = np.diff(starts) / px_per_m
    assert len(period_m) >= 2
    np.testing.assert_allclose(period_m, 12.0, atol=0.1)
    runs = [np.argmax(~on[s + 1 :]) for s in starts[:-1]]
    thickness = round(12 * (1 - 30.5 / 200))  # 30 m deep: band 30
    np.testing.assert_allclose(np.array(runs) / px_per_m, 3.0 + thickness / px_per_m, atol=0.15)
    boundary = image[int(round(h / 2 - (-7.0 - -3.5) * px_per_m))].astype(int)
    np.testing.assert_array_equal(
        boundary[5], np.round(np.array(ELEMENT_COLORS["v3"]["road_boundary"]) * (1 - 30.5 / 200))
    )


def test_nothing_renders_from_behind_the_camera(street_scene):
    cam = default_rig().cameras[0]
    ego = np.eye(4)
    ego[:3, :3] = np.diag([-1.0, -1.0, 1.0])  # yaw 180°: the whole road is behind
    ego[:3, 3] = [-1.0, -1.75, 0.0]
    image = hdmap.render_hdmap(street_scene, cam.K, ego @ cam.cam_to_body, cam.height, cam.width)
    assert image.max() == 0


def test_lines_crossing_the_camera_plane_do_not_wrap_into_the_sky():
    geometry = hdmap.MapGeometry(
        lane_lines=[(np.array([[-50.0, 1.0, 0.0], [50.0, 1.0, 0.0]]), "WHITE SOLID_SINGLE")]
    )
    scene = hdmap.compile_scene(geometry)
    K, cam_to_world, h, w = _forward_camera(0.0, 0.0)
    image = hdmap.render_hdmap(scene, K, cam_to_world, h, w)
    assert image[h // 2 + 10 :].max() > 0
    assert image[: int(K[1, 2]) - 6].max() == 0


def test_traffic_light_colour_follows_its_state_and_boxes_have_the_gradient(street_scene):
    K, cam_to_world, h, w = _forward_camera(80.0, -5.25)
    box = {
        "class": "Car",
        "corners": hdmap.cuboid_corners((95.0, -5.25, 0.8), (4.6, 2.0, 1.6), np.pi).tolist(),
    }
    red = hdmap.render_hdmap(
        street_scene, K, cam_to_world, h, w, hdmap.DynamicState([box], {"20": "red"})
    )
    green = hdmap.render_hdmap(
        street_scene, K, cam_to_world, h, w, hdmap.DynamicState([], {"20": "green"})
    )

    def has(image, rgb, depth, tol=3):
        fade = 1 - (np.floor(depth) + 0.5) / 200
        return bool(np.any(np.all(np.abs(image.astype(int) - np.round(np.array(rgb) * fade))
                                  <= tol, axis=-1)))  # fmt: skip

    light_depth = 100.25 - 80 - 1.5  # the light head, seen from the camera 1.5 m forward
    assert any(has(red, hdmap.TRAFFIC_LIGHT_COLORS["red"], light_depth + d) for d in (0, 1))
    assert not any(has(green, hdmap.TRAFFIC_LIGHT_COLORS["red"], light_depth + d) for d in (0, 1))
    assert any(has(green, hdmap.TRAFFIC_LIGHT_COLORS["green"], light_depth + d) for d in (0, 1))
    # The car faces the camera (yaw π): its front face shows the gradient's front colour.
    assert any(has(red, hdmap.BOX_GRADIENTS["Car"][0], 95 - 81.5 + d) for d in (-1, 0, 1))


def test_pattern_pieces_and_polygon_clipping():
    line = np.array([[0.0, 0, 0], [30.0, 0, 0]])
    dashes = hdmap.pattern_segments(line, "long_dashed")
    assert np.linalg.norm(dashes[:, 1] - dashes[:, 0], axis=1).max() <= 0.8 + 1e-9
    starts = dashes[:, 0, 0][np.concatenate([[True], dashes[1:, 0, 0] - dashes[:-1, 1, 0] > 1e-6])]
    np.testing.assert_allclose(starts, [0, 12, 24])
    np.testing.assert_allclose(np.linalg.norm(dashes[:, 1] - dashes[:, 0], axis=1).sum(), 9.0)
    quad = np.array([[0, 0, -5.0], [1, 0, -5.0], [1, 0, 5.0], [0, 0, 5.0]])
    clipped = clip_polygon(quad, 0.3, 200.0)
    assert clipped[:, 2].min() == pytest.approx(0.3) and len(clipped) == 4
    left, right = offset_polyline(line, 0.1)
    np.testing.assert_allclose(left[:, 1], 0.1)
    np.testing.assert_allclose(right[:, 1], -0.1)


def test_lane_centre_lands_between_two_rendered_lane_lines(street_scene):
    K, cam_to_world, h, w = _forward_camera(20.0, -1.75)
    image = hdmap.render_hdmap(street_scene, K, cam_to_world, h, w)
    wp = load_opendrive(STREET).get_waypoint_xodr(1, -1, 36.0)  # both dashed lines drawn
    loc = wp.transform.location
    u, v = _project(K, cam_to_world, np.array([loc.x, -loc.y, loc.z]))
    row = image[v]
    assert row[u].max() <= 30
    left = next(i for i in range(u, -1, -1) if row[i].max() > 30)
    right = next(i for i in range(u, w) if row[i].max() > 30)
    r, g, b = max(row[max(left - 12, 0) : left + 1].astype(int), key=sum)
    assert r > 100 and g > 100 and b < 40  # yellow centre line on the left
    r, g, b = max(row[right : right + 13].astype(int), key=sum)
    assert min(r, g, b) > 100  # white divider on the right
