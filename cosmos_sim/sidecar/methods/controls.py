"""Frames in, Cosmos control frames out, per tick: a transport over the controls table.

A request becomes a one-frame `FrameChunk`; `resolve_stats` fills the depth range (given
limits win, the rest from this frame) and the seg palette, and `compute_controls` runs the
table's functions where the server's `device` puts them (`Server(device=...)`, `cosmos-sim
serve --device`), exactly as the pipeline does for a chunk of an episode.
"""

from __future__ import annotations

import time

import numpy as np

from cosmos_sim.controls import EDGE_PRESETS, VIS_PRESETS
from cosmos_sim.controls.depth import resolve_range
from cosmos_sim.controls.hdmap import DynamicState
from cosmos_sim.controls.lidar import LIDAR_DILATE_PX, LIDAR_MAX_M, LIDAR_MIN_M
from cosmos_sim.controls.table import (
    CONTROLS,
    ClipStats,
    ControlSettings,
    FrameChunk,
    compute_controls,
    resolve_stats,
)
from cosmos_sim.sidecar.protocol import ErrorCode, ProtocolError
from cosmos_sim.sidecar.schema import ArraySpec, Call, Method, Param, Result

_IMAGES = ("rgb", "depth_m", "instance_id")
_CALIBRATION = ("K", "cam_to_world")


def controls(call: Call) -> Result:
    p, arrays = call.params, call.arrays
    wanted = list(dict.fromkeys(p["modalities"]))
    for modality in wanted:
        for name in CONTROLS[modality].inputs:
            array = "points_world" if name == "sweeps" else name
            if array in _CALIBRATION or array in arrays:
                continue
            raise ProtocolError(
                ErrorCode.BAD_ARRAY,
                f"modality {modality!r} needs array {array!r}",
                f"arrays.{array}",
                f"send {array} ({CONTROLS_ARRAYS[array].doc}) or drop "
                f"{modality!r} from params.modalities",
            )
    calibrated = any(m in ("lidar", "hdmap") for m in wanted)
    K = _matrix(p, "K", (3, 3))[None] if calibrated else None
    cam_to_world = _matrix(p, "cam_to_world", (4, 4))[None] if calibrated else None
    height, width = _image_size(call, wanted[0]) if wanted else (0, 0)
    chunk = FrameChunk(
        height=height,
        width=width,
        **{name: arrays[name][None] for name in _IMAGES if name in arrays},
        K=K,
        cam_to_world=cam_to_world,
        sweeps=[arrays["points_world"]] if "points_world" in arrays else None,
        dynamics=[_dynamic_state(p)] if "hdmap" in wanted else None,
    )
    lo, hi = p["depth_min_m"], p["depth_max_m"]
    fixed = None
    if "depth" in wanted and lo is not None and hi is not None:
        fixed = resolve_range(lo, hi, lambda: (lo, hi))
    stats = resolve_stats(chunk, wanted, ClipStats(depth_range_m=fixed), p["seg_seed"])
    if "depth" in wanted and fixed is None:  # one limit given: it wins over this frame's
        stats.depth_range_m = resolve_range(lo, hi, lambda: stats.depth_range_m)
    settings = ControlSettings(
        edge_preset=p["edge_preset"],
        vis_preset=p["vis_preset"],
        seed=p["seg_seed"],
        lidar_max_m=p["lidar_max_m"],
        lidar_min_m=p["lidar_min_m"],
        lidar_dilate_px=p["lidar_dilate_px"],
        lidar_sweeps_each_side=0,
        hdmap_scene=_hdmap_scene(call) if "hdmap" in wanted else None,
    )
    out: dict[str, np.ndarray] = {}
    result: dict = {"timings_ms": {}}
    for modality in wanted:
        start = time.perf_counter()
        frames = compute_controls(
            chunk, [modality], stats, settings=settings, backend=call.server.control_backend
        )
        out[modality] = frames[modality][0]
        result["timings_ms"][modality] = (time.perf_counter() - start) * 1e3
    if "depth" in wanted:
        result["depth_range_m"] = list(stats.depth_range_m)
    if "seg" in wanted:
        result["seg_palette"] = {str(k): list(v) for k, v in stats.palette.items()}
    result["modalities"] = list(out)
    return result, out


def _hdmap_scene(call: Call):
    if call.params["hdmap"] is None:
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            "modality 'hdmap' needs params.hdmap",
            "params.hdmap",
            "load a map with hdmap_load (the server needs the carla extra), pass its handle",
        )
    return call.session.get(call.params["hdmap"], "hdmap", "hdmap")


def _dynamic_state(p: dict) -> DynamicState:
    return DynamicState(
        boxes=[
            {**box, "corners": np.asarray(box.get("corners"), np.float64)} for box in p["boxes"]
        ],
        light_states={str(k): str(v) for k, v in p["light_states"].items()},
    )


def _image_size(call: Call, modality: str) -> tuple[int, int]:
    for name in _IMAGES:
        if name in call.arrays:
            return call.arrays[name].shape[:2]
    height, width = call.params["height"], call.params["width"]
    if not (height and width and height > 0 and width > 0):
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            f"{modality} has no image size",
            "params.height",
            "send height and width (pixels), or an image array (rgb, depth_m, instance_id)",
        )
    return height, width


def _matrix(params: dict, name: str, shape: tuple[int, int]) -> np.ndarray:
    value = params[name]
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.shape != shape or not np.all(np.isfinite(arr)):
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            f"params.{name} is not a finite {shape[0]}×{shape[1]} matrix",
            f"params.{name}",
            f"send {name} as {shape[0]} lists of {shape[1]} numbers (row-major)",
        )
    return arr


CONTROLS_ARRAYS = {
    "rgb": ArraySpec(("uint8",), ("H", "W", 3), doc="uint8 H×W×3 RGB; for edge and vis"),
    "depth_m": ArraySpec(
        ("float32",), ("H", "W"), doc="float32 H×W metres along the optical axis; for depth"
    ),
    "instance_id": ArraySpec(
        ("int32", "uint8", "uint16", "int64"),
        ("H", "W"),
        doc="int32 H×W instance ids, 0 = background; for seg",
    ),
    "points_world": ArraySpec(
        ("float32", "float64"),
        (None, 3),
        doc="float32 N×3 LiDAR points in the world frame; for lidar",
    ),
}

METHODS = [
    Method(
        "controls",
        controls,
        "Control frames for one tick: one uint8 H×W×3 array per requested modality, named "
        "after it. Stateless, so safe to retry.",
        params={
            "modalities": Param(
                list, doc="any of depth, seg, edge, vis, lidar, hdmap", choices=tuple(CONTROLS)
            ),
            "edge_preset": Param(str, "medium", choices=tuple(EDGE_PRESETS)),
            "vis_preset": Param(str, "medium", choices=tuple(VIS_PRESETS)),
            "seg_seed": Param(int, 0, doc="colour seed; a given (seed, id) keeps its colour"),
            "depth_min_m": Param(
                (float, type(None)), None, doc="near limit; null: 1st percentile of this frame"
            ),
            "depth_max_m": Param(
                (float, type(None)), None, doc="far limit; null: 99th percentile of this frame"
            ),
            "K": Param(
                (list, type(None)), None, doc="3×3 intrinsics (pixels); for lidar and hdmap"
            ),
            "cam_to_world": Param(
                (list, type(None)), None, doc="4×4 OpenCV camera-to-world pose; for lidar and hdmap"
            ),
            "height": Param((int, type(None)), None, doc="image height when no image is sent"),
            "width": Param((int, type(None)), None, doc="image width when no image is sent"),
            "lidar_max_m": Param(float, LIDAR_MAX_M),
            "lidar_min_m": Param(float, LIDAR_MIN_M),
            "lidar_dilate_px": Param(int, LIDAR_DILATE_PX),
            "hdmap": Param((str, type(None)), None, doc="handle from hdmap_load; for hdmap"),
            "boxes": Param(list, [], doc="hdmap boxes: {class, corners (8×3 world)}"),
            "light_states": Param(dict, {}, doc="hdmap: light id -> red|yellow|green"),
        },
        arrays=CONTROLS_ARRAYS,
        idempotent=True,
    ),
]
