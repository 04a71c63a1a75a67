"""The result tables' one column list (run_tables.FRAME_SCHEMAS) is what the migrations built."""

from __future__ import annotations

import duckdb
import polars as pl

from seqlab.schemas.run_tables import FRAME_SCHEMAS
from seqlab.warehouse import apply_migrations

_DUCKDB_TYPES = {pl.String: "VARCHAR", pl.Int64: "BIGINT", pl.Float64: "DOUBLE", pl.Date: "DATE"}
# Stamped by the store as it writes, never part of a frame.
_STAMPS = {"runs": {"stored_at"}, "features": {"created_at"}}


def test_the_migrated_tables_have_exactly_the_frame_columns_and_types(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        apply_migrations(con)
        for table, schema in FRAME_SCHEMAS.items():
            described = con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = ? ORDER BY ordinal_position", [table]).fetchall()
            stored = {name: kind for name, kind in described if name not in _STAMPS.get(table, set())}
            assert stored == {name: _DUCKDB_TYPES[kind] for name, kind in schema.items()}, table
    finally:
        con.close()
