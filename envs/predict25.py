"""Cosmos Predict 2.5 robot action-conditioned world model, through a cosmos-predict2.5
checkout's own tool (`examples/action_conditioned.py`), like the cosmos-cli Transfer backend.

Actions are Bridge-style 7-D end-effector deltas per step, in the previous end-effector
frame: Δx, Δy, Δz (m), Δroll, Δpitch, Δyaw (rad), gripper (0 open, 1 closed); one call
takes a chunk of 12 and predicts 12 frames (13 with the conditioning frame,
COSMOS_REFERENCE.md). The tool scales them itself (motion × `action_scaler` = 20,
gripper × 1), so the env's actions stay in physical units.

Per `step`, for each lane this writes what the tool's default action loader reads: a one-
frame lossless video of the lane's current frame and an annotation JSON whose `state` (xyz,
roll-pitch-yaw, Z·Y·X Euler as the tool's `euler2rotm`) and `continuous_gripper_state`
integrate the chunk, so the loader's relative actions are exactly ours; then it runs the
tool once for all lanes (`single_chunk`), reads each `<lane>_single_chunk.mp4` and keeps its
12 predicted frames. Nothing is re-implemented on the model side: the tool's guardrails stay
on (no `--disable-guardrails`), its checkpoint is whatever its setup arguments select.

Limits of the tool, stated rather than hidden: every step reloads the model (one process
per step, all lanes in it); the tool seeds each chunk with its start index, so the same
state and actions give the same future whatever the env's generator (no multiverse
variety); Cosmos predicts no reward (give the env a `reward_fn`).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cosmos_sim.cosmos_tool import CosmosToolError, checkout_python, find_checkout, run_tool
from cosmos_sim.envs.world_model import StepResult, WorldModelError, WorldState, fit_context

SCRIPT = "examples/action_conditioned.py"
MARKERS = (SCRIPT, "cosmos_predict2")
CHUNK_SIZE = 12
ACTION_DIM = 7
ACTION_SCALER = 20.0
"""The tool's scale for the six motion components (its default and the released model's)."""
ACTION_LOW = np.array([-0.05] * 6 + [0.0], np.float32)
ACTION_HIGH = np.array([0.05] * 6 + [1.0], np.float32)
"""A sensible Box for LearnedEnv(action_low=, action_high=): ±5 cm / ±0.05 rad per step
(×20 = ±1, the range the model was trained on) and the gripper in [0, 1]."""


class Predict25Error(CosmosToolError):
    """The Cosmos tool failed or wrote no video; the message holds its output."""


class Predict25WorldModel:
    """Cosmos-Predict2.5-2B/robot/action-cond behind the `WorldModel` interface."""

    context_frames = 1
    action_dim = ACTION_DIM
    actions_per_call = CHUNK_SIZE
    device = torch.device("cpu")
    """Where frames live on our side; the tool runs on its own GPU(s)."""
    dtype = torch.float32

    def __init__(
        self,
        cosmos_root: str | Path,
        *,
        frame_shape: tuple[int, int, int],
        python: str | Path | None = None,
        resolution: str | None = "256,320",
        guidance: int = 0,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        setup_args: Sequence[str] = (),
        workdir: str | Path | None = None,
    ) -> None:
        self.root = find_checkout(
            cosmos_root,
            markers=MARKERS,
            repo="cosmos-predict2.5",
            field="cosmos_root",
            setup=" (robot action-cond)",
        )
        if len(frame_shape) != 3 or frame_shape[2] != 3:
            raise WorldModelError(f"frame_shape must be (H, W, 3), got {frame_shape}")
        self.python = checkout_python(self.root, python)
        self.frame_shape = tuple(int(v) for v in frame_shape)
        self.params = {
            "guidance": guidance,
            "resolution": resolution or "none",
            "prompt": prompt,
            **({} if negative_prompt is None else {"negative_prompt": negative_prompt}),
        }
        self.setup_args = list(setup_args)
        for arg in self.setup_args:
            flag = str(arg).lower().replace("_", "-")
            if "disable-guardrail" in flag and not flag.startswith("--no-"):
                raise WorldModelError(
                    f"setup_args {arg!r} would switch the Cosmos guardrails off; cosmos-sim "
                    "runs Cosmos only with them on (NVIDIA Open Model License): drop it"
                )
        self.workdir = None if workdir is None else Path(workdir)
        self.calls = 0

    def start(self, frames: torch.Tensor, actions: torch.Tensor | None = None) -> WorldState:
        frames, actions = fit_context(frames, actions, self.context_frames, self.action_dim)
        return WorldState(frames.cpu(), actions.cpu())

    def step(
        self, state: WorldState, actions: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[WorldState, StepResult]:
        batch = state.batch_size
        if tuple(actions.shape) != (batch, CHUNK_SIZE, ACTION_DIM):
            raise WorldModelError(
                f"Predict25WorldModel.step: actions must be [B, 12, 7] = "
                f"{[batch, CHUNK_SIZE, ACTION_DIM]} (12 Bridge-style actions per chunk), got "
                f"{list(actions.shape)}"
            )
        if not os.environ.get("HF_HOME"):
            raise Predict25Error(
                "HF_HOME is not set; the cosmos-predict2.5 tool refuses to start without it. "
                "Set it to the Hugging Face cache that holds the Predict 2.5 checkpoints"
            )
        self.calls += 1
        if self.workdir is not None:
            work = self.workdir / f"step_{self.calls:06d}"
            work.mkdir(parents=True, exist_ok=False)
            frames = self._run(work, state, actions)
        else:
            with tempfile.TemporaryDirectory(prefix="predict25_") as tmp:
                frames = self._run(Path(tmp), state, actions)
        context = WorldState(frames[:, -1:], actions[:, -1:].float().cpu())
        return context, StepResult(frames)

    def _run(self, work: Path, state: WorldState, actions: torch.Tensor) -> torch.Tensor:
        from cosmos_sim.video import read_video, write_video

        inputs, annotations, outputs = work / "input", work / "input" / "annotation", work / "out"
        annotations.mkdir(parents=True)
        names = [f"lane_{lane:04d}" for lane in range(state.batch_size)]
        for name, frame, chunk in zip(
            names, state.last_frame.numpy(), actions.cpu().numpy(), strict=True
        ):
            write_video(inputs / f"{name}.mp4", frame[None], fps=4, lossless=True)
            states, gripper = integrate_actions(chunk)
            (annotations / f"{name}.json").write_text(
                json.dumps(
                    {
                        "videos": [{"video_path": f"{name}.mp4"}],
                        "state": states.tolist(),
                        "continuous_gripper_state": gripper.tolist(),
                    }
                )
            )
        params = inference_params(inputs, outputs, len(names), self.params)
        params_path = work / "inference_params.json"
        params_path.write_text(json.dumps(params, indent=2))
        cmd = [
            self.python,
            SCRIPT,
            "-i",
            str(params_path),
            "-o",
            str(work / "setup_out"),
            *self.setup_args,
        ]
        log = work / "inference.log"
        # one tool run per env step: its log goes to the file only, the console gets progress
        run_tool(
            cmd, self.root, log, f"predict2.5 step {self.calls}", error=Predict25Error, echo=False
        )
        lanes = []
        for name in names:
            video_path = outputs / f"{name}_single_chunk.mp4"
            if not video_path.is_file():
                raise Predict25Error(
                    f"the Cosmos tool exited cleanly but wrote no {video_path}; see {log}"
                )
            video, _ = read_video(video_path)
            if len(video) != CHUNK_SIZE + 1:
                raise Predict25Error(
                    f"{video_path} has {len(video)} frames, expected {CHUNK_SIZE + 1} "
                    "(the conditioning frame and 12 predicted)"
                )
            lanes.append(self._resize(torch.from_numpy(video[1:])))
        return torch.stack(lanes)

    def _resize(self, frames: torch.Tensor) -> torch.Tensor:
        """[K, h, w, 3] at the tool's resolution -> [K, H, W, 3] at `frame_shape`."""
        if tuple(frames.shape[1:]) == self.frame_shape:
            return frames
        resized = F.interpolate(
            frames.permute(0, 3, 1, 2).float(),
            size=self.frame_shape[:2],
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
        return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def inference_params(
    input_root: Path, save_root: Path, lanes: int, settings: dict[str, Any]
) -> dict[str, Any]:
    """The tool's `-i` file: our lanes' annotations, one chunk each, the tool's scaling."""
    return {
        "name": "cosmos_sim_learned_env",
        "input_root": str(input_root),
        "input_json_sub_folder": "annotation",
        "save_root": str(save_root),
        "chunk_size": CHUNK_SIZE,
        "camera_id": 0,
        "start": 0,
        "end": lanes,
        "fps_downsample_ratio": 1,
        "gripper_scale": 1.0,
        "gripper_key": "continuous_gripper_state",
        "state_key": "state",
        "reverse": False,
        "single_chunk": True,
        "start_frame_idx": 0,
        "save_fps": 4,
        "num_latent_conditional_frames": 1,
        "action_scaler": ACTION_SCALER,
        "use_quat": False,
        "seed": 0,
        **settings,
    }


def euler_zyx_to_matrix(rpy: np.ndarray) -> np.ndarray:
    """R = Rz(yaw) · Ry(pitch) · Rx(roll), the tool's convention."""
    (cr, sr), (cp, sp), (cy, sy) = ((math.cos(a), math.sin(a)) for a in rpy)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def matrix_to_euler_zyx(rot: np.ndarray) -> np.ndarray:
    """Inverse of `euler_zyx_to_matrix` for pitch in (-π/2, π/2)."""
    pitch = math.atan2(-rot[2, 0], math.hypot(rot[0, 0], rot[1, 0]))
    return np.array([math.atan2(rot[2, 1], rot[2, 2]), pitch, math.atan2(rot[1, 0], rot[0, 0])])


def integrate_actions(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute end-effector states [K+1, 6] (xyz, rpy) and gripper states [K+1] whose
    relative motion, as the tool's loader computes it, is `chunk` [K, 7] again."""
    position, rotation = np.zeros(3), np.eye(3)
    states = [np.zeros(6)]
    gripper = [0.0]
    for action in np.asarray(chunk, np.float64):
        position = position + rotation @ action[:3]
        rotation = rotation @ euler_zyx_to_matrix(action[3:6])
        states.append(np.concatenate([position, matrix_to_euler_zyx(rotation)]))
        gripper.append(float(action[6]))
    return np.stack(states), np.asarray(gripper)
