"""Score a `cosmos-sim demo` run's transfer output with Cosmos Reason, keep what passes.

hf download nvidia/Cosmos-Reason2-2B    # once, where you have network
python examples/critic.py cosmos-sim-demo/<time> nvidia/Cosmos-Reason2-2B
"""

import sys
from pathlib import Path

from cosmos_sim.critic import ReasonCritic, filter_dataset, score_run

run, model = Path(sys.argv[1]), sys.argv[2]
critic = ReasonCritic(model, device="cuda", dtype="bfloat16")
written = score_run(critic, transfer=run / "transfer", learned=run / "learned_env")
print(filter_dataset(run / "dataset", written["transfer"], threshold=0.5))
