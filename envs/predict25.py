"""Cosmos Predict 2.5 robot action-conditioned world model, served by a resident worker.

Actions are Bridge-style 7-D end-effector deltas per step, in the previous end-effector
frame: Δx, Δy, Δz (m), Δroll, Δpitch, Δyaw (rad), gripper (0 open, 1 closed); one call
takes a chunk of 12 and predicts 12 frames (13 with the conditioning frame,
COSMOS_REFERENCE.md). The model wants them scaled (motion × 20, gripper × 1, the checkout's
`action_scaler`); the worker does that, so the env's actions stay in physical units.

The model lives in the user's cosmos-predict2.5 checkout and its Python, not ours: on the
first step this starts `envs/predict25_worker.py` there (the checkout's `.venv` Python,
working directory the checkout), which loads the model and its guardrails **once** and then
serves every step of this world model over a loopback socket (protocol in the worker's
docstring). Each lane of a step gets its own seed, drawn from the env's generator, so a
multiverse `branch(k)` gives k different futures and `reset(seed=)` reproduces them. The
guardrails run as the checkout runs them (text on the prompt, video on every chunk) and
cannot be switched off. Lanes run one after another inside the worker (the checkout's
`generate_vid2world` takes one sample). Cosmos predicts no reward: give the env a
`reward_fn`. Call `close()` (or let the model be collected) to stop the worker.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cosmos_sim.cosmos_tool import CosmosToolError, checkout_python, find_checkout
from cosmos_sim.envs import predict25_worker
from cosmos_sim.envs.world_model import StepResult, WorldModelError, WorldState, fit_context

WORKER = Path(predict25_worker.__file__).resolve()
MARKERS = ("cosmos_predict2",)
CHUNK_SIZE = 12
ACTION_DIM = 7
ACTION_LOW = np.array([-0.05] * 6 + [0.0], np.float32)
ACTION_HIGH = np.array([0.05] * 6 + [1.0], np.float32)
"""A sensible Box for LearnedEnv(action_low=, action_high=): ±5 cm / ±0.05 rad per step
(×20 = ±1, the range the model was trained on) and the gripper in [0, 1]."""
LOG_TAIL_CHARS = 6000


class Predict25Error(CosmosToolError):
    """The worker failed to start, failed a step or was blocked by a guardrail."""


class Predict25WorldModel:
    """Cosmos-Predict2.5-2B/robot/action-cond behind the `WorldModel` interface."""

    context_frames = 1
    action_dim = ACTION_DIM
    actions_per_call = CHUNK_SIZE
    device = torch.device("cpu")
    """Where frames live on our side; the worker runs on its own GPU(s)."""
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
        setup: Mapping[str, Any] | None = None,
        workdir: str | Path | None = None,
        start_timeout_s: float = 3600.0,
        step_timeout_s: float = 3600.0,
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
        self.setup = dict(setup or {})
        for key, value in self.setup.items():
            if "guardrail" in key.lower() and "disable" in key.lower() and value:
                raise WorldModelError(
                    f"setup {key}={value!r} would switch the Cosmos guardrails off; cosmos-sim "
                    "runs Cosmos only with them on (NVIDIA Open Model License): drop it"
                )
        # Absolute: the worker runs with the checkout as its working directory.
        base = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="predict25_"))
        self.workdir = base.expanduser().resolve()
        self.settings = {
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "guidance": guidance,
            "resolution": resolution or "none",
            "setup": self.setup,
            "output_dir": str(self.workdir / "setup_out"),
        }
        self.start_timeout_s, self.step_timeout_s = start_timeout_s, step_timeout_s
        self.log_path = self.workdir / "worker.log"
        self._process: subprocess.Popen | None = None
        self._sock: socket.socket | None = None

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
        seeds = torch.randint(0, 2**31 - 1, (batch,), generator=generator).tolist()
        sock = self._connection()
        sock.settimeout(self.step_timeout_s)
        try:
            predict25_worker.send(
                sock,
                {"op": "step", "seeds": seeds},
                state.last_frame.numpy().astype(np.uint8),
                actions.float().cpu().numpy(),
            )
            header, arrays = predict25_worker.recv(sock)
        except (OSError, predict25_worker.ProtocolError) as exc:
            self.close()
            raise Predict25Error(
                f"the Predict 2.5 worker stopped answering ({exc}){self._log()}"
            ) from exc
        if header.get("op") != "frames":
            raise Predict25Error(
                f"the Predict 2.5 worker refused the step ({header.get('kind')}): "
                f"{header.get('error')}"
            )
        video = torch.from_numpy(arrays[0].copy())
        if tuple(video.shape[:2]) != (batch, CHUNK_SIZE + 1):
            raise Predict25Error(
                f"the worker returned {list(video.shape)}; expected [{batch}, 13, h, w, 3] "
                "(the conditioning frame and 12 predicted per lane)"
            )
        frames = torch.stack([self._resize(lane[1:]) for lane in video])
        context = WorldState(frames[:, -1:], actions[:, -1:].float().cpu())
        return context, StepResult(frames)

    def close(self) -> None:
        """Stop the worker (the next step starts a new one)."""
        if self._sock is not None:
            try:
                predict25_worker.send(self._sock, {"op": "close"})
            except OSError:
                pass
            self._sock.close()
        if self._process is not None:
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._sock = self._process = None

    def _connection(self) -> socket.socket:
        """The worker's socket, starting the worker (one model load) if none runs."""
        if self._sock is not None:
            return self._sock
        if not os.environ.get("HF_HOME"):
            raise Predict25Error(
                "HF_HOME is not set; the cosmos-predict2.5 code refuses to start without it. "
                "Set it to the Hugging Face cache that holds the Predict 2.5 checkpoints"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        with socket.create_server(("127.0.0.1", 0)) as server:
            port = server.getsockname()[1]
            cmd = [
                self.python,
                str(WORKER),
                "--connect",
                f"127.0.0.1:{port}",
                "--settings",
                json.dumps(self.settings),
            ]
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(self.root), env.get("PYTHONPATH")])
            )
            with open(self.log_path, "w") as log:
                self._process = subprocess.Popen(
                    cmd, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            weakref.finalize(self, _stop, self._process)
            server.settimeout(1.0)
            deadline = time.monotonic() + self.start_timeout_s
            while True:
                try:
                    sock, _ = server.accept()
                    break
                except TimeoutError:
                    if self._process.poll() is not None or time.monotonic() > deadline:
                        self.close()
                        raise Predict25Error(
                            f"the Predict 2.5 worker did not connect{self._log()}"
                        ) from None
        sock.settimeout(self.start_timeout_s)
        try:
            header, _ = predict25_worker.recv(sock)
        except (OSError, predict25_worker.ProtocolError) as exc:
            sock.close()
            self.close()
            raise Predict25Error(
                f"the Predict 2.5 worker died while loading ({exc}){self._log()}"
            ) from exc
        if header.get("op") != "ready":
            sock.close()
            self.close()
            raise Predict25Error(
                f"the Predict 2.5 worker failed to load ({header.get('kind')}): "
                f"{header.get('error')}{self._log()}"
            )
        self._sock = sock
        return sock

    def _log(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""
        return f"; worker log {self.log_path}:\n{text[-LOG_TAIL_CHARS:]}" if text else ""

    def _resize(self, frames: torch.Tensor) -> torch.Tensor:
        """[K, h, w, 3] at the model's resolution -> [K, H, W, 3] at `frame_shape`."""
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


def _stop(process: subprocess.Popen) -> None:
    """Finaliser: never leave a worker (and its GPU memory) behind."""
    if process.poll() is None:
        process.kill()
        process.wait()
