"""The grid runtime: one grid setting's way from a spec to the ``runs`` table.

``spec`` (GridSpec, presets, GridParams, validation) -> ``requests`` (RunRequest with a typed
TrainConfig, run identity) -> ``plan`` (packs, devices, GPU memory, calibration) ->
``execute`` (the only caller of the engine) -> ``results`` (outcomes as frames, Parquet) ->
``run`` (the steps and ``run_grid``, which the Prefect tasks wrap one by one).
"""

from seqlab.grid.spec import PRESETS, GridError, GridParams, GridSpec, build_grid, resolve_spec

__all__ = ["PRESETS", "GridError", "GridParams", "GridSpec", "build_grid", "resolve_spec"]
