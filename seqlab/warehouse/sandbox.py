"""User SQL on the warehouse: read-only and sandboxed by DuckDB itself."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from seqlab.warehouse.connection import connect
from seqlab.warehouse.errors import WarehouseQueryError
from seqlab.warehouse.integrity import damage_in

# With external access off DuckDB refuses file reads/writes (read_csv, COPY ... TO, glob),
# ATTACH, INSTALL and LOAD; locking the configuration stops a statement switching it back.
# The read-only connection refuses INSERT/UPDATE/DELETE/CREATE/DROP on the warehouse.
_SANDBOX = ("SET enable_external_access = false", "SET lock_configuration = true")


def run_user_query(path: Path, sql: str, *, timeout_s: float = 10.0) -> pl.DataFrame:
    """Run SQL typed by a user; anything that writes or touches other files is refused.

    The file is verified whole first: a damaged one raises WarehouseDamaged, never a number
    read from the part that survived."""
    with connect(path, read_only=True, timeout_s=timeout_s, verify=True) as con:
        for statement in _SANDBOX:
            con.execute(statement)
        try:
            relation = con.sql(sql)
            return pl.DataFrame() if relation is None else relation.pl()
        except duckdb.Error as exc:
            damaged = damage_in(path, exc)
            if damaged is not None:
                raise damaged from exc
            raise WarehouseQueryError(f"query refused or failed on {path}: {exc}") from exc
