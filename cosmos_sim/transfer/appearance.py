"""Classical appearance randomisation: the embedded default transfer backend (not Cosmos).

It re-renders a clip from its controls with randomised materials, light, sky, weather and
camera effects, on a laptop CPU. It is a domain-randomisation baseline, not a generative
model, and everything it writes says so ("classical appearance randomisation").

Where its inputs come from (the clip alone, no episode):
- instance ids: the seg video is bit-exact (libx264rgb qp=0) and `seg_palette.json` maps each
  colour back to its id (`SegDecoder`); labels are never guessed from lossy video;
- geometry: `depth.mp4`, Cosmos' near-bright inverse depth normalised per clip, gives a
  relative depth from which normals (lighting) and fog are derived;
- shading detail: the simulator RGB's luminance, normalised per instance, so shadows and
  edges the simulator rendered survive the new materials.

Randomness is keyed so the output is temporally stable: each instance's material (colour,
procedural texture, roughness) comes from a generator seeded with (seed, instance id), so an
instance keeps its look across the clip (and across clips); the texture is anchored at the
instance's centroid, so it moves with the object; the look (light, sky, weather, camera)
comes from (seed, prompt keywords) once per clip. Only sensor noise and rain change per
frame. Prompt keywords ("night", "sunset", "fog", "rain", "snow", "overcast", ...) select
presets (`KEYWORDS`); everything is vectorised numpy/OpenCV with per-clip precomputation.
"""

from __future__ import annotations

import colorsys
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cosmos_sim.transfer.base import (
    Chunk,
    Clip,
    ClipError,
    SegDecoder,
    SessionOptions,
    TickFrame,
    check_chunk,
    prefetch,
)

NAME = "classical appearance randomisation"
TILE = 256
"""Side of the tileable procedural textures (a power of two: wrapping is a bit mask)."""
NOMINAL_FOV_DEG = 60.0
"""Vertical field of view assumed for normals (clips carry no intrinsics)."""
NOMINAL_DEPTH_RATIO = 8.0
"""Far/near depth ratio assumed when turning the normalised inverse depth into depth."""


@dataclass(frozen=True)
class Look:
    """Scene-wide appearance: light, sky, weather and camera."""

    name: str
    sun_dir: tuple[float, float, float] = (0.35, -0.8, -0.45)
    """Direction towards the sun in the camera frame (x right, y down, z forward)."""
    sun_rgb: tuple[float, float, float] = (1.0, 0.96, 0.9)
    ambient_rgb: tuple[float, float, float] = (0.42, 0.45, 0.5)
    sky_top: tuple[float, float, float] = (0.25, 0.45, 0.85)
    sky_horizon: tuple[float, float, float] = (0.7, 0.8, 0.92)
    clouds: float = 0.3
    """Cloud cover of the replacement sky, 0–1."""
    fog: float = 0.0
    """Fog density, 0 (clear) – 1 (the far plane vanishes)."""
    fog_rgb: tuple[float, float, float] = (0.75, 0.78, 0.8)
    rain: float = 0.0
    """Rain streak density, 0–1."""
    snow: float = 0.0
    """Snowflake density, 0–1."""
    wet: float = 0.0
    """Wet surfaces, 0–1: darker albedo, stronger highlights."""
    exposure: float = 1.0
    saturation: float = 1.0
    noise: float = 0.01
    """Sensor noise standard deviation (1.0 = full scale)."""
    blur_px: float = 0.0
    """Gaussian blur sigma in pixels (defocus / motion)."""
    vignette: float = 0.25
    """Corner darkening, 0–1."""


TIMES_OF_DAY = {
    "day": Look("day"),
    "sunset": Look(
        "sunset",
        sun_dir=(-0.8, -0.25, 0.2),
        sun_rgb=(1.2, 0.62, 0.3),
        ambient_rgb=(0.3, 0.25, 0.32),
        sky_top=(0.2, 0.22, 0.45),
        sky_horizon=(1.0, 0.55, 0.25),
        clouds=0.35,
        fog_rgb=(0.85, 0.6, 0.45),
        saturation=1.1,
        vignette=0.35,
    ),
    "night": Look(
        "night",
        sun_dir=(0.2, -0.7, 0.3),
        sun_rgb=(0.3, 0.34, 0.5),
        ambient_rgb=(0.16, 0.17, 0.24),
        sky_top=(0.01, 0.015, 0.04),
        sky_horizon=(0.05, 0.06, 0.1),
        clouds=0.15,
        fog_rgb=(0.08, 0.09, 0.12),
        exposure=1.8,
        saturation=0.7,
        noise=0.035,
        vignette=0.45,
    ),
}

WEATHERS: dict[str, dict[str, Any]] = {
    "clear": {},
    "overcast": {"sun": 0.3, "ambient": 1.5, "grey_sky": 0.75, "clouds": 0.9},
    "fog": {"sun": 0.5, "ambient": 1.3, "grey_sky": 0.6, "fog": 0.8, "blur_px": 0.6},
    "rain": {
        "sun": 0.25,
        "ambient": 1.3,
        "grey_sky": 0.8,
        "clouds": 1.0,
        "rain": 0.8,
        "wet": 0.8,
        "fog": 0.25,
    },
    "snow": {"sun": 0.4, "ambient": 1.5, "grey_sky": 0.8, "clouds": 1.0, "snow": 0.8, "fog": 0.2},
}

KEYWORDS: dict[str, tuple[str, str]] = {
    **{w: ("time", "day") for w in ("day", "daytime", "daylight", "noon", "sunny", "morning")},
    **{
        w: ("time", "sunset")
        for w in ("sunset", "sundown", "dusk", "dawn", "sunrise", "golden", "evening")
    },
    **{w: ("time", "night") for w in ("night", "nighttime", "midnight", "dark", "moonlight")},
    **{w: ("weather", "overcast") for w in ("overcast", "cloudy", "clouds", "grey", "gray")},
    **{w: ("weather", "fog") for w in ("fog", "foggy", "mist", "misty", "haze", "hazy")},
    **{
        w: ("weather", "rain")
        for w in ("rain", "rainy", "raining", "storm", "stormy", "wet", "drizzle")
    },
    **{w: ("weather", "snow") for w in ("snow", "snowy", "snowing", "winter", "blizzard")},
}
"""Prompt word -> (group, preset). The last word of each group in the prompt wins."""


def look_from_prompt(prompt: str, seed: int) -> tuple[Look, list[str]]:
    """The look a prompt asks for (time of day × weather), jittered by the seed."""
    chosen = {"time": "day", "weather": "clear"}
    matched = []
    for word in re.findall(r"[a-z]+", prompt.lower()):
        if word in KEYWORDS:
            group, preset = KEYWORDS[word]
            chosen[group] = preset
            matched.append(word)
    look = TIMES_OF_DAY[chosen["time"]]
    w = WEATHERS[chosen["weather"]]
    if w:
        grey = np.mean(look.sky_horizon)
        sky = [
            tuple(float(c + w["grey_sky"] * (grey - c)) for c in col)
            for col in (look.sky_top, look.sky_horizon)
        ]
        look = replace(
            look,
            sun_rgb=_scale(look.sun_rgb, w["sun"]),
            ambient_rgb=_scale(look.ambient_rgb, w["ambient"]),
            sky_top=sky[0],
            sky_horizon=sky[1],
            clouds=w.get("clouds", look.clouds),
            fog=w.get("fog", look.fog),
            fog_rgb=sky[1] if chosen["time"] != "night" else look.fog_rgb,
            rain=w.get("rain", 0.0),
            snow=w.get("snow", 0.0),
            wet=w.get("wet", 0.0),
            blur_px=w.get("blur_px", look.blur_px),
        )
    rng = np.random.default_rng([seed & 0xFFFFFFFF, 0x100C])
    yaw = rng.uniform(-0.35, 0.35)
    x, y, z = look.sun_dir
    look = replace(
        look,
        name=f"{chosen['time']}+{chosen['weather']}",
        sun_dir=(x * math.cos(yaw) - z * math.sin(yaw), y, x * math.sin(yaw) + z * math.cos(yaw)),
        exposure=look.exposure * float(rng.uniform(0.92, 1.08)),
        sun_rgb=_scale(look.sun_rgb, rng.uniform(0.95, 1.05, 3)),
    )
    return look, matched


def _scale(rgb: tuple[float, ...], k: float | np.ndarray) -> tuple[float, float, float]:
    out = np.asarray(rgb, dtype=np.float64) * k
    return (float(out[0]), float(out[1]), float(out[2]))


# name, weight, hue range, saturation range, value range, roughness range
MATERIAL_FAMILIES = (
    ("paint", 3, (0.0, 1.0), (0.35, 0.9), (0.3, 0.9), (0.25, 0.6)),
    ("wood", 2, (0.05, 0.11), (0.4, 0.75), (0.3, 0.7), (0.55, 0.85)),
    ("metal", 2, (0.0, 1.0), (0.0, 0.12), (0.45, 0.85), (0.1, 0.35)),
    ("fabric", 2, (0.0, 1.0), (0.2, 0.6), (0.2, 0.7), (0.85, 1.0)),
    ("stone", 2, (0.05, 0.15), (0.0, 0.2), (0.4, 0.8), (0.6, 0.9)),
)
TEXTURE_VARIANTS = 2


@dataclass(frozen=True)
class Material:
    family: str
    albedo: tuple[float, float, float]
    roughness: float
    texture: int
    """Index of the procedural texture tile (family × variant)."""


def material(instance_id: int, seed: int) -> Material:
    """The material of one instance, a function of (seed, instance id) only."""
    rng = np.random.default_rng([seed & 0xFFFFFFFF, int(instance_id), 0x3A7])
    weights = np.array([f[1] for f in MATERIAL_FAMILIES], dtype=float)
    k = int(rng.choice(len(MATERIAL_FAMILIES), p=weights / weights.sum()))
    name, _, hue, sat, val, rough = MATERIAL_FAMILIES[k]
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(*hue), rng.uniform(*sat), rng.uniform(*val))
    texture = k * TEXTURE_VARIANTS + int(rng.integers(TEXTURE_VARIANTS))
    return Material(name, (r, g, b), float(rng.uniform(*rough)), texture)


def texture_tiles(seed: int) -> np.ndarray:
    """(families × variants) tileable TILE×TILE shading maps (mean ≈ 1), one per clip."""
    rng = np.random.default_rng([seed & 0xFFFFFFFF, 0x7E7])
    x = np.arange(TILE, dtype=np.float32)
    u, v = np.meshgrid(x, x)
    tiles = []
    for name, *_ in MATERIAL_FAMILIES:
        for variant in range(TEXTURE_VARIANTS):
            scale = 1 + variant
            n1 = _tileable_noise(rng, 4 * scale)
            n2 = _tileable_noise(rng, 16 * scale)
            if name == "paint":
                t = 1 + 0.05 * n1 + 0.03 * n2
            elif name == "wood":
                rings = np.sin(2 * np.pi * (3 * scale * v / TILE + 0.6 * n1))
                t = 1 + 0.18 * rings + 0.05 * n2
            elif name == "metal":
                streaks = cv2.blur(rng.standard_normal((TILE, TILE)).astype(np.float32), (31, 1))
                t = 1 + 0.35 * streaks + 0.04 * n1
            elif name == "fabric":
                weave = np.sin(2 * np.pi * 32 * u / TILE) * np.sin(2 * np.pi * 32 * v / TILE)
                t = 1 + 0.08 * weave + 0.08 * n2
            else:  # stone: tiles with grout lines
                cell = TILE // (2 * scale)
                grout = ((u % cell) < 3) | ((v % cell) < 3)
                t = 1 + 0.12 * n2 + 0.06 * n1 - 0.35 * grout
            tiles.append(t.astype(np.float32))
    return np.stack(tiles)


def _tileable_noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Zero-mean, unit-ish value noise that wraps around a TILE×TILE square."""
    grid = rng.standard_normal((cells, cells)).astype(np.float32)
    big = cv2.resize(np.tile(grid, (3, 3)), (3 * TILE, 3 * TILE), interpolation=cv2.INTER_CUBIC)
    out = big[TILE : 2 * TILE, TILE : 2 * TILE]
    return (out - out.mean()) / (out.std() + 1e-6)


class AppearanceRenderer:
    """Per-clip state (materials, textures, sky, weather layers) and the per-frame render."""

    def __init__(
        self,
        width: int,
        height: int,
        palette_ids: np.ndarray,
        look: Look,
        seed: int,
        *,
        depth_ratio: float = NOMINAL_DEPTH_RATIO,
        fov_deg: float = NOMINAL_FOV_DEG,
    ) -> None:
        self.width, self.height, self.look, self.seed = width, height, look, seed
        self.depth_ratio = depth_ratio
        self.set_ids(palette_ids)
        self.tiles = texture_tiles(seed).ravel()
        yy, xx = np.mgrid[0:height, 0:width]
        self.yy, self.xx = yy.astype(np.int32), xx.astype(np.int32)
        hh, hw = (height + 1) // 2, (width + 1) // 2
        f_half = 0.25 * height / math.tan(math.radians(fov_deg) / 2)
        vh, uh = np.mgrid[0:hh, 0:hw].astype(np.float32)
        self.half = (hw, hh)
        self.u_c = (uh - hw / 2).astype(np.float32)
        self.v_c = (vh - hh / 2).astype(np.float32)
        self.f_half = np.float32(f_half)
        sun = np.asarray(look.sun_dir, np.float32)
        self.sun = sun / np.linalg.norm(sun)
        half_vec = self.sun + np.array([0, 0, -1], np.float32)
        self.half_vec = half_vec / np.linalg.norm(half_vec)
        self.sun_rgb = np.asarray(look.sun_rgb, np.float32)
        self.ambient = np.asarray(look.ambient_rgb, np.float32)
        rng = np.random.default_rng([seed & 0xFFFFFFFF, 0x5C1])
        self.sky = _saturate(self._sky(rng), look.saturation)
        self.fog_rgb = _saturate(np.asarray(look.fog_rgb, np.float32), look.saturation)
        self.gain = self._vignette() * np.float32(look.exposure)
        self.sky *= _rgb(self.gain)
        self.sun_rgb_img = self._fill(self.sun_rgb)
        self.fog_img = self._fill(self.fog_rgb)
        # a small bank of noise frames, rolled by a random offset each frame
        self.noise = [
            rng.standard_normal((height, width, 3), dtype=np.float32) * np.float32(look.noise)
            for _ in range(2 if look.noise > 0 else 0)
        ]
        self.precip = self._precipitation(rng)
        # streaks and flakes catch the scene's light: dimmer at night
        light = float(np.mean(self.ambient + self.sun_rgb))
        grey = min(0.9, (0.35 if look.snow else 0.25) + 0.6 * light)
        self.precip_img = self._fill(np.full(3, grey, np.float32))

    def set_ids(self, palette_ids: np.ndarray) -> None:
        """Per-instance tables for these ids (the palette's, sorted), indexed like SegDecoder.

        A stream calls it again when new instances appear; each id's material depends only on
        (seed, id), so instances already seen keep their look.
        """
        ids = np.asarray(palette_ids, dtype=np.int64)
        look, wet = self.look, self.look.wet
        self.materials = {int(i): material(int(i), self.seed) for i in ids if i != 0}
        albedo = np.zeros((len(ids), 3), np.float32)
        rough = np.ones(len(ids), np.float32)
        tex = np.zeros(len(ids), np.int32)
        for k, i in enumerate(ids):
            m = self.materials.get(int(i))
            if m is not None:
                albedo[k] = np.asarray(m.albedo) * (1 - 0.45 * wet)
                rough[k] = m.roughness * (1 - 0.7 * wet)
                tex[k] = m.texture
        self.albedo = _saturate(albedo, look.saturation)
        self.shininess = (2 + 120 * (1 - rough) ** 2).astype(np.float32)
        self.specular = ((0.04 + 0.5 * (1 - rough) ** 2) * (1 + 1.5 * wet)).astype(np.float32)
        self.tile_offset = (tex * TILE * TILE).astype(np.int32)
        self.background = np.flatnonzero(ids == 0)

    def _fill(self, rgb: np.ndarray) -> np.ndarray:
        """A constant colour as a full H×W×3 image (per-frame math then needs no broadcasting)."""
        return np.ascontiguousarray(
            np.broadcast_to(np.asarray(rgb, np.float32), (self.height, self.width, 3))
        )

    def _sky(self, rng: np.random.Generator) -> np.ndarray:
        h, w = self.height, self.width
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None] ** 0.7
        top, horizon = (
            np.asarray(c, np.float32) for c in (self.look.sky_top, self.look.sky_horizon)
        )
        sky = top + (horizon - top) * t
        if self.look.clouds > 0:
            small = rng.standard_normal((h // 96 + 2, w // 96 + 2)).astype(np.float32)
            fine = rng.standard_normal((h // 24 + 2, w // 24 + 2)).astype(np.float32)
            noise = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) + 0.4 * cv2.resize(
                fine, (w, h), interpolation=cv2.INTER_CUBIC
            )
            cover = np.clip((noise - (1.2 - 2.4 * self.look.clouds)) * 0.6, 0, 1)[..., None]
            cloud = np.mean(self.look.sky_horizon) * 0.9 + 0.1 + np.zeros(3, np.float32)
            sky = sky + (cloud - sky) * cover
        return np.ascontiguousarray(sky, dtype=np.float32)

    def _vignette(self) -> np.ndarray:
        h, w = self.height, self.width
        y = (np.arange(h, dtype=np.float32) - h / 2) / (h / 2)
        x = (np.arange(w, dtype=np.float32) - w / 2) / (w / 2)
        r2 = x[None, :] ** 2 * (w / max(w, h)) ** 2 + y[:, None] ** 2 * (h / max(w, h)) ** 2
        return (1 - self.look.vignette * np.clip(r2, 0, 1.5) / 1.5).astype(np.float32)

    def _precipitation(self, rng: np.random.Generator) -> list[np.ndarray]:
        """A few full-frame rain-streak or snowflake layers (0–1), cycled and scrolled."""
        amount = max(self.look.rain, self.look.snow)
        if amount <= 0:
            return []
        h, w = self.height, self.width
        layers = []
        for _ in range(4):
            canvas = np.zeros((h, w), np.uint8)
            n = int(amount * w * h / 1800)
            xs, ys = rng.integers(0, w, n), rng.integers(0, h, n)
            if self.look.rain:
                length = rng.integers(h // 40, h // 14, n)
                for x, y, ln in zip(xs, ys, length, strict=True):
                    cv2.line(canvas, (int(x), int(y)), (int(x + ln // 6), int(y + ln)), 255, 1)
            else:
                radius = rng.integers(1, 3, n)
                for x, y, r in zip(xs, ys, radius, strict=True):
                    cv2.circle(canvas, (int(x), int(y)), int(r), 255, -1)
            layer = cv2.GaussianBlur(canvas, (3, 3), 0).astype(np.float32) / 255
            layers.append(layer * np.float32(0.35 + 0.4 * amount))
        return layers

    def render(
        self, rgb: np.ndarray, index: np.ndarray, inv_depth: np.ndarray, frame: int
    ) -> np.ndarray:
        """One output frame from the sim RGB, palette indices (SegDecoder.index) and depth.

        Full-resolution work is kept to whole-array multiply-adds: per-pixel scalars (texture,
        detail, vignette, fog) are combined in one channel first and per-instance values are
        gathered with np.take; lighting runs at half resolution.
        """
        index = index.astype(np.intp)
        light, spec, fog = self._lighting(index, inv_depth)
        shade = self._texture(index)
        shade *= self._detail(rgb, index)
        shade *= self.gain
        out = np.take(self.albedo, index, axis=0)
        out *= light
        out *= _rgb(shade)
        spec *= self.gain
        out += _rgb(spec) * self.sun_rgb_img
        if self.background.size:
            cv2.copyTo(self.sky, (index == self.background[0]).view(np.uint8), out)
        if fog is not None:
            out *= _rgb(1 - fog)
            fog *= self.gain
            out += _rgb(fog) * self.fog_img
        if self.precip:
            layer = self.precip[frame % len(self.precip)]
            shift = (frame * self.height // (9 if self.look.rain else 60)) % self.height
            layer = np.roll(layer, shift, axis=0)
            out *= _rgb(1 - layer)
            out += _rgb(layer * self.gain) * self.precip_img
        if self.noise:
            rng = np.random.default_rng([self.seed & 0xFFFFFFFF, frame, 0x2015E])
            shift = (int(rng.integers(self.height)), int(rng.integers(self.width)))
            out += np.roll(self.noise[frame % len(self.noise)], shift, axis=(0, 1))
        np.maximum(out, 0, out=out)
        result = cv2.convertScaleAbs(out, alpha=255.0)
        if self.look.blur_px > 0:
            result = cv2.GaussianBlur(result, (0, 0), self.look.blur_px)
        return result

    def _lighting(self, index: np.ndarray, inv_depth: np.ndarray):
        """Light colour (H×W×3), specular (H×W) and fog (H×W or None) from depth normals."""
        hw, hh = self.half
        d = cv2.resize(inv_depth, (hw, hh), interpolation=cv2.INTER_AREA).astype(np.float32)
        d = cv2.blur(d, (5, 5)) * np.float32(1 / 255)
        # normalised inverse depth (near = 1) -> depth in units of the near plane
        z = 1.0 / (np.float32(1 / self.depth_ratio) + d * np.float32(1 - 1 / self.depth_ratio))
        zu = cv2.Sobel(z, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
        zv = cv2.Sobel(z, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
        nx, ny = self.f_half * zu, self.f_half * zv
        nz = -(z + zu * self.u_c + zv * self.v_c)
        inv_len = 1.0 / np.sqrt(nx * nx + ny * ny + nz * nz + np.float32(1e-12))
        sun, hv = self.sun, self.half_vec
        lambert = np.maximum((nx * sun[0] + ny * sun[1] + nz * sun[2]) * inv_len, 0)
        n_dot_h = np.maximum((nx * hv[0] + ny * hv[1] + nz * hv[2]) * inv_len, 0)
        idx_half = index[::2, ::2][:hh, :hw]
        spec = np.take(self.specular, idx_half) * lambert
        spec *= n_dot_h ** np.take(self.shininess, idx_half)
        light = cv2.merge(
            [c + k * lambert for c, k in zip(self.ambient, self.sun_rgb, strict=True)]
        )
        size = (self.width, self.height)
        light = cv2.resize(light, size, interpolation=cv2.INTER_LINEAR)
        spec = cv2.resize(spec, size, interpolation=cv2.INTER_LINEAR)
        fog = None
        if self.look.fog > 0:
            far = 1.0 - d  # 0 near … 1 far plane / sky
            fog_half = 1.0 - np.exp(-3.0 * self.look.fog * far * far).astype(np.float32)
            fog = cv2.resize(fog_half, size, interpolation=cv2.INTER_LINEAR)
        return light, spec, fog

    def _detail(self, rgb: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Sim luminance over its per-instance mean: keeps shadows and edges, drops colour."""
        luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) * np.float32(1 / 255)
        small_idx = index[::4, ::4].ravel()
        n = len(self.albedo)
        total = np.bincount(small_idx, weights=luma[::4, ::4].ravel(), minlength=n)
        count = np.bincount(small_idx, minlength=n)
        mean = (total / np.maximum(count, 1)).astype(np.float32) + np.float32(0.03)
        luma /= np.take(mean, index)
        np.clip(luma, 0.35, 1.6, out=luma)
        luma *= np.float32(0.6)
        luma += np.float32(0.4)
        return luma

    def _texture(self, index: np.ndarray) -> np.ndarray:
        """Each instance's texture tile, anchored at the instance's centroid so it moves with it."""
        small = index[::4, ::4].ravel()
        n = len(self.albedo)
        count = np.maximum(np.bincount(small, minlength=n), 1)
        cy = np.bincount(small, weights=self.yy[::4, ::4].ravel(), minlength=n) / count
        cx = np.bincount(small, weights=self.xx[::4, ::4].ravel(), minlength=n) / count
        oy, ox = np.rint(cy).astype(np.int32), np.rint(cx).astype(np.int32)
        mask = TILE - 1
        row = self.yy - np.take(oy, index)
        row &= mask
        row *= TILE
        col = self.xx - np.take(ox, index)
        col &= mask
        row += col
        row += np.take(self.tile_offset, index)
        return np.take(self.tiles, row)


def _saturate(rgb: np.ndarray, saturation: float) -> np.ndarray:
    """Scale colourfulness about each colour's grey (applied to colour tables, once per clip)."""
    grey = rgb.mean(axis=-1, keepdims=True)
    return (grey + (rgb - grey) * np.float32(saturation)).astype(np.float32)


def _rgb(channel: np.ndarray) -> np.ndarray:
    """An H×W map repeated into H×W×3 (faster than numpy broadcasting over the last axis)."""
    return cv2.merge([channel, channel, channel])


class AppearanceBackend:
    """Transfer backend "appearance": classical appearance randomisation on the CPU."""

    name = "appearance"
    needs = ("seg", "depth")
    """Controls a stream must carry (`cosmos_sim.augment` computes only these)."""

    def __init__(self, *, depth_ratio: float = NOMINAL_DEPTH_RATIO) -> None:
        self.depth_ratio = depth_ratio

    def describe(self) -> dict[str, Any]:
        return {
            "method": NAME,
            "model": None,
            "note": "not a generative model and not Cosmos: seeded materials, lighting from "
            "depth normals, sky, weather and camera effects",
            "keywords": sorted(KEYWORDS),
        }

    def transfer(
        self, clip: Clip, prompt: str, seed: int, workdir: Path | None = None
    ) -> Iterator[np.ndarray]:
        clip.require("rgb", "seg", "depth", needed_by=f"the appearance backend ({NAME})")
        session = self.start(SessionOptions(clip.camera, *clip.size, prompt, seed, clip.fps))
        palette = clip.palette
        videos = (clip.frames("rgb"), clip.frames("seg"), clip.frames("depth"))
        streams = prefetch(zip(*videos, strict=False))  # decode while rendering
        frame = -1
        for frame, (rgb, seg, depth) in enumerate(streams):
            controls = {"seg": seg[None], "depth": depth[None]}
            session.push(Chunk(np.array([frame]), rgb[None], controls, palette))
            yield session.pull()[0].frame
        if frame + 1 != clip.num_frames:
            raise ClipError(
                f"clip {clip.folder}: rgb.mp4, seg.mp4 and depth.mp4 do not have the same "
                f"number of frames (stopped after {frame + 1} of {clip.num_frames}); "
                "re-run `cosmos-sim controls`"
            )

    def start(self, options: SessionOptions) -> AppearanceSession:
        """A session that renders each pushed chunk at once, in the caller's thread."""
        return AppearanceSession(options, depth_ratio=self.depth_ratio)


class AppearanceSession:
    """The appearance backend over a stream: one renderer for the run, grown as ids appear.

    It needs the `seg` (with its palette) and `depth` controls of every chunk. The look
    comes from (prompt, seed) once; an instance keeps its material for the whole run; the
    frame counter behind sensor noise and rain runs over the stream, not per chunk. Chunks
    are rendered in `push`, so `pull` never waits.
    """

    def __init__(self, options: SessionOptions, *, depth_ratio: float) -> None:
        self.options, self.depth_ratio = options, depth_ratio
        self.look, _ = look_from_prompt(options.prompt, options.seed)
        self._palette: dict[int, tuple[int, int, int]] = {}
        self._decoder: SegDecoder | None = None
        self._renderer: AppearanceRenderer | None = None
        self._ready: list[TickFrame] = []
        self._rendered = 0
        self._last_tick = -1

    def push(self, chunk: Chunk) -> None:
        check_chunk(chunk, self.options, ("seg", "depth"), self._last_tick)
        palette = dict(chunk.palette or {})
        if palette != self._palette:  # new instances (or a redrawn colour): re-index
            self._decoder = SegDecoder(palette)
            if self._renderer is None:
                size = (self.options.width, self.options.height)
                self._renderer = AppearanceRenderer(
                    *size, self._decoder.ids, self.look, self.options.seed,
                    depth_ratio=self.depth_ratio,
                )  # fmt: skip
            else:
                self._renderer.set_ids(self._decoder.ids)
            self._palette = palette
        for tick, rgb, seg, depth in zip(
            chunk.ticks, chunk.rgb, chunk.controls["seg"], chunk.controls["depth"], strict=True
        ):
            index = self._decoder.index(seg)
            frame = self._renderer.render(rgb, index, depth[..., 0], self._rendered)
            self._ready.append(TickFrame(int(tick), frame))
            self._rendered += 1
        self._last_tick = int(chunk.ticks[-1])

    def pull(self, wait: bool = False) -> list[TickFrame]:
        ready, self._ready = self._ready, []
        return ready

    def close(self) -> None:
        self._ready = []
