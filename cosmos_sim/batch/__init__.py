"""Batch plans on Ray: many episodes through capture, controls, transfer and dataset.

`run_plan(plan, out, address=None)` (or `cosmos-sim batch PLAN --out DIR`) runs every unit of a
plan (`load_plan`) on a local Ray or a cluster; each unit is written exactly once under
`DIR/<stage>/<unit>/`, a re-run skips what is finished, and `DIR/batch_report.json` says what
happened. Ray is imported only when a plan runs (the `ray` extra).
"""

from cosmos_sim.batch.plan import Plan, PlanError, Unit, load_plan
from cosmos_sim.batch.progress import Progress, summary
from cosmos_sim.batch.runner import REPORT, run_plan

__all__ = ["REPORT", "Plan", "PlanError", "Progress", "Unit", "load_plan", "run_plan", "summary"]
