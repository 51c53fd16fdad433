"""In the loop: photoreal (or randomised) frames streamed back while the simulator runs.

`Augmenter` takes sensor frames as a bridge produces them and yields `Augmented(tick,
camera, frame, labels)` through a resident transfer-backend session; `AugmentWriter` writes
them with their labels into a run's `augmented/` folder as they come.
"""

from cosmos_sim.augment.augmenter import (
    OVERFLOW_POLICIES,
    Augmented,
    Augmenter,
    AugmentStats,
    augment,
)

__all__ = ["OVERFLOW_POLICIES", "AugmentStats", "Augmented", "Augmenter", "augment"]
