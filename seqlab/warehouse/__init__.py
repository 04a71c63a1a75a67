"""The DuckDB warehouse: the only package in seqlab that talks to DuckDB."""

from __future__ import annotations

from seqlab.warehouse.connection import connect, parse_lock_holder
from seqlab.warehouse.errors import (
    WarehouseDamaged,
    WarehouseDiskFull,
    WarehouseError,
    WarehouseLocked,
    WarehouseMissing,
    WarehouseQueryError,
    WarehouseQueryTimeout,
    WarehouseSchemaError,
    WarehouseStoreError,
    WarehouseUnreadable,
)
from seqlab.warehouse.migrations import (
    MIGRATIONS,
    Migration,
    apply_migrations,
    latest_version,
    schema_version,
)
from seqlab.warehouse.readers import (
    current_data_version,
    load_ingestions,
    load_price_history,
    load_prices,
    load_quarantine,
    query,
)
from seqlab.warehouse.store import IngestRecord, StoreResult, store_ingest
from seqlab.warehouse.validations import (
    CRITICAL,
    SEVERITIES,
    GateStatus,
    latest_gate,
    load_validations,
    record_validation,
)
from seqlab.warehouse.versioning import EMPTY_DATA_VERSION, data_version

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
