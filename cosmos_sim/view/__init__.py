"""A run in the rerun viewer: cameras in 3D, every image stream and label on the sim timeline.

Everything is logged with rerun's own archetypes, so rerun's views (3D, 2D, time panel) work
as they do for any robotics log:

    world/<camera>                Transform3D (cam_to_world) + Pinhole (K, OpenCV RDF axes)
    world/<camera>/rgb|depth      Image, DepthImage (metres)
    world/<camera>/class|instance SegmentationImage (class names from the episode)
    world/<lidar>                 Points3D in the world frame
    world/boxes                   Boxes3D of other actors (CARLA), labelled by class
    world/ego                     Transform3D of the ego body, when recorded
    clips/<camera>/<control>      each control video frame, at the tick it shows
    transfer/<camera>             the transfer output frame, at the tick it shows
    dataset/<camera>              the labelled image + Boxes2D from annotations.json
    learned_env/<video>           learned-env rollout videos (own `rollout_frame` timeline)

Timelines: `tick` (episode tick index) and `sim_time` (seconds). Clip, transfer and dataset
frames land on the tick given by `clips.json:source_ticks`, so they line up with the labels.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_sim.episode import Episode
from cosmos_sim.extras import require
from cosmos_sim.types import SpecError
from cosmos_sim.video import iter_video

__all__ = ["RunFolders", "find_run", "log_run", "view_run"]


@dataclass(frozen=True)
class RunFolders:
    """Where the parts of one run live; only `episode` is required."""

    episode: Path
    clips: Path | None = None
    transfer: Path | None = None
    dataset: Path | None = None
    learned: Path | None = None


def find_run(run: str | Path, **given: Path | None) -> RunFolders:
    """An episode folder, or a `cosmos-sim demo` folder holding episode/, clips/, transfer/…"""
    run = Path(run)
    if (run / "episode.json").is_file():
        folders: dict[str, Path | None] = {"episode": run}
    elif (run / "episode" / "episode.json").is_file():
        names = {"clips": "clips", "transfer": "transfer", "dataset": "dataset"}
        folders = {"episode": run / "episode", "learned": run / "learned_env"}
        folders |= {key: run / name for key, name in names.items()}
    else:
        raise SpecError(
            f"RUN {run} is neither an episode (no episode.json) nor a demo folder (no "
            "episode/episode.json); pass the folder written by `cosmos-sim capture` or `demo`"
        )
    for key, path in given.items():
        if path is not None:
            if not Path(path).is_dir():
                raise FileNotFoundError(f"--{key} {path} is not a folder")
            folders[key] = Path(path)
    return RunFolders(**{k: v for k, v in folders.items() if v is None or Path(v).is_dir()})


def view_run(folders: RunFolders, *, save: str | Path | None = None) -> Path | None:
    """Log the run into rerun: saved as an .rrd when `save` is given, else a spawned viewer."""
    rr = require("rerun", "view", "cosmos-sim view")
    rec = rr.RecordingStream("cosmos_sim", recording_id=str(folders.episode.resolve()))
    if save is not None:
        save = Path(save)
        save.parent.mkdir(parents=True, exist_ok=True)
        rec.save(save)
    else:
        rec.spawn()
    try:
        log_run(rec, folders)
    finally:
        rec.flush()
        rec.disconnect()
    return save


def log_run(rec: Any, folders: RunFolders) -> None:
    """Log every part of `folders` that exists into the recording stream `rec`."""
    rr = require("rerun", "view", "cosmos-sim view")
    episode = Episode(folders.episode)
    rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
    if episode.class_names:
        classes = [(i, name) for i, name in sorted(episode.class_names.items())]
        rec.log("world", rr.AnnotationContext(classes), static=True)
    tick_times = {}
    for tick in episode:
        tick_times[tick.index] = tick.sim_time_s
        _at_tick(rec, tick.index, tick.sim_time_s)
        for name, frame in tick.frames.items():
            _log_frame(rr, rec, name, frame)
        _log_world_state(rr, rec, tick.data)
    clips = _clips_manifest(folders.clips)
    if clips is not None:
        _log_clip_videos(rr, rec, folders.clips, clips, tick_times)
        if folders.transfer is not None:
            _log_transfer(rr, rec, folders.transfer, clips, tick_times)
    if folders.dataset is not None:
        _log_dataset(rr, rec, folders.dataset, tick_times)
    if folders.learned is not None:
        _log_rollouts(rr, rec, folders.learned)


def _at_tick(rec: Any, tick: int, sim_time_s: float | None) -> None:
    rec.set_time("tick", sequence=int(tick))
    if sim_time_s is not None:
        rec.set_time("sim_time", duration=float(sim_time_s))


def _log_frame(rr: Any, rec: Any, name: str, frame: Any) -> None:
    path = f"world/{name}"
    pose = np.asarray(frame.cam_to_world, dtype=np.float64)
    if frame.camera is None:
        if frame.points_world is not None:
            rec.log(path, rr.Points3D(frame.points_world, radii=0.03))
        return
    rec.log(path, rr.Transform3D(translation=pose[:3, 3], mat3x3=pose[:3, :3]))
    rec.log(
        path,
        rr.Pinhole(
            image_from_camera=frame.K,
            resolution=[frame.camera.width, frame.camera.height],
            camera_xyz=rr.ViewCoordinates.RDF,
            image_plane_distance=0.3,
        ),
    )
    if frame.rgb is not None:
        rec.log(f"{path}/rgb", rr.Image(frame.rgb))
    if frame.depth_m is not None:
        rec.log(f"{path}/depth", rr.DepthImage(frame.depth_m, meter=1.0))
    if frame.class_id is not None:
        rec.log(f"{path}/class", rr.SegmentationImage(frame.class_id))
    if frame.instance_id is not None:
        rec.log(f"{path}/instance", rr.SegmentationImage(frame.instance_id))


def _log_world_state(rr: Any, rec: Any, data: dict[str, Any]) -> None:
    """CARLA ticks carry other actors' boxes and the ego pose (see bridges/carla.py)."""
    boxes = data.get("boxes") or []
    if boxes:
        rec.log(
            "world/boxes",
            rr.Boxes3D(
                centers=[b["center"] for b in boxes],
                half_sizes=[b["extent"] for b in boxes],
                rotation_axis_angles=[rr.RotationAxisAngle([0, 0, 1], b["yaw"]) for b in boxes],
                labels=[str(b.get("class", "")) for b in boxes],
            ),
        )
    ego = (data.get("ego") or {}).get("ego_to_world")
    if ego is not None:
        ego = np.asarray(ego, dtype=np.float64)
        rec.log("world/ego", rr.Transform3D(translation=ego[:3, 3], mat3x3=ego[:3, :3]))


def _clips_manifest(clips_dir: Path | None) -> dict[str, Any] | None:
    if clips_dir is None or not (clips_dir / "clips.json").is_file():
        return None
    return json.loads((clips_dir / "clips.json").read_text())


def _frames_at_ticks(
    video: Path, clips: dict[str, Any], tick_times: dict[int, float]
) -> Iterator[tuple[int, float | None, np.ndarray]]:
    """(tick, sim time, frame) for each frame of a clip-aligned video."""
    source_ticks = clips["source_ticks"]
    for k, frame in enumerate(iter_video(video)):
        if k >= len(source_ticks):
            raise SpecError(
                f"{video} has more frames than clips.json's {len(source_ticks)} source_ticks; "
                "it does not belong to these clips"
            )
        tick = int(source_ticks[k])
        yield tick, tick_times.get(tick), frame


def _log_clip_videos(
    rr: Any, rec: Any, clips_dir: Path, clips: dict[str, Any], tick_times: dict[int, float]
) -> None:
    for camera, entry in clips["cameras"].items():
        for control, relative in entry.get("videos", {}).items():
            if control == "rgb":
                continue
            for tick, time_s, frame in _frames_at_ticks(clips_dir / relative, clips, tick_times):
                _at_tick(rec, tick, time_s)
                rec.log(f"clips/{camera}/{control}", rr.Image(frame))


def _log_transfer(
    rr: Any, rec: Any, transfer_dir: Path, clips: dict[str, Any], tick_times: dict[int, float]
) -> None:
    for camera in clips["cameras"]:
        video = transfer_dir / camera / "output.mp4"
        if video.is_file():
            for tick, time_s, frame in _frames_at_ticks(video, clips, tick_times):
                _at_tick(rec, tick, time_s)
                rec.log(f"transfer/{camera}", rr.Image(frame))


def _log_dataset(rr: Any, rec: Any, dataset_dir: Path, tick_times: dict[int, float]) -> None:
    annotations_path = dataset_dir / "annotations.json"
    if not annotations_path.is_file():
        return
    coco = json.loads(annotations_path.read_text())
    by_image: dict[int, list[dict[str, Any]]] = {}
    for annotation in coco.get("annotations", []):
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    names = {c["id"]: c["name"] for c in coco.get("categories", [])}
    for image in coco.get("images", []):
        tick = int(image["tick"])
        _at_tick(rec, tick, tick_times.get(tick))
        path = f"dataset/{image['camera']}"
        rec.log(path, rr.EncodedImage(path=dataset_dir / image["file_name"]))
        labels = by_image.get(image["id"], [])
        rec.log(
            f"{path}/labels",
            rr.Boxes2D(
                array=[a["bbox"] for a in labels] or np.zeros((0, 4)),
                array_format=rr.Box2DFormat.XYWH,
                labels=[names.get(a["category_id"], str(a["category_id"])) for a in labels],
            ),
        )


def _log_rollouts(rr: Any, rec: Any, learned_dir: Path) -> None:
    for video in sorted(learned_dir.glob("*.mp4")):
        for k, frame in enumerate(iter_video(video)):
            rec.set_time("rollout_frame", sequence=k)
            rec.log(f"learned_env/{video.stem}", rr.Image(frame))
