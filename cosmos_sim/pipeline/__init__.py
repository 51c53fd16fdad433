"""The one pipeline: episode -> control clips -> transfer -> labelled dataset, streamed.

`run_pipeline` is what the CLI (`demo`, `controls`, `transfer`, `dataset`), the sidecar's
transfer jobs and the scale-out plans call; the in-loop augmenter calls the per-chunk
`compute_controls` of the same controls table (`cosmos_sim.controls.table`).
"""

from cosmos_sim.pipeline.run import STAGES, PipelineResult, run_pipeline

__all__ = ["STAGES", "PipelineResult", "run_pipeline"]
