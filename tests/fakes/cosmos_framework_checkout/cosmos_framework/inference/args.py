"""Stand-in marker: the real module defines OmniSampleOverrides (its schema is pinned in
cosmos_sim/transfer/schemas and checked by the stand-in script)."""
