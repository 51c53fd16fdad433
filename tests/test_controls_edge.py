import numpy as np
import pytest

from cosmos_sim.controls import EDGE_PRESETS, edge_control
from cosmos_sim.types import SpecError


def step_image(delta: int) -> np.ndarray:
    img = np.full((32, 32, 3), 100, np.uint8)
    img[:, 16:] = 100 + delta
    return img


def test_edge_presets_are_cosmos_thresholds():
    assert EDGE_PRESETS == {
        "very_low": (20, 50),
        "low": (50, 100),
        "medium": (100, 200),
        "high": (200, 300),
        "very_high": (300, 400),
    }


def test_edge_preset_thresholds_decide_which_steps_are_edges():
    # A step of 40 grey levels gives a Sobel |gx| + |gy| of 160: above low's and very_low's
    # high threshold, below medium's and high's.
    img = step_image(40)
    assert edge_control(img, "very_low").any()
    assert edge_control(img, "low").any()
    assert not edge_control(img, "medium").any()
    assert not edge_control(img, "high").any()
    assert edge_control(step_image(60), "medium").any()  # 240 > 200


def test_edge_control_is_white_on_black_in_three_channels():
    out = edge_control(np.stack([step_image(80)] * 3), "medium")
    assert out.shape == (3, 32, 32, 3) and out.dtype == np.uint8
    assert set(np.unique(out)) == {0, 255}
    assert np.array_equal(out[..., 0], out[..., 2])
    assert out[0, 4:-4, 15:17, 0].any(axis=1).all()  # the line sits on the step
    assert not out[0, :, :10].any()


def test_edge_control_uses_colour_gradients_not_grey():
    # Red to green at the same grey level would vanish after a grey conversion.
    img = np.zeros((32, 32, 3), np.uint8)
    img[:, :16, 0] = 150
    img[:, 16:, 1] = 150
    assert edge_control(img, "medium").any()


def test_edge_control_names_the_known_presets():
    with pytest.raises(SpecError, match="very_high"):
        edge_control(step_image(40), "strong")
