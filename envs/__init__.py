"""Learned Gymnasium environments: world models as `gymnasium.Env` / `VectorEnv`, multiverse
rollouts and policy evaluation against the real simulator.

Importing this package (which `import cosmos_sim` does) registers the Gymnasium ids below;
it imports neither torch nor pybullet, and the public names load on first use:

- `cosmos_sim/PushCube-v0`: the real PyBullet task.
- `cosmos_sim/LearnedPushCube-v0`: the same task in the shipped embedded world model.
- `cosmos_sim/Learned-v0`: any world model, `gymnasium.make("cosmos_sim/Learned-v0",
  model=...)`, or batched: `gymnasium.make_vec("cosmos_sim/Learned-v0", num_envs=8,
  vectorization_mode="vector_entry_point", model=...)`.
"""

from __future__ import annotations

import importlib
from typing import Any

from gymnasium.envs.registration import register, registry

_IDS = {
    "cosmos_sim/PushCube-v0": dict(entry_point="cosmos_sim.envs.pushcube:PushCubeEnv"),
    "cosmos_sim/LearnedPushCube-v0": dict(
        entry_point="cosmos_sim.envs.embedded:make_learned_pushcube",
        vector_entry_point="cosmos_sim.envs.vector:make_learned_pushcube_vector",
    ),
    "cosmos_sim/Learned-v0": dict(
        entry_point="cosmos_sim.envs.learned:make_learned_env",
        vector_entry_point="cosmos_sim.envs.vector:make_learned_vector_env",
    ),
}
for _id, _kwargs in _IDS.items():
    if _id not in registry:
        register(id=_id, **_kwargs)

_LAZY = {
    "WorldModel": "world_model",
    "WorldState": "world_model",
    "StepResult": "world_model",
    "WorldModelError": "world_model",
    "LearnedEnv": "learned",
    "StartFrames": "learned",
    "LearnedVectorEnv": "vector",
    "vectorize": "vector",
    "branch": "multiverse",
    "rollout": "multiverse",
    "write_multiverse": "multiverse",
    "evaluate_policies": "policy_eval",
    "SB3VecEnv": "sb3",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
