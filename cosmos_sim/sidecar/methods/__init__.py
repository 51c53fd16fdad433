"""The method table: every method the sidecar serves, by name.

A feature whose backend is not in this checkout has no rows here; `hello` lists exactly
the methods that exist.
"""

from __future__ import annotations

from cosmos_sim.sidecar.methods import controls, core, episodes
from cosmos_sim.sidecar.schema import Method


def method_table() -> dict[str, Method]:
    table: dict[str, Method] = {}
    for module in (core, controls, episodes):
        for method in module.METHODS:
            if method.name in table:
                raise ValueError(f"method {method.name!r} is defined twice")
            table[method.name] = method
    return table
