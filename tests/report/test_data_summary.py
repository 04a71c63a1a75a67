"""The report's data section: each source file once, however often it was ingested."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from seqlab.report.context import summarize_data


def _ingestion(source: str, sha256: str, hour: int, quarantined: int) -> dict:
    return {"source": source, "layout": "coincodex", "sha256": sha256, "rows_read": 10 + quarantined,
            "rows_valid": 10, "rows_quarantined": quarantined, "rows_inserted": 10,
            "rows_updated": 0, "data_version": "v1", "started_at": datetime(2026, 1, 1, hour)}


def test_a_file_ingested_twice_is_one_source_row_with_its_count():
    ingestions = pl.DataFrame([_ingestion("eth.csv", "a" * 64, 1, 2),
                               _ingestion("more.csv", "b" * 64, 2, 1),
                               _ingestion("eth.csv", "a" * 64, 3, 2)])
    frames = {
        "ingestions": ingestions,
        "quarantine": pl.DataFrame(schema={"rule": pl.String, "rows": pl.Int64}),
        "features": pl.DataFrame(schema={"fingerprint": pl.String}),
        "datasets": pl.DataFrame(schema={"data_version": pl.String, "rows": pl.Int64}),
        "validations": pl.DataFrame(schema={"expectation": pl.String, "severity": pl.String,
                                            "success": pl.Boolean, "observed": pl.String,
                                            "validated_at": pl.Datetime}),
    }
    data = summarize_data({"symbol": "ETH", "data_version": "v1"}, frames)
    assert [(s["source"], s["ingestions"]) for s in data.sources] == [("more.csv", 1), ("eth.csv", 2)]
    assert data.sources[1]["started_at"] == datetime(2026, 1, 1, 3)  # the latest ingestion
    assert data.rows_quarantined == 3  # eth.csv's two quarantined rows counted once
