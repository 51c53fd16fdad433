"""Cosmos 3 forward dynamics as a world model: the components of diffusers'
`Cosmos3OmniPipeline` (action-conditioned checkpoint), driven as `mode="forward_dynamics"`.

One `step` rolls every lane one chunk forward: from the lane's last frame and a chunk of
`chunk_size` actions the model generates `chunk_size + 1` frames (the re-rendered
conditioning frame first), of which the `chunk_size` new ones are returned. All lanes of a
step (a vector env's lanes, a multiverse's futures) go to the transformer as one batch of up
to `batch_size` (envs/cosmos3_sampler.py); futures of one state share its encoding.

Defaults are the documented forward-dynamics recipe (COSMOS3_FACTS.md §2.3): guidance 1.0,
UniPC with flow_shift 10, 30 steps, no system prompt, resolution tier 480, and per domain
fps / chunk (bridge 5 / 16, av 10 / 60, camera_pose 30 / 60; other domains name both).

Actions: the env takes the domain's raw action vectors (e.g. bridge's 10-D end-effector
delta + gripper); the model works in a normalised space, so each step maps them with the
domain's quantile statistics, x_n = 2 (x - q01) / (q99 - q01) - 1, as cosmos-framework
trained it. The statistics come from a file the user gives (`action_stats=`) or from the
model folder (`normalizer_stats/<file>`, cosmos-framework's folder and file names); nothing
is guessed: without them the model refuses to build. cosmos-framework ships them for the
robot domains only (none for av, camera_pose or pusht).

Long rollouts re-encode the last decoded frame each chunk (diffusers keeps no cache between
calls), so expect drift over many chunks. Cosmos predicts no reward: give the env a
`reward_fn`. Weights are never downloaded. Safety: with Cosmos weights the real
`CosmosSafetyChecker` (package `cosmos-guardrail`) checks the prompt and every generated
chunk, and nothing here turns it off (NVIDIA Open Model License). A replacement checker is
accepted only for pipelines far too small to be Cosmos weights (the tests' tiny ones).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cosmos_sim.envs.cosmos3_sampler import ForwardDynamicsSampler
from cosmos_sim.envs.world_model import StepResult, WorldModelError, WorldState, fit_context
from cosmos_sim.transfer.diffusers_backend import (
    GUARDRAIL_HELP,
    SafetyError,
    check_safety_checker,
)

PIPELINE_CLASS = "Cosmos3OmniPipeline"
DTYPES = ("bfloat16", "float16", "float32")
RECIPES: dict[str, tuple[float, int]] = {
    "bridge_orig_lerobot": (5.0, 16),
    "av": (10.0, 60),
    "camera_pose": (30.0, 60),
}
"""Documented forward-dynamics (fps, chunk_size) per domain (diffusers' Cosmos 3 examples)."""
STATS_FILES: dict[str, str] = {
    "bridge_orig_lerobot": "bridge_orig_lerobot_stats.json",
    "droid_lerobot": "droid_lerobot_stats.json",
    "fractal": "fractal_lerobot_stats.json",
    "robomind-franka": "robomind_franka_stats.json",
    "robomind-ur": "robomind_ur_stats.json",
    "robomind-franka-dual": "robomind_franka_dual_stats.json",
    "agibotworld": "agibotworld_beta_lerobot_stats.json",
    "hand_pose": "human_hand_pose_lerobot_stats.json",
    "umi": "umi_lerobot_stats.json",
}
"""cosmos-framework's quantile statistics file per domain
(`cosmos_framework/data/generator/action/normalizer_stats/`)."""


@dataclass(frozen=True)
class ActionStats:
    """Per-dimension 1st and 99th percentiles of a domain's raw actions (quantile scaling)."""

    q01: np.ndarray
    q99: np.ndarray

    @classmethod
    def load(cls, path: str | Path, width: int) -> ActionStats:
        """A cosmos-framework stats JSON (`{"q01": [...], "q99": [...]}`); a wider file (umi
        ships 20 values for two arms) gives its first `width`."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"action_stats {path} does not exist")
        try:
            data = json.loads(path.read_text())
            q01, q99 = (np.asarray(data[key], np.float32).reshape(-1) for key in ("q01", "q99"))
        except (ValueError, KeyError, TypeError) as exc:
            raise WorldModelError(
                f"action_stats {path}: expected JSON with numeric lists 'q01' and 'q99' (the "
                f"cosmos-framework normalizer_stats format); {exc!r}"
            ) from exc
        if min(len(q01), len(q99)) < width:
            raise WorldModelError(
                f"action_stats {path} has {len(q01)}/{len(q99)} values (q01/q99) but the domain's "
                f"actions are {width}-D; pass the statistics of this domain"
            )
        return cls(q01[:width], q99[:width])

    def normalize(self, actions: torch.Tensor) -> torch.Tensor:
        """Raw actions [..., D] -> the model's space, 2 (x - q01) / (q99 - q01) - 1."""
        q01 = torch.as_tensor(self.q01, device=actions.device)
        span = torch.as_tensor(np.maximum(self.q99 - self.q01, 1e-8), device=actions.device)
        return 2.0 * (actions.float() - q01) / span - 1.0


def find_action_stats(
    domain_name: str,
    width: int,
    action_stats: str | Path | ActionStats | None,
    model_dir: Path | None,
) -> ActionStats:
    """The user's statistics, else the model folder's `normalizer_stats/`, else a clear error."""
    if isinstance(action_stats, ActionStats):
        return action_stats
    if action_stats is not None:
        return ActionStats.load(action_stats, width)
    names = [STATS_FILES.get(domain_name, f"{domain_name}_stats.json")]
    names.append(f"{domain_name}_stats.json")
    if model_dir is not None:
        for name in names:
            candidate = model_dir / "normalizer_stats" / name
            if candidate.is_file():
                return ActionStats.load(candidate, width)
    shipped = (
        f"cosmos-framework ships it as cosmos_framework/data/generator/action/normalizer_stats/"
        f"{STATS_FILES[domain_name]}"
        if domain_name in STATS_FILES
        else f"cosmos-framework ships none for {domain_name!r}: compute q01/q99 per action "
        "dimension over the data the checkpoint was trained on"
    )
    where = f" or put it in {model_dir / 'normalizer_stats' / names[0]}" if model_dir else ""
    raise WorldModelError(
        f"action_stats: no quantile statistics for domain {domain_name!r}; the model takes "
        f"normalised actions. Pass action_stats=PATH ({{'q01': [...], 'q99': [...]}}, "
        f"{width} values each){where}; {shipped}"
    )


class Cosmos3WorldModel:
    """Cosmos 3 forward dynamics behind the `WorldModel` interface, lanes batched."""

    context_frames = 1

    def __init__(
        self,
        pipe: Any,
        *,
        frame_shape: tuple[int, int, int],
        prompt: str,
        domain_name: str,
        action_stats: str | Path | ActionStats | None = None,
        model_dir: str | Path | None = None,
        chunk_size: int | None = None,
        fps: float | None = None,
        resolution_tier: int = 480,
        num_inference_steps: int = 30,
        guidance_scale: float = 1.0,
        flow_shift: float = 10.0,
        view_point: str = "ego_view",
        negative_prompt: str | None = None,
        batch_size: int = 16,
    ) -> None:
        from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import CosmosActionCondition

        if len(frame_shape) != 3 or frame_shape[2] != 3:
            raise WorldModelError(f"frame_shape must be (H, W, 3), got {frame_shape}")
        if not getattr(pipe.transformer.config, "action_gen", False):
            raise WorldModelError(
                "this Cosmos3OmniPipeline's transformer was not trained with action_gen=True; "
                "forward dynamics needs an action-conditioned Cosmos 3 checkpoint"
            )
        recipe_fps, recipe_chunk = RECIPES.get(domain_name, (None, None))
        fps, chunk_size = fps or recipe_fps, chunk_size or recipe_chunk
        if fps is None or chunk_size is None:
            raise WorldModelError(
                f"domain {domain_name!r} has no documented forward-dynamics recipe "
                f"({sorted(RECIPES)} do): pass fps= and chunk_size= of the data it was trained on"
            )
        try:  # validates domain_name / resolution_tier and resolves the raw action width
            probe = CosmosActionCondition(
                mode="policy",
                chunk_size=chunk_size,
                domain_name=domain_name,
                resolution_tier=resolution_tier,
                image=np.zeros((8, 8, 3), np.float32),
            )
        except ValueError as exc:
            raise WorldModelError(f"Cosmos3WorldModel: {exc}") from exc
        self.pipe = pipe
        self.checker = _check_safety_checker(pipe)
        self.frame_shape = tuple(int(v) for v in frame_shape)
        self.action_dim = int(probe.raw_action_dim)
        self.actions_per_call = int(chunk_size)
        self.domain_name, self.prompt = domain_name, prompt
        model_dir = Path(model_dir).expanduser() if model_dir is not None else None
        self.action_stats = find_action_stats(domain_name, self.action_dim, action_stats, model_dir)
        try:
            self.sampler = ForwardDynamicsSampler(
                pipe,
                prompt=prompt,
                domain_name=domain_name,
                chunk_size=chunk_size,
                fps=fps,
                resolution_tier=resolution_tier,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                flow_shift=flow_shift,
                view_point=view_point,
                negative_prompt=negative_prompt,
                batch_size=batch_size,
            )
        except ValueError as exc:
            raise WorldModelError(f"Cosmos3WorldModel: {exc}") from exc
        self.checker.to(self.device)
        if not self.checker.check_text_safety(prompt):
            raise SafetyError(f"the Cosmos guardrail refused the prompt {prompt!r}")

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path,
        *,
        frame_shape: tuple[int, int, int],
        prompt: str,
        domain_name: str,
        device: str = "cuda",
        dtype: str = "bfloat16",
        safety_checker: Any = None,
        **kwargs: Any,
    ) -> Cosmos3WorldModel:
        """Load from a local pipeline folder or the local hub cache (never downloads); the
        folder's `normalizer_stats/` is searched for the domain's action statistics."""
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
        kwargs.setdefault("model_dir", local if local.is_dir() else None)
        return cls(pipe, frame_shape=frame_shape, prompt=prompt, domain_name=domain_name, **kwargs)

    @property
    def device(self) -> torch.device:
        return self.pipe._get_execution_device()

    @property
    def dtype(self) -> torch.dtype:
        return self.pipe.transformer.dtype

    def start(self, frames: torch.Tensor, actions: torch.Tensor | None = None) -> WorldState:
        frames, actions = fit_context(frames, actions, self.context_frames, self.action_dim)
        return WorldState(frames.to(self.device), actions.to(self.device))

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
        video = self.sampler.sample(
            state.last_frame, self.action_stats.normalize(actions.to(self.device)), generator
        )
        for lane in video:  # the guardrail sees every generated chunk
            checked = self.checker.check_video_safety(lane.cpu().numpy())
            if checked is None:
                raise SafetyError("the Cosmos guardrail blocked a generated chunk")
            lane.copy_(torch.as_tensor(np.asarray(checked, np.uint8)))
        new = self._to_frame_shape(video[:, 1:]).to(state.frames.device)
        context = WorldState(new[:, -1:], actions[:, -1:].to(state.actions))
        return context, StepResult(new)

    def _to_frame_shape(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, K, h, w, 3] uint8 at the model's content size -> [B, K, H, W, 3]."""
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


def _check_safety_checker(pipe: Any) -> Any:
    """The pipeline's checker: a real CosmosSafetyChecker, or (only for pipelines too small to
    be Cosmos weights) a replacement with the same two checks; we call it ourselves."""
    checker = getattr(pipe, "safety_checker", None)
    params = sum(p.numel() for p in pipe.transformer.parameters())
    check_safety_checker(checker, params, PIPELINE_CLASS)
    if not all(
        hasattr(checker, name) for name in ("to", "check_text_safety", "check_video_safety")
    ):
        raise SafetyError(
            f"safety checker {type(checker).__name__} lacks to / check_text_safety / "
            "check_video_safety"
        )
    return checker
