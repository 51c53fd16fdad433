"""cosmos-sim: NVIDIA Cosmos world foundation models inside simulation loops."""

from cosmos_sim import envs as _envs  # noqa: F401  (registers the gymnasium ids)
from cosmos_sim.episode import Episode, EpisodeError, EpisodeWriter, Tick
from cosmos_sim.types import CameraSpec, LidarSpec, SensorFrame, SpecError

__all__ = [
    "CameraSpec",
    "Episode",
    "EpisodeError",
    "EpisodeWriter",
    "LidarSpec",
    "SensorFrame",
    "SpecError",
    "Tick",
]
__version__ = "0.1.0"
