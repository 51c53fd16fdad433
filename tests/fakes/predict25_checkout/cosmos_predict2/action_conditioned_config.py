"""Stand-in for the setup arguments (pydantic, unknown fields forbidden, like the real one)."""

from pathlib import Path

import pydantic


class ActionConditionedSetupArguments(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    output_dir: Path
    experiment: str | None = None
    checkpoint_path: str | None = None
    context_parallel_size: int | None = None
    config_file: str = "cosmos_predict2/_src/predict2/action/configs/action_conditioned/config.py"
    disable_guardrails: bool = False
    offload_guardrail_models: bool = False

    @property
    def model_key(self) -> str:
        return "robot/action-cond"
