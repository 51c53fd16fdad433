"""A served Cosmos 3 policy as a policy: client for cosmos-framework's action policy server.

cosmos-framework serves Cosmos 3 policy checkpoints over HTTP
(`cosmos_framework/scripts/action_policy_server_libero.py`, COSMOS3_FACTS.md §4):
`GET /info` describes the run (chunk size, action width, steps, normalisation),
`POST /predict` takes `{"image": base64 PNG, "prompt", "domain_name", "image_size", "seed"?}`
and returns `{"action": [[...] x T]}` (already denormalised to the domain's raw actions) and
the predicted video, `POST /predict_batch` takes `{"items": [request, ...]}` and returns
`{"actions": [...]}` from one batched forward pass. A failed request comes back as HTTP 200
with `"error"` (or 400 with `--http-400-on-error`).

`ServedPolicy` is an `obs -> action` callable like every policy in `envs/policy_eval.py`, so
`cosmos-sim eval-policies --policies "http://HOST:PORT?prompt=...&domain_name=..."` ranks it
in the real and the learned env, and it runs closed loop in any env. It asks for a chunk and
executes the first `action_horizon` actions (0: the whole chunk) before asking again, as the
LIBERO client does. `reseed(seed)` drops the queued actions and draws the requests' seeds
from a generator seeded with `seed` (reproducible, different in every episode).
`act_batch(observations)` serves the lanes of a vector env with one `/predict_batch`
request for every lane whose queue ran out.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

import numpy as np

START_HELP = (
    "start it in a cosmos-framework checkout: python -m "
    "cosmos_framework.scripts.action_policy_server_libero --checkpoint-dir CKPT --port PORT"
)


class PolicyServerError(RuntimeError):
    """The policy server is unreachable, refused a request or sent a malformed reply."""


def encode_png(image: np.ndarray) -> str:
    """uint8 [H, W, 3] RGB -> base64 PNG, what the server decodes."""
    import cv2

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"observation must be uint8 [H, W, 3] RGB, got {image.dtype} {image.shape}"
        )
    ok, png = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ValueError("could not encode the observation as PNG")
    return base64.b64encode(png.tobytes()).decode("ascii")


class ServedPolicy:
    """`obs [H, W, 3] uint8 -> action [D] float32` from a cosmos-framework policy server."""

    def __init__(
        self,
        url: str,
        *,
        prompt: str,
        domain_name: str,
        image_size: int | None = None,
        action_horizon: int = 0,
        seed: int | None = None,
        timeout_s: float = 300.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"policy server url {url!r} must start with http:// or https://")
        if action_horizon < 0:
            raise ValueError(
                f"action_horizon must be >= 0 (0: the whole chunk), got {action_horizon}"
            )
        self.url = url.rstrip("/")
        self.prompt, self.domain_name = prompt, domain_name
        self.image_size, self.action_horizon = image_size, action_horizon
        self.timeout_s = timeout_s
        self.info: dict[str, Any] = self._call("/info")
        self.reseed(seed)

    @classmethod
    def from_url(cls, spec: str) -> ServedPolicy:
        """`http://HOST:PORT?prompt=...&domain_name=...[&image_size=N][&action_horizon=N]
        [&seed=N]`: the server and the request fields in one string (for CLI specs)."""
        parts = urllib.parse.urlsplit(spec)
        query = dict(urllib.parse.parse_qsl(parts.query, strict_parsing=bool(parts.query)))
        known = {"prompt", "domain_name", "image_size", "action_horizon", "seed"}
        unknown = sorted(set(query) - known)
        missing = sorted({"prompt", "domain_name"} - set(query))
        if unknown or missing:
            raise ValueError(
                f"policy server spec {spec!r}: "
                + (f"unknown field(s) {unknown}; " if unknown else "")
                + (f"missing {missing}; " if missing else "")
                + "write http://HOST:PORT?prompt=TASK&domain_name=DOMAIN[&image_size=N]"
                "[&action_horizon=N][&seed=N]"
            )
        ints = {}
        for key in ("image_size", "action_horizon", "seed"):
            if key in query:
                try:
                    ints[key] = int(query[key])
                except ValueError:
                    raise ValueError(f"policy server spec {spec!r}: {key} must be an int") from None
        base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        return cls(base, prompt=query["prompt"], domain_name=query["domain_name"], **ints)

    @property
    def name(self) -> str:
        return f"served@{urllib.parse.urlsplit(self.url).netloc}"

    def reseed(self, seed: int | None) -> None:
        """Start an episode: no queued actions; request seeds drawn from a generator seeded
        with `seed` (the server's own seed when None)."""
        self._seeds = None if seed is None else np.random.default_rng(seed)
        self._queues: dict[int, list[np.ndarray]] = {}

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.act_batch(np.asarray(obs)[None])[0]

    def act_batch(self, observations: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Actions [N, D] for lanes 0..N-1, one batched request for the lanes that need one."""
        empty = [lane for lane in range(len(observations)) if not self._queues.get(lane)]
        if empty:
            chunks = (
                [self.predict(observations[empty[0]])]
                if len(empty) == 1
                else self.predict_batch([observations[lane] for lane in empty])
            )
            for lane, chunk in zip(empty, chunks, strict=True):
                self._queues[lane] = list(chunk[: self.action_horizon or len(chunk)])
        return np.stack([self._queues[lane].pop(0) for lane in range(len(observations))])

    def predict(self, obs: np.ndarray) -> np.ndarray:
        """One `/predict`: the server's action chunk [T, D] for `obs`."""
        reply = self._call("/predict", self._request(obs))
        return self._chunk(reply.get("action"), "action")

    def predict_batch(self, observations: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One `/predict_batch`: a chunk [T, D] per observation."""
        reply = self._call("/predict_batch", {"items": [self._request(o) for o in observations]})
        chunks = reply.get("actions")
        if not isinstance(chunks, list) or len(chunks) != len(observations):
            raise PolicyServerError(
                f"{self.url}/predict_batch returned {type(chunks).__name__} for "
                f"{len(observations)} items; expected a list of {len(observations)} chunks"
            )
        return [self._chunk(c, "actions[i]") for c in chunks]

    def _request(self, obs: np.ndarray) -> dict[str, Any]:
        obs = np.asarray(obs)
        request: dict[str, Any] = {
            "image": encode_png(obs),
            "prompt": self.prompt,
            "domain_name": self.domain_name,
            "image_size": int(self.image_size or obs.shape[0]),
        }
        if self._seeds is not None:
            request["seed"] = int(self._seeds.integers(2**31))
        return request

    def _chunk(self, value: Any, field: str) -> np.ndarray:
        try:
            chunk = np.asarray(value, np.float32)
        except (TypeError, ValueError):
            chunk = np.zeros(0)
        if chunk.ndim != 2 or not chunk.size or not np.isfinite(chunk).all():
            raise PolicyServerError(
                f"{self.url} replied {field}={str(value)[:200]}; expected a non-empty [T, D] "
                "list of finite numbers"
            )
        return chunk

    def _call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise PolicyServerError(f"{self.url}{path}: HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise PolicyServerError(
                f"no policy server answers at {self.url} ({exc}); {START_HELP}"
            ) from exc
        try:
            reply = json.loads(text)
        except ValueError as exc:
            raise PolicyServerError(f"{self.url}{path} replied non-JSON: {text[:200]!r}") from exc
        if not isinstance(reply, dict):
            raise PolicyServerError(f"{self.url}{path} replied {text[:200]!r}, not a JSON object")
        if reply.get("error"):
            raise PolicyServerError(f"{self.url}{path} refused the request: {reply['error']}")
        return reply
