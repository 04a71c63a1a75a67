"""Shared fixtures: the real ETH files live in ../shared/data/real (never copied here)."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# The test machines are offline: Prefect's telemetry would only log connection errors.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
# `make test` runs two pytest workers on two cores: one torch thread each avoids oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The fused engine's Triton kernels run on CPU tensors only in Triton's interpreter, which
# must be chosen before triton is first imported; on a CUDA machine they compile natively.
if not Path("/dev/nvidia0").exists():
    os.environ.setdefault("TRITON_INTERPRET", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
# SEQLAB_REAL_DATA: the same files elsewhere (a GPU machine gets only the checkout).
REAL_DATA = Path(os.environ.get("SEQLAB_REAL_DATA") or REPO_ROOT.parent / "shared" / "data" / "real")
COINCODEX = REAL_DATA / "eth_daily_coincodex_2015-08-08_2025-08-08.csv"


def ingest_coincodex(folder: Path, name: str = "w.duckdb") -> Path:
    """A new warehouse in ``folder`` holding the validated CoinCodex prices as ETH."""
    from seqlab.runners.ingest import IngestOptions, ingest_source

    warehouse = folder / name
    ingest_source(str(COINCODEX), IngestOptions(symbol="ETH", warehouse=warehouse,
                                                docs_dir=folder / "docs"))
    return warehouse


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    if not REAL_DATA.is_dir():
        pytest.fail(f"real data folder missing: {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def coincodex_prices():
    """The CoinCodex file (3,654 days) as a canonical polars frame, ascending by date."""
    import polars as pl

    frame = pl.read_csv(COINCODEX, encoding="utf8-lossy")
    frame = frame.rename({frame.columns[0]: "Start"})
    return (
        frame.select(
            pl.lit("ETH").alias("symbol"),
            pl.col("Start").str.to_date("%Y-%m-%d").alias("date"),
            pl.col("Open").cast(pl.Float64).alias("open"),
            pl.col("High").cast(pl.Float64).alias("high"),
            pl.col("Low").cast(pl.Float64).alias("low"),
            pl.col("Close").cast(pl.Float64).alias("close"),
            pl.col("Volume").cast(pl.Float64).alias("volume"),
            pl.col("Market Cap").cast(pl.Float64).alias("market_cap"),
        )
        .sort("date")
    )


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from 2 intra-op threads, and OpenMP spin-waits make them
    crawl when pytest-xdist workers share the cores; the engine itself keeps the default.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def recent_prices(coincodex_prices):
    """The last 400 real days: enough for every engine path, small enough to be quick
    (299 train windows at lookback 10: 9 batches of 32 + 11)."""
    return coincodex_prices.tail(400)


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server + database for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@contextmanager
def serve_http(handler) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_user_query(path: Path, sql: str, *, timeout_s: float = 10.0):
    """The whole result of user SQL through the sandbox (``seqlab query``'s door) as a frame."""
    import polars as pl
    import pyarrow as pa

    from seqlab.warehouse.sandbox import open_user_query

    with open_user_query(path, sql, lock_timeout_s=timeout_s) as stream:
        return pl.from_arrow(pa.Table.from_batches(list(stream.batches), schema=stream.schema))


def recorded_reports(path: Path, grid_id: str | None = None):
    """The report builds recorded in ``reports`` (of one grid, or all), oldest first."""
    from seqlab.warehouse import query

    where = f"WHERE grid_id = '{grid_id}'" if grid_id else ""
    return query(path, f"SELECT * FROM reports {where} ORDER BY built_at")
