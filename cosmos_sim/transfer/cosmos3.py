"""Transfer backend "cosmos3": Cosmos 3 transfer through diffusers' Cosmos3OmniModularPipeline.

One resident model takes every control a clip has at once, as one `control_videos` mapping
(hints `edge`, `blur`, `depth`, `seg`, `wsm`; our `vis` is Cosmos' `blur`, our `hdmap` its
`wsm`). diffusers' task pipeline `Cosmos3OmniPipeline` has no control input and the distilled
modular pipeline no transfer mode, so only the full modular pipeline is accepted.

Geometry. The clip is generated on the resolution tier's canvas nearest its aspect ratio
(tier 720: 1280×720 for 16:9; the tables are diffusers' `_ACTION_RESOLUTION_BINS`, the same
numbers as cosmos-framework's), at the clip's own fps, and the frames are resized back to the
clip's size. Long clips are chained exactly as the pipeline chains them (chunks of
`num_video_frames_per_chunk` = 4k+1 frames, each seeded with the last `num_conditional_frames`
decoded frames of the one before; by default 93, or 101 for a wsm hint alone, as
cosmos-framework chunks them), but one chunk per pipeline call, so memory is bounded by
the chunk and a session (`start`) can carry the state between pushed chunks; a test checks
that this gives the pipeline's own multi-chunk output bit for bit.

Weights. diffusers has one control axis (`control_guidance`) for all hints: there are no
per-hint weights here (cosmos-framework has them: `--backend cosmos-framework`). Defaults are
the published per-hint recommendations when the clip has one hint (edge/blur/depth guidance
3.0 and control_guidance 1.5, seg 3.0/2.0, wsm 1.0/3.0) and 3.0/1.5 with several hints (no
multi-hint recommendation is published); flow_shift 10.

Weights are never downloaded: `model` is a local pipeline folder (`save_pretrained` layout) or
a hub id already in the local Hugging Face cache. Safety: the Cosmos guardrail
(`CosmosSafetyChecker`, package cosmos-guardrail) is built before the model is loaded, and the
pipeline's `enable_safety_checker` is called with it; nothing here disables it (NVIDIA Open
Model License). The Python API's `safety_checker=` takes a replacement only for networks far
too small to be Cosmos weights, and `from_pipeline` also for networks built from random
initialisation in this process, never loaded from a file (the rule of
`diffusers_backend.check_safety_checker`); those are the tests' and the GPU benchmark's
paths, not reachable from the CLI, which always loads from disk.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_sim.controls.spec_cosmos3 import HINT_ORDER, HINTS, chunk_for, guidance_for
from cosmos_sim.transfer.base import (
    BackendError,
    Chunk,
    Clip,
    ClipError,
    GuardrailBlocked,
    SessionOptions,
    TickFrame,
    check_chunk,
)
from cosmos_sim.types import SpecError

PIPELINE_CLASS = "Cosmos3OmniModularPipeline"
TASK_PIPELINE_CLASS = "Cosmos3OmniPipeline"
DISTILLED_CLASS = "Cosmos3DistilledModularPipeline"
COMPONENTS = ("transformer", "vae", "text_tokenizer", "scheduler")
"""What transfer uses (no sound tokenizer); only these are loaded."""

SESSION_CONTROLS = ("edge", "vis", "depth", "seg")
"""The Cosmos 3 controls an Augmenter can compute per chunk (`needs` when not told which)."""
TIERS = (256, 480, 704, 720)
ASPECT_TOLERANCE = 0.1
"""Largest relative gap between a clip's H/W and the nearest canvas's before it is refused."""
DTYPES = ("bfloat16", "float16", "float32")


def resolve_hints(available: Sequence[str], controls: Sequence[str] | None) -> dict[str, str]:
    """Our control name -> Cosmos 3 hint for the controls to feed, in Cosmos' hint order.

    `controls` None means every Cosmos 3 control in `available`; asking for one the model
    does not take (e.g. lidar) or two that are the same hint is a SpecError."""
    if controls is None:
        chosen = [c for c in available if c in HINTS]
        if "wsm" in chosen and "hdmap" in chosen:
            chosen.remove("hdmap")
        if not chosen:
            raise ClipError(
                f"no Cosmos 3 control among {list(available)}: Cosmos 3 transfer takes "
                f"{sorted(HINTS)} (vis is its blur, hdmap its wsm); write one with `cosmos-sim "
                "controls RUN --modalities edge,depth,seg,vis`"
            )
    else:
        chosen = list(dict.fromkeys(controls))
        unknown = [c for c in chosen if c not in HINTS]
        if unknown:
            raise SpecError(
                f"controls {unknown}: Cosmos 3 transfer takes {sorted(HINTS)} (vis is its blur, "
                "hdmap its wsm; it has no lidar hint); drop them"
            )
    hints: dict[str, str] = {}
    for control in chosen:
        hint = HINTS[control]
        if hint in hints.values():
            raise SpecError(f"controls: two controls map to the Cosmos 3 hint {hint!r}")
        hints[control] = hint
    return dict(sorted(hints.items(), key=lambda kv: HINT_ORDER.index(kv[1])))


def canvas_for(width: int, height: int, tier: int) -> tuple[int, int]:
    """(width, height) of the tier's canvas nearest the clip's aspect ratio, or ClipError."""
    from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import _ACTION_RESOLUTION_BINS

    bins = _ACTION_RESOLUTION_BINS[str(tier)].values()
    ratio = height / width
    h, w = min(bins, key=lambda hw: abs(hw[0] / hw[1] - ratio))
    if abs(h / w - ratio) / (h / w) > ASPECT_TOLERANCE:
        shapes = ", ".join(f"{bw}×{bh}" for bh, bw in bins)
        raise ClipError(
            f"a {width}×{height} clip has no Cosmos 3 canvas at tier {tier} (canvases: {shapes}; "
            f"aspect ratios within {ASPECT_TOLERANCE:.0%} are served): write the clip at 16:9, "
            "9:16, 4:3, 3:4 or 1:1"
        )
    return w, h


def chunk_frames(n: int) -> int:
    """`n` rounded up to 4k+1 frames, as the pipeline rounds `num_video_frames_per_chunk`."""
    return math.ceil((n - 1) / 4) * 4 + 1


class Cosmos3Backend:
    """Cosmos 3 transfer (diffusers modular pipeline), resident across clips and chunks."""

    name = "cosmos3"
    needs: tuple[str, ...] = SESSION_CONTROLS
    """Controls a stream must carry (`cosmos_sim.augment` computes these unless told): the
    backend's `controls`, else every Cosmos 3 control an Augmenter computes per chunk."""

    def __init__(
        self,
        model: str | Path,
        *,
        controls: Sequence[str] | str | None = None,
        resolution: int | str = 720,
        device: str = "cuda",
        dtype: str = "bfloat16",
        num_inference_steps: int = 35,
        guidance_scale: float | None = None,
        control_guidance: float | None = None,
        flow_shift: float = 10.0,
        num_video_frames_per_chunk: int | None = None,
        num_conditional_frames: int = 1,
        negative_prompt: str | None = None,
        control_weights: Mapping[str, float] | None = None,
        safety_checker: Any = None,
        pipeline: Any = None,
    ) -> None:
        from cosmos_sim.extras import require

        require("diffusers", "diffusers", needed_for="--backend cosmos3")
        if control_weights:
            raise SpecError(
                "control_weights: diffusers' Cosmos 3 pipeline has no per-hint weights (one "
                "control_guidance for all hints); use --backend cosmos-framework to weight hints"
            )
        if isinstance(controls, str):
            controls = [c for c in controls.split(",") if c]
        self.controls = None if controls is None else list(resolve_hints(controls, controls))
        if self.controls is not None:
            self.needs = tuple(self.controls)
        if int(resolution) not in TIERS:
            raise SpecError(f"--resolution {resolution}: choose a Cosmos 3 tier of {list(TIERS)}")
        if dtype not in DTYPES:
            raise SpecError(f"--dtype {dtype!r}: choose one of {list(DTYPES)}")
        # None: per hint set (`chunk_for`: 101 for wsm alone, else 93)
        chunk = None if num_video_frames_per_chunk is None else int(num_video_frames_per_chunk)
        if chunk is not None:
            chunk = chunk_frames(chunk)
        shortest = chunk or min(chunk_for(["wsm"]), chunk_for(["edge"]))
        if not 0 <= num_conditional_frames < shortest:
            raise SpecError(
                f"num_conditional_frames {num_conditional_frames} must be in [0, {shortest}) "
                f"(chunks are {shortest} frames)"
            )
        self.model, self.device, self.dtype = str(model), device, dtype
        self.tier = int(resolution)
        self.chunk, self.cond = chunk, int(num_conditional_frames)
        self.steps, self.flow_shift = int(num_inference_steps), float(flow_shift)
        self.guidance = (guidance_scale, control_guidance)
        self.negative_prompt = negative_prompt
        if pipeline is None:
            self.pipe = load_pipeline(model, dtype=dtype, safety_checker=safety_checker)
        else:
            self.pipe = _guard_prebuilt(pipeline, safety_checker)
        self.pipe.update_components(scheduler=_shifted(self.pipe.scheduler, self.flow_shift))
        self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)

    @classmethod
    def from_pipeline(cls, pipeline: Any, **settings: Any) -> Cosmos3Backend:
        """A backend around a pipeline built in this process (random weights for the GPU
        benchmark). Its checker must be the real guardrail unless `check_safety_checker`
        accepts a replacement: tiny networks, or random weights never loaded from a file."""
        return cls(f"<{type(pipeline).__name__} built in process>", pipeline=pipeline, **settings)

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "pipeline": PIPELINE_CLASS,
            "controls": self.controls or "every Cosmos 3 control of each clip",
            "hints": HINTS,
            "resolution_tier": self.tier,
            "device": self.device,
            "dtype": self.dtype,
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance[0] or "per hint (spec_cosmos3.RECOMMENDED)",
            "control_guidance": self.guidance[1] or "per hint (spec_cosmos3.RECOMMENDED)",
            "flow_shift": self.flow_shift,
            "num_video_frames_per_chunk": self.chunk or "per hint: 101 for wsm alone, else 93",
            "num_conditional_frames": self.cond,
            "per_hint_weights": "none: diffusers has one control_guidance for all hints",
            "safety_checker": type(self.pipe.safety_checker).__name__,
        }

    def settings(self, hints: Sequence[str]) -> tuple[float, float]:
        """(guidance_scale, control_guidance): given values, else the per-hint recommendation."""
        default = guidance_for(list(hints))
        return tuple(v if v is not None else d for v, d in zip(self.guidance, default, strict=True))

    def start(self, options: SessionOptions, controls: Sequence[str] | None = None):
        """A stream for one camera: chunks in, frames out, the model and chain state kept.

        It feeds `controls`, else the backend's, else every Cosmos 3 control the first chunk
        carries (each later chunk must carry the same)."""
        return Cosmos3Session(self, options, controls or self.controls)

    def transfer(self, clip: Clip, prompt: str, seed: int, workdir: Path) -> Iterator[np.ndarray]:
        """The clip generated from its controls. rgb.mp4 is not fed to the model (Cosmos 3
        transfer generates from controls alone), so a control-only clip (`cosmos-sim hdmap
        --target cosmos3`: <camera>/wsm.mp4) runs too, at its control video's size, fps and
        length."""
        available = [c for c in HINTS if clip.video_path(c).is_file()]
        hints = resolve_hints(available, self.controls)
        clip.require(*hints, needed_by="the cosmos3 backend")
        reference = clip.reference  # rgb.mp4, else the control that sets the clip's timing
        width, height = clip.size
        options = SessionOptions(clip.camera, width, height, prompt, seed, clip.fps)
        # a clip shorter than a chunk is one chunk of its own length (4k+1), not a padded 93
        chunk = self.chunk or chunk_for(list(hints.values()))
        chunk = min(chunk, chunk_frames(max(clip.num_frames, self.cond + 1)))
        session = Cosmos3Session(self, options, list(hints), chunk=chunk)
        streams = {name: clip.frames(name) for name in dict.fromkeys((reference, *hints))}
        tick = 0
        try:
            while True:
                block = {n: _take(s, session.frames_wanted) for n, s in streams.items()}
                count = len(block[reference])
                if not count:
                    break
                ticks = np.arange(tick, tick + count)
                short = [n for n, frames in block.items() if len(frames) != count]
                if short:
                    raise ClipError(
                        f"clip {clip.folder}: {', '.join(n + '.mp4' for n in short)} ends before "
                        f"{reference}.mp4; every control needs one frame per clip frame. Re-run "
                        f"`cosmos-sim {'controls' if reference == 'rgb' else 'hdmap'}`"
                    )
                session.push_frames(ticks, block)
                tick += len(ticks)
                yield from (f.frame for f in session.pull())
            yield from (f.frame for f in session.pull(wait=True))
        finally:
            session.close()


class Cosmos3Session:
    """One camera's stream through a resident Cosmos3Backend.

    `controls` None: the Cosmos 3 controls of the first pushed chunk, fixed for the stream.
    Frames are generated a pipeline chunk at a time: the first once `chunk` frames are
    pushed, later ones every `chunk - cond` frames, each seeded with the last `cond` decoded
    frames of the one before (the pipeline's own chaining); `pull(wait=True)` generates the
    rest. One noise generator runs over the stream, so a stream pushed in any split gives
    the frames of the whole clip.
    """

    def __init__(
        self,
        backend: Cosmos3Backend,
        options: SessionOptions,
        controls: Sequence[str] | None,
        chunk: int | None = None,
    ):
        import torch

        self.backend, self.options = backend, options
        self._given_chunk = chunk or backend.chunk
        self.chunk, self.cond = self._given_chunk or 0, backend.cond  # 0: set with the hints
        self.canvas = canvas_for(options.width, options.height, backend.tier)
        self.hints: dict[str, str] = {}
        self._pending: dict[str, list[np.ndarray]] = {}
        if controls is not None:
            self._choose(resolve_hints(controls, controls))
        self.generator = torch.Generator("cpu").manual_seed(options.seed)
        self._ticks: list[int] = []
        self._context: dict[str, list[np.ndarray]] = {}
        self._seed_frames: np.ndarray | None = None
        self._ready: list[TickFrame] = []
        self._last_tick = -1

    @property
    def frames_wanted(self) -> int:
        """Frames to push before the next pipeline chunk can run."""
        return max(1, self._need() - len(self._ticks))

    def _choose(self, hints: dict[str, str]) -> None:
        """Fix the controls fed (our name -> Cosmos 3 hint) and their guidance."""
        self.hints = hints
        self.guidance, self.control_guidance = self.backend.settings(list(hints.values()))
        self.chunk = self._given_chunk or chunk_for(list(hints.values()))
        self._pending = {c: [] for c in hints}

    def push(self, chunk: Chunk) -> None:
        if not self.hints:  # told none: the first chunk's Cosmos 3 controls, for the stream
            if not any(c in HINTS for c in chunk.controls):
                raise SpecError(
                    f"Chunk.controls has {sorted(chunk.controls)}, no Cosmos 3 control: a "
                    f"cosmos3 session feeds {sorted(HINTS)} (vis is its blur, hdmap its wsm)",
                    field="controls",
                    fix=f"compute some of {list(SESSION_CONTROLS)} for every chunk",
                )
            self._choose(resolve_hints(list(chunk.controls), None))
        check_chunk(chunk, self.options, list(self.hints), self._last_tick)
        self.push_frames(chunk.ticks, chunk.controls)

    def push_frames(self, ticks: np.ndarray, controls: Mapping[str, np.ndarray]) -> None:
        """`push` without the Chunk checks (clip transfer: wsm is not a Chunk control)."""
        for control in self.hints:
            self._pending[control] += list(controls[control])
        self._ticks += [int(t) for t in ticks]
        self._last_tick = int(ticks[-1])
        while len(self._ticks) >= self._need():
            self._generate(self._need())

    def _need(self) -> int:
        """New frames a chunk takes: a whole chunk first, then chunk - cond (the overlap)."""
        return self.chunk if self._seed_frames is None else self.chunk - self.cond

    def pull(self, wait: bool = False) -> list[TickFrame]:
        if wait and self._ticks:
            self._generate(len(self._ticks))
        ready, self._ready = self._ready, []
        return ready

    def close(self) -> None:
        self._pending = {c: [] for c in self.hints}
        self._ticks, self._ready, self._context, self._seed_frames = [], [], {}, None

    def _generate(self, count: int) -> None:
        """Run one pipeline chunk on the next `count` pushed frames (plus the seed overlap)."""
        count = min(count, len(self._ticks))
        if count == 0:
            return
        videos = {
            hint: np.stack(self._context.get(c, []) + self._pending[c][:count]).astype(np.float32)
            / 255.0
            for c, hint in self.hints.items()
        }
        seeded = self._seed_frames is not None
        try:
            out = self.backend.pipe(**self.call_kwargs(videos, seed_frames=self._seed_frames))
        except ValueError as exc:  # diffusers reports a guardrail block as a ValueError
            if "Cosmos Guardrail" not in str(exc):
                raise
            what = "the prompt" if "unsafe text" in str(exc) else "a generated chunk"
            raise GuardrailBlocked(
                f"the Cosmos guardrail refused {what} for camera {self.options.camera!r} "
                f"(ticks from {self._ticks[0]}); nothing was returned for it. Change the prompt "
                "or seed."
            ) from exc
        decoded = out["previous_output"][0]  # [3, T, H, W] in [-1, 1], before the guardrail
        tail = decoded[:, decoded.shape[1] - self.cond :] if self.cond else None
        self._seed_frames = (
            None if tail is None else ((tail.permute(1, 2, 3, 0) + 1) / 2).float().cpu().numpy()
        )
        frames = np.asarray(out["videos"])[self.cond if seeded else 0 :]
        frames = _to_uint8(frames, (self.options.width, self.options.height))
        ticks = self._ticks[:count]
        if len(frames) != count:
            raise BackendError(f"Cosmos 3 returned {len(frames)} frames for {count} pushed frames")
        self._ready += [TickFrame(t, f) for t, f in zip(ticks, frames, strict=True)]
        cond = self.cond
        for c in self.hints:
            window = self._context.get(c, []) + self._pending[c][:count]
            self._context[c] = window[len(window) - cond :] if cond else []
            self._pending[c] = self._pending[c][count:]
        self._ticks = self._ticks[count:]
        if self._seed_frames is None:  # no carry-over: every chunk starts fresh
            self._context = {}

    def call_kwargs(
        self, videos: Mapping[str, np.ndarray], seed_frames: np.ndarray | None = None
    ) -> dict[str, Any]:
        """The pipeline call for one chunk: explicit size, fps, chunking and guidance."""
        width, height = self.canvas
        kwargs: dict[str, Any] = {
            "prompt": self.options.prompt,
            "negative_prompt": self.backend.negative_prompt,
            "control_videos": dict(videos),
            "height": height,
            "width": width,
            "num_frames": len(next(iter(videos.values()))),
            "num_video_frames_per_chunk": self.chunk,
            "num_conditional_frames": self.cond,
            "fps": float(self.options.fps),
            "num_inference_steps": self.backend.steps,
            "guidance_scale": self.guidance,
            "control_guidance": self.control_guidance,
            "generator": self.generator,
            "output_type": "np",
            "output": ["videos", "previous_output"],
        }
        if seed_frames is not None:
            kwargs["video"] = seed_frames
            kwargs["num_first_chunk_conditional_frames"] = len(seed_frames)
        return kwargs


def load_pipeline(model: str | Path, *, dtype: str = "bfloat16", safety_checker: Any = None):
    """The Cosmos3OmniModularPipeline from a local folder or the local hub cache, guarded.

    The guardrail is built first (a missing cosmos-guardrail fails before any weights load);
    a replacement checker is accepted only for networks too small to be Cosmos weights."""
    import torch
    from diffusers import Cosmos3OmniModularPipeline
    from diffusers.modular_pipelines.cosmos import modular_pipeline as cosmos_modular

    from cosmos_sim.transfer.diffusers_backend import (
        GUARDRAIL_HELP,
        SafetyError,
        check_safety_checker,
    )

    local = Path(model).expanduser()
    if local.is_dir():
        _check_pipeline_folder(local)
    elif local.exists() or str(model).startswith((".", "/", "~")):
        raise FileNotFoundError(f"--model {model}: no such folder; pass a saved Cosmos 3 pipeline")
    if safety_checker is None:
        try:  # the class `enable_safety_checker()` builds by default
            safety_checker = cosmos_modular.CosmosSafetyChecker()
        except ImportError as exc:
            raise SafetyError(GUARDRAIL_HELP) from exc
    source = str(local) if local.is_dir() else str(model)
    try:
        pipe = Cosmos3OmniModularPipeline.from_pretrained(source, local_files_only=True)
        overrides = {"pretrained_model_name_or_path": source} if local.is_dir() else {}
        pipe.load_components(
            list(COMPONENTS), dtype=getattr(torch, dtype), local_files_only=True, **overrides
        )
    except (OSError, ValueError) as exc:
        if local.is_dir():
            raise
        raise FileNotFoundError(
            f"--model {model!r} is not a local folder and not in the local Hugging Face cache; "
            f"cosmos-sim never downloads weights. Fetch them first (`hf download {model}`) or "
            f"pass --model PATH to a saved Cosmos 3 pipeline. ({exc})"
        ) from exc
    missing = [name for name in COMPONENTS if getattr(pipe, name, None) is None]
    if missing:
        raise FileNotFoundError(
            f"--model {model}: could not load {missing} of the Cosmos 3 pipeline (see the "
            "warnings above); the folder or cache snapshot is incomplete"
        )
    params = sum(p.numel() for p in pipe.transformer.parameters())
    check_safety_checker(safety_checker, params, PIPELINE_CLASS)
    pipe.enable_safety_checker(safety_checker)
    if not pipe.requires_safety_checker:
        raise SafetyError("the Cosmos 3 pipeline's safety checker did not turn on")
    return pipe


def _guard_prebuilt(pipe: Any, safety_checker: Any = None):
    """`pipe` with its guardrail on, checked as `load_pipeline` checks a loaded one."""
    from cosmos_sim.transfer.diffusers_backend import (
        GUARDRAIL_HELP,
        SafetyError,
        _from_file,
        check_safety_checker,
    )

    if type(pipe).__name__ != PIPELINE_CLASS:
        raise SpecError(f"pipeline= is a {type(pipe).__name__}, not a {PIPELINE_CLASS}")
    checker = safety_checker or getattr(pipe, "safety_checker", None)
    if checker is None:
        raise SafetyError(GUARDRAIL_HELP)
    params = sum(p.numel() for p in pipe.transformer.parameters())
    random_init = not _from_file(pipe.transformer)
    check_safety_checker(checker, params, PIPELINE_CLASS, random_init=random_init)
    pipe.enable_safety_checker(checker)
    return pipe


def _check_pipeline_folder(folder: Path) -> None:
    """A folder saved by the modular pipeline (or the task pipeline, whose weights it reads)."""
    found = {}
    for index in ("modular_model_index.json", "model_index.json"):
        if (folder / index).is_file():
            found[index] = json.loads((folder / index).read_text()).get("_class_name")
    names = set(found.values())
    if DISTILLED_CLASS in names:
        raise SpecError(
            f"--model {folder} is a distilled Cosmos 3 pipeline ({DISTILLED_CLASS}), which has no "
            f"transfer mode in diffusers; pass a full Cosmos 3 checkpoint (e.g. Cosmos3-Nano)"
        )
    if not names & {PIPELINE_CLASS, TASK_PIPELINE_CLASS}:
        what = (
            ", ".join(f"{k} names {v}" for k, v in found.items()) or "no (modular_)model_index.json"
        )
        raise SpecError(
            f"--model {folder} is not a Cosmos 3 pipeline folder ({what}); pass a folder saved by "
            f"{PIPELINE_CLASS}.save_pretrained or a Cosmos3-Nano / -Super snapshot"
        )


def _shifted(scheduler, flow_shift: float):
    """The scheduler with the documented flow_shift (diffusers' Cosmos 3 docs use 10)."""
    return type(scheduler).from_config(
        scheduler.config, flow_shift=flow_shift, use_karras_sigmas=False
    )


def _take(stream: Iterator[np.ndarray], n: int) -> np.ndarray:
    frames = list(itertools.islice(stream, n))
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)


def _to_uint8(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[0,1] float frames at the canvas -> uint8 at `size` (width, height)."""
    import cv2

    out = np.clip(frames * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if out.shape[2:0:-1] == tuple(size):
        return out
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in out])
