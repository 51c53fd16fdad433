"""Stand-in for cosmos-framework's action policy server (tests only): real HTTP on loopback.

Same routes, request checks and reply shapes as
`cosmos_framework/scripts/action_policy_server_libero.py`: `GET /info`, `POST /predict`
(`{"image": base64 PNG, "prompt", "domain_name", "image_size", "seed"?}` -> `{"action":
[[...] x T], "video": [...]}`), `POST /predict_batch` (`{"items": [...]}` -> `{"actions"}`),
415 for a non-JSON content type, and a bad request answered with HTTP 200 and `"error"`.
The "model" is the scripted PushCube policy on the decoded frame plus seeded Gaussian noise
`sigma`, so a noisier server is a worse policy. Requests are recorded for the tests.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from cosmos_sim.envs.pushcube_policies import push_action


class StandInPolicyServer:
    def __init__(self, sigma: float = 0.0, chunk: int = 4, seed: int = 0) -> None:
        self.sigma, self.chunk, self.default_seed = sigma, chunk, seed
        self.requests: list[dict] = []
        self.batches: list[int] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/info":
                    self._reply(200, server.info())
                else:
                    self._reply(404, {"error": f"no route {self.path}"})

            def do_POST(self):
                if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                    self._reply(415, {"error": "Content-Type must be application/json"})
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                try:
                    if self.path in ("/", "/predict"):
                        self._reply(200, {"action": server.predict(body).tolist(), "video": []})
                    elif self.path == "/predict_batch":
                        items = body.get("items")
                        if not isinstance(items, list) or not items:
                            raise ValueError("'items' must be a non-empty list of policy requests")
                        server.batches.append(len(items))
                        self._reply(200, {"actions": [server.predict(r).tolist() for r in items]})
                    else:
                        self._reply(404, {"error": f"no route {self.path}"})
                except ValueError as exc:
                    self._reply(200, {"action": [], "error": str(exc)})

            def _reply(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def info(self) -> dict:
        return {
            "protocol_version": 1,
            "run_name": "stand-in",
            "guidance": 1.0,
            "num_steps": 4,
            "fps": 10,
            "seed": self.default_seed,
            "action_chunk_size": self.chunk,
            "max_action_dim": 64,
            "raw_action_dim": 2,
        }

    def predict(self, req: dict) -> np.ndarray:
        for key, kind in (("image", str), ("prompt", str), ("domain_name", str)):
            if not isinstance(req.get(key), kind):
                raise ValueError(f"'{key}' must be a {kind.__name__}")
        size = req.get("image_size")
        if not isinstance(size, int) or size <= 0:
            raise ValueError("'image_size' must be a positive integer")
        seed = req.get("seed", self.default_seed)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError("'seed' must be a non-negative integer")
        png = np.frombuffer(base64.b64decode(req["image"]), np.uint8)
        obs = cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        if obs.shape[0] != size:
            obs = cv2.resize(obs, (round(obs.shape[1] * size / obs.shape[0]), size))
        self.requests.append({**req, "image_shape": list(obs.shape), "image": None})
        noise = np.random.default_rng(seed).normal(0.0, self.sigma, (self.chunk, 2))
        return np.clip(push_action(obs)[None] + noise, -1.0, 1.0)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
