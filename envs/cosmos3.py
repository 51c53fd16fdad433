"""Cosmos 3 forward dynamics as a world model: diffusers' `Cosmos3OmniPipeline` with
`CosmosActionCondition(mode="forward_dynamics")`.

One `step` call rolls every lane one chunk forward: from the lane's last frame and a chunk
of `chunk_size` actions the pipeline generates `chunk_size + 1` frames (the conditioning
frame first), of which the `chunk_size` new ones are returned. Cosmos predicts no reward:
give the env a `reward_fn` on observations. Actions are the embodiment domain's raw action
vectors (`domain_name`, e.g. "pusht" 2-D, "bridge_orig_lerobot" 10-D), times `action_scale`.

diffusers' pipeline runs one sample per call, so the B lanes of a step are B pipeline calls
inside this one `step` (a limit of the pipeline, not of the env API). Frames come back at
the conditioning frame's size (never upscaled, padded to the `resolution_tier` canvas and
cropped back); a size that the VAE rounds is resized to `frame_shape`.

Weights are never downloaded: `from_pretrained` takes a local pipeline folder or a hub id
already in the local Hugging Face cache. Safety: with Cosmos weights the real
`CosmosSafetyChecker` (package `cosmos-guardrail`) checks every prompt and every generated
chunk, and nothing here turns it off (NVIDIA Open Model License). A replacement checker is
accepted only for pipelines far too small to be Cosmos weights (the tests' tiny random
ones); this adapter then calls it itself, because the pipeline only calls a real
`CosmosSafetyChecker`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cosmos_sim.envs.world_model import StepResult, WorldModelError, WorldState, fit_context
from cosmos_sim.transfer.diffusers_backend import (
    GUARDRAIL_HELP,
    SafetyError,
    check_safety_checker,
)

PIPELINE_CLASS = "Cosmos3OmniPipeline"
DTYPES = ("bfloat16", "float16", "float32")


class Cosmos3WorldModel:
    """`Cosmos3OmniPipeline` forward dynamics behind the `WorldModel` interface."""

    context_frames = 1

    def __init__(
        self,
        pipe: Any,
        *,
        frame_shape: tuple[int, int, int],
        prompt: str,
        chunk_size: int = 12,
        domain_name: str = "pusht",
        action_scale: float | np.ndarray = 1.0,
        resolution_tier: int = 256,
        num_inference_steps: int = 35,
        guidance_scale: float = 6.0,
        fps: float = 10.0,
        view_point: str = "third_person_view",
        negative_prompt: str | None = None,
    ) -> None:
        from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import (
            CosmosActionCondition,
            CosmosSafetyChecker,
        )

        if tuple(frame_shape)[-1:] != (3,) or len(frame_shape) != 3:
            raise WorldModelError(f"frame_shape must be (H, W, 3), got {frame_shape}")
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise WorldModelError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
        if not getattr(pipe.transformer.config, "action_gen", False):
            raise WorldModelError(
                "this Cosmos3OmniPipeline's transformer was not trained with action_gen=True; "
                "forward dynamics needs an action-conditioned Cosmos 3 checkpoint"
            )
        try:  # validates domain_name / resolution_tier and resolves the raw action width
            probe = CosmosActionCondition(
                mode="policy",
                chunk_size=chunk_size,
                domain_name=domain_name,
                resolution_tier=resolution_tier,
                image=np.zeros((8, 8, 3), np.uint8),
            )
        except ValueError as exc:
            raise WorldModelError(f"Cosmos3WorldModel: {exc}") from exc
        self._condition = CosmosActionCondition
        self._real_checker = CosmosSafetyChecker
        self.pipe = pipe
        _check_safety_checker(pipe)
        self.frame_shape = tuple(int(v) for v in frame_shape)
        self.action_dim = int(probe.raw_action_dim)
        self.actions_per_call = chunk_size
        self.domain_name = domain_name
        self.action_scale = torch.as_tensor(np.asarray(action_scale, np.float32))
        self.prompt, self.negative_prompt = prompt, negative_prompt
        self.settings = {
            "num_inference_steps": num_inference_steps,
            "guidance_scale": guidance_scale,
            "fps": fps,
        }
        self.resolution_tier, self.view_point = resolution_tier, view_point

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path,
        *,
        frame_shape: tuple[int, int, int],
        prompt: str,
        device: str = "cuda",
        dtype: str = "bfloat16",
        safety_checker: Any = None,
        **kwargs: Any,
    ) -> Cosmos3WorldModel:
        """Load from a local pipeline folder or the local hub cache (never downloads)."""
        from diffusers import Cosmos3OmniPipeline
        from diffusers.utils import is_cosmos_guardrail_available

        if dtype not in DTYPES:
            raise WorldModelError(f"dtype {dtype!r}: choose one of {list(DTYPES)}")
        local = Path(model).expanduser()
        if local.is_dir():
            index = local / "model_index.json"
            found = json.loads(index.read_text()).get("_class_name") if index.is_file() else None
            if found != PIPELINE_CLASS:
                raise WorldModelError(
                    f"{local} is not a {PIPELINE_CLASS} folder (model_index.json names "
                    f"{found}); pass a folder saved by {PIPELINE_CLASS}.save_pretrained"
                )
        options: dict[str, Any] = {
            "dtype": getattr(torch, dtype),
            "local_files_only": True,
            "enable_safety_checker": True,
        }
        if safety_checker is None:
            if not is_cosmos_guardrail_available():
                raise SafetyError(GUARDRAIL_HELP)
        else:
            options["safety_checker"] = safety_checker
        try:
            pipe = Cosmos3OmniPipeline.from_pretrained(str(model), **options)
        except (OSError, ValueError) as exc:
            if local.exists():
                raise
            raise FileNotFoundError(
                f"{str(model)!r} is not a local folder and not in the local Hugging Face cache; "
                "cosmos-sim never downloads weights. Fetch them first (`hf download "
                f"{model}`) or pass a saved pipeline folder. ({exc})"
            ) from exc
        pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe, frame_shape=frame_shape, prompt=prompt, **kwargs)

    @property
    def device(self) -> torch.device:
        return self.pipe._get_execution_device()

    @property
    def dtype(self) -> torch.dtype:
        return self.pipe.transformer.dtype

    def start(self, frames: torch.Tensor, actions: torch.Tensor | None = None) -> WorldState:
        frames, actions = fit_context(frames, actions, self.context_frames, self.action_dim)
        return WorldState(frames.to(self.device), actions.to(self.device))

    @torch.no_grad()
    def step(
        self, state: WorldState, actions: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[WorldState, StepResult]:
        batch, k = state.batch_size, self.actions_per_call
        if tuple(actions.shape) != (batch, k, self.action_dim):
            raise WorldModelError(
                f"Cosmos3WorldModel.step: actions must be [B, chunk_size, D] = "
                f"{[batch, k, self.action_dim]} ({self.domain_name} actions), got "
                f"{list(actions.shape)}"
            )
        raw = actions.float().cpu() * self.action_scale
        chunks = []
        for lane in range(batch):  # the pipeline generates one sample per call
            self._check_text()
            video = self.pipe(
                self.prompt,
                negative_prompt=self.negative_prompt,
                action=self._condition(
                    mode="forward_dynamics",
                    chunk_size=k,
                    domain_name=self.domain_name,
                    resolution_tier=self.resolution_tier,
                    raw_actions=raw[lane],
                    image=state.last_frame[lane].cpu().numpy(),
                    view_point=self.view_point,
                ),
                generator=generator,
                output_type="np",
                enable_safety_check=True,
                **self.settings,
            ).video
            frames = np.clip(np.asarray(video) * 255.0 + 0.5, 0, 255).astype(np.uint8)
            chunks.append(self._check_video(frames)[1:])
        new = self._to_frame_shape(torch.from_numpy(np.stack(chunks))).to(state.frames.device)
        context = WorldState(new[:, -1:], actions[:, -1:].to(state.actions))
        return context, StepResult(new)

    def _to_frame_shape(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, K, h, w, 3] uint8 at the pipeline's size -> [B, K, H, W, 3] at `frame_shape`."""
        if tuple(frames.shape[2:]) == self.frame_shape:
            return frames
        b, k, h, w, _ = frames.shape
        flat = frames.reshape(b * k, h, w, 3).permute(0, 3, 1, 2).float()
        resized = F.interpolate(
            flat, size=self.frame_shape[:2], mode="bilinear", antialias=True, align_corners=False
        )
        return (
            resized.round()
            .clamp(0, 255)
            .to(torch.uint8)
            .permute(0, 2, 3, 1)
            .reshape(b, k, *self.frame_shape)
        )

    def _check_text(self) -> None:
        checker = self.pipe.safety_checker
        if not isinstance(checker, self._real_checker) and not checker.check_text_safety(
            self.prompt
        ):
            raise SafetyError(f"the safety checker refused the prompt {self.prompt!r}")

    def _check_video(self, frames: np.ndarray) -> np.ndarray:
        """The pipeline already ran a real CosmosSafetyChecker; run a replacement here."""
        checker = self.pipe.safety_checker
        if isinstance(checker, self._real_checker):
            return frames
        checked = checker.check_video_safety(frames)
        if checked is None:
            raise SafetyError("the safety checker blocked a generated chunk")
        return np.asarray(checked, np.uint8)


def _check_safety_checker(pipe: Any) -> None:
    """A pipeline runs with a real CosmosSafetyChecker, or is too small to be Cosmos weights."""
    from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import CosmosSafetyChecker

    checker = getattr(pipe, "safety_checker", None)
    params = sum(p.numel() for p in pipe.transformer.parameters())
    check_safety_checker(checker, params, PIPELINE_CLASS)
    if not isinstance(checker, CosmosSafetyChecker) and not all(
        hasattr(checker, name) for name in ("check_text_safety", "check_video_safety")
    ):
        raise SafetyError(
            f"safety checker {type(checker).__name__} lacks check_text_safety / check_video_safety"
        )
