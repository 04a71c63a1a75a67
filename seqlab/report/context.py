"""The report's framing: what data the grid saw, and what it takes to reproduce it."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from importlib import metadata

import polars as pl

import seqlab

SYNTHETIC_SUFFIX = "SYNTHETIC"
LIBRARIES = ("torch", "polars", "numpy", "duckdb", "prefect", "matplotlib", "plotly")


@dataclass(frozen=True)
class Period:
    rows: int
    first: str | None
    last: str | None


@dataclass(frozen=True)
class DataSummary:
    """Where the grid's prices came from and how they were checked."""

    symbol: str
    synthetic: bool
    data_version: str
    sources: list[dict]  # one per file (its latest ingestion): source, layout, sha256, rows, ingestions
    quarantine_rules: dict[str, int]
    rows: int | None
    first_date: str | None
    last_date: str | None
    train: Period | None
    val: Period | None
    test: Period | None
    lookback: int | None
    feature_columns: dict[str, list[str]]
    gate_passed: bool | None
    gate: list[dict]  # expectation, severity, success, observed
    notes: list[str] = field(default_factory=list)
    validated_at: str | None = None  # when the gate's validation ran (UTC)
    docs_path: str | None = None  # Great Expectations' data docs of that run (styled only online)

    @property
    def rows_quarantined(self) -> int:
        return sum(s["rows_quarantined"] for s in self.sources)


def summarize_data(grid: dict, frames: dict[str, pl.DataFrame]) -> DataSummary:
    """The data section from the grid row and the ingestions/quarantine/validations frames."""
    symbol, version = grid["symbol"], grid["data_version"]
    ingestions = frames["ingestions"]
    # One row per file (source and content): the same file ingested again is its latest
    # ingestion, with the count, so neither the table nor the quarantined total repeats it.
    by_file: dict[tuple[str, str], dict] = {}
    for row in ingestions.iter_rows(named=True):
        key = (row["source"], row["sha256"])
        times = by_file.pop(key, {}).get("ingestions", 0) + 1
        by_file[key] = {k: row[k] for k in (
            "source", "layout", "rows_read", "rows_valid", "rows_quarantined", "rows_inserted",
            "rows_updated", "data_version", "started_at")} | {"sha256": row["sha256"][:12],
                                                               "ingestions": times}
    sources = list(by_file.values())
    rules: dict[str, int] = {}
    for rule, rows in frames["quarantine"].select("rule", "rows").iter_rows():
        rules[rule] = rules.get(rule, 0) + int(rows)
    notes: list[str] = []
    fingerprints = [json.loads(f) for f in frames["features"]["fingerprint"].to_list()]
    train = val = test = None
    rows = first = last = lookback = None
    split = fingerprints[0].get("split", {}) if fingerprints else {}
    if "train" in split and "test" in split:
        train, test = Period(**split["train"]), Period(**split["test"])
        val = Period(**split["val"]) if split.get("val", {}).get("rows") else None
        rows = train.rows + split.get("val", {}).get("rows", 0) + test.rows
        first, last = train.first, test.last
    if fingerprints:
        lookback = fingerprints[0].get("lookback")
    datasets = frames["datasets"]
    if datasets.height and datasets["data_version"][0] != version:
        notes.append(
            f"The warehouse now holds a newer version of {symbol} "
            f"({datasets['data_version'][0][:12]}, {datasets['rows'][0]:,} rows); this grid "
            f"used {version[:12]}."
        )
    elif rows is None and datasets.height:
        rows = int(datasets["rows"][0])
        first, last = str(datasets["first_date"][0]), str(datasets["last_date"][0])
    validations = frames["validations"]
    gate = validations.select("expectation", "severity", "success", "observed").to_dicts()
    validated_at = str(validations["validated_at"][0])[:19] if validations.height else None
    docs_path = (validations["docs_path"][0] if validations.height and "docs_path" in validations.columns
                 else None)
    critical = [g for g in gate if g["severity"] == "critical"]
    gate_passed = all(g["success"] for g in critical) if critical else None
    if not gate:
        notes.append(f"No validation of data_version {version[:12]} is recorded.")
    return DataSummary(
        symbol=symbol, synthetic=symbol.upper().endswith(SYNTHETIC_SUFFIX), data_version=version,
        sources=sources, quarantine_rules=dict(sorted(rules.items())), rows=rows,
        first_date=first, last_date=last, train=train, val=val, test=test, lookback=lookback,
        feature_columns={fp["feature_set"]: fp["features"] for fp in fingerprints
                         if "feature_set" in fp and "features" in fp},
        gate_passed=gate_passed, gate=gate, notes=notes, validated_at=validated_at,
        docs_path=docs_path,
    )  # fmt: skip


@dataclass(frozen=True)
class Reproducibility:
    """Everything needed to rerun the grid and rebuild this report."""

    grid_id: str
    preset: str | None
    spec: dict
    dispatch: str
    status: str
    message: str | None
    code_version: str
    data_version: str
    devices: list[str]
    torch_versions: list[str]
    determinism: list[str]
    libraries: dict[str, str]
    started_at: str
    finished_at: str | None
    grid_seconds: float | None
    train_seconds: float
    n_runs: int
    n_reused: int


def library_versions() -> dict[str, str]:
    """Versions of the libraries in the environment building the report."""
    versions = {"python": platform.python_version(), "seqlab": seqlab.__version__}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def summarize_reproducibility(grid: dict, runs: pl.DataFrame) -> Reproducibility:
    def distinct(column: str) -> list[str]:
        return sorted({str(v) for v in runs[column].drop_nulls().to_list()}) if runs.height else []

    return Reproducibility(
        grid_id=grid["grid_id"], preset=grid.get("preset"), spec=json.loads(grid["spec"]),
        dispatch=grid["dispatch"], status=grid["status"], message=grid.get("message"),
        code_version=grid["code_version"], data_version=grid["data_version"],
        devices=distinct("device"), torch_versions=distinct("torch_version"),
        determinism=distinct("determinism"), libraries=library_versions(),
        started_at=str(grid["started_at"]),
        finished_at=str(grid["finished_at"]) if grid.get("finished_at") else None,
        grid_seconds=grid.get("seconds"),
        train_seconds=float(runs["seconds"].fill_null(0).sum()) if runs.height else 0.0,
        n_runs=runs.height, n_reused=int(runs["reused"].sum()) if runs.height else 0,
    )  # fmt: skip
