"""Warehouse behaviour on generated canonical frames and on the real CoinCodex file.

Run ``python tests/test_warehouse.py bench 1000000 5000000`` to measure store time and
peak memory (each size in a fresh subprocess); the suite itself never asserts on timings.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import pickle
import subprocess
import sys
import textwrap
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from seqlab.schemas.canonical import CANONICAL_COLUMNS, CANONICAL_SCHEMA, REJECT_SCHEMA
from seqlab.warehouse import (
    EMPTY_DATA_VERSION,
    MIGRATIONS,
    IngestRecord,
    Migration,
    WarehouseLocked,
    WarehouseMissing,
    WarehouseQueryError,
    WarehouseSchemaError,
    WarehouseStoreError,
    apply_migrations,
    connect,
    current_data_version,
    data_version,
    latest_gate,
    load_ingestions,
    load_price_history,
    load_prices,
    load_quarantine,
    load_validations,
    parse_lock_holder,
    query,
    record_validation,
    schema_version,
    store_ingest,
)
from seqlab.warehouse import store as store_module
from seqlab.warehouse.migrations import check_sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
TABLES = (
    "schema_migrations",
    "prices",
    "price_history",
    "quarantine",
    "ingestions",
    "validations",
    "datasets",
)


def make_prices(
    days: int, *, first_day: int = 18262, symbol: str = "ETH", seed: int = 0
) -> pl.DataFrame:
    """Canonical rows for consecutive days (epoch day numbers, default 2020-01-01).

    Prices follow a random walk; volume_base is NULL on every 7th day so NULL-safe
    comparison is always exercised.
    """
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.03, days)))
    spread = close * rng.uniform(0.001, 0.05, days)
    return pl.DataFrame(
        {
            "symbol": [symbol] * days,
            "date": pl.int_range(first_day, first_day + days, eager=True).cast(pl.Date),
            "open": close * rng.uniform(0.98, 1.02, days),
            "high": close + spread,
            "low": close - spread,
            "close": close,
            "volume": rng.uniform(1e6, 1e9, days),
            "market_cap": close * 1.2e8,
            "volume_base": np.where(np.arange(days) % 7 == 0, np.nan, rng.uniform(1e3, 1e6, days)),
        }
    ).with_columns(pl.col("volume_base").fill_nan(None))


def make_rejects(lines: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "line": lines,
            "raw": [f"2020-01-01,bad,{n}" for n in lines],
            "rule": ["price_not_numeric"] * len(lines),
            "detail": [f"column open is not a number on line {n}" for n in lines],
        },
        schema=REJECT_SCHEMA,
    )


def store(path: Path, valid: pl.DataFrame, rejects: pl.DataFrame | None = None, **kw):
    rejects = pl.DataFrame(schema=REJECT_SCHEMA) if rejects is None else rejects
    record = IngestRecord(
        symbol=kw.pop("symbol", "ETH"),
        source=kw.pop("source", "generated.csv"),
        sha256=kw.pop("sha256", "0" * 64),
        layout="generated",
        rows_read=valid.height + rejects.height,
        started_at=datetime.now(UTC),
    )
    return store_ingest(path, record, valid, rejects, **kw)


def snapshot(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order: 'exactly as before' means equal snapshots."""
    return {table: query(path, f"SELECT * FROM {table} ORDER BY ALL").rows() for table in TABLES}


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "seqlab.duckdb"


# --- migrations -------------------------------------------------------------------------


def test_migrations_create_schema_once_and_record_it(warehouse):
    with connect(warehouse) as con:
        assert schema_version(con) == len(MIGRATIONS)
        assert apply_migrations(con) == []  # already applied on open
        tables = {
            row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
    assert set(TABLES) <= tables
    with connect(warehouse):
        pass
    recorded = query(warehouse, "SELECT version, description FROM schema_migrations")
    assert recorded.rows() == [(m.version, m.description) for m in MIGRATIONS]
    prices = query(warehouse, "DESCRIBE prices")
    assert prices["column_name"].to_list()[:9] == list(CANONICAL_COLUMNS)
    assert prices["column_name"].to_list()[9:] == ["source", "ingestion_id", "updated_at"]


def test_appended_migration_applies_only_itself_and_newer_files_are_refused(warehouse):
    with connect(warehouse):
        pass
    extended = (
        *MIGRATIONS,
        Migration(len(MIGRATIONS) + 1, "demo table", "CREATE TABLE demo(x INT)"),
    )
    with connect(warehouse) as con:
        assert apply_migrations(con, extended) == [len(extended)]
        assert apply_migrations(con, extended) == []
    # The file is now ahead of the code: writable and read-only opens both say so.
    with pytest.raises(WarehouseSchemaError, match="newer than this code"):
        with connect(warehouse):
            pass
    with pytest.raises(WarehouseSchemaError, match="newer than this code"):
        load_ingestions(warehouse)


def test_failed_migration_is_rolled_back_and_named(warehouse):
    broken = (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "broken", "CREATE TABLE b(x INT); NOPE"))
    with connect(warehouse) as con:
        with pytest.raises(WarehouseSchemaError, match="broken"):
            apply_migrations(con, broken)
        assert schema_version(con) == len(MIGRATIONS)
        tables = {
            row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
    assert "b" not in tables


@pytest.mark.parametrize("versions", [[1, 3], [2], [1, 1], [2, 1]])
def test_migration_versions_must_run_one_to_n(versions):
    with pytest.raises(WarehouseSchemaError, match="1..n"):
        check_sequence([Migration(v, "m", "SELECT 1") for v in versions])


# --- storing ----------------------------------------------------------------------------


def test_first_store_inserts_all_rows_and_load_returns_them_typed_and_sorted(warehouse):
    prices = make_prices(60)
    shuffled = prices.sample(fraction=1.0, shuffle=True, seed=3).with_columns(
        line=pl.int_range(2, 62)  # extra columns are ignored
    )
    result = store(warehouse, shuffled)
    assert (result.rows_inserted, result.rows_updated, result.rows_unchanged) == (60, 0, 0)

    loaded = load_prices(warehouse, "ETH")
    assert loaded.schema == pl.Schema(CANONICAL_SCHEMA)
    assert loaded["date"].is_sorted()
    assert_frame_equal(loaded, prices)
    assert loaded["volume_base"].null_count() == prices["volume_base"].null_count() > 0

    window = load_prices(warehouse, "ETH", start=date(2020, 1, 10), end=date(2020, 1, 12))
    assert window["date"].to_list() == [date(2020, 1, 10), date(2020, 1, 11), date(2020, 1, 12)]
    assert load_prices(warehouse, "ETH", start=date(2020, 2, 20))["date"].min() == date(2020, 2, 20)
    unknown = load_prices(warehouse, "BTC")
    assert unknown.height == 0 and unknown.schema == pl.Schema(CANONICAL_SCHEMA)


def test_restore_of_the_same_rows_changes_nothing(warehouse):
    prices = make_prices(40)
    first = store(warehouse, prices)
    before = snapshot(warehouse)
    again = store(warehouse, prices)
    assert (again.rows_inserted, again.rows_updated, again.rows_unchanged) == (0, 0, 40)
    assert again.data_version == first.data_version
    after = snapshot(warehouse)
    for table in ("prices", "price_history", "datasets"):
        assert after[table] == before[table], table
    assert len(after["ingestions"]) == 2


def test_incremental_store_inserts_only_the_new_days(warehouse):
    prices = make_prices(150)
    store(warehouse, prices.head(100))
    result = store(warehouse, prices.slice(50, 100))  # days 50..149: half known, half new
    assert (result.rows_inserted, result.rows_updated, result.rows_unchanged) == (50, 0, 50)
    assert_frame_equal(load_prices(warehouse, "ETH"), prices)
    dataset = query(warehouse, "SELECT rows, first_date, last_date FROM datasets").row(0)
    assert dataset == (150, date(2020, 1, 1), prices["date"].max())


def test_corrected_rows_replace_stored_rows_and_history_keeps_the_old_values(warehouse):
    prices = make_prices(30)
    first = store(warehouse, prices, source="first.csv")
    day_close, day_null = date(2020, 1, 5), date(2020, 1, 9)
    assert prices.filter(pl.col("date") == day_null)["volume_base"][0] is not None
    corrected = prices.with_columns(
        close=pl.when(pl.col("date") == day_close).then(pl.col("close") * 1.5).otherwise("close"),
        volume_base=pl.when(pl.col("date") == day_null).then(None).otherwise("volume_base"),
    )
    second = store(warehouse, corrected, source="second.csv")
    assert (second.rows_inserted, second.rows_updated, second.rows_unchanged) == (0, 2, 28)

    assert_frame_equal(load_prices(warehouse, "ETH"), corrected)
    history = load_price_history(warehouse, "ETH")
    assert history["date"].to_list() == [day_close, day_null]
    old = prices.filter(pl.col("date").is_in([day_close, day_null]))
    assert_frame_equal(history.select(CANONICAL_COLUMNS), old)
    assert set(history["ingestion_id"]) == {first.ingestion_id}
    assert set(history["replaced_by"]) == {second.ingestion_id}
    assert set(history["source"]) == {"first.csv"}
    sources = query(warehouse, "SELECT source, count(*) FROM prices GROUP BY ALL ORDER BY ALL")
    assert sources.rows() == [("first.csv", 28), ("second.csv", 2)]


def test_data_version_changes_exactly_when_stored_values_change(warehouse, tmp_path):
    prices = make_prices(50)
    original = store(warehouse, prices).data_version
    assert store(warehouse, prices).data_version == original
    assert current_data_version(warehouse, "ETH") == original

    nudged = prices.with_columns(
        high=pl.when(pl.col("date") == date(2020, 1, 20))
        .then(pl.col("high") + 1e-9)
        .otherwise("high")
    )
    changed = store(warehouse, nudged).data_version
    assert changed != original
    # Putting the old value back restores the old content, hence the old version.
    assert store(warehouse, prices).data_version == original
    # Same content stored in another order in another file: same version.
    elsewhere = tmp_path / "other.duckdb"
    assert store(elsewhere, prices.reverse()).data_version == original
    with connect(warehouse) as con:
        assert data_version(con, "ETH") == original
        assert data_version(con, "BTC") == EMPTY_DATA_VERSION
    assert current_data_version(warehouse, "BTC") is None


def test_symbols_are_stored_and_versioned_independently(warehouse):
    eth = store(warehouse, make_prices(20, symbol="ETH"))
    btc = store(warehouse, make_prices(20, symbol="BTC", seed=1), symbol="BTC")
    assert btc.rows_inserted == 20 and eth.data_version != btc.data_version
    assert store(warehouse, make_prices(25, symbol="ETH")).rows_inserted == 5
    assert current_data_version(warehouse, "BTC") == btc.data_version
    assert load_prices(warehouse, "BTC")["symbol"].unique().to_list() == ["BTC"]


def test_quarantined_rows_and_ingestions_are_recorded(warehouse):
    prices = make_prices(10)
    result = store(warehouse, prices, make_rejects([4, 9]), sha256="ab" * 32)
    rejected = load_quarantine(warehouse, result.ingestion_id)
    assert rejected["line"].to_list() == [4, 9]
    assert set(rejected["rule"]) == {"price_not_numeric"}
    assert set(rejected["sha256"]) == {"ab" * 32}
    assert load_quarantine(warehouse, "no-such-id").height == 0
    ingestion = load_ingestions(warehouse).row(0, named=True)
    assert ingestion["rows_read"] == ingestion["rows_valid"] + ingestion["rows_quarantined"] == 12
    assert ingestion["rows_inserted"] == 10
    assert ingestion["data_version"] == result.data_version
    assert ingestion["finished_at"] >= ingestion["started_at"]
    assert ingestion["seconds"] >= 0


def test_a_file_with_only_rejected_rows_stores_its_rejects_and_an_empty_dataset(warehouse):
    nothing = pl.DataFrame(schema=CANONICAL_SCHEMA)
    result = store(warehouse, nothing, make_rejects([2, 3, 4]))
    assert (result.rows_inserted, result.data_version) == (0, EMPTY_DATA_VERSION)
    assert current_data_version(warehouse, "ETH") == EMPTY_DATA_VERSION
    assert load_quarantine(warehouse)["line"].to_list() == [2, 3, 4]
    assert load_prices(warehouse, "ETH").height == 0
    assert store(warehouse, make_prices(3)).rows_inserted == 3


def test_real_coincodex_file_round_trips(warehouse, coincodex_prices):
    prices = coincodex_prices.with_columns(volume_base=pl.lit(None, pl.Float64)).select(
        CANONICAL_COLUMNS
    )
    first = store(warehouse, prices, source="coincodex.csv")
    assert first.rows_inserted == prices.height == 3654
    assert_frame_equal(load_prices(warehouse, "ETH"), prices.cast(CANONICAL_SCHEMA))
    again = store(warehouse, prices, source="coincodex.csv")
    assert (again.rows_unchanged, again.data_version) == (3654, first.data_version)


# --- all or nothing ----------------------------------------------------------------------


def _changes_new_rows_and_rejects(prices: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """An ingest that, if it got through, would touch every table a store writes."""
    changed = prices.with_columns(close=pl.col("close") + 1.0)
    extra = make_prices(prices.height + 5).tail(5)
    return pl.concat([changed, extra]), make_rejects([3])


def test_error_after_the_upsert_leaves_the_warehouse_exactly_as_before(warehouse, monkeypatch):
    prices = make_prices(20)
    store(warehouse, prices)
    before = snapshot(warehouse)

    def exploding_version(con, symbol):
        raise RuntimeError("injected failure after the upsert")

    monkeypatch.setattr(store_module, "data_version", exploding_version)
    valid, rejects = _changes_new_rows_and_rejects(prices)
    with pytest.raises(RuntimeError, match="injected failure"):
        store(warehouse, valid, rejects)
    assert snapshot(warehouse) == before


def test_constraint_violation_at_the_last_statement_rolls_everything_back(warehouse, monkeypatch):
    prices = make_prices(20)
    taken = store(warehouse, prices).ingestion_id
    before = snapshot(warehouse)
    # Reusing an ingestion id breaks the ingestions primary key: the final INSERT fails
    # inside DuckDB after prices, history and quarantine were already written.
    monkeypatch.setattr(store_module, "new_ingestion_id", lambda started_at: taken)
    valid, rejects = _changes_new_rows_and_rejects(prices)
    with pytest.raises(WarehouseStoreError, match="rolled back") as caught:
        store(warehouse, valid, rejects)
    assert str(warehouse) in str(caught.value)
    assert snapshot(warehouse) == before


_KILLED_MID_STORE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from test_warehouse import _changes_new_rows_and_rejects, make_prices, store
    from seqlab.warehouse import store as store_module

    def stall(con, symbol):
        print("mid-transaction", flush=True)
        time.sleep(60)

    store_module.data_version = stall
    valid, rejects = _changes_new_rows_and_rejects(make_prices(20))
    store(Path(sys.argv[1]), valid, rejects)
    """
)


def test_a_process_killed_mid_store_leaves_the_warehouse_as_before(warehouse):
    store(warehouse, make_prices(20))
    before = snapshot(warehouse)
    writer = subprocess.Popen(
        [sys.executable, "-c", _KILLED_MID_STORE, str(warehouse), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert writer.stdout.readline().strip() == "mid-transaction"
    finally:
        writer.kill()  # SIGKILL: no rollback, no close, just gone
        writer.wait()
    assert snapshot(warehouse) == before
    valid, rejects = _changes_new_rows_and_rejects(make_prices(20))
    result = store(warehouse, valid, rejects)
    assert (result.rows_inserted, result.rows_updated) == (5, 20)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (
            lambda f: pl.concat([f, f.tail(2).with_columns(line=pl.int_range(11, 13))]),
            r"more than once.*'2020-01-09', '2020-01-10'.*lines \[9, 10, 11, 12\]",
        ),
        (lambda f: f.with_columns(symbol=pl.lit("BTC")), "10 valid rows are not symbol 'ETH'"),
        (lambda f: f.with_columns(date=pl.lit(None, pl.Date)), "10 valid rows have no date"),
        (lambda f: f.drop("market_cap"), r"lacks columns \['market_cap'\]"),
    ],
    ids=["duplicate-dates", "other-symbol", "missing-date", "missing-column"],
)
def test_frames_the_store_cannot_take_are_refused_before_opening(warehouse, mangle, message):
    valid = mangle(make_prices(10).with_columns(line=pl.int_range(1, 11)))
    with pytest.raises(ValueError, match=message):
        store(warehouse, valid)
    assert not warehouse.exists()


def test_rows_read_must_equal_valid_plus_quarantined(warehouse):
    record = IngestRecord("ETH", "x.csv", "0" * 64, "generated", 11, datetime.now(UTC))
    with pytest.raises(ValueError, match="rows_read=11 but 10 valid"):
        store_ingest(warehouse, record, make_prices(10), pl.DataFrame(schema=REJECT_SCHEMA))


# --- locking and opening -----------------------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from seqlab.warehouse import connect
    with connect(Path(sys.argv[1])):
        print("holding", flush=True)
        sys.stdin.readline()  # hold the lock until the test says go
    """
)


@pytest.fixture
def lock_holder(warehouse):
    """Another process that holds the warehouse open for writing until released."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(warehouse)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    assert holder.stdout.readline().strip() == "holding"
    yield holder
    if holder.poll() is None:
        holder.kill()
        holder.wait()


def _release(holder: subprocess.Popen) -> None:
    holder.stdin.write("go\n")
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0


def test_lock_held_by_another_process_names_file_and_pid(warehouse, lock_holder):
    started = time.monotonic()
    with pytest.raises(WarehouseLocked) as caught:
        store(warehouse, make_prices(5), timeout_s=0.6)
    waited = time.monotonic() - started
    assert 0.6 <= waited < 10
    assert caught.value.holder_pid == lock_holder.pid
    assert str(warehouse) in str(caught.value)
    assert f"PID {lock_holder.pid}" in str(caught.value)
    with pytest.raises(WarehouseLocked, match=f"PID {lock_holder.pid}"):
        load_prices(warehouse, "ETH", timeout_s=0.2)  # readers wait for writers too

    _release(lock_holder)
    assert store(warehouse, make_prices(5)).rows_inserted == 5


def test_store_waits_for_a_lock_released_within_the_timeout(warehouse):
    # The holder lets go by itself after a moment; the store started before must get through.
    script = _HOLDER.replace("sys.stdin.readline()", "import time; time.sleep(1.0)")
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(warehouse)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    assert holder.stdout.readline().strip() == "holding"
    try:
        started = time.monotonic()
        assert store(warehouse, make_prices(5), timeout_s=20).rows_inserted == 5
        assert time.monotonic() - started >= 0.3  # it did wait
    finally:
        holder.wait(timeout=30)


def test_open_in_this_process_with_other_mode_counts_as_a_lock(warehouse):
    with connect(warehouse):
        with pytest.raises(WarehouseLocked) as caught:
            load_prices(warehouse, "ETH", timeout_s=0.2)
    assert caught.value.holder_pid == os.getpid()


def test_lock_message_parsing_and_pickling():
    message = (
        'IO Error: Could not set lock on file "/w/x.duckdb": Conflicting lock is held in '
        "/usr/bin/python3.11 (PID 4242). See also https://duckdb.org/docs/current/connect/concurrency"
    )
    holder = parse_lock_holder(message)
    assert (holder.pid, holder.exe) == (4242, "/usr/bin/python3.11")
    assert parse_lock_holder('IO Error: Could not set lock on file "/w/x.duckdb"').pid is None
    assert parse_lock_holder("Catalog Error: Table x does not exist") is None
    error = WarehouseLocked(Path("/w/x.duckdb"), 4242, "/usr/bin/python3.11", 1.5)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.holder_pid, str(copy)) == (4242, str(error))


def test_read_only_open_of_a_missing_file_is_a_clear_error(warehouse):
    for read in (lambda: load_prices(warehouse, "ETH"), lambda: query(warehouse, "SELECT 1")):
        with pytest.raises(WarehouseMissing, match=str(warehouse)) as caught:
            read()
        assert isinstance(caught.value, FileNotFoundError)
    gate = latest_gate(warehouse, "ETH")  # a gate answers rather than raises: closed
    assert not gate.passed and "does not exist" in gate.reason
    assert not warehouse.parent.exists()  # reads create nothing


def test_query_runs_read_only(warehouse):
    store(warehouse, make_prices(12))
    assert query(warehouse, "SELECT count(*) AS n FROM prices")["n"].to_list() == [12]
    with pytest.raises(WarehouseQueryError, match="read-only"):
        query(warehouse, "DELETE FROM prices")
    with pytest.raises(WarehouseQueryError, match=str(warehouse)):
        query(warehouse, "SELEC 1")
    assert load_prices(warehouse, "ETH").height == 12


# --- validations and the gate ------------------------------------------------------------


class Severity(enum.Enum):  # shaped like Great Expectations' severity enum
    CRITICAL = "critical"
    WARNING = "warning"


@dataclasses.dataclass
class Outcome:
    name: str
    severity: Severity
    success: bool
    observed: object


def test_latest_gate_follows_the_latest_validation_of_the_current_data(warehouse):
    store(warehouse, make_prices(5))
    assert latest_gate(warehouse, "BTC").reason.startswith("no data stored for BTC")

    first = store(warehouse, make_prices(30)).data_version
    gate = latest_gate(warehouse, "ETH")
    assert (gate.passed, gate.data_version, gate.validated_at) == (False, first, None)
    assert "not been validated" in gate.reason

    record_validation(
        warehouse,
        symbol="ETH",
        data_version=first,
        outcomes=[
            ("close_not_null", "critical", True, {"unexpected_count": 0}),
            ("volume_positive", "warning", False, 3),
        ],
        docs_path="docs/index.html",
    )
    gate = latest_gate(warehouse, "ETH")
    assert gate.passed and gate.failed == [] and gate.warnings == ["volume_positive"]
    assert gate.validated_at is not None

    failing = record_validation(
        warehouse,
        symbol="ETH",
        data_version=first,
        outcomes=[
            Outcome("close_not_null", Severity.CRITICAL, True, None),
            Outcome("dates_unique", Severity.CRITICAL, False, ["2020-01-03"]),
        ],
        docs_path=None,
    )
    gate = latest_gate(warehouse, "ETH")
    assert (gate.passed, gate.failed, gate.validation_id) == (False, ["dates_unique"], failing)

    # New data: a passing validation of the OLD version no longer counts.
    second = store(warehouse, make_prices(31)).data_version
    record_validation(
        warehouse,
        symbol="ETH",
        data_version=first,
        outcomes=[("dates_unique", "critical", True, None)],
        docs_path=None,
    )
    gate = latest_gate(warehouse, "ETH")
    assert (gate.passed, gate.data_version) == (False, second)
    record_validation(
        warehouse,
        symbol="ETH",
        data_version=second,
        outcomes=[("dates_unique", "critical", True, None)],
        docs_path=None,
    )
    assert latest_gate(warehouse, "ETH").passed

    stored = load_validations(warehouse, "ETH")
    assert stored.height == 6 and stored["validation_id"].n_unique() == 4
    assert stored.filter(pl.col("expectation") == "close_not_null")["observed"].to_list() == [
        '{"unexpected_count": 0}',
        None,
    ]


def test_a_validation_without_critical_expectations_does_not_pass_the_gate(warehouse):
    version = store(warehouse, make_prices(5)).data_version
    record_validation(
        warehouse,
        symbol="ETH",
        data_version=version,
        outcomes=[("row_count", "info", True, 5)],
        docs_path=None,
    )
    gate = latest_gate(warehouse, "ETH")
    assert not gate.passed and "no critical expectations" in gate.reason


@pytest.mark.parametrize(
    ("outcomes", "message"),
    [([], "no outcomes"), ([("x", "fatal", True, None)], "severity 'fatal'")],
)
def test_record_validation_refuses_bad_outcomes(warehouse, outcomes, message):
    version = store(warehouse, make_prices(5)).data_version
    with pytest.raises(ValueError, match=message):
        record_validation(
            warehouse, symbol="ETH", data_version=version, outcomes=outcomes, docs_path=None
        )
    assert load_validations(warehouse).height == 0


# --- measurement (not part of the suite) -------------------------------------------------

_BENCH_CHILD = textwrap.dedent(
    """
    import resource, sys, time, json
    import polars as pl
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from test_warehouse import make_prices, store, make_rejects
    rows, path = int(sys.argv[1]), Path(sys.argv[2])
    prices = make_prices(rows, first_day=-rows)  # synthetic days; 5M days outrun Python's dates
    def timed(label, frame):
        wall, cpu = time.perf_counter(), time.process_time()
        result = store(path, frame, timeout_s=60)
        print(json.dumps(dict(step=label, wall_s=round(time.perf_counter() - wall, 2),
              cpu_s=round(time.process_time() - cpu, 2), inserted=result.rows_inserted,
              updated=result.rows_updated, unchanged=result.rows_unchanged,
              peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))),
              flush=True)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(step="frame built", peak_rss_mb=round(base))), flush=True)
    timed("first store", prices)
    timed("same rows again", prices)
    step = pl.int_range(pl.len()) % 100 == 0
    corrected = pl.concat([
        prices.with_columns(close=pl.when(step).then(pl.col("close") * 1.01).otherwise("close")),
        make_prices(rows // 100, first_day=0),
    ])
    timed("1% corrected + 1% new", corrected)
    print(json.dumps(dict(step="file", size_mb=round(path.stat().st_size / 1e6))), flush=True)
    """
)


def run_benchmark(sizes: list[int]) -> None:
    import tempfile

    for rows in sizes:
        with tempfile.TemporaryDirectory() as folder:
            code = _BENCH_CHILD.format(tests=str(Path(__file__).parent))
            subprocess.run(
                [sys.executable, "-c", code, str(rows), str(Path(folder) / "bench.duckdb")],
                check=True,
                cwd=REPO_ROOT,
            )


if __name__ == "__main__":
    if sys.argv[1:2] != ["bench"]:
        sys.exit("usage: python tests/test_warehouse.py bench ROWS [ROWS ...]")
    run_benchmark([int(arg) for arg in sys.argv[2:]] or [1_000_000, 5_000_000])


def test_reader_opens_read_only_and_migrates_an_older_file_first(warehouse):
    import duckdb

    from seqlab.warehouse.connection import connect_reader

    warehouse.parent.mkdir(parents=True, exist_ok=True)
    raw = duckdb.connect(str(warehouse))  # a file written before migration 3 existed
    apply_migrations(raw, MIGRATIONS[:2])
    raw.close()
    with pytest.raises(WarehouseSchemaError, match="any write"):
        load_ingestions(warehouse)  # plain read-only readers refuse an older file
    with connect_reader(warehouse) as con:
        assert schema_version(con) == len(MIGRATIONS)  # migrated, then read
    with connect_reader(warehouse) as con:  # now current: a read-only open
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("CREATE TABLE t(x INT)")
