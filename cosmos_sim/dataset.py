"""A labelled dataset from transfer output: each output frame next to the episode's labels.

Alignment. A control clip's frame k shows episode tick `source_ticks[k]` (the tick at or
before time k / 16 s; `clips.json` records them), and a backend returns exactly one frame per
clip frame, so output frame k takes the labels of that tick. Labels are never recovered from
video: masks, boxes, classes, depth, K and pose are read from the episode. The output frame
is resized from the clip's bucket back to the camera's size (area when shrinking, bilinear
when enlarging: the RGB recipe of the controls stage); labels stay at camera size, exact.
Output frames that map to the same tick (an episode slower than 16 fps) each get an entry.
Counts must match: a transfer video with more or fewer frames than its clip is an error
naming both counts, never a silent drop.

Layout of OUT:

    manifest.json            backend, model, prompt per camera, seed; episode/transfer/clips
    annotations.json         COCO instances: images (+ camera, tick, times, K, cam_to_world,
                             depth file), annotations (RLE masks via pycocotools, xywh boxes,
                             area, instance_id), categories from the episode's class names
    images/<camera>/<k>.jpg  output frame k at camera size
    depth/<camera>/<k>.npy   float32 metres along the optical axis (the tick's depth_m)
    overlay_<camera>.png     contact sheet: sim RGB, controls, output, output + labels

Without a transfer folder the images are the simulator's own RGB, one per tick (a labelled
sim baseline in the same format).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from cosmos_sim.episode import Episode, EpisodeError, ensure_empty_dir, write_json_atomic
from cosmos_sim.types import SpecError

FORMAT = "cosmos-sim-dataset"
JPEG_QUALITY = 95
SHEET_FRAMES = 4
SHEET_CELL_PX = 320


class AlignmentError(SpecError):
    """Output frames and episode ticks do not line up; the message names both counts."""


def write_dataset(
    episode_path: str | Path,
    transfer_out: str | Path | None,
    out: str | Path,
    *,
    sheets: bool = True,
) -> Path:
    """Write the COCO-style dataset of `transfer_out` (or of the sim RGB when None) to `out`."""
    episode = Episode(episode_path)
    if not len(episode):
        raise EpisodeError(f"{episode.path} has no ticks")
    sources = _sources(episode, transfer_out)
    out = ensure_empty_dir(out, "dataset folder")
    categories = [{"id": k, "name": v} for k, v in sorted(episode.class_names.items()) if k > 0]
    coco = _CocoWriter(out / "annotations.json", categories)
    manifest = {
        "format": FORMAT,
        "version": 1,
        "episode": str(episode.path.resolve()),
        "transfer": None if transfer_out is None else str(Path(transfer_out).resolve()),
        **sources["manifest"],
        "cameras": {},
        "created_unix_s": time.time(),
    }
    picked: dict[str, list[tuple[dict, list[dict]]]] = {}
    try:
        for camera, (ticks, frames, times) in sources["cameras"].items():
            count, picked[camera] = _write_camera(episode, camera, ticks, frames, times, out,
                                                  coco)  # fmt: skip
            manifest["cameras"][camera] = {"frames": count, "ticks": [int(t) for t in ticks]}
        coco.close()
    finally:
        coco.discard_parts()
    write_json_atomic(out / "manifest.json", manifest)
    if sheets:  # from the frames kept while writing: the labels file is never read back whole
        names = {c["id"]: c["name"] for c in categories}
        for camera in manifest["cameras"]:
            _draw_sheet(out, camera, manifest, picked[camera], names)
    return out


class _CocoWriter:
    """annotations.json written as the frames come: images and annotations go to two part
    files, joined into the COCO document at `close()`, so memory does not grow with the
    episode (one entry at a time, never the whole label set)."""

    def __init__(self, path: Path, categories: list[dict[str, Any]]) -> None:
        self.path, self.categories = path, categories
        self.parts = {k: path.with_name(f".{path.name}.{k}.part") for k in ("images", "anns")}
        self.files = {k: p.open("w") for k, p in self.parts.items()}
        self.counts = {"images": 0, "anns": 0}

    def _add(self, kind: str, entry: dict[str, Any]) -> int:
        self.counts[kind] += 1
        entry["id"] = self.counts[kind]
        separator = ",\n" if self.counts[kind] > 1 else "\n"
        self.files[kind].write(separator + json.dumps(entry, allow_nan=False))
        return entry["id"]

    def add_image(self, entry: dict[str, Any]) -> int:
        return self._add("images", entry)

    def add_annotation(self, entry: dict[str, Any]) -> None:
        self._add("anns", entry)

    def close(self) -> None:
        for file in self.files.values():
            file.close()
        info = {"description": "cosmos-sim labelled dataset", "format": FORMAT}
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w") as out:
            out.write(f'{{"info": {json.dumps(info)},\n"images": [')
            with self.parts["images"].open() as part:
                shutil.copyfileobj(part, out)
            out.write('\n],\n"annotations": [')
            with self.parts["anns"].open() as part:
                shutil.copyfileobj(part, out)
            out.write(f'\n],\n"categories": {json.dumps(self.categories)}}}\n')
        tmp.replace(self.path)

    def discard_parts(self) -> None:
        for file in self.files.values():
            file.close()
        for part in self.parts.values():
            part.unlink(missing_ok=True)


def _sources(episode: Episode, transfer_out: str | Path | None) -> dict[str, Any]:
    """Per camera: (tick of each dataset frame, frame iterator, model time) + manifest info."""
    if transfer_out is None:
        ticks = np.arange(len(episode))
        cameras = {name: (ticks, _sim_frames(episode, name), None) for name in episode.cameras}
        return {"manifest": {"backend": "simulator", "model": None}, "cameras": cameras}
    from cosmos_sim.transfer.base import MANIFEST
    from cosmos_sim.video import iter_video, video_info

    transfer_out = Path(transfer_out)
    path = transfer_out / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{transfer_out} has no {MANIFEST}; pass the --out folder of `cosmos-sim transfer`"
        )
    transfer = json.loads(path.read_text())
    clips_dir = Path(transfer["clips"])
    source_ticks = _source_ticks(episode, clips_dir)
    cameras = {}
    for camera, entry in transfer["cameras"].items():
        if camera not in episode.cameras:
            raise SpecError(
                f"transfer camera {camera!r} is not in episode {episode.path} "
                f"(cameras: {sorted(episode.cameras)}); pass the episode the clips came from"
            )
        if "output" not in entry:
            raise SpecError(
                f"camera {camera!r} failed in {transfer_out} ({entry.get('error')}); re-run "
                "`cosmos-sim transfer` before making a dataset"
            )
        video = transfer_out / entry["output"]
        frames = int(video_info(video)["frames"])
        if frames != len(source_ticks):
            raise AlignmentError(
                f"{video} has {frames} frames but its clip has {len(source_ticks)} (episode "
                f"ticks resampled to 16 fps); every output frame needs exactly one clip frame. "
                "Re-run `cosmos-sim transfer` on the clips of this episode"
            )
        times = np.arange(frames) / float(entry["fps"])
        cameras[camera] = (source_ticks, iter_video(video), times)
    info = {
        "backend": transfer["backend"],
        "backend_settings": transfer.get("backend_settings", {}),
        "model": transfer.get("backend_settings", {}).get("model"),
        "seed": transfer.get("seed"),
        "prompts": {c: e["prompt"] for c, e in transfer["cameras"].items()},
        "clips": str(clips_dir),
        "complete_transfer": transfer.get("complete", False),
    }
    return {"manifest": info, "cameras": cameras}


def _source_ticks(episode: Episode, clips_dir: Path) -> np.ndarray:
    """The episode tick behind each clip frame: clips.json, or the 16 fps resampling rule."""
    from cosmos_sim.video import COSMOS_FPS, resample_indices

    record = clips_dir / "clips.json"
    if record.is_file():
        clips = json.loads(record.read_text())
        made_from = clips.get("episode_id")
        if made_from is not None and made_from != episode.fingerprint:
            raise AlignmentError(
                f"the transfer output was made from episode {clips.get('episode')} (id "
                f"{made_from}), not from {episode.path} (id {episode.fingerprint}); its frames "
                "would get another recording's labels. Pass the episode the clips came from",
                field="episode",
                fix=f"pass {clips.get('episode')}",
            )
        ticks = np.asarray(clips["source_ticks"], dtype=np.int64)
    else:
        ticks = resample_indices(len(episode), episode.fps, COSMOS_FPS)
    if ticks.size and ticks.max() >= len(episode):
        raise AlignmentError(
            f"the clips in {clips_dir} reach tick {int(ticks.max())} but episode "
            f"{episode.path} has {len(episode)} ticks; pass the episode the clips came from"
        )
    return ticks


def _sim_frames(episode: Episode, camera: str) -> Iterator[np.ndarray]:
    for tick in episode:
        yield tick.frames[camera].rgb


def _write_camera(
    episode: Episode,
    camera: str,
    ticks: Sequence[int],
    frames: Iterator[np.ndarray],
    times: np.ndarray | None,
    out: Path,
    coco: _CocoWriter,
) -> tuple[int, list[tuple[dict[str, Any], list[dict[str, Any]]]]]:
    """Write one camera's frames and labels; returns the count and the overlay sheet's
    frames (image entry, its annotations)."""
    from cosmos_sim.video import resize_frames

    picks = set(_sheet_picks(len(ticks), SHEET_FRAMES))
    picked = []

    spec = episode.cameras[camera]
    (out / "images" / camera).mkdir(parents=True)
    (out / "depth" / camera).mkdir(parents=True)
    cached_index, cached = -1, None
    count = 0
    for k, image in enumerate(tqdm(frames, total=len(ticks), desc=f"dataset {camera}")):
        if k >= len(ticks):
            raise AlignmentError(f"{camera}: more output frames than the {len(ticks)} expected")
        if ticks[k] != cached_index:
            cached_index, cached = int(ticks[k]), episode[int(ticks[k])].frames[camera]
        frame = cached
        if frame.instance_id is None:
            raise EpisodeError(
                f"tick {cached_index} camera {camera!r} has no instance_id; a dataset needs "
                "the simulator's instance segmentation"
            )
        image = resize_frames(image[None], (spec.width, spec.height), "area")[0]
        name = f"{k:06d}"
        image_file = f"images/{camera}/{name}.jpg"
        cv2.imwrite(
            str(out / image_file),
            cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY],
        )
        depth_file = None
        if frame.depth_m is not None:
            depth_file = f"depth/{camera}/{name}.npy"
            np.save(out / depth_file, frame.depth_m)
        image = {
            "file_name": image_file,
            "width": spec.width,
            "height": spec.height,
            "camera": camera,
            "frame": k,
            "tick": cached_index,
            "sim_time_s": frame.sim_time_s,
            "model_time_s": None if times is None else float(times[k]),
            "depth_file": depth_file,
            "K": frame.K.tolist(),
            "cam_to_world": frame.cam_to_world.tolist(),
        }
        image_id = coco.add_image(image)
        anns = instance_annotations(frame.instance_id, frame.class_id)
        for ann in anns:
            ann["image_id"] = image_id
            coco.add_annotation(ann)
        if k in picks:
            picked.append((image, anns))
        count += 1
    if count != len(ticks):
        raise AlignmentError(
            f"{camera}: the output video has {count} frames but the clip has {len(ticks)}"
        )
    return count, picked


def _sheet_picks(count: int, frames: int) -> list[int]:
    return sorted(set(np.linspace(0, count - 1, min(frames, count)).round().astype(int).tolist()))


def instance_annotations(
    instance_id: np.ndarray, class_id: np.ndarray | None
) -> list[dict[str, Any]]:
    """COCO annotations (RLE mask, xywh box, area, category, instance_id) of one id image.

    Instance 0 is background. An instance's category is the class its pixels carry (the
    most common one if a bridge mixed them); instances of class 0 (unlabelled) are skipped.
    """
    from pycocotools import mask as mask_utils

    anns = []
    for inst in np.unique(instance_id):
        if inst == 0:
            continue
        mask = instance_id == inst
        category = 0
        if class_id is not None:
            classes, counts = np.unique(class_id[mask], return_counts=True)
            category = int(classes[np.argmax(counts)])
        if category <= 0:
            continue
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
        anns.append(
            {
                "category_id": category,
                "instance_id": int(inst),
                "segmentation": rle,
                "area": float(mask_utils.area(rle)),
                "bbox": [x, y, w, h],
                "iscrowd": 0,
            }
        )
    return anns


def overlay_sheet(dataset_dir: str | Path, camera: str, *, frames: int = SHEET_FRAMES) -> Path:
    """A contact sheet of `frames` dataset frames: sim RGB, controls, output, output + labels.

    Written to `dataset_dir/overlay_<camera>.png`; columns for the controls appear when the
    dataset was made from a transfer run whose clips folder still exists.
    """
    dataset_dir = Path(dataset_dir)
    manifest = json.loads((dataset_dir / "manifest.json").read_text())
    coco = json.loads((dataset_dir / "annotations.json").read_text())
    images = [im for im in coco["images"] if im["camera"] == camera]
    if not images:
        raise SpecError(f"{dataset_dir} has no frames of camera {camera!r}")
    chosen = [images[p] for p in _sheet_picks(len(images), frames)]
    by_image: dict[int, list[dict[str, Any]]] = {im["id"]: [] for im in chosen}
    for ann in coco["annotations"]:
        if ann["image_id"] in by_image:
            by_image[ann["image_id"]].append(ann)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    picked = [(im, by_image[im["id"]]) for im in chosen]
    return _draw_sheet(dataset_dir, camera, manifest, picked, names)


def _draw_sheet(
    dataset_dir: Path,
    camera: str,
    manifest: dict[str, Any],
    picked: Sequence[tuple[dict[str, Any], list[dict[str, Any]]]],
    names: dict[int, str],
) -> Path:
    from cosmos_sim.imaging import image_grid, save_png
    from cosmos_sim.transfer.base import Clip

    episode = Episode(manifest["episode"])
    images = [im for im, _ in picked]
    clip_dir = Path(manifest["clips"]) / camera if manifest.get("clips") else None
    controls = []
    if clip_dir is not None and clip_dir.is_dir():
        clip = Clip(clip_dir)
        controls = [c for c in ("depth", "seg", "edge") if c in clip.controls]
        control_frames = {c: _pick(clip.frames(c), [im["frame"] for im in images])
                          for c in controls}  # fmt: skip
    rows = []
    for row, (im, anns) in enumerate(picked):
        sim = episode[im["tick"]].frames[camera].rgb
        output = cv2.cvtColor(cv2.imread(str(dataset_dir / im["file_name"])), cv2.COLOR_BGR2RGB)
        cells = [sim, *(control_frames[c][row] for c in controls), output]
        cells.append(draw_labels(output, anns, names))
        rows.append(cells)
    grid = image_grid(
        rows,
        col_labels=["sim rgb", *controls, manifest["backend"], "labels"],
        row_labels=[f"frame {im['frame']} tick {im['tick']}" for im in images],
        cell_width=SHEET_CELL_PX,
    )
    return save_png(dataset_dir / f"overlay_{camera}.png", grid)


def _pick(frames: Iterator[np.ndarray], wanted: Sequence[int]) -> list[np.ndarray]:
    chosen = {}
    for k, frame in enumerate(frames):
        if k in wanted:
            chosen[k] = frame
        if len(chosen) == len(set(wanted)):
            break
    return [chosen[k] for k in wanted]


def draw_labels(
    image: np.ndarray, annotations: Sequence[dict[str, Any]], names: dict[int, str]
) -> np.ndarray:
    """The image with each annotation's mask tinted, its box drawn and its class written."""
    from pycocotools import mask as mask_utils

    out = image.astype(np.float32)
    for ann in annotations:
        colour = _label_colour(ann["instance_id"])
        mask = mask_utils.decode(ann["segmentation"]).astype(bool)
        out[mask] = 0.55 * out[mask] + 0.45 * colour
    out = out.astype(np.uint8)
    for ann in annotations:
        colour = tuple(int(c) for c in _label_colour(ann["instance_id"]))
        x, y, w, h = (int(round(v)) for v in ann["bbox"])
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), colour, 2)
        label = names.get(ann["category_id"], str(ann["category_id"]))
        cv2.putText(out, label, (x + 2, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    colour, 1, cv2.LINE_AA)  # fmt: skip
    return out


def _label_colour(instance: int) -> np.ndarray:
    rng = np.random.default_rng([int(instance), 0x1AB])
    return rng.integers(64, 256, 3).astype(np.float32)
