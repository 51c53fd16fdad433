"""Sensor data -> Cosmos Transfer control frames, videos and specs.

Each control is a plain function on numpy arrays (batch-first T×H×W[…] or one frame) that
returns uint8 RGB, following Cosmos' own conventions. `CONTROLS` (controls.table) is the one
table of them; `compute_controls` makes one chunk's control frames from it; `write_clips`
streams a recorded episode into control videos and specs.
"""

from cosmos_sim.controls.clips import write_clips
from cosmos_sim.controls.depth import depth_control, depth_range
from cosmos_sim.controls.edge import EDGE_PRESETS, edge_control
from cosmos_sim.controls.lidar import lidar_control, lidar_control_clip, lidar_depth
from cosmos_sim.controls.seg import load_palette, save_palette, seg_control, seg_palette
from cosmos_sim.controls.spec import (
    DEFAULT_CONTROL_WEIGHTS,
    DEFAULT_PROMPT,
    transfer1_spec,
    transfer25_spec,
    write_spec_json,
    write_spec_jsonl,
)
from cosmos_sim.controls.table import (
    CONTROLS,
    MODALITIES,
    ClipStats,
    ClipStatsAccumulator,
    Control,
    ControlSettings,
    FrameChunk,
    compute_controls,
    resolve_stats,
)
from cosmos_sim.controls.vis import VIS_PRESETS, VisPreset, vis_control

__all__ = [
    "CONTROLS",
    "ClipStats",
    "ClipStatsAccumulator",
    "Control",
    "ControlSettings",
    "FrameChunk",
    "compute_controls",
    "resolve_stats",
    "DEFAULT_CONTROL_WEIGHTS",
    "DEFAULT_PROMPT",
    "EDGE_PRESETS",
    "MODALITIES",
    "VIS_PRESETS",
    "VisPreset",
    "depth_control",
    "depth_range",
    "edge_control",
    "lidar_control",
    "lidar_control_clip",
    "lidar_depth",
    "load_palette",
    "save_palette",
    "seg_control",
    "seg_palette",
    "transfer1_spec",
    "transfer25_spec",
    "vis_control",
    "write_clips",
    "write_spec_json",
    "write_spec_jsonl",
]
