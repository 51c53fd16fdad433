"""Stand-in for Video2WorldInference: a toy action-conditioned model, seeded noise on top.

Frame k of a chunk is the conditioning frame brightened by k x the first scaled action's Δx,
plus noise from `seed`, so tests can tell lanes, action scaling and seeds apart.
"""

import os

import torch
from standin_log import log


class Video2WorldInference:
    def __init__(
        self,
        experiment_name,
        ckpt_path,
        s3_credential_path,
        context_parallel_size=1,
        config_file=None,
    ):
        if os.environ.get("STANDIN_FAIL_LOAD"):
            raise RuntimeError("CUDA out of memory (stand-in failure)")
        log(event="load", experiment=experiment_name, ckpt=ckpt_path, pid=os.getpid())

    def generate_vid2world(
        self,
        prompt,
        input_path,
        action,
        guidance,
        num_video_frames,
        num_latent_conditional_frames,
        resolution,
        seed,
        negative_prompt="",
    ):
        assert input_path.dtype == torch.uint8 and input_path.shape[:3] == (1, 3, num_video_frames)
        first = input_path[0, :, 0].float() / 127.5 - 1.0
        noise = torch.randn(first.shape, generator=torch.Generator().manual_seed(seed)) * 0.05
        frames = [first] + [
            (first + k * float(action[0, 0]) / 127.5 + noise).clamp(-1, 1)
            for k in range(1, num_video_frames)
        ]
        log(
            event="step",
            seed=seed,
            actions=action.tolist(),
            prompt=prompt,
            guidance=guidance,
            resolution=resolution,
            pid=os.getpid(),
        )
        return torch.stack(frames, dim=1)[None]
