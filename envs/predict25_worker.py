"""Resident Cosmos Predict 2.5 action-conditioned worker, and the small protocol it speaks.

Run by `Predict25WorldModel` with the cosmos-predict2.5 checkout's own Python, in the
checkout (so it imports `cosmos_predict2` from there; it never imports cosmos-sim): it loads
the robot action-conditioned model and the guardrails **once**, connects back to the env
over a loopback TCP socket and serves steps until told to close.

Protocol (both directions): an 8-byte big-endian length, a JSON header of that many bytes,
then the raw bytes of each array the header lists (`"arrays": [{"dtype", "shape"}, ...]`).
No pickle. Worker -> env: `{"op": "ready"}` once loaded, then one reply per request:
`{"op": "frames"}` + uint8 [B, 13, h, w, 3], or `{"op": "error", "kind", "error"}`.
Env -> worker: `{"op": "step", "seeds": [B ints], "prompt"?}` + uint8 frames [B, H, W, 3]
and float32 actions [B, 12, 7] (Bridge deltas in physical units), or `{"op": "close"}`.

Per lane the worker does what the checkout's `cosmos_predict2.action_conditioned.inference`
does for one chunk (conditioning frame then zero frames, motion x 20 and gripper x 1,
`generate_vid2world`), with the lane's seed instead of the chunk index, and runs the text
guardrail on the prompt and the video guardrail on every generated chunk, as the checkout's
`inference.py` does. Guardrails cannot be switched off here.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import traceback
from typing import Any

import numpy as np

MAX_HEADER_BYTES = 1 << 20
MAX_ARRAY_BYTES = 1 << 32
ACTION_SCALE = np.array([20.0] * 6 + [1.0], np.float32)
"""The checkout's scaling of Bridge actions: motion x `action_scaler` (20), gripper x 1."""


class ProtocolError(RuntimeError):
    """A malformed or oversized message, or the peer went away."""


def send(sock: socket.socket, header: dict[str, Any], *arrays: np.ndarray) -> None:
    arrays = tuple(np.ascontiguousarray(a) for a in arrays)
    header = {**header, "arrays": [{"dtype": a.dtype.str, "shape": list(a.shape)} for a in arrays]}
    body = json.dumps(header).encode()
    sock.sendall(struct.pack(">Q", len(body)) + body)
    for array in arrays:
        sock.sendall(memoryview(array).cast("B"))


def recv(sock: socket.socket) -> tuple[dict[str, Any], list[np.ndarray]]:
    (size,) = struct.unpack(">Q", _read(sock, 8))
    if size > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {size} bytes is over the {MAX_HEADER_BYTES} limit")
    try:
        header = json.loads(_read(sock, size))
        specs = [
            (np.dtype(s["dtype"]), tuple(int(v) for v in s["shape"])) for s in header["arrays"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"malformed header: {exc!r}") from exc
    arrays = []
    for dtype, shape in specs:
        nbytes = dtype.itemsize * int(np.prod(shape))
        if dtype.hasobject or nbytes > MAX_ARRAY_BYTES:
            raise ProtocolError(f"array {dtype} {list(shape)} is not allowed")
        arrays.append(np.frombuffer(_read(sock, nbytes), dtype).reshape(shape))
    return header, arrays


def _read(sock: socket.socket, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 22))
        if not chunk:
            raise ProtocolError("the connection closed mid-message")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class Predict25Runner:
    """The checkout's action-conditioned model and guardrails, loaded once."""

    def __init__(self, settings: dict[str, Any]) -> None:
        from cosmos_predict2._src.imaginaire.auxiliary.guardrail.common import presets
        from cosmos_predict2._src.predict2.inference.video2world import Video2WorldInference
        from cosmos_predict2.action_conditioned_config import ActionConditionedSetupArguments
        from cosmos_predict2.config import MODEL_CHECKPOINTS

        setup = ActionConditionedSetupArguments(
            output_dir=settings["output_dir"], **settings.get("setup", {})
        )
        checkpoint = MODEL_CHECKPOINTS[setup.model_key]
        extra = {"config_file": setup.config_file} if hasattr(setup, "config_file") else {}
        self.model = Video2WorldInference(
            experiment_name=setup.experiment or checkpoint.experiment,
            ckpt_path=setup.checkpoint_path or checkpoint.s3.uri,
            s3_credential_path="",
            context_parallel_size=setup.context_parallel_size or 1,
            **extra,
        )
        self.guardrails = presets
        offload = bool(getattr(setup, "offload_guardrail_models", False))
        self.text_guardrail = presets.create_text_guardrail_runner(offload_model_to_cpu=offload)
        self.video_guardrail = presets.create_video_guardrail_runner(offload_model_to_cpu=offload)
        self.settings = settings

    def prompt_allowed(self, prompt: str) -> bool:
        return bool(self.guardrails.run_text_guardrail(prompt, self.text_guardrail))

    def generate(self, frame: np.ndarray, actions: np.ndarray, seed: int) -> np.ndarray | None:
        """uint8 [13, h, w, 3]: the conditioning frame and 12 predicted, or None if the
        video guardrail blocks them."""
        import torch

        resolution = self.settings.get("resolution") or "none"
        if resolution != "none":
            import mediapy

            frame = mediapy.resize_image(frame, tuple(int(v) for v in resolution.split(",")))
        first = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None]
        clip = torch.cat([first, torch.zeros_like(first).repeat(len(actions), 1, 1, 1)])
        options = {}
        if self.settings.get("negative_prompt") is not None:
            options["negative_prompt"] = self.settings["negative_prompt"]
        video = self.model.generate_vid2world(
            prompt=self.settings.get("prompt") or "",
            input_path=clip[None].permute(0, 2, 1, 3, 4),  # uint8 (B, C, T, H, W)
            action=torch.from_numpy(actions * ACTION_SCALE).float(),
            guidance=self.settings.get("guidance", 0),
            num_video_frames=len(actions) + 1,
            num_latent_conditional_frames=1,
            resolution=resolution,
            seed=seed,
            **options,
        )
        frames = ((video[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        frames = frames.permute(1, 2, 3, 0).cpu().numpy()
        return self.guardrails.run_video_guardrail(frames, self.video_guardrail)


def serve(sock: socket.socket, runner: Predict25Runner) -> None:
    while True:
        header, arrays = recv(sock)
        if header.get("op") == "close":
            return
        seeds = header.get("seeds")
        if (
            header.get("op") != "step"
            or len(arrays) != 2
            or not isinstance(seeds, list)
            or len(seeds) != len(arrays[0])
        ):
            send(sock, {"op": "error", "kind": "protocol", "error": f"bad request {header}"})
            continue
        frames, actions = arrays
        lanes = []
        try:
            for frame, chunk, seed in zip(frames, actions, seeds, strict=True):
                video = runner.generate(frame, chunk, int(seed))
                if video is None:
                    break
                lanes.append(video)
        except Exception:  # report it and keep serving: the model stays loaded
            send(sock, {"op": "error", "kind": "step", "error": traceback.format_exc()})
            continue
        if len(lanes) < len(frames):
            send(
                sock,
                {
                    "op": "error",
                    "kind": "guardrail",
                    "error": "the video guardrail blocked a chunk",
                },
            )
            continue
        send(sock, {"op": "frames"}, np.stack(lanes).astype(np.uint8))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connect", required=True, help="HOST:PORT the env listens on")
    parser.add_argument("--settings", required=True, help="JSON: prompt, guidance, setup, ...")
    args = parser.parse_args(argv)
    host, port = args.connect.rsplit(":", 1)
    settings = json.loads(args.settings)
    with socket.create_connection((host, int(port))) as sock:
        try:
            runner = Predict25Runner(settings)
            if not runner.prompt_allowed(settings.get("prompt") or ""):
                send(
                    sock,
                    {
                        "op": "error",
                        "kind": "guardrail",
                        "error": "the text guardrail "
                        f"blocked the prompt {settings.get('prompt')!r}",
                    },
                )
                return 1
        except Exception:
            send(sock, {"op": "error", "kind": "load", "error": traceback.format_exc()})
            return 1
        send(sock, {"op": "ready"})
        serve(sock, runner)
    return 0


if __name__ == "__main__":
    sys.exit(main())
