import colorsys

import numpy as np
import pytest

from cosmos_sim.controls import load_palette, save_palette, seg_control, seg_palette
from cosmos_sim.types import SpecError


def test_seg_palette_background_is_black_and_colours_are_unique():
    palette = seg_palette(range(0, 600), seed=3)
    assert palette[0] == (0, 0, 0)
    colours = [palette[i] for i in range(1, 600)]
    assert len(set(colours)) == len(colours)
    assert (0, 0, 0) not in colours


def test_seg_palette_follows_cosmos_hsv_ranges():
    for r, g, b in seg_palette(range(1, 300), seed=0).values():
        h, s, v = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
        assert 0.2 - 1e-2 <= v <= 1.0
        assert 0.1 - 2e-2 <= s <= 1.0


def test_seg_palette_is_stable_under_the_seed():
    assert seg_palette([0, 4, 9], seed=7) == seg_palette([9, 4, 0], seed=7)
    assert seg_palette([4], seed=7)[4] != seg_palette([4], seed=8)[4]


def test_seg_palette_colour_of_an_id_does_not_depend_on_other_ids():
    small = seg_palette([0, 5], seed=11)
    large = seg_palette([0, 1, 2, 3, 5, 17, 1000], seed=11)
    assert small[5] == large[5]


def test_seg_palette_rejects_negative_ids():
    with pytest.raises(SpecError, match="negative"):
        seg_palette([-1, 0, 2], seed=0)


def test_seg_control_paints_each_instance_with_its_palette_colour():
    ids = np.zeros((2, 6, 8), np.int32)
    ids[0, 1:3, 1:4] = 7
    ids[1, 2:5, 5:8] = 42
    palette = seg_palette(np.unique(ids), seed=0)
    out = seg_control(ids, palette)
    assert out.shape == (2, 6, 8, 3) and out.dtype == np.uint8
    assert tuple(out[0, 1, 1]) == palette[7]
    assert tuple(out[1, 3, 6]) == palette[42]
    assert tuple(out[0, 0, 0]) == (0, 0, 0)


def test_seg_control_handles_very_large_ids():
    ids = np.array([[0, 2**30], [2**30, 5]], np.int64)
    palette = seg_palette(np.unique(ids), seed=1)
    out = seg_control(ids, palette)
    assert tuple(out[0, 1]) == palette[2**30] and tuple(out[1, 1]) == palette[5]


def test_seg_control_refuses_an_id_missing_from_the_palette():
    ids = np.array([[0, 3]], np.int32)
    with pytest.raises(SpecError, match=r"\[3\]"):
        seg_control(ids, seg_palette([0], seed=0))


def test_seg_palette_json_round_trip(tmp_path):
    palette = seg_palette([0, 1, 2, 300], seed=5)
    path = save_palette(palette, tmp_path / "seg_palette.json", seed=5)
    assert load_palette(path) == palette
