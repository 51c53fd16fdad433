"""The transfer backend protocol: a clip's controls, its RGB, a prompt and a seed in; frames out.

A clip is one camera's folder written by `cosmos_sim.controls.clips.write_clips`
(`CLIPS/<camera>/{rgb,depth,seg,edge,vis,lidar}.mp4`, `seg_palette.json`, `transfer25.json`),
all at 16 fps and the camera's Cosmos bucket size. A backend returns the clip's frames at that
same size and rate, one uint8 H×W×3 RGB frame at a time and exactly as many as the clip has;
`run_transfer` checks both and writes `OUT/<camera>/output.mp4` plus `OUT/transfer.json`.

Backends register by name with the dotted path of their class, so a backend's heavy imports
(torch, diffusers) happen only when it is built.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from queue import Full, Queue
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from cosmos_sim.extras import require
from cosmos_sim.types import SpecError

T = TypeVar("T")

CONTROL_NAMES = ("depth", "seg", "edge", "vis", "lidar")
"""Control videos a clip may hold (Cosmos modality names)."""

PALETTE_FILE = "seg_palette.json"
SPEC_FILE = "transfer25.json"
MANIFEST = "transfer.json"
OUTPUT_VIDEO = "output.mp4"


class ClipError(SpecError):
    """A clip lacks what a backend needs; the message names the file and the fix."""


class BackendError(RuntimeError):
    """A backend could not run (a missing guardrail, a failed tool); the message says why."""


@dataclass(frozen=True)
class Clip:
    """One camera's control clip on disk (read lazily)."""

    folder: Path
    """`CLIPS/<camera>`: holds rgb.mp4 and the control videos."""

    @property
    def camera(self) -> str:
        return self.folder.name

    def video_path(self, name: str) -> Path:
        """Path of `rgb` or a control's mp4 (it may not exist: see `require`)."""
        return self.folder / f"{name}.mp4"

    @property
    def controls(self) -> tuple[str, ...]:
        """The control videos present, in CONTROL_NAMES order."""
        return tuple(n for n in CONTROL_NAMES if self.video_path(n).is_file())

    def require(self, *names: str, needed_by: str) -> None:
        """Raise ClipError naming the missing control videos and how to write them."""
        missing = [n for n in names if not self.video_path(n).is_file()]
        if missing:
            have = ", ".join(self.controls) or "none"
            raise ClipError(
                f"clip {self.folder} has no {', '.join(m + '.mp4' for m in missing)} "
                f"(it has: {have}); {needed_by} needs it. Re-run `cosmos-sim controls RUN "
                f"--out CLIPS --modalities {','.join(sorted(set(self.controls) | set(missing)))}`"
            )

    @cached_property
    def info(self) -> dict[str, Any]:
        """Size, frame count and fps of rgb.mp4 (the clip's reference video)."""
        from cosmos_sim.video import video_info

        self.require("rgb", needed_by="every transfer backend")
        return video_info(self.video_path("rgb"))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the clip's videos: its Cosmos bucket."""
        return int(self.info["width"]), int(self.info["height"])

    @property
    def num_frames(self) -> int:
        return int(self.info["frames"])

    @property
    def fps(self) -> float:
        return float(self.info["fps"])

    def frames(self, name: str) -> Iterator[np.ndarray]:
        """Decode `rgb` or a control video frame by frame (uint8 H×W×3)."""
        from cosmos_sim.video import iter_video

        self.require(name, needed_by=f"reading {name}")
        return iter_video(self.video_path(name))

    def read(self, name: str) -> np.ndarray:
        """The whole video as T×H×W×3 uint8."""
        return np.stack(list(self.frames(name)))

    @cached_property
    def spec(self) -> dict[str, Any]:
        """The clip's Transfer 2.5 spec (`transfer25.json`), or {} when there is none."""
        path = self.folder / SPEC_FILE
        return json.loads(path.read_text()) if path.is_file() else {}

    @cached_property
    def palette(self) -> dict[int, tuple[int, int, int]]:
        """Instance id -> RGB colour of seg.mp4 (from seg_palette.json)."""
        from cosmos_sim.controls.seg import load_palette

        path = self.folder / PALETTE_FILE
        if not path.is_file():
            raise ClipError(
                f"clip {self.folder} has seg.mp4 but no {PALETTE_FILE}; without it the seg "
                "colours cannot be mapped back to instance ids. Re-run `cosmos-sim controls`"
            )
        return load_palette(path)

    def instance_ids(self) -> Iterator[np.ndarray]:
        """Instance ids (H×W int32) of each frame, decoded from the bit-exact seg video."""
        decoder = SegDecoder(self.palette)
        for seg in self.frames("seg"):
            yield decoder.ids_of(seg)


class SegDecoder:
    """Maps seg-video colours back to instance ids through the palette (a 2^24-entry table).

    The seg video is lossless (libx264rgb qp=0), so every pixel is exactly a palette colour; a
    pixel that is not means the video was re-encoded lossily, and `index` says so instead of
    guessing an id.
    """

    def __init__(self, palette: Mapping[int, tuple[int, int, int]]) -> None:
        if len(palette) >= np.iinfo(np.uint16).max:
            raise ClipError(f"seg palette has {len(palette)} ids; at most 65534 are supported")
        self.ids = np.array(sorted(palette), dtype=np.int32)
        """Instance id of each palette entry; `index` returns positions in this array."""
        self.colours = np.array([palette[int(i)] for i in self.ids], dtype=np.uint8)
        self._unknown = np.iinfo(np.uint16).max
        self._lut = np.full(1 << 24, self._unknown, dtype=np.uint16)
        self._lut[_pack(self.colours)] = np.arange(len(self.ids), dtype=np.uint16)

    def index(self, seg: np.ndarray) -> np.ndarray:
        """H×W uint16 position of each pixel's id in `self.ids`."""
        idx = self._lut[_pack(seg)]
        if (idx == self._unknown).any():
            bad = seg[idx == self._unknown][0]
            raise ClipError(
                f"seg frame has colour {tuple(int(c) for c in bad)} that is not in the "
                "palette: the seg video was not written losslessly (libx264rgb qp=0) or "
                "belongs to another palette; re-run `cosmos-sim controls`"
            )
        return idx

    def ids_of(self, seg: np.ndarray) -> np.ndarray:
        return self.ids[self.index(seg)]


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    key = rgb[..., 0].astype(np.uint32) << 16
    key |= rgb[..., 1].astype(np.uint32) << 8
    key |= rgb[..., 2]
    return key


def prefetch(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Iterate `items` in a background thread, `depth` items ahead of the consumer.

    Decoding, rendering and encoding release the GIL (PyAV, OpenCV, large numpy ops), so
    chaining stages through `prefetch` overlaps them on a few cores. An exception in the
    producer is raised in the consumer; a consumer that stops early stops the producer.
    """
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        queue.put((item, None), timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put((done, None))
        except BaseException as exc:  # handed to the consumer
            queue.put((done, exc))

    worker = threading.Thread(target=produce, daemon=True, name="prefetch")
    worker.start()
    try:
        while True:
            item, error = queue.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()


def find_clips(clips_dir: str | Path) -> list[Clip]:
    """The clips under `clips_dir` (one per camera folder), or `clips_dir` itself if it is one."""
    root = Path(clips_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"clips folder {root} does not exist; run `cosmos-sim controls`")
    if (root / "rgb.mp4").is_file():
        return [Clip(root)]
    clips = [Clip(p) for p in sorted(root.iterdir()) if (p / "rgb.mp4").is_file()]
    if not clips:
        raise ClipError(
            f"{root} holds no clip (no <camera>/rgb.mp4); pass the --out folder of "
            "`cosmos-sim controls`"
        )
    return clips


@runtime_checkable
class TransferBackend(Protocol):
    """Turns one clip into frames: same size, same fps, same number of frames."""

    name: str
    """Registry name, recorded in every manifest."""

    def describe(self) -> dict[str, Any]:
        """What made the output (model, control, steps...), for the manifest."""
        ...

    def transfer(self, clip: Clip, prompt: str, seed: int, workdir: Path) -> Iterable[np.ndarray]:
        """The clip's frames, in order, as uint8 H×W×3 RGB at `clip.size`.

        `workdir` (OUT/<camera>) exists; a backend may keep its logs and inputs there.
        """
        ...


_REGISTRY: dict[str, str | Callable[..., TransferBackend]] = {
    "appearance": "cosmos_sim.transfer.appearance:AppearanceBackend",
    "diffusers": "cosmos_sim.transfer.diffusers_backend:DiffusersBackend",
    "cosmos-cli": "cosmos_sim.transfer.cosmos_cli:CosmosCliBackend",
}


#: Backends that need an extra: backend name -> (module to import, extra that installs it).
_EXTRAS: dict[str, tuple[str, str]] = {"diffusers": ("diffusers", "diffusers")}


def register_backend(name: str, factory: str | Callable[..., TransferBackend]) -> None:
    """Add a backend: a class (or "module:Class" path) called with the backend's options."""
    _REGISTRY[name] = factory


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


def make_backend(name: str, **options: Any) -> TransferBackend:
    """Build the backend registered as `name` with its options."""
    if name not in _REGISTRY:
        raise SpecError(f"--backend {name!r} is not known; choose one of {backend_names()}")
    if name in _EXTRAS:
        require(*_EXTRAS[name], needed_for=f"--backend {name}")
    factory = _REGISTRY[name]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory(**options)
