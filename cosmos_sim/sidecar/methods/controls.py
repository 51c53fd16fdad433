"""Frames in, Cosmos control frames out, per tick: the functions of cosmos_sim.controls.

They run where the server's `device` puts them (`Server(device=...)`, `cosmos-sim serve
--device`): the numpy/OpenCV functions, or the GPU kernels (`cosmos_sim.kernels`) with the
same outputs within the kernels' parity tolerances; both come from
`cosmos_sim.controls.backend.control_backend`, as in `write_clips`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from cosmos_sim.controls import EDGE_PRESETS, VIS_PRESETS, depth_range, seg_palette
from cosmos_sim.controls.lidar import LIDAR_DILATE_PX, LIDAR_MAX_M, LIDAR_MIN_M
from cosmos_sim.sidecar.protocol import ErrorCode, ProtocolError
from cosmos_sim.sidecar.schema import ArraySpec, Call, Method, Param, Result

#: modality -> the input arrays it needs.
NEEDS: dict[str, tuple[str, ...]] = {
    "depth": ("depth_m",),
    "seg": ("instance_id",),
    "edge": ("rgb",),
    "vis": ("rgb",),
    "lidar": ("points_world",),
    "hdmap": (),
}
_IMAGES = ("rgb", "depth_m", "instance_id")


def controls(call: Call) -> Result:
    p, arrays = call.params, call.arrays
    for modality in p["modalities"]:
        for name in NEEDS[modality]:
            if name not in arrays:
                raise ProtocolError(
                    ErrorCode.BAD_ARRAY,
                    f"modality {modality!r} needs array {name!r}",
                    f"arrays.{name}",
                    f"send {name} ({CONTROLS_ARRAYS[name].doc}) or drop "
                    f"{modality!r} from params.modalities",
                )
    backend = call.server.control_backend
    out: dict[str, np.ndarray] = {}
    result: dict = {"timings_ms": {}}
    for modality in dict.fromkeys(p["modalities"]):
        start = time.perf_counter()
        if modality == "depth":
            lo, hi = p["depth_min_m"], p["depth_max_m"]
            if lo is None or hi is None:
                auto_lo, auto_hi = depth_range(arrays["depth_m"])
                lo, hi = auto_lo if lo is None else lo, auto_hi if hi is None else hi
            out["depth"] = backend["depth"](arrays["depth_m"], min_m=lo, max_m=hi)
            result["depth_range_m"] = [lo, hi]
        elif modality == "seg":
            ids = arrays["instance_id"]
            palette = seg_palette(np.unique(ids), p["seg_seed"])
            out["seg"] = backend["seg"](ids, palette)
            result["seg_palette"] = {str(k): list(v) for k, v in palette.items()}
        elif modality == "edge":
            out["edge"] = backend["edge"](arrays["rgb"], p["edge_preset"])
        elif modality == "vis":
            out["vis"] = backend["vis"](arrays["rgb"], p["vis_preset"])
        elif modality == "lidar":
            K, cam_to_world = _matrix(p, "K", (3, 3)), _matrix(p, "cam_to_world", (4, 4))
            height, width = _image_size(call, "lidar")
            # A clip of one frame with its one sweep: lidar_control([points], K, pose, ...).
            out["lidar"] = backend["lidar"](
                [arrays["points_world"]],
                [K],
                [cam_to_world],
                height,
                width,
                sweeps_each_side=0,
                max_m=p["lidar_max_m"],
                min_m=p["lidar_min_m"],
                dilate_px=p["lidar_dilate_px"],
            )[0]
        elif modality == "hdmap":
            out["hdmap"] = _hdmap(call, backend["hdmap"])
        result["timings_ms"][modality] = (time.perf_counter() - start) * 1e3
    result["modalities"] = list(out)
    return result, out


def _hdmap(call: Call, render: Callable[..., np.ndarray]) -> np.ndarray:
    from cosmos_sim.controls.hdmap import DynamicState

    p = call.params
    if p["hdmap"] is None:
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            "modality 'hdmap' needs params.hdmap",
            "params.hdmap",
            "load a map with hdmap_load (the server needs the carla extra), pass its handle",
        )
    scene = call.session.get(p["hdmap"], "hdmap", "hdmap")
    K, cam_to_world = _matrix(p, "K", (3, 3)), _matrix(p, "cam_to_world", (4, 4))
    height, width = _image_size(call, "hdmap")
    dynamic = DynamicState(
        boxes=[
            {**box, "corners": np.asarray(box.get("corners"), np.float64)} for box in p["boxes"]
        ],
        light_states={str(k): str(v) for k, v in p["light_states"].items()},
    )
    return render(scene, [K], [cam_to_world], height, width, [dynamic])[0]


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
                list, doc="any of depth, seg, edge, vis, lidar, hdmap", choices=tuple(NEEDS)
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
