import numpy as np
import pytest

from cosmos_sim.controls import depth_control, depth_range
from cosmos_sim.types import SpecError


def plane_with_box(plane_m: float = 2.0, box_m: float = 1.0) -> np.ndarray:
    depth = np.full((32, 48), plane_m, np.float32)
    depth[8:16, 10:20] = box_m
    return depth


def test_depth_control_nearer_pixel_is_brighter():
    out = depth_control(plane_with_box()[None])
    assert out.shape == (1, 32, 48, 3) and out.dtype == np.uint8
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 0], out[..., 2])
    assert out[0, 10, 12, 0] > out[0, 0, 0, 0]
    assert out[0, 10, 12, 0] == 255 and out[0, 0, 0, 0] == 0


def test_depth_control_is_inverse_depth_over_the_range():
    depth = np.array([[1.0, 2.0, 4.0, 8.0, 0.5]], np.float32)
    grey = depth_control(depth, min_m=1.0, max_m=4.0)[..., 0]
    # inverse depth 1, 0.5, 0.25 -> (inv - 1/4) / (1 - 1/4): 1, 1/3, 0; outside the range clips
    assert grey.tolist() == [[255, 85, 0, 0, 255]]


def test_depth_control_normalises_over_the_whole_clip():
    frame_a = plane_with_box(plane_m=2.0, box_m=1.0)
    frame_b = np.full_like(frame_a, 0.25)  # a much nearer frame later in the clip
    alone = depth_control(frame_a[None])
    in_clip = depth_control(np.stack([frame_a, frame_b]))
    assert alone[0, 10, 12, 0] == 255
    assert in_clip[0, 10, 12, 0] < 128  # the box is no longer the nearest thing in the clip
    assert in_clip[1].min() == 255 and in_clip[0].min() == 0


def test_depth_range_is_robust_to_a_few_outliers():
    depth = np.full((100, 100), 3.0, np.float32)
    depth[:50] = 1.0
    depth[0, :5] = 0.01  # five pixels on the near plane
    lo, hi = depth_range(depth)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(3.0)


def test_depth_control_single_frame_keeps_its_shape():
    assert depth_control(plane_with_box()).shape == (32, 48, 3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_depth_control_rejects_non_finite_depth(bad):
    depth = plane_with_box()
    depth[3, 3] = bad
    with pytest.raises(SpecError, match=r"depth_m.*NaN/inf.*far"):
        depth_control(depth)


def test_depth_control_rejects_a_range_without_a_positive_near_limit():
    with pytest.raises(SpecError, match="min_m"):
        depth_control(plane_with_box(), min_m=0.0, max_m=1.5)
    with pytest.raises(SpecError, match="min_m"):
        depth_control(plane_with_box(), min_m=2.0, max_m=1.0)


def test_depth_control_rejects_integer_depth():
    with pytest.raises(SpecError, match="depth_m"):
        depth_control(np.ones((4, 4), np.int32))
