"""Cosmos Reason as a video critic: score generated video before anyone trusts it.

A vision-language model (Cosmos Reason 2, a Qwen3-VL model; any transformers image-text-to-text
checkpoint with the same chat format works) is asked yes/no questions about frames sampled
from a video, and the score is its probability of "yes" against "no" for the first answer
token (the VQAScore recipe: no sampling, no parsing of free text, the same input always gives
the same score):

- `plausibility`: are motion and appearance physically plausible?
- `adherence`: does the video match its prompt? (transfer output only: it has a prompt)

Frames go to the model as an ordered image sequence through the checkpoint's own image
processor (its resize limits, mean and std) and tokenizer chat template; transformers' video
processor is not used because it needs torchvision, which has no CPU build on our
registries. Weights load from a local folder or the local Hugging Face cache only, never
from the network.

Scores land beside what they judge: `TRANSFER/critic.json`, `learned_env/critic.json`, and the
dataset's `manifest.json` (`critic`), where `threshold` also filters `annotations.json`
(the unfiltered file is kept as `annotations_unfiltered.json`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_sim.extras import require
from cosmos_sim.types import SpecError

__all__ = ["CriticScore", "ReasonCritic", "score_run", "filter_dataset"]

PLAUSIBILITY_QUESTION = (
    "These are frames of one video, in order. Are the motion and appearance physically "
    "plausible, with no objects appearing, vanishing or deforming impossibly? Answer yes or no."
)
ADHERENCE_QUESTION = (
    'These are frames of one video, in order. Does the video match this description: "{prompt}"?'
    " Answer yes or no."
)
IMAGE_PAD = "<|image_pad|>"


@dataclass(frozen=True)
class CriticScore:
    """Probabilities of "yes" in [0, 1]; `adherence` is None when there is no prompt."""

    plausibility: float
    adherence: float | None = None

    @property
    def overall(self) -> float:
        """The lower of the two: a clip is only as good as its worse judgement."""
        return min(v for v in (self.plausibility, self.adherence) if v is not None)


class ReasonCritic:
    """A resident critic model; `score(frames, prompt)` per video."""

    def __init__(
        self,
        model: str | Path,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        frames_per_video: int = 8,
    ) -> None:
        if frames_per_video < 1:
            raise SpecError(f"frames_per_video must be ≥ 1, got {frames_per_video}")
        transformers = require("transformers", "critic", "the Cosmos Reason critic")
        torch = require("torch", "critic", "the Cosmos Reason critic")
        folder = resolve_model(model)
        self.frames_per_video = frames_per_video
        self.device = device
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.image_processor = transformers.AutoImageProcessor.from_pretrained(
            folder, local_files_only=True
        )
        self.model = transformers.AutoModelForImageTextToText.from_pretrained(
            folder, local_files_only=True, dtype=getattr(torch, dtype)
        ).to(device)
        self.model.eval()
        self.name = str(model)
        self._yes = self._first_tokens(("yes", "Yes"))
        self._no = self._first_tokens(("no", "No"))

    def _first_tokens(self, words: tuple[str, ...]) -> list[int]:
        ids = {self.tokenizer.encode(w, add_special_tokens=False)[0] for w in words}
        return sorted(ids)

    def score(self, frames: np.ndarray, prompt: str | None = None) -> CriticScore:
        """Score one video (T×H×W×3 uint8 RGB), sampling `frames_per_video` frames evenly."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise SpecError(
                f"critic frames: expected T×H×W×3 uint8 RGB, got {frames.dtype} {frames.shape}"
            )
        picked = frames[np.linspace(0, len(frames) - 1, self.frames_per_video).round().astype(int)]
        plausibility = self._p_yes(picked, PLAUSIBILITY_QUESTION)
        adherence = (
            None if not prompt else self._p_yes(picked, ADHERENCE_QUESTION.format(prompt=prompt))
        )
        return CriticScore(plausibility, adherence)

    def _p_yes(self, frames: np.ndarray, question: str) -> float:
        import torch

        content = [{"type": "image"} for _ in frames] + [{"type": "text", "text": question}]
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
        vision = self.image_processor(images=list(frames), return_tensors="pt")
        # The processor's job, done here: each image placeholder becomes one token per merged
        # patch of that image (grid t·h·w / merge²), as the model's vision tower returns.
        merge = int(getattr(self.image_processor, "merge_size", 2))
        counts = (vision["image_grid_thw"].prod(-1) // merge**2).tolist()
        pieces = text.split(IMAGE_PAD)
        if len(pieces) != len(counts) + 1:
            raise SpecError(
                f"critic model's chat template wrote {len(pieces) - 1} {IMAGE_PAD} for "
                f"{len(counts)} images; it is not a Qwen-VL style checkpoint"
            )
        expanded = pieces[0] + "".join(
            IMAGE_PAD * n + rest for n, rest in zip(counts, pieces[1:], strict=True)
        )
        tokens = self.tokenizer(expanded, return_tensors="pt", add_special_tokens=False)
        # M-RoPE needs each token's modality: 1 for image tokens, 0 for text (what the
        # processor's create_mm_token_type_ids returns).
        image_token = self.model.config.image_token_id
        modality = (tokens["input_ids"] == image_token).long()
        inputs = {**tokens, **vision, "mm_token_type_ids": modality}
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        with torch.inference_mode():
            logits = self.model(**inputs).logits[0, -1].float()
        yes = torch.logsumexp(logits[self._yes], 0)
        no = torch.logsumexp(logits[self._no], 0)
        return float(torch.sigmoid(yes - no))


def resolve_model(model: str | Path) -> str:
    """A local folder, or a hub id already in the local cache; never downloads."""
    if Path(model).is_dir():
        return str(model)
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", str(model)):
        raise FileNotFoundError(f"--model {model}: no such folder (nor an owner/name hub id)")
    hub = require("huggingface_hub", "critic", "the Cosmos Reason critic")
    try:
        return hub.snapshot_download(str(model), local_files_only=True)
    except Exception as exc:  # LocalEntryNotFoundError and friends
        raise FileNotFoundError(
            f"--model {model} is neither a folder nor in the local Hugging Face cache; "
            f"download it where you have network (`hf download {model}`) or pass its folder"
        ) from exc


def _video_frames(path: Path) -> np.ndarray:
    from cosmos_sim.video import read_video

    frames, _ = read_video(path)
    return frames


def score_run(
    critic: ReasonCritic, *, transfer: Path | None = None, learned: Path | None = None
) -> dict[str, dict[str, Any]]:
    """Score transfer outputs (with their prompts) and learned-env videos; write critic.json."""
    if transfer is None and learned is None:
        raise SpecError("critic: pass a transfer output folder or a learned-env folder to score")
    written: dict[str, dict[str, Any]] = {}
    if transfer is not None:
        manifest = _read_json(transfer / "transfer.json", "`cosmos-sim transfer` output")
        scores = {}
        for camera, entry in sorted(manifest["cameras"].items()):
            if "output" in entry:
                frames = _video_frames(transfer / entry["output"])
                scores[camera] = asdict(critic.score(frames, entry.get("prompt")))
        written["transfer"] = _write_scores(transfer, critic, scores)
    if learned is not None:
        videos = sorted(learned.glob("*.mp4"))
        if not videos:
            raise SpecError(f"critic: {learned} holds no .mp4 rollouts to score")
        scores = {v.stem: asdict(critic.score(_video_frames(v))) for v in videos}
        written["learned"] = _write_scores(learned, critic, scores)
    return written


def _write_scores(folder: Path, critic: ReasonCritic, scores: dict[str, Any]) -> dict[str, Any]:
    from cosmos_sim.episode import write_json_atomic

    payload = {"model": critic.name, "frames_per_video": critic.frames_per_video, "scores": scores}
    write_json_atomic(folder / "critic.json", payload)
    return payload


def filter_dataset(dataset: Path, scores: dict[str, Any], threshold: float | None) -> dict:
    """Record per-camera scores in the dataset manifest; drop cameras under `threshold`."""
    from cosmos_sim.episode import write_json_atomic

    manifest_path = dataset / "manifest.json"
    manifest = _read_json(manifest_path, "`cosmos-sim dataset` output")
    overall = {camera: CriticScore(**s).overall for camera, s in scores["scores"].items()}
    kept = sorted(c for c, v in overall.items() if threshold is None or v >= threshold)
    manifest["critic"] = {**scores, "threshold": threshold, "kept_cameras": kept}
    if threshold is not None:
        coco_path = dataset / "annotations.json"
        coco = _read_json(coco_path, "`cosmos-sim dataset` output")
        original = dataset / "annotations_unfiltered.json"
        if not original.exists():
            write_json_atomic(original, coco)
        else:
            coco = _read_json(original, "`cosmos-sim dataset` output")
        images = [
            im for im in coco["images"] if im["camera"] in kept or im["camera"] not in overall
        ]
        ids = {im["id"] for im in images}
        coco = {
            **coco,
            "images": images,
            "annotations": [a for a in coco["annotations"] if a["image_id"] in ids],
        }
        write_json_atomic(coco_path, coco)
    write_json_atomic(manifest_path, manifest)
    return manifest["critic"]


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; pass the folder written by {what}")
    return json.loads(path.read_text())
