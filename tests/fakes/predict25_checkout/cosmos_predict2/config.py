"""Stand-in: the checkpoint table the worker resolves the experiment and path from."""

from types import SimpleNamespace

MODEL_CHECKPOINTS = {
    "robot/action-cond": SimpleNamespace(
        experiment="standin_action_cond", s3=SimpleNamespace(uri="standin://robot/action-cond")
    )
}
