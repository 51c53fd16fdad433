"""Spatial maps from the episode's instance masks, for the Cosmos spec fields that take them.

Transfer 2.5 reads two kinds: a control's `mask_path` (a video, white where that control
applies: a per-control spatial weight map) and `guided_generation_mask` (an `.npz` whose
`arr_0` holds a label id per pixel and frame, T×H×W; `guided_generation_foreground_labels`
picks the ids Cosmos keeps from the simulator). Both are written frame by frame, so memory
stays one frame whatever the clip length. Transfer 1 takes a control's weight as a `.pt`
tensor instead (T×H×W, `load_spatial_temporal_weights` in cosmos-transfer1), which
`write_weight_map` writes (float16: half the size of float32; upstream reads it as bf16).
"""

from __future__ import annotations

import itertools
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from cosmos_sim.types import SpecError


def instance_mask(instance_ids: np.ndarray, keep: Sequence[int]) -> np.ndarray:
    """H×W×3 uint8: white (255) where the pixel's instance id is in `keep`, else black."""
    if not len(keep):
        raise SpecError("instance_mask: give at least one instance id to keep")
    hit = np.isin(instance_ids, np.asarray(keep, dtype=instance_ids.dtype))
    return np.repeat((hit * np.uint8(255))[..., None], 3, axis=2)


def write_mask_video(
    path: str | Path, instance_ids: Iterable[np.ndarray], keep: Sequence[int], fps: float
) -> Path:
    """A lossless mask video (white = apply) of the pixels whose id is in `keep`."""
    from cosmos_sim.video import VideoWriter

    with VideoWriter(path, fps, lossless=True) as writer:
        for ids in instance_ids:
            writer.write(instance_mask(ids, keep))
    return Path(path)


def write_label_npz(path: str | Path, instance_ids: Iterable[np.ndarray], num_frames: int) -> Path:
    """`arr_0` = the instance ids (int32, T×H×W) as an `.npz`, streamed frame by frame."""
    path = Path(path)
    frames = iter(instance_ids)
    first = np.asarray(next(frames), dtype=np.int32)
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(np.int32)),
        "fortran_order": False,
        "shape": (num_frames, *first.shape),
    }
    written = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("arr_0.npy", "w", force_zip64=True) as out:
            np.lib.format.write_array_header_1_0(out, header)
            for ids in itertools.chain([first], frames):
                ids = np.ascontiguousarray(ids, dtype=np.int32)
                if ids.shape != first.shape:
                    raise SpecError(
                        f"write_label_npz: frame {written} is {ids.shape}, not {first.shape}"
                    )
                out.write(ids.tobytes())
                written += 1
    if written != num_frames:
        path.unlink()
        raise SpecError(f"write_label_npz: got {written} frames, expected num_frames={num_frames}")
    return path


def write_weight_map(
    path: str | Path,
    instance_ids: Iterable[np.ndarray],
    keep: Sequence[int],
    num_frames: int,
    weight: float = 1.0,
) -> Path:
    """A Transfer 1 spatial weight map (`.pt`, float16 T×H×W): `weight` on the pixels whose
    instance id is in `keep`, 0 elsewhere (Cosmos normalises weights across controls)."""
    import torch

    if weight < 0:
        raise SpecError(f"write_weight_map: weight {weight} must be >= 0 (Cosmos clamps at 0)")
    out = None
    written = 0
    for ids in instance_ids:
        if out is None:
            out = torch.zeros((num_frames, *ids.shape), dtype=torch.float16)
        if written == num_frames:
            raise SpecError(f"write_weight_map: more than num_frames={num_frames} frames")
        out[written] = torch.from_numpy(instance_mask(ids, keep)[..., 0] > 0) * weight
        written += 1
    if written != num_frames:
        raise SpecError(f"write_weight_map: got {written} frames, expected {num_frames}")
    torch.save(out, path)
    return Path(path)
