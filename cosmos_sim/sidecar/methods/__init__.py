"""The method table: every method the sidecar serves, by name.

A feature whose backend is not installed has no rows here (hdmap_load needs the `carla`
extra); `hello` lists exactly the methods that exist.
"""

from __future__ import annotations

import importlib.util

from cosmos_sim.sidecar.methods import (
    controls,
    core,
    envs,
    episodes,
    hdmap,
    shm,
    stream,
    transfer,
)
from cosmos_sim.sidecar.schema import Method


def method_table() -> dict[str, Method]:
    modules = [core, controls, episodes, transfer, envs, shm, stream]
    if importlib.util.find_spec("carla") is not None:
        modules.append(hdmap)
    table: dict[str, Method] = {}
    for module in modules:
        for method in module.METHODS:
            if method.name in table:
                raise ValueError(f"method {method.name!r} is defined twice")
            table[method.name] = method
    return table
