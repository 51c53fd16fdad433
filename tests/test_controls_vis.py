import numpy as np
import pytest

from cosmos_sim.controls import VIS_PRESETS, vis_control
from cosmos_sim.types import SpecError


def textured(h: int = 64, w: int = 96) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[h // 4 : h // 2, w // 4 : w // 2] = (250, 30, 30)
    return img


def high_freq_energy(img: np.ndarray) -> float:
    grey = img.astype(np.float64).mean(axis=-1)
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


def test_vis_control_smooths_and_keeps_size():
    img = textured()
    out = vis_control(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert high_freq_energy(out) < 0.25 * high_freq_energy(img)
    assert out.astype(float).var() < img.astype(float).var()


def test_vis_control_larger_down_up_factor_is_smoother():
    # very_low and high share the bilateral step and differ only in the down-up factor (4, 16).
    img = textured()
    assert high_freq_energy(vis_control(img, "high")) < high_freq_energy(
        vis_control(img, "very_low")
    )


def test_vis_control_keeps_a_flat_image_flat():
    img = np.full((2, 48, 64, 3), (10, 120, 240), np.uint8)
    out = vis_control(img, "medium")
    assert out.shape == img.shape
    assert np.abs(out.astype(int) - img.astype(int)).max() <= 1


def test_vis_presets_match_transfer25():
    assert VIS_PRESETS["medium"].pre_downscale == 2 and VIS_PRESETS["medium"].downup == 10
    assert (VIS_PRESETS["medium"].d, VIS_PRESETS["medium"].sigma_color) == (30, 150)
    assert VIS_PRESETS["low"].downup == 4 and VIS_PRESETS["high"].downup == 16


def test_vis_control_names_the_known_presets():
    with pytest.raises(SpecError, match="medium"):
        vis_control(textured(), "blurry")
