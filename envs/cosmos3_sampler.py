"""Batched Cosmos 3 forward dynamics over the components of a diffusers `Cosmos3OmniPipeline`.

diffusers' `Cosmos3OmniPipeline.__call__` generates one sample per call (its transformer
packs one sequence, with no batch axis). Env lanes and multiverse futures want one forward
pass for all of them, so this sampler drives the same components itself:

- the conditioning frames go through the pipeline's own action preprocessing (float in
  [0, 1] in, [-1, 1] canvas out) and VAE encoding; only frame 0 of the chunk is encoded:
  the Wan VAE is causal in time, so its first latent frame depends on frame 0 alone and the
  other latent frames are replaced by noise anyway. Lanes with the same frame (branches of
  one state) are encoded once;
- the prompt is tokenised once per canvas and its text tokens are packed **once** for all
  lanes: text tokens attend causally to text only, so they are the same for every lane;
- the lanes' vision and action tokens follow the text, lane after lane, in one packed
  sequence (the transformer's own multi-item packing); `LaneAttention` lets each lane's
  tokens attend to the shared text and to their own lane only;
- the scheduler steps all lanes at once; the VAE decodes `decode_batch_size` lanes a call.

Per call, only what changes is rebuilt: the packed sequence metadata is cached per (canvas,
lanes), timesteps are read to the host once (no `.item()` per step), and duplicate frames are
found on the host by their bytes (`torch.unique(dim=0)` on CUDA compares rows one thread per
comparison, which made branches of one state slower than distinct lanes).

At one lane this is the pipeline's computation (tests compare the two on a tiny pipeline).
Actions go in as the pipeline takes them: model-space rows [K, D] of the domain's width
(normalise them first, see envs/cosmos3.py). No safety check runs here: the world model
around it (envs/cosmos3.py) runs the guardrail on every prompt and generated chunk.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any

import torch

ACTION_FD = "forward_dynamics"


class LaneAttention:
    """Attention for `lanes` samples packed as [shared text | lane 0 | lane 1 | ...].

    Same projections, norms and rotary embedding as diffusers' `Cosmos3AttnProcessor`; the
    difference is the attention pattern: text is causal over itself (computed once), and
    each lane's generation tokens attend to the text and their own lane, never another
    lane, as `lanes` separate pipeline calls would.
    """

    def __init__(self, lanes: int) -> None:
        self.lanes = lanes

    def __call__(self, attn: Any, und_seq: torch.Tensor, gen_seq: torch.Tensor, rotary_emb):
        from diffusers.models.attention_dispatch import dispatch_attention_fn

        heads, kv_heads, dim = attn.num_attention_heads, attn.num_key_value_heads, attn.head_dim
        cos_und, sin_und, cos_gen, sin_gen = (t.unsqueeze(1) for t in rotary_emb)
        q_und = rotate(attn.norm_q(attn.to_q(und_seq).view(-1, heads, dim)), cos_und, sin_und)
        k_und_raw = attn.norm_k(attn.to_k(und_seq).view(-1, kv_heads, dim))
        k_und = rotate(k_und_raw, cos_und, sin_und)
        k_und_for_gen = k_und
        if attn.k_norm_und_for_gen is not None:
            k_und_for_gen = rotate(attn.k_norm_und_for_gen(k_und_raw), cos_und, sin_und)
        v_und = attn.to_v(und_seq).view(-1, kv_heads, dim)
        q_gen = rotate(
            attn.norm_added_q(attn.add_q_proj(gen_seq).view(-1, heads, dim)), cos_gen, sin_gen
        )
        k_gen = rotate(
            attn.norm_added_k(attn.add_k_proj(gen_seq).view(-1, kv_heads, dim)), cos_gen, sin_gen
        )
        v_gen = attn.add_v_proj(gen_seq).view(-1, kv_heads, dim)

        text_out = dispatch_attention_fn(
            q_und[None], k_und[None], v_und[None], is_causal=True, enable_gqa=True
        )[0]
        lanes, text = self.lanes, k_und.shape[0]

        def per_lane(x: torch.Tensor) -> torch.Tensor:
            return x.view(lanes, -1, *x.shape[1:])

        keys = torch.cat([k_und_for_gen[None].expand(lanes, text, -1, -1), per_lane(k_gen)], 1)
        values = torch.cat([v_und[None].expand(lanes, text, -1, -1), per_lane(v_gen)], 1)
        gen_out = dispatch_attention_fn(per_lane(q_gen), keys, values, enable_gqa=True)
        return (
            attn.to_out(text_out.flatten(-2)),
            attn.to_add_out(gen_out.reshape(gen_seq.shape[0], heads * dim)),
        )


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding (rotate-half convention, as the Cosmos 3 transformer)."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


@contextmanager
def lane_attention(transformer: Any, lanes: int):
    """Swap every layer's attention processor for `LaneAttention(lanes)`, then restore."""
    layers = [layer.self_attn for layer in transformer.layers]
    saved = [a.processor for a in layers]
    processor = LaneAttention(lanes)
    for a in layers:
        a.processor = processor
    try:
        yield
    finally:
        for a, p in zip(layers, saved, strict=True):
            a.processor = p


def distinct_frames(frames: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """uint8 frames [N, H, W, 3] -> the distinct ones (host, first-seen order) and each
    frame's index among them. Exact: frames are compared by their bytes."""
    host = frames.cpu()
    index: dict[bytes, int] = {}
    inverse: list[int] = []
    firsts: list[int] = []
    for n, row in enumerate(host):
        key = row.numpy().tobytes()
        if key not in index:
            index[key] = len(firsts)
            firsts.append(n)
        inverse.append(index[key])
    return host[firsts], inverse


class ForwardDynamicsSampler:
    """Batched `mode="forward_dynamics"` generation with a `Cosmos3OmniPipeline`'s parts."""

    def __init__(
        self,
        pipe: Any,
        *,
        prompt: str,
        domain_name: str,
        chunk_size: int,
        fps: float,
        resolution_tier: int = 480,
        num_inference_steps: int = 30,
        guidance_scale: float = 1.0,
        flow_shift: float = 10.0,
        use_system_prompt: bool = False,
        view_point: str = "ego_view",
        negative_prompt: str | None = None,
        batch_size: int = 16,
        decode_batch_size: int = 4,
    ) -> None:
        from diffusers import UniPCMultistepScheduler
        from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import _EMBODIMENT_TO_DOMAIN_ID

        temporal = pipe.vae_scale_factor_temporal
        if chunk_size % temporal:
            raise ValueError(
                f"chunk_size {chunk_size}: must be a multiple of the VAE's temporal factor "
                f"{temporal} so the chunk's {chunk_size + 1} frames fill whole latent frames "
                "(the recipes use 16 and 60)"
            )
        for name, value in (("batch_size", batch_size), ("decode_batch_size", decode_batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.pipe = pipe
        self.prompt, self.negative_prompt = prompt, negative_prompt
        self.domain_id = _EMBODIMENT_TO_DOMAIN_ID[domain_name]
        self.chunk_size, self.fps = chunk_size, float(fps)
        self.resolution_tier, self.view_point = resolution_tier, view_point
        self.num_inference_steps, self.guidance_scale = num_inference_steps, guidance_scale
        self.use_system_prompt = use_system_prompt
        self.batch_size, self.decode_batch_size = batch_size, decode_batch_size
        # The documented recipe's scheduler (flow_shift 10), kept here: the pipe is not changed.
        self.scheduler = UniPCMultistepScheduler.from_config(
            pipe.scheduler.config, flow_shift=flow_shift, use_karras_sigmas=False
        )
        self._texts: dict[tuple[int, int], tuple[dict, dict]] = {}
        self._packs: dict[tuple, dict] = {}

    @property
    def device(self) -> torch.device:
        return self.pipe._get_execution_device()

    def conditioning(
        self, frames: torch.Tensor, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """uint8 [N, H, W, 3] -> the pipeline's [-1, 1] canvases [N, 3, 1, h, w], the content
        size (as the pipeline's `image_size`) and the canvas height and width."""
        # uint8 crosses to the host (a quarter of the bytes of float), then the [0, 1] range
        # diffusers expects
        floats = frames.cpu().float().div(255.0).numpy()
        canvases = []
        for frame in floats:
            canvas, image_size, height, width = self.pipe._prepare_action_video_conditioning(
                [frame], self.resolution_tier, 1, device=device, dtype=torch.float32
            )
            canvases.append(canvas)
        return torch.cat(canvases), image_size, height, width

    @torch.no_grad()
    def sample(
        self,
        frames: torch.Tensor,
        actions: torch.Tensor,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Frames [B, K+1, h, w, 3] uint8 (the re-rendered conditioning frame first) from
        conditioning frames [B, H, W, 3] uint8 and model-space actions [B, K, D]. Noise comes
        from `generator` in lane order, or from `latents` [B, C, T, h', w'] (a fixed start)."""
        out = []
        for start in range(0, frames.shape[0], self.batch_size):
            part = slice(start, start + self.batch_size)
            out.append(
                self._sample(
                    frames[part],
                    actions[part],
                    generator,
                    None if latents is None else latents[part],
                )
            )
        return torch.cat(out)

    def _sample(self, frames, actions, generator, latents) -> torch.Tensor:
        pipe, device = self.pipe, self.device  # looked up once: the lookup walks all modules
        lanes = frames.shape[0]
        unique, inverse = distinct_frames(frames)
        canvases, image_size, height, width = self.conditioning(unique, device)
        first = pipe._encode_video(canvases.to(pipe.vae.dtype)).float()
        first = pipe._remove_action_video_padding_from_latent(first, image_size)
        if len(unique) == 1:
            first = first.expand(lanes, *first.shape[1:])
        elif len(unique) < lanes:
            first = first[torch.tensor(inverse, device=device)]
        latent_frames = self.chunk_size // pipe.vae_scale_factor_temporal + 1
        shape = (lanes, first.shape[1], latent_frames, *first.shape[3:])
        if latents is None:
            from diffusers.utils.torch_utils import randn_tensor

            latents = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
        latents = latents.to(device=device, dtype=torch.float32).clone()
        latents[:, :, :1] = first
        action_tokens = torch.zeros(
            lanes, self.chunk_size, pipe.transformer.config.action_dim, device=device
        )
        action_tokens[..., : actions.shape[-1]] = actions.to(device=device, dtype=torch.float32)

        texts = self._text(height, width, device)
        if self.guidance_scale == 1.0:  # the pipeline's CFG rule: no unconditional pass
            texts = texts[:1]
        packs = [
            self._cached_pack(index, text, height, width, latents, device)
            for index, text in enumerate(texts)
        ]
        scheduler = copy.deepcopy(self.scheduler)
        if pipe.config.use_native_flow_schedule:
            steps = self.num_inference_steps
            sigmas = torch.linspace(
                1.0 - 1.0 / scheduler.config.num_train_timesteps, 0.0, steps + 1
            )
            scheduler.set_timesteps(steps, device=device, sigmas=sigmas[:-1].numpy())
        else:
            scheduler.set_timesteps(self.num_inference_steps, device=device)
        noisy = torch.ones(latent_frames, device=device)
        noisy[0] = 0.0  # the conditioning latent frame stays clean
        noisy = noisy.view(1, 1, -1, 1, 1)
        # one device-to-host read for all steps, not a `.item()` sync per step
        values = scheduler.timesteps.tolist()
        with lane_attention(pipe.transformer, lanes):
            for t, value in zip(scheduler.timesteps, values, strict=True):
                velocities = [
                    self._velocity(pack, latents, action_tokens, value, device) for pack in packs
                ]
                velocity = velocities[0]
                if len(velocities) == 2:
                    velocity = velocities[1] + self.guidance_scale * (velocities[0] - velocities[1])
                latents = scheduler.step(velocity * noisy, t, latents, return_dict=False)[0]
        return self._decode(latents)

    def _text(self, height: int, width: int, device: torch.device) -> tuple[dict, dict]:
        """The packed text segments (cond, uncond) for a canvas, built once."""
        if (height, width) not in self._texts:
            cond_ids, uncond_ids = self.pipe.tokenize_prompt(
                self.prompt,
                self.negative_prompt,
                num_frames=self.chunk_size + 1,
                height=height,
                width=width,
                fps=self.fps,
                use_system_prompt=self.use_system_prompt,
                action_mode=ACTION_FD,
                action_view_point=self.view_point,
            )
            self._texts[(height, width)] = tuple(
                self.pipe._prepare_text_segment(ids, device=device)
                for ids in (cond_ids, uncond_ids)
            )
        return self._texts[(height, width)]

    def _cached_pack(self, index: int, text: dict, height: int, width: int, latents, device):
        """`_pack`, built once per (text, canvas, lanes, latent shape, device): it depends on
        nothing else, and building it costs per-lane host work and small host-to-device
        copies."""
        key = (index, height, width, tuple(latents.shape), str(device))
        if key not in self._packs:
            self._packs[key] = self._pack(text, latents, device)
        return self._packs[key]

    def _pack(self, text: dict, latents: torch.Tensor, device) -> dict:
        """Sequence metadata for [text | lane 0 vision, actions | lane 1 ... ]."""
        pipe = self.pipe
        lanes = latents.shape[0]
        action_shape = torch.empty(self.chunk_size, 0)  # only its length is read
        offset, curr = text["vision_start_temporal_offset"], text["und_len"]
        vision, action, positions = [], [], [text["text_mrope_ids"]]
        for _ in range(lanes):
            v = pipe._prepare_vision_segment(
                latents[:1], True, offset, self.fps, curr, device, condition_frame_indexes=[0]
            )
            curr += v["num_vision_tokens"]
            a = pipe._prepare_action_segment(
                action_shape, list(range(self.chunk_size)), offset, self.fps, curr, device
            )
            curr += a["action_len"]
            vision.append(v)
            action.append(a)
            positions += [v["vision_mrope_ids"], a["action_mrope_ids"]]

        def joined(segments: list[dict], key: str) -> Any:
            items = [s[key] for s in segments]
            return torch.cat(items) if isinstance(items[0], torch.Tensor) else sum(items, [])

        return {
            "input_ids": text["input_ids"],
            "text_indexes": text["text_indexes"],
            "und_len": text["und_len"],
            "position_ids": torch.cat(positions, dim=1),
            "sequence_length": curr,
            "num_noisy_vision_tokens": sum(v["num_noisy_vision_tokens"] for v in vision),
            "action_domain_ids": [
                torch.tensor([self.domain_id], device=device) for _ in range(lanes)
            ],
            **{
                key: joined(vision, key)
                for key in (
                    "vision_token_shapes",
                    "vision_sequence_indexes",
                    "vision_mse_loss_indexes",
                    "vision_noisy_frame_indexes",
                )
            },
            **{
                key: joined(action, key)
                for key in (
                    "action_token_shapes",
                    "action_sequence_indexes",
                    "action_mse_loss_indexes",
                    "action_noisy_frame_indexes",
                )
            },
        }

    def _velocity(self, pack: dict, latents, action_tokens, t: float, device) -> torch.Tensor:
        """One transformer pass for all lanes: the vision velocity [B, C, T, h, w]."""
        transformer = self.pipe.transformer
        dtype = transformer.dtype
        preds, _, _ = transformer(
            input_ids=pack["input_ids"],
            text_indexes=pack["text_indexes"],
            position_ids=pack["position_ids"],
            und_len=pack["und_len"],
            sequence_length=pack["sequence_length"],
            vision_tokens=list(latents.to(dtype)[:, None]),
            vision_token_shapes=pack["vision_token_shapes"],
            vision_sequence_indexes=pack["vision_sequence_indexes"],
            vision_mse_loss_indexes=pack["vision_mse_loss_indexes"],
            vision_timesteps=torch.full((pack["num_noisy_vision_tokens"],), t, device=device),
            vision_noisy_frame_indexes=pack["vision_noisy_frame_indexes"],
            action_tokens=list(action_tokens.to(dtype)),
            action_token_shapes=pack["action_token_shapes"],
            action_sequence_indexes=pack["action_sequence_indexes"],
            action_mse_loss_indexes=pack["action_mse_loss_indexes"],
            action_timesteps=torch.zeros(0, device=device),
            action_noisy_frame_indexes=pack["action_noisy_frame_indexes"],
            action_domain_ids=pack["action_domain_ids"],
            return_dict=False,
        )
        return torch.cat(preds).float()

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [B, C, T, h, w] -> uint8 frames [B, K+1, H, W, 3], `decode_batch_size` lanes
        per VAE call (the decoder's activations, not the transformer's, bound memory here)."""
        pipe = self.pipe
        vae = pipe.vae
        mean = pipe._vae_latents_mean.to(latents.device, vae.dtype).view(1, -1, 1, 1, 1)
        inv_std = pipe._vae_latents_inv_std.to(latents.device, vae.dtype).view(1, -1, 1, 1, 1)
        frames = []
        for part in latents.split(self.decode_batch_size):
            video = vae.decode(part.to(vae.dtype) / inv_std + mean).sample.float()
            frames.append(
                video.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1)
            )
        return torch.cat(frames)
