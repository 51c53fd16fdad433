"""The `augmented/` folder of a run: augmented frames and their labels, written as they come.

Layout (`RUN/augmented/`):

    augment.json             backend and its settings, prompt, seed, overflow policy, stats,
                             skipped ticks, `complete` (rewritten at the end)
    <camera>/<tick>.jpg      the augmented frame of that episode tick, at camera size
    <camera>/labels.jsonl    one line per frame: tick, file, sim time, lag, K, cam_to_world
                             and COCO annotations (RLE masks, xywh boxes, class, instance id)
    annotations.json         COCO instances over every camera (written at the end; the
                             dataset format of `cosmos_sim.dataset`, depth stays in the episode)

A frame is written to a temporary file and renamed, then its label line is appended, so a
run killed at any moment leaves whole frames and at most one torn last line per camera:
`read_labels` returns the complete lines, each naming a frame that is on disk. The labels
come from the tick's own SensorFrame (the episode's ground truth), never from the image.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import cv2

from cosmos_sim.augment.augmenter import Augmented, AugmentStats
from cosmos_sim.episode import write_json_atomic
from cosmos_sim.types import SpecError

FOLDER = "augmented"
MANIFEST = "augment.json"
LABELS = "labels.jsonl"
FORMAT = "cosmos-sim-augmented"
JPEG_QUALITY = 95


class AugmentWriter:
    """A sink for `Augmenter(sink=...)` that fills `out` as frames come.

    It touches the disk only from its first frame on (so it can be made before the episode
    folder exists) and pickles until then (so a worker process can run it). `close()`, which
    the Augmenter's worker calls at the end, writes annotations.json with the class names of
    `episode` (the run's episode folder); `finish_manifest` then records the run's stats.
    """

    def __init__(self, out: str | Path, *, describe: dict[str, Any], episode: str | Path) -> None:
        from cosmos_sim.dataset import instance_annotations  # noqa: F401 (pycocotools: fail early)

        self.out, self.episode = Path(out), Path(episode)
        self.describe = describe
        self._files: dict[str, Any] = {}
        self._started = False

    def _start(self) -> None:
        if self.out.exists() and any(self.out.iterdir()):
            raise FileExistsError(f"augmented folder {self.out} is not empty; pass a new run")
        self.out.mkdir(parents=True, exist_ok=True)
        manifest = {"format": FORMAT, "version": 1, **self.describe,
                    "created_unix_s": time.time(), "complete": False}  # fmt: skip
        write_json_atomic(self.out / MANIFEST, manifest)
        self._started = True

    def __call__(self, item: Augmented) -> None:
        from cosmos_sim.dataset import instance_annotations

        if not self._started:
            self._start()
        folder = self.out / item.camera
        if item.camera not in self._files:
            folder.mkdir(exist_ok=True)
            self._files[item.camera] = open(folder / LABELS, "a")  # noqa: SIM115 (kept open)
        name = f"{item.tick:06d}.jpg"
        ok, jpg = cv2.imencode(
            ".jpg",
            cv2.cvtColor(item.frame, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY],
        )
        if not ok:
            raise SpecError(f"could not encode the augmented frame of tick {item.tick} as JPEG")
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(jpg.tobytes())
        os.replace(tmp, folder / name)
        labels = item.labels
        anns = []
        if labels.instance_id is not None:
            anns = instance_annotations(labels.instance_id, labels.class_id)
        line = {
            "tick": item.tick,
            "file": f"{item.camera}/{name}",
            "width": int(item.frame.shape[1]),
            "height": int(item.frame.shape[0]),
            "sim_time_s": labels.sim_time_s,
            "lag_s": item.lag_s,
            "K": labels.K.tolist() if labels.K is not None else None,
            "cam_to_world": labels.cam_to_world.tolist(),
            "annotations": anns,
        }
        handle = self._files[item.camera]
        handle.write(json.dumps(line) + "\n")
        handle.flush()

    def close(self) -> None:
        """Close the label files and write annotations.json (COCO) from them."""
        from cosmos_sim.episode import Episode

        for handle in self._files.values():
            handle.close()
        self._files = {}
        if self._started:
            coco = coco_annotations(self.out, Episode(self.episode).class_names)
            write_json_atomic(self.out / "annotations.json", coco)


def finish_manifest(out: str | Path, stats: AugmentStats, *, complete: bool) -> None:
    """Record the run's stats and whether it finished in `augment.json` (if frames came)."""
    path = Path(out) / MANIFEST
    if path.is_file():
        manifest = json.loads(path.read_text())
        manifest.update(stats=stats.as_dict(), complete=complete)
        manifest["cameras"] = sorted(p.name for p in Path(out).iterdir() if (p / LABELS).is_file())
        write_json_atomic(path, manifest)


def read_labels(out: str | Path, camera: str) -> list[dict[str, Any]]:
    """The complete label lines of one camera (a torn last line from a killed run is left out)."""
    path = Path(out) / camera / LABELS
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; the run augmented no frame of {camera!r}")
    lines = []
    for text in path.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            break  # only the last line can be torn: it was being written when the run died
    return lines


def coco_annotations(out: str | Path, class_names: dict[int, str]) -> dict[str, Any]:
    """COCO instances of every camera's complete label lines (images in tick order)."""
    out = Path(out)
    coco: dict[str, Any] = {
        "info": {"description": "cosmos-sim augmented run", "format": FORMAT},
        "images": [],
        "annotations": [],
        "categories": [{"id": k, "name": v} for k, v in sorted(class_names.items()) if k > 0],
    }
    cameras = sorted(p.name for p in out.iterdir() if (p / LABELS).is_file())
    for camera in cameras:
        for line in sorted(read_labels(out, camera), key=lambda entry: entry["tick"]):
            image_id = len(coco["images"]) + 1
            anns = line.pop("annotations")
            coco["images"].append(
                {
                    "id": image_id,
                    "file_name": line.pop("file"),
                    "camera": camera,
                    **line,
                    "depth_file": None,
                }  # fmt: skip
            )
            for ann in anns:
                coco["annotations"].append(
                    {**ann, "id": len(coco["annotations"]) + 1, "image_id": image_id}
                )
    return coco


def check_consistent(out: str | Path) -> int:
    """Raise SpecError unless every complete label line names a whole frame on disk; the count."""
    out = Path(out)
    count = 0
    for camera in sorted(p.name for p in out.iterdir() if (p / LABELS).is_file()):
        for line in read_labels(out, camera):
            path = out / line["file"]
            image = cv2.imread(str(path))
            if image is None or image.shape[:2] != (line["height"], line["width"]):
                raise SpecError(f"{path}: listed in {camera}/{LABELS} but not a whole frame")
            count += 1
    return count
