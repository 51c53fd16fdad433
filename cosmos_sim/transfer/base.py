"""The transfer backend protocol: a clip's controls, its RGB, a prompt and a seed in; frames out.

A clip is one camera's folder written by `cosmos_sim.controls.clips.write_clips`
(`CLIPS/<camera>/{rgb,depth,seg,edge,vis,lidar,hdmap}.mp4`, `seg_palette.json`,
`transfer25.json`), all at 16 fps and the camera's Cosmos bucket size. A control-only clip has
no rgb.mp4, only control videos (`cosmos-sim hdmap --target cosmos3` writes
`CLIPS/<camera>/wsm.mp4`): its size, rate and length are its control video's, and only a
backend that generates from controls alone (`cosmos3`) runs it. A backend returns the clip's
frames at that same size and rate, one uint8 H×W×3 RGB frame at a time and exactly as many as
the clip has; `run_transfer` checks both and writes `OUT/<camera>/output.mp4` plus
`OUT/transfer.json`.

Backends register by name with the dotted path of their class, so a backend's heavy imports
(torch, diffusers) happen only when it is built.

Sessions (in the loop). `start_session(backend, SessionOptions)` opens a stream for one camera:
`push(Chunk)` hands it a few ticks' source RGB and control frames as the simulator makes them,
`pull()` returns the output frames ready so far, each with the tick it came from, and
`close()` ends it. A backend whose model keeps state between chunks (a cache, a causal
context) implements `start(options)` itself; for the others `ChunkSession` writes each chunk
as a small clip and runs it through the backend's per-clip `transfer`, so every registered
backend can stream.
"""

from __future__ import annotations

import importlib
import json
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from queue import Full, Queue
from typing import Any, NamedTuple, Protocol, TypeVar, runtime_checkable

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


class GuardrailBlocked(BackendError):
    """The Cosmos guardrail refused a prompt or an output video; nothing was written for it."""


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

    @property
    def videos(self) -> tuple[str, ...]:
        """Every video of the clip present: rgb first, then the controls (hdmap, wsm too)."""
        return tuple(n for n in ("rgb", *clip_control_names()) if self.video_path(n).is_file())

    @property
    def reference(self) -> str:
        """The video whose size, rate and length are the clip's: rgb.mp4, or in a control-only
        clip its first control video (every video of a clip has the same)."""
        videos = self.videos
        if not videos:
            raise ClipError(
                f"clip {self.folder} has no video (no rgb.mp4 or control video); pass a folder "
                "written by `cosmos-sim controls` or `cosmos-sim hdmap`"
            )
        return videos[0]

    def require(self, *names: str, needed_by: str) -> None:
        """Raise ClipError naming the missing control videos and how to write them."""
        missing = [n for n in names if not self.video_path(n).is_file()]
        if not missing:
            return
        have = ", ".join(self.videos) or "none"
        if "rgb" in missing:  # a control-only clip (cosmos-sim hdmap --target cosmos3)
            raise ClipError(
                f"clip {self.folder} has no rgb.mp4 (it has: {have}): it is a control-only "
                f"clip, and {needed_by} needs the simulator's RGB. Run it with `--backend "
                "cosmos3` (generates from controls alone), or write clips with rgb.mp4 by "
                "`cosmos-sim controls RUN --out CLIPS`",
                field="clips",
                fix="--backend cosmos3, or clips from `cosmos-sim controls`",
            )
        # wsm is Cosmos 3's name for the hdmap control (`cosmos-sim hdmap --target cosmos3`)
        modalities = sorted({"wsm": "hdmap"}.get(n, n) for n in {*self.controls, *missing})
        raise ClipError(
            f"clip {self.folder} has no {', '.join(m + '.mp4' for m in missing)} "
            f"(it has: {have}); {needed_by} needs it. Re-run `cosmos-sim controls RUN "
            f"--out CLIPS --modalities {','.join(modalities)}`"
        )

    @cached_property
    def info(self) -> dict[str, Any]:
        """Size, frame count and fps of the clip's reference video (rgb.mp4 if it has one)."""
        from cosmos_sim.video import video_info

        return video_info(self.video_path(self.reference))

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


def clip_control_names() -> tuple[str, ...]:
    """Control videos a clip may hold: the controls table's names, then Cosmos 3's `wsm`
    (our hdmap rendering under Cosmos' name, as `cosmos-sim hdmap --target cosmos3` writes it)."""
    from cosmos_sim.controls.table import MODALITIES

    return (*MODALITIES, "wsm")


def find_clips(clips_dir: str | Path) -> list[Clip]:
    """The clips under `clips_dir` (one per camera folder), or `clips_dir` itself if it is one.

    A folder is a clip when it holds rgb.mp4 or, for a control-only clip, a control video;
    camera folders win over control videos beside them (`cosmos-sim hdmap` keeps previews
    there)."""
    root = Path(clips_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"clips folder {root} does not exist; run `cosmos-sim controls`")
    if (root / "rgb.mp4").is_file():
        return [Clip(root)]
    clips = [Clip(p) for p in sorted(root.iterdir()) if p.is_dir() and Clip(p).videos]
    if not clips and Clip(root).videos:
        return [Clip(root)]
    if not clips:
        raise ClipError(
            f"{root} holds no clip (no <camera>/rgb.mp4 or <camera>/<control>.mp4); pass the "
            "--out folder of `cosmos-sim controls` (or of `cosmos-sim hdmap --target cosmos3`)"
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


def backend_factory(name: str) -> Callable[..., TransferBackend]:
    """The class (or factory) registered as `name`, imported but not built."""
    if name not in _REGISTRY:
        raise SpecError(f"--backend {name!r} is not known; choose one of {backend_names()}")
    if name in _EXTRAS:
        require(*_EXTRAS[name], needed_for=f"--backend {name}")
    factory = _REGISTRY[name]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory


def make_backend(name: str, **options: Any) -> TransferBackend:
    """Build the backend registered as `name` with its options."""
    return backend_factory(name)(**options)


# -- sessions: a backend resident for a run, fed chunk by chunk -----------------------------


@dataclass(frozen=True)
class SessionOptions:
    """What a session is started with: one camera's stream, at one size and rate."""

    camera: str
    """Camera name (the output folder name)."""
    width: int
    """Width of every frame pushed and returned (the camera's Cosmos bucket)."""
    height: int
    """Height of every frame pushed and returned."""
    prompt: str
    """Text prompt for the whole stream."""
    seed: int = 0
    fps: float = 16.0
    """Rate of the pushed frames (Cosmos' 16 fps when controls are resampled to it)."""


@dataclass(frozen=True)
class Chunk:
    """A few consecutive ticks of one camera: source RGB and control frames at the bucket size."""

    ticks: np.ndarray
    """(T,) int64 tick index of each frame, increasing."""
    rgb: np.ndarray
    """T×H×W×3 uint8 simulator RGB."""
    controls: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Control name (`cosmos_sim.controls.table.MODALITIES`) -> T×H×W×3 uint8 frames."""
    palette: Mapping[int, tuple[int, int, int]] | None = None
    """Instance id -> colour of the seg control, covering every id seen so far in the stream."""

    def __post_init__(self) -> None:
        ticks = np.asarray(self.ticks)
        if ticks.ndim != 1 or not np.issubdtype(ticks.dtype, np.integer) or ticks.size == 0:
            raise SpecError(f"Chunk.ticks: expected a non-empty 1-D int array, got {ticks!r}")
        if np.any(np.diff(ticks) <= 0):
            raise SpecError(f"Chunk.ticks: must increase, got {ticks.tolist()}")
        object.__setattr__(self, "ticks", ticks.astype(np.int64))
        from cosmos_sim.controls.table import MODALITIES

        want = (len(ticks), *np.shape(self.rgb)[1:3], 3)
        for name, arr in {"rgb": self.rgb, **self.controls}.items():
            if name != "rgb" and name not in MODALITIES:
                raise SpecError(
                    f"Chunk.controls: {name!r} is not one of {MODALITIES}",
                    field=f"controls.{name}",
                    fix=f"name controls as the controls table does: {MODALITIES}",
                )
            if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.shape != want:
                got = (getattr(arr, "dtype", type(arr).__name__), np.shape(arr))
                raise SpecError(
                    f"Chunk.{'rgb' if name == 'rgb' else f'controls[{name!r}]'}: expected uint8 "
                    f"{want} (one T×H×W×3 frame per tick), got {got[0]} {got[1]}"
                )
        if "seg" in self.controls and self.palette is None:
            raise SpecError("Chunk.palette: a seg control needs its id -> colour palette")

    def __len__(self) -> int:
        return len(self.ticks)


class TickFrame(NamedTuple):
    """One output frame and the tick it shows."""

    tick: int
    frame: np.ndarray
    """H×W×3 uint8 RGB at the session's size."""


@runtime_checkable
class TransferSession(Protocol):
    """A stream through one resident backend (see the module doc)."""

    def push(self, chunk: Chunk) -> None:
        """Hand over the next chunk (ticks after every earlier chunk's)."""
        ...

    def pull(self, wait: bool = False) -> list[TickFrame]:
        """Output frames ready so far, in tick order; `wait`: block until all pushed are out."""
        ...

    def close(self) -> None:
        """Release what the session holds; pushed frames not yet pulled are dropped."""
        ...


def start_session(backend: TransferBackend, options: SessionOptions) -> TransferSession:
    """The backend's own session if it has one (`backend.start(options)`), else a ChunkSession."""
    start = getattr(backend, "start", None)
    return start(options) if callable(start) else ChunkSession(backend, options)


def check_chunk(chunk: Chunk, options: SessionOptions, needs: Iterable[str], after: int) -> None:
    """Raise SpecError unless `chunk` fits the session: its size, the controls, new ticks."""
    if chunk.rgb.shape[1:3] != (options.height, options.width):
        raise SpecError(
            f"Chunk for camera {options.camera!r} is {chunk.rgb.shape[2]}×{chunk.rgb.shape[1]}; "
            f"the session was started at {options.width}×{options.height}: resize to it"
        )
    missing = [n for n in needs if n not in chunk.controls]
    if missing:
        raise SpecError(
            f"Chunk.controls has {sorted(chunk.controls)}; this backend needs {missing} too: "
            "compute those controls for every chunk"
        )
    if chunk.ticks[0] <= after:
        raise SpecError(
            f"Chunk.ticks start at {int(chunk.ticks[0])}, not after the last pushed tick "
            f"{after}: push each tick once, in order"
        )


class ChunkSession:
    """A session for a backend without state: each chunk becomes a clip run through `transfer`.

    The chunk is written as `rgb.mp4` plus its control videos (seg and edge lossless, as
    `write_clips` writes them) in a temporary folder that is removed after the chunk, so the
    backend sees exactly what it sees from `cosmos-sim transfer`. Nothing carries over
    between chunks: that is what a backend's own `start` is for.
    """

    def __init__(self, backend: TransferBackend, options: SessionOptions) -> None:
        self.backend, self.options = backend, options
        self._ready: list[TickFrame] = []
        self._last_tick = -1

    def push(self, chunk: Chunk) -> None:
        from cosmos_sim.controls.clips import LOSSLESS
        from cosmos_sim.controls.seg import save_palette
        from cosmos_sim.video import write_video

        check_chunk(chunk, self.options, (), self._last_tick)
        with tempfile.TemporaryDirectory(prefix=f"chunk-{self.options.camera}-") as tmp:
            folder = Path(tmp) / self.options.camera
            folder.mkdir()
            fps = self.options.fps
            write_video(folder / "rgb.mp4", chunk.rgb, fps)
            for name, frames in chunk.controls.items():
                write_video(folder / f"{name}.mp4", frames, fps, lossless=name in LOSSLESS)
            if chunk.palette is not None:
                save_palette(chunk.palette, folder / PALETTE_FILE)
            frames = list(
                self.backend.transfer(Clip(folder), self.options.prompt, self.options.seed, folder)
            )
        if len(frames) != len(chunk):
            raise BackendError(
                f"backend {self.backend.name!r} returned {len(frames)} frames for a chunk of "
                f"{len(chunk)}; a backend returns one frame per input frame"
            )
        self._ready += [TickFrame(int(t), f) for t, f in zip(chunk.ticks, frames, strict=True)]
        self._last_tick = int(chunk.ticks[-1])

    def pull(self, wait: bool = False) -> list[TickFrame]:
        ready, self._ready = self._ready, []
        return ready

    def close(self) -> None:
        self._ready = []
