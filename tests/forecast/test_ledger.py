"""The ledger in the warehouse: written once, scored once against the close as first stored."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from seqlab.engine.config import TrainConfig
from seqlab.forecast.ledger import Champion, ForecastBatch, forecast_frame
from seqlab.report.track_record import MIN_TESTED_DAYS, cumulative_errors, track_records
from seqlab.runners.ingest import IngestOptions, ingest_source
from seqlab.warehouse import load_prices, query
from seqlab.warehouse.forecasts import load_forecast_scores, score_forecasts, store_forecasts
from tests.forecast.days import write_days

CHAMPION = Champion(1, TrainConfig(cell="gru", hidden=8, epochs=2), "grid-a")
MADE = dt.datetime(2025, 3, 1, 2, 0)


def _ingest(tmp_path, last: str, **revised) -> None:
    source = write_days(tmp_path / "eth.csv", "2025-01-01", last, close_of=revised or None)
    ingest_source(str(source), IngestOptions(symbol="ETH", warehouse=tmp_path / "w.duckdb",
                                             docs_dir=tmp_path / "docs"))


def _rows(origins: list[dt.date], predicted: list[float], persistence: list[float], **kw):
    batch = ForecastBatch(CHAMPION, CHAMPION.config, "run-1", "refit-1", origins[0], origins,
                          [o + dt.timedelta(days=1) for o in origins], np.array(predicted),
                          np.array(persistence))
    return forecast_frame([batch], symbol="ETH", mode=kw.get("mode", "live"), batch_id="b1",
                          data_version="v", code_version="c", made_at=MADE)


def test_a_forecast_is_scored_once_against_the_close_as_first_stored(tmp_path):
    _ingest(tmp_path, "2025-02-10")
    warehouse = tmp_path / "w.duckdb"
    prices = load_prices(warehouse, "ETH")
    closes = dict(zip(prices["date"], prices["close"], strict=True))
    origin = dt.date(2025, 2, 10)
    rows = _rows([origin], [closes[origin] * 1.01], [closes[origin]])
    assert store_forecasts(warehouse, rows) == 1
    assert store_forecasts(warehouse, rows) == 0  # the same forecast is never written twice
    assert score_forecasts(warehouse, "ETH") == 0  # its target day has not arrived

    _ingest(tmp_path, "2025-02-11")  # the target's close arrives
    first_close = load_prices(warehouse, "ETH").filter(pl.col("date") == dt.date(2025, 2, 11))["close"][0]
    assert score_forecasts(warehouse, "ETH") == 1
    assert score_forecasts(warehouse, "ETH") == 0  # scored once

    _ingest(tmp_path, "2025-02-12", **{"2025-02-11": first_close - 1.0})  # revised later
    assert score_forecasts(warehouse, "ETH") == 0
    [scored] = load_forecast_scores(warehouse, "ETH").to_dicts()
    assert scored["actual_usd"] == pytest.approx(first_close)  # the score keeps the first close
    assert scored["actual_revised"] is True  # ... and says the stored price changed since
    assert scored["stored_close_usd"] == pytest.approx(first_close - 1.0)
    assert scored["error_usd"] == pytest.approx(closes[origin] * 1.01 - first_close)
    assert scored["persistence_error_usd"] == pytest.approx(closes[origin] - first_close)


def test_a_backtest_scores_against_the_close_first_stored_even_if_revised_before(tmp_path):
    _ingest(tmp_path, "2025-02-12")
    warehouse = tmp_path / "w.duckdb"
    first_close = load_prices(warehouse, "ETH").filter(pl.col("date") == dt.date(2025, 2, 11))["close"][0]
    _ingest(tmp_path, "2025-02-12", **{"2025-02-11": first_close - 1.0})  # within low..high
    store_forecasts(warehouse, _rows([dt.date(2025, 2, 10)], [1.0], [1.0], mode="backtest"))
    assert score_forecasts(warehouse, "ETH") == 1
    [scored] = load_forecast_scores(warehouse, "ETH").to_dicts()
    assert scored["actual_usd"] == pytest.approx(first_close) and scored["actual_revised"]


def test_a_row_that_would_see_its_target_is_refused():
    batch = ForecastBatch(CHAMPION, CHAMPION.config, "r", "g", dt.date(2025, 1, 5),
                          [dt.date(2025, 1, 4)], [dt.date(2025, 1, 5)], np.array([1.0]),
                          np.array([1.0]))
    with pytest.raises(ValueError, match="trained through 2025-01-05 would see its target"):
        forecast_frame([batch], symbol="ETH", mode="live", batch_id="b", data_version="v",
                       code_version="c", made_at=MADE)


def test_the_table_refuses_a_forecast_of_its_own_origin(tmp_path):
    _ingest(tmp_path, "2025-01-20")
    rows = _rows([dt.date(2025, 1, 10)], [1.0], [1.0]).with_columns(
        pl.col("target_date") - pl.duration(days=1))
    with pytest.raises(Exception, match="CHECK constraint"):
        store_forecasts(tmp_path / "w.duckdb", rows)
    assert query(tmp_path / "w.duckdb", "SELECT count(*) n FROM forecasts")["n"][0] == 0


def _scores(n: int, model_scale: float, noise: float = 0.0, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(n)]
    base = rng.normal(0, 50, n)
    return pl.DataFrame({
        "mode": ["backtest"] * n, "batch_id": ["b"] * n, "config_key": ["k"] * n,
        "champion_rank": [1] * n, "config": [CHAMPION.config.to_dict().__repr__()] * n,
        "target_date": days, "error_usd": base * model_scale + rng.normal(0, noise, n),
        "persistence_error_usd": base,
        "actual_revised": [False] * n, "made_at": [MADE] * n,
    }).with_columns(pl.lit('{"cell": "gru", "depth": 1, "norm": "none", "feature_set": '
                           '"close", "seed": 0}').alias("config"))


def test_the_track_record_tests_the_ratio_only_from_30_days():
    [short] = track_records(_scores(MIN_TESTED_DAYS - 1, 2.0))
    assert short.rmse_ratio == pytest.approx(2.0) and not short.tested and short.ratio_low is None
    assert short.verdict().startswith("not tested")
    [long] = track_records(_scores(200, 2.0, noise=20.0))
    assert long.tested and 1.0 < long.ratio_low < long.rmse_ratio < long.ratio_high
    assert long.verdict() == "worse than persistence"
    running = cumulative_errors(_scores(50, 0.5))
    assert running["running_rmse_ratio"].to_list() == pytest.approx([0.5] * 50)
