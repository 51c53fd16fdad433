"""Gymnasium envs as per-client sessions: make / reset / step / branch / close.

`env_make` builds an allow-listed Gymnasium id (the server's env_ids) as one env, or with
num_envs as a VectorEnv whose steps are one batched call (the learned envs' own vector
entry point). `env_branch` forks a learned env's current state into n futures
(cosmos_sim.envs.multiverse.branch). Handles are per client: no client can step another's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_sim.sidecar.methods.episodes import episode_path
from cosmos_sim.sidecar.protocol import ALLOWED_DTYPES, ErrorCode, ProtocolError
from cosmos_sim.sidecar.schema import ArraySpec, Call, Method, Param, Result

KIND = "env"
_NUMERIC = tuple(d for d in ALLOWED_DTYPES if d != "bool")
PATH_KWARGS = ("record_dir", "episodes", "weights")
"""Env keyword arguments that name files (PushCube's recordings, a learned env's start
episodes and weights): relative to the server's data_dir, like every path on the wire."""


@contextmanager
def env_errors(field: str) -> Iterator[None]:
    """Gymnasium's and the world models' input errors become BAD_PARAMS replies, and so does
    a keyword argument the env does not take (a TypeError from its constructor)."""
    import gymnasium

    from cosmos_sim.envs.world_model import WorldModelError

    try:
        yield
    except (WorldModelError, gymnasium.error.Error) as exc:
        raise ProtocolError(
            ErrorCode.BAD_PARAMS, str(exc), field, "fix what the message names"
        ) from None
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        raise ProtocolError(
            ErrorCode.BAD_PARAMS, str(exc), field, "pass only keyword arguments the env takes"
        ) from None


def env_make(call: Call) -> Result:
    import gymnasium

    import cosmos_sim.envs  # noqa: F401  (registers the cosmos_sim/ ids)

    p = call.params
    if p["id"] not in call.server.env_ids:
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            f"env id {p['id']!r} is not served here",
            "params.id",
            f"use one of {list(call.server.env_ids)}",
        )
    num_envs = p["num_envs"]
    kwargs = _data_dir_paths(call.server.data_dir, p["kwargs"])
    with env_errors("params.kwargs"):
        if num_envs is None:
            env = gymnasium.make(p["id"], **kwargs)
        else:
            if num_envs < 1:
                raise ProtocolError(
                    ErrorCode.BAD_PARAMS,
                    f"num_envs is {num_envs}",
                    "params.num_envs",
                    "pass num_envs >= 1, or null for one env",
                )
            spec = gymnasium.spec(p["id"])
            mode = "vector_entry_point" if spec.vector_entry_point else "sync"
            env = gymnasium.make_vec(p["id"], num_envs, vectorization_mode=mode, **kwargs)
    handle = call.session.add(KIND, env, env.close)
    return {"env": handle, **_describe(env)}, {}


def _data_dir_paths(data_dir: Path, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` with each PATH_KWARGS value (a name or a list of names) inside data_dir."""
    resolved = dict(kwargs)
    for key in set(PATH_KWARGS) & set(kwargs):
        field, value = f"params.kwargs.{key}", kwargs[key]
        if isinstance(value, list):
            resolved[key] = [episode_path(data_dir, v, field) for v in value]
        elif value is not None:
            resolved[key] = episode_path(data_dir, value, field)
    return resolved


def env_reset(call: Call) -> Result:
    env = call.session.get(call.params["env"], KIND, "env")
    options = dict(call.params["options"])
    if "frames" in call.arrays:
        options["frames"] = call.arrays["frames"]
    with env_errors("params.options"):
        obs, info = env.reset(seed=call.params["seed"], options=options or None)
    return {"info": plain(info)}, _obs_arrays(obs)


def env_step(call: Call) -> Result:
    env = call.session.get(call.params["env"], KIND, "env")
    space = env.action_space
    action = call.arrays["action"]
    if action.shape != space.shape:
        raise ProtocolError(
            ErrorCode.SHAPE_MISMATCH,
            f"action has shape {list(action.shape)}",
            "arrays.action.shape",
            f"send action as {space.dtype} {list(space.shape)}",
        )
    with env_errors("arrays.action"):
        obs, reward, terminated, truncated, info = env.step(action.astype(space.dtype))
    arrays = _obs_arrays(obs)
    if _is_vector(env):
        arrays.update(
            reward=np.asarray(reward, np.float64),
            terminated=np.asarray(terminated, bool),
            truncated=np.asarray(truncated, bool),
        )
        return {"info": plain(info)}, arrays
    return {
        "reward": float(reward),
        "terminated": bool(terminated),
        "truncated": bool(truncated),
        "info": plain(info),
    }, arrays


def env_branch(call: Call) -> Result:
    from cosmos_sim.envs.multiverse import branch

    p = call.params
    env = call.session.get(p["env"], KIND, "env")
    with env_errors("params.env"):
        futures, obs, _ = branch(env, p["n"], seed=p["seed"], lane=p["lane"])
    handle = call.session.add(KIND, futures, futures.close)
    return {"env": handle, **_describe(futures)}, _obs_arrays(obs)


def env_close(call: Call) -> Result:
    call.session.get(call.params["env"], KIND, "env")
    call.session.pop(call.params["env"]).close()
    return {"closed": True}, {}


def _is_vector(env: Any) -> bool:
    return hasattr(env, "num_envs")


def _describe(env: Any) -> dict[str, Any]:
    return {
        "num_envs": env.num_envs if _is_vector(env) else None,
        "observation_space": _space(env.observation_space),
        "action_space": _space(env.action_space),
    }


def _space(space: Any) -> dict[str, Any]:
    import gymnasium

    if isinstance(space, gymnasium.spaces.Box):
        bounds = {}
        if space.low.size <= 64:
            bounds = {"low": space.low.tolist(), "high": space.high.tolist()}
        return {"type": "Box", "shape": list(space.shape), "dtype": space.dtype.name, **bounds}
    if isinstance(space, gymnasium.spaces.Dict):
        return {"type": "Dict", "spaces": {k: _space(s) for k, s in space.spaces.items()}}
    return {"type": type(space).__name__, "repr": repr(space)[:200]}


def _obs_arrays(obs: Any) -> dict[str, np.ndarray]:
    if isinstance(obs, dict):
        return {f"obs/{key}": np.asarray(value) for key, value in obs.items()}
    return {"obs": np.asarray(obs)}


def plain(value: Any) -> Any:
    """An info dict as msgpack values: arrays become lists, unknown objects their type name."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist()) if value.dtype != object else [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return f"<{type(value).__name__}>"


METHODS = [
    Method(
        "env_make",
        env_make,
        "Make an allow-listed Gymnasium env (num_envs: a VectorEnv stepped in one batch).",
        params={
            "id": Param(str, doc="a Gymnasium id from the server's env_ids"),
            "num_envs": Param((int, type(None)), None, doc="null: one env; n: a VectorEnv"),
            "kwargs": Param(dict, {}, doc="keyword arguments of the env"),
        },
        stateful=True,
    ),
    Method(
        "env_reset",
        env_reset,
        "Reset; returns the observation as array obs (obs/<key> for dict spaces).",
        params={
            "env": Param(str),
            "seed": Param((int, type(None)), None),
            "options": Param(dict, {}, doc="reset options (frames go as an array)"),
        },
        arrays={
            "frames": ArraySpec(
                ("uint8",), (None, None, None, 3), doc="optional start frames, T×H×W×3 uint8"
            )
        },
        stateful=True,
    ),
    Method(
        "env_step",
        env_step,
        "Step with array action (the action space's shape; batched for a VectorEnv).",
        params={"env": Param(str)},
        arrays={
            "action": ArraySpec(
                _NUMERIC, None, required=True, doc="the action space's shape, e.g. float32 [n, 2]"
            )
        },
        stateful=True,
    ),
    Method(
        "env_branch",
        env_branch,
        "Fork a learned env's current state (lane of a VectorEnv) into n futures: a new "
        "VectorEnv handle, already reset to the branch point.",
        params={
            "env": Param(str),
            "n": Param(int),
            "seed": Param((int, type(None)), None),
            "lane": Param(int, 0),
        },
        stateful=True,
    ),
    Method(
        "env_close",
        env_close,
        "Close an env and drop its handle.",
        params={"env": Param(str)},
        stateful=True,
    ),
]
