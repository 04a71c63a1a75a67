"""What `seqlab publish` reads beyond a grid's report inputs: which grid is the latest study."""

from __future__ import annotations

from pathlib import Path

from seqlab.warehouse.connection import connect_reader
from seqlab.warehouse.errors import WarehouseQueryError
from seqlab.warehouse.runs import NOT_STUDY_PRESETS


def latest_study_grid_id(path: Path, *, timeout_s: float = 10.0) -> str:
    """The most recently started grid that is not a `seqlab train` one-config grid (the
    README's "latest grid"); WarehouseQueryError when there is none."""
    with connect_reader(path, timeout_s=timeout_s) as con:
        row = con.execute(
            "SELECT grid_id FROM grids WHERE NOT list_contains(?, coalesce(preset, '')) "
            "ORDER BY started_at DESC, grid_id DESC LIMIT 1",
            [list(NOT_STUDY_PRESETS)],
        ).fetchone()
    if row is None:
        raise WarehouseQueryError(f"warehouse {path} has no grid to publish; run `seqlab run` first")
    return row[0]
