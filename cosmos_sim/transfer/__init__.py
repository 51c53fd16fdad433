"""Transfer backends: control clips in, photoreal (or randomised) frames out.

`run_transfer(clips_dir, out, backend=...)` runs every clip through one backend; backends are
`appearance` (classical appearance randomisation, the embedded CPU default), `diffusers`
(Cosmos Transfer 2.5 through diffusers), `cosmos-cli` (the cosmos-transfer2.5 checkout's
own tool), `cosmos3` (Cosmos 3 through diffusers' modular pipeline, every control at once)
and `cosmos-framework` (a cosmos-framework checkout's own inference script). See `base.py`
for the protocol a backend implements, and for sessions
(`start_session`: push chunks, pull frames) that stream a run through a resident backend.
"""

from cosmos_sim.transfer.base import (
    BackendError,
    Chunk,
    ChunkSession,
    Clip,
    ClipError,
    GuardrailBlocked,
    SegDecoder,
    SessionOptions,
    TickFrame,
    TransferBackend,
    TransferSession,
    backend_names,
    find_clips,
    make_backend,
    prefetch,
    register_backend,
    start_session,
)
from cosmos_sim.transfer.run import resolve_prompts, run_transfer

register_backend("cosmos3", "cosmos_sim.transfer.cosmos3:Cosmos3Backend")
register_backend("cosmos-framework", "cosmos_sim.transfer.cosmos_framework:CosmosFrameworkBackend")

__all__ = [
    "BackendError",
    "Chunk",
    "ChunkSession",
    "Clip",
    "ClipError",
    "GuardrailBlocked",
    "SegDecoder",
    "SessionOptions",
    "TickFrame",
    "TransferBackend",
    "TransferSession",
    "backend_names",
    "find_clips",
    "make_backend",
    "prefetch",
    "register_backend",
    "resolve_prompts",
    "run_transfer",
    "start_session",
]
