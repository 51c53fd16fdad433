"""A three-function stand-in for `torchvision.transforms`, for CPU tests only.

diffusers' Cosmos transformer and controlnet resize their padding mask with
`torchvision.transforms.functional.resize(..., InterpolationMode.NEAREST)`; no CPU build of
torchvision exists on our registries, so tests install this into those two diffusers modules
(`install`). Real runs use real torchvision.
"""

from __future__ import annotations

import enum
import types

import numpy as np
import torch
import torch.nn.functional as F


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"


def resize(img: torch.Tensor, size: list[int], interpolation=InterpolationMode.NEAREST, **_):
    if interpolation is not InterpolationMode.NEAREST:
        raise NotImplementedError("the stand-in only resizes with NEAREST")
    squeeze = img.ndim == 3
    batch = img[None] if squeeze else img
    out = F.interpolate(batch, size=list(size), mode="nearest")
    return out[0] if squeeze else out


def to_tensor(pic) -> torch.Tensor:
    arr = np.asarray(pic)
    if arr.ndim == 2:
        arr = arr[..., None]
    tensor = torch.from_numpy(arr.transpose(2, 0, 1).copy())
    return tensor.float().div(255) if tensor.dtype == torch.uint8 else tensor


transforms = types.SimpleNamespace(
    InterpolationMode=InterpolationMode,
    functional=types.SimpleNamespace(resize=resize, to_tensor=to_tensor),
)

DIFFUSERS_MODULES = (
    "diffusers.models.transformers.transformer_cosmos",
    "diffusers.models.controlnets.controlnet_cosmos",
)


def install(monkeypatch) -> None:
    """Put the stand-in where those diffusers modules look for `transforms` (pytest monkeypatch)."""
    import importlib

    for name in DIFFUSERS_MODULES:
        monkeypatch.setattr(importlib.import_module(name), "transforms", transforms, raising=False)
