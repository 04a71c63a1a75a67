"""The DuckDB warehouse: the only package in seqlab that talks to DuckDB.

Its names load on first use (PEP 562), so a worker that only needs the result tables'
schemas (``seqlab.warehouse.run_tables``, pure polars) imports no DuckDB: a GPU machine
that trains carried work has none.
"""

from __future__ import annotations

import importlib

_SOURCES = {
    "CRITICAL": "validations",
    "EMPTY_DATA_VERSION": "versioning",
    "GateStatus": "validations",
    "IngestRecord": "store",
    "MIGRATIONS": "migrations",
    "Migration": "migrations",
    "SEVERITIES": "validations",
    "StoreResult": "store",
    "WarehouseDamaged": "errors",
    "WarehouseDiskFull": "errors",
    "WarehouseError": "errors",
    "WarehouseLocked": "errors",
    "WarehouseMissing": "errors",
    "WarehouseQueryError": "errors",
    "WarehouseQueryTimeout": "errors",
    "WarehouseSchemaError": "errors",
    "WarehouseStoreError": "errors",
    "WarehouseUnreadable": "errors",
    "apply_migrations": "migrations",
    "connect": "connection",
    "current_data_version": "readers",
    "data_version": "versioning",
    "latest_gate": "validations",
    "latest_version": "migrations",
    "load_ingestions": "readers",
    "load_price_history": "readers",
    "load_prices": "readers",
    "load_quarantine": "readers",
    "load_validations": "validations",
    "parse_lock_holder": "connection",
    "query": "readers",
    "record_validation": "validations",
    "schema_version": "migrations",
    "store_ingest": "store",
}

__all__ = [
    "CRITICAL",
    "EMPTY_DATA_VERSION",
    "MIGRATIONS",
    "SEVERITIES",
    "GateStatus",
    "IngestRecord",
    "Migration",
    "StoreResult",
    "WarehouseDamaged",
    "WarehouseDiskFull",
    "WarehouseError",
    "WarehouseLocked",
    "WarehouseMissing",
    "WarehouseQueryError",
    "WarehouseQueryTimeout",
    "WarehouseSchemaError",
    "WarehouseStoreError",
    "WarehouseUnreadable",
    "apply_migrations",
    "connect",
    "current_data_version",
    "data_version",
    "latest_gate",
    "latest_version",
    "load_ingestions",
    "load_price_history",
    "load_prices",
    "load_quarantine",
    "load_validations",
    "parse_lock_holder",
    "query",
    "record_validation",
    "schema_version",
    "store_ingest",
]


def __getattr__(name: str):
    if name in _SOURCES:
        value = getattr(importlib.import_module(f"seqlab.warehouse.{_SOURCES[name]}"), name)
        globals()[name] = value  # once
        return value
    raise AttributeError(f"module 'seqlab.warehouse' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
