"""The grid kit: what a borrowed GPU needs to train a grid's runs (torch and polars, no
warehouse, no DuckDB, no Prefect). One grid setting's way from a spec to result frames:

``spec`` (GridSpec, presets, GridParams, validation; no torch) -> ``requests`` (the configs a
spec expands to, RunRequest with a typed TrainConfig, run identity) -> ``dispatch`` (pack
modes, shards) -> ``plan`` (packs, devices, GPU memory, calibration) -> ``execute`` (the only
caller of the engine) -> ``results`` (outcomes as frames, Parquet) -> ``carried`` (training a
carried folder far from the warehouse). The grid's life in the warehouse (open, reuse,
deliver, close) is ``seqlab.runners.grid``.
"""

from seqlab.grid.spec import PRESETS, GridError, GridParams, GridSpec, resolve_spec

__all__ = ["PRESETS", "GridError", "GridParams", "GridSpec", "resolve_spec"]
