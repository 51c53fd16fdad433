"""A stand-in for the Cosmos guardrail class that diffusers' Cosmos 3 pipeline builds (tests only).

The real `CosmosSafetyChecker` (package cosmos-guardrail) downloads its guard models from the
hub, which cannot happen here. `install` puts this class where
`Cosmos3OmniModularPipeline.enable_safety_checker()` looks for the guardrail, so the backend's
own path (build the guardrail, enable it) runs unchanged; the backend still accepts a checker
that is not the real one only for networks far too small to be Cosmos weights.
"""

from __future__ import annotations

from fakes.safety_double import PassThroughSafetyChecker


class StandInGuardrail(PassThroughSafetyChecker):
    built = 0

    def __init__(self) -> None:
        super().__init__()
        type(self).built += 1


def install(monkeypatch) -> type[StandInGuardrail]:
    from diffusers.modular_pipelines.cosmos import modular_pipeline

    StandInGuardrail.built = 0
    monkeypatch.setattr(modular_pipeline, "CosmosSafetyChecker", StandInGuardrail)
    return StandInGuardrail
