"""Transfer backend "diffusers": Cosmos Transfer 2.5 through diffusers' Cosmos2_5_TransferPipeline.

One controlnet per pipeline (diffusers' design): `controlnet` picks which of the clip's
control videos drives it (edge, depth, seg or blur = the clip's vis.mp4). The pipeline makes
the video from the control and the prompt; it does not read the input RGB (no `sigma_max`
partial noising in diffusers 0.42), so the clip's rgb.mp4 is used only by the other backends.

Weights are never downloaded here: `model` is a local pipeline folder (`save_pretrained`
layout, `model_index.json` naming Cosmos2_5_TransferPipeline) or a hub id already in the local
Hugging Face cache (`hf download nvidia/Cosmos-Transfer2.5-2B --revision diffusers/general`
plus the controlnet revision `diffusers/controlnet/general/<control>`).

The negative prompt defaults to Transfer 2.5's own (`spec.TRANSFER25_NEGATIVE_PROMPT`, which
describes the game-engine look to leave behind), not diffusers' generic quality prompt.

Safety. With Cosmos weights the real `CosmosSafetyChecker` (package `cosmos-guardrail`) runs
on every prompt and every output video, and nothing in this API turns it off: the NVIDIA Open
Model License ends the licence of anyone who bypasses a guardrail. `safety_checker` accepts
a replacement object only for networks that cannot be Cosmos weights: far too small (fewer
than `MAX_PARAMS_WITHOUT_GUARDRAIL` parameters in transformer + controlnet: the released model
has about 2.4 billion; the test suite's tiny pipeline) or built in this process from random
initialisation and never loaded from a file (`from_pipeline`: the full-size GPU benchmark).
Otherwise a replacement is refused, and a missing cosmos-guardrail is an error that says how
to install it.

A guardrail block is never written as output: diffusers turns a blocked video into black
frames and a blocked prompt into a ValueError; this backend raises `GuardrailBlocked` for
both (naming the clip), so the run stops with the reason and `transfer.json` records it, and
it counts the blocks in `guardrail_blocks`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_sim.transfer.base import BackendError, Clip, GuardrailBlocked
from cosmos_sim.types import SpecError

CONTROLNETS = {"edge": "edge", "depth": "depth", "seg": "seg", "blur": "vis"}
"""--controlnet name -> the clip's control video that feeds it."""
PIPELINE_CLASS = "Cosmos2_5_TransferPipeline"
HUB_PIPELINE_REVISION = "diffusers/general"
HUB_CONTROLNET_REVISION = "diffusers/controlnet/general/{}"
MAX_PARAMS_WITHOUT_GUARDRAIL = 100_000_000
"""Largest transformer + controlnet for which a non-Cosmos safety checker is accepted."""
DTYPES = ("bfloat16", "float16", "float32")
GUARDRAIL_HELP = (
    "the Cosmos safety checker is not installed: `pip install cosmos-guardrail` (it fetches "
    "its own guard models from the Hugging Face hub on first use). cosmos-sim runs Cosmos "
    "weights only with it: the NVIDIA Open Model License requires the guardrail to stay on."
)


class SafetyError(BackendError):
    """The Cosmos guardrail is missing or was asked to be replaced where it must not be."""


class DiffusersBackend:
    """Cosmos Transfer 2.5 (diffusers) on a device and dtype the user chooses."""

    name = "diffusers"

    def __init__(
        self,
        model: str | Path,
        *,
        controlnet: str = "edge",
        controlnet_model: str | Path | None = None,
        device: str = "cuda",
        dtype: str = "bfloat16",
        num_inference_steps: int = 35,
        guidance_scale: float = 3.0,
        num_frames_per_chunk: int = 93,
        controls_conditioning_scale: float = 1.0,
        negative_prompt: str | None = None,
        max_sequence_length: int = 512,
        safety_checker: Any = None,
        pipeline: Any = None,
    ) -> None:
        if controlnet not in CONTROLNETS:
            raise SpecError(f"--controlnet {controlnet!r}: choose one of {sorted(CONTROLNETS)}")
        if dtype not in DTYPES:
            raise SpecError(f"--dtype {dtype!r}: choose one of {list(DTYPES)}")
        from cosmos_sim.controls.spec import TRANSFER25_NEGATIVE_PROMPT

        self.model = str(model)
        self.controlnet = controlnet
        self.device, self.dtype = device, dtype
        self.settings = {
            "num_inference_steps": num_inference_steps,
            "guidance_scale": guidance_scale,
            "num_frames_per_chunk": num_frames_per_chunk,
            "controls_conditioning_scale": controls_conditioning_scale,
            "max_sequence_length": max_sequence_length,
        }
        self.negative_prompt = negative_prompt or TRANSFER25_NEGATIVE_PROMPT
        self.guardrail_blocks = 0
        """Prompts and videos the guardrail refused during this backend's life."""
        if pipeline is None:
            pipeline = load_pipeline(
                model, controlnet, controlnet_model, dtype=dtype, safety_checker=safety_checker
            )
        elif safety_checker is not None or controlnet_model is not None:
            raise SpecError("pipeline= carries its own safety checker and controlnet")
        else:
            _check_prebuilt(pipeline)
        self.pipe = pipeline
        self.pipe.to(device)
        self.pipe.set_progress_bar_config(desc=f"diffusers {controlnet}")

    @classmethod
    def from_pipeline(cls, pipeline: Any, **settings: Any) -> DiffusersBackend:
        """A backend around a pipeline already built in this process (e.g. random weights for
        a benchmark). Its safety checker must be the real one unless `check_safety_checker`
        accepts a replacement (tiny networks, or random weights never loaded from a file)."""
        return cls(f"<{type(pipeline).__name__} built in process>", pipeline=pipeline, **settings)

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "pipeline": PIPELINE_CLASS,
            "controlnet": self.controlnet,
            "control_video": CONTROLNETS[self.controlnet],
            "device": self.device,
            "dtype": self.dtype,
            "safety_checker": type(self.pipe.safety_checker).__name__,
            "negative_prompt": self.negative_prompt,
            **self.settings,
        }

    def transfer(
        self, clip: Clip, prompt: str, seed: int, workdir: Path | None = None
    ) -> Iterator[np.ndarray]:
        import torch
        from PIL import Image

        control = CONTROLNETS[self.controlnet]
        clip.require(
            control, needed_by=f"the diffusers backend with --controlnet {self.controlnet}"
        )
        frames = [Image.fromarray(f) for f in clip.frames(control)]
        width, height = clip.size
        with self._guardrail_watch(clip) as blocked:
            try:
                video = self.pipe(
                    controls=frames,
                    prompt=prompt,
                    negative_prompt=self.negative_prompt,
                    height=height,
                    width=width,
                    num_frames=len(frames),
                    generator=torch.Generator("cpu").manual_seed(seed),
                    output_type="np",
                    **self.settings,
                ).frames[0]
            except ValueError as exc:
                if "Guardrail" not in str(exc):
                    raise
                self.guardrail_blocks += 1
                raise GuardrailBlocked(
                    f"the Cosmos guardrail refused the prompt for clip {clip.folder} "
                    f"({prompt!r}); nothing was generated. Change the prompt."
                ) from exc
        if blocked:
            self.guardrail_blocks += 1
            raise GuardrailBlocked(
                f"the Cosmos guardrail refused the generated video for clip {clip.folder} "
                "(diffusers would have returned black frames); nothing was written for it. "
                "Try another prompt or seed."
            )
        yield from (np.clip(video * 255 + 0.5, 0, 255).astype(np.uint8))

    @contextmanager
    def _guardrail_watch(self, clip: Clip) -> Iterator[list[int]]:
        """Record each video the safety checker refuses (diffusers blanks it silently)."""
        checker = self.pipe.safety_checker
        check = checker.check_video_safety
        blocked: list[int] = []

        def watched(video: np.ndarray):
            result = check(video)
            if result is None:
                blocked.append(len(video))
            return result

        checker.check_video_safety = watched
        try:
            yield blocked
        finally:
            del checker.check_video_safety


def load_pipeline(
    model: str | Path,
    controlnet: str,
    controlnet_model: str | Path | None = None,
    *,
    dtype: str = "bfloat16",
    safety_checker: Any = None,
):
    """The Cosmos2_5_TransferPipeline from a local folder or the local hub cache, checked."""
    import torch
    from diffusers import Cosmos2_5_TransferPipeline, CosmosControlNetModel

    _require_torchvision()
    torch_dtype = getattr(torch, dtype)
    local = Path(model).expanduser()
    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    if local.is_dir():
        _check_pipeline_folder(local)
        source = str(local)
    else:
        source = str(model)
        kwargs["revision"] = HUB_PIPELINE_REVISION
    if controlnet_model is not None:
        kwargs["controlnet"] = _load(CosmosControlNetModel, controlnet_model, dtype=torch_dtype)
    elif local.is_dir() and not (local / "controlnet" / "config.json").is_file():
        kwargs["controlnet"] = _local_controlnet(local / "controlnet", controlnet, torch_dtype)
    elif not local.is_dir():
        revision = HUB_CONTROLNET_REVISION.format(controlnet)
        kwargs["controlnet"] = _load(
            CosmosControlNetModel, source, revision=revision, dtype=torch_dtype
        )
    if safety_checker is None:
        _require_guardrail()
    else:
        kwargs["safety_checker"] = safety_checker
    pipe = _load(Cosmos2_5_TransferPipeline, source, **kwargs)
    if safety_checker is not None:
        _check_replacement_allowed(pipe, safety_checker)
    return pipe


def _local_controlnet(folder: Path, controlnet: str, dtype):
    """A pipeline folder may hold one controlnet per control under controlnet/<name>/."""
    from diffusers import CosmosControlNetModel

    if not (folder / controlnet / "config.json").is_file():
        have = (
            sorted(p.parent.name for p in folder.glob("*/config.json")) if folder.is_dir() else []
        )
        raise FileNotFoundError(
            f"{folder} has no {controlnet} controlnet (found: {have or 'none'}); save one there "
            "or pass --controlnet-model PATH"
        )
    return _load(CosmosControlNetModel, folder / controlnet, dtype=dtype)


def _load(cls, source: str | Path, **kwargs: Any):
    """`cls.from_pretrained` from local files only: a folder, or the local hub cache."""
    try:
        return cls.from_pretrained(str(source), local_files_only=True, **kwargs)
    except (OSError, ValueError) as exc:
        if Path(source).expanduser().exists():
            raise
        revision = kwargs.get("revision")
        raise FileNotFoundError(
            f"--model {source!r} is not a local folder and {cls.__name__} (revision "
            f"{revision}) is not in the local Hugging Face cache; cosmos-sim never downloads "
            f"weights. Fetch them first (`hf download {source} --revision {revision}`) or "
            f"pass --model PATH to a saved pipeline folder. ({exc})"
        ) from exc


def _check_pipeline_folder(folder: Path) -> None:
    index = folder / "model_index.json"
    if not index.is_file():
        raise FileNotFoundError(
            f"--model {folder} has no model_index.json: it is not a diffusers pipeline folder; "
            f"pass a folder saved by {PIPELINE_CLASS}.save_pretrained"
        )
    found = json.loads(index.read_text()).get("_class_name")
    if found != PIPELINE_CLASS:
        raise SpecError(
            f"--model {folder} holds a {found} pipeline, not a Cosmos Transfer 2.5 pipeline "
            f"({PIPELINE_CLASS}); pass a Transfer 2.5 folder (e.g. nvidia/Cosmos-Transfer2.5-2B "
            f"revision {HUB_PIPELINE_REVISION})"
        )


def _require_guardrail() -> None:
    from diffusers.utils import is_cosmos_guardrail_available

    if not is_cosmos_guardrail_available():
        raise SafetyError(GUARDRAIL_HELP)


def _require_torchvision() -> None:
    """diffusers' Cosmos transformer resizes its padding mask with torchvision: fail early."""
    from diffusers.models.controlnets import controlnet_cosmos
    from diffusers.models.transformers import transformer_cosmos

    if not all(hasattr(m, "transforms") for m in (transformer_cosmos, controlnet_cosmos)):
        raise ImportError(
            "diffusers' Cosmos transformer needs torchvision: install the torchvision build "
            "that matches your torch (`pip install torchvision`)"
        )


def _check_replacement_allowed(pipe, safety_checker: Any) -> None:
    networks = (pipe.transformer, pipe.controlnet)
    params = sum(p.numel() for net in networks for p in net.parameters())
    check_safety_checker(
        safety_checker, params, PIPELINE_CLASS, random_init=not any(map(_from_file, networks))
    )


def _check_prebuilt(pipe: Any) -> None:
    if type(pipe).__name__ != PIPELINE_CLASS:
        raise SpecError(f"pipeline= is a {type(pipe).__name__}, not a {PIPELINE_CLASS}")
    _require_torchvision()
    if pipe.safety_checker is None:
        raise SafetyError(GUARDRAIL_HELP)
    _check_replacement_allowed(pipe, pipe.safety_checker)


def _from_file(network: Any) -> bool:
    """Whether a diffusers model was loaded with from_pretrained (it records where from)."""
    return bool(getattr(network, "config", {}).get("_name_or_path"))


def check_safety_checker(
    checker: Any, params: int, pipeline: str, *, random_init: bool = False
) -> None:
    """Cosmos weights run only with the real CosmosSafetyChecker: raise SafetyError for any
    other checker (or none) unless the network has fewer than MAX_PARAMS_WITHOUT_GUARDRAIL
    parameters (`params`), far too small to be Cosmos weights, or was built from random
    initialisation in this process and never loaded from a file (`random_init`)."""
    from diffusers.utils import is_cosmos_guardrail_available

    if is_cosmos_guardrail_available():
        from cosmos_guardrail import CosmosSafetyChecker

        if isinstance(checker, CosmosSafetyChecker):
            return
    if checker is not None and (params < MAX_PARAMS_WITHOUT_GUARDRAIL or random_init):
        return
    size = f"a {pipeline} of {params / 1e9:.2f} B parameters"
    refused = (
        f"{size} without a safety checker"
        if checker is None
        else f"a replacement safety checker ({type(checker).__name__}) for {size}"
    )
    raise SafetyError(
        f"refusing {refused}: with Cosmos weights the real CosmosSafetyChecker must run "
        "(NVIDIA Open Model License). Leave safety_checker unset and install cosmos-guardrail"
    )
