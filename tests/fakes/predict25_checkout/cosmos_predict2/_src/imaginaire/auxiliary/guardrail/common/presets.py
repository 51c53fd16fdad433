"""Stand-in guardrails: block prompts with "unsafe" and, with $STANDIN_BLOCK_VIDEO, videos."""

import os

from standin_log import log


def create_text_guardrail_runner(offload_model_to_cpu=False):
    log(event="text_guardrail_loaded")
    return "text"


def create_video_guardrail_runner(offload_model_to_cpu=False):
    log(event="video_guardrail_loaded")
    return "video"


def run_text_guardrail(prompt, guardrail_runner):
    log(event="text_check", prompt=prompt)
    return "unsafe" not in prompt


def run_video_guardrail(frames, guardrail_runner):
    assert frames.dtype.name == "uint8" and frames.ndim == 4 and frames.shape[-1] == 3
    log(event="video_check", frames=len(frames))
    return None if os.environ.get("STANDIN_BLOCK_VIDEO") else frames
