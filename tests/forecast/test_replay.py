"""Real replayed days: the CoinCodex file cut at a date, a small grid trained, then days added
one at a time, each retrain writing tomorrow's forecasts and scoring the ones whose day came;
then a two-month walk-forward backtest over the same real history, checked for look-ahead."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
from typer.testing import CliRunner

from seqlab.cli import app
from seqlab.config import Settings
from seqlab.grid.spec import GridSpec
from seqlab.runners.forecast import retrain_champions, run_backtest
from seqlab.runners.grid import run_grid
from seqlab.runners.ingest import IngestOptions, ingest_source
from seqlab.warehouse import load_prices, query
from tests.forecast.days import write_days

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FIRST, CUT = "2024-10-01", "2025-05-31"
REPLAYED = ["2025-06-01", "2025-06-02", "2025-06-03", "2025-06-04", "2025-06-05"]
# Three configs, two epochs, hidden 8: the grid the champions come from.
SPEC = GridSpec(cells=("rnn", "lstm", "gru"), depths=(1,), norms=("none",),
                feature_sets=("close",), seeds=(0,), epochs=2, hidden=8, lookback=10)


def _ingest(settings: Settings, folder, last: str) -> None:
    source = write_days(folder / "eth.csv", FIRST, last)
    ingest_source(str(source), IngestOptions(symbol="ETH", warehouse=settings.warehouse,
                                             docs_dir=folder / "docs"))


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """The cut file, the grid, a retrain on the cut day and on each of 5 days added after it."""
    folder = tmp_path_factory.mktemp("replay")
    settings = Settings(folder / "w.duckdb", folder / "out")
    _ingest(settings, folder, CUT)
    grid = run_grid(SPEC, settings, symbol="ETH", log=lambda line: None)
    runs = [retrain_champions(settings, "ETH", log=lambda line: None)]
    for day in REPLAYED:
        _ingest(settings, folder, day)
        runs.append(retrain_champions(settings, "ETH", log=lambda line: None))
    return settings, grid, runs, folder


def test_each_replayed_day_writes_tomorrows_forecasts_and_scores_yesterdays(replayed):
    settings, grid, runs, _ = replayed
    for day, run in zip([CUT, *REPLAYED], runs, strict=True):
        origin = dt.date.fromisoformat(day)
        assert run.stored == 3 and run.failed_refits == 0
        assert set(run.forecasts["origin_date"]) == {origin}
        assert set(run.forecasts["target_date"]) == {origin + dt.timedelta(days=1)}
        assert set(run.forecasts["trained_through"]) == {origin}
        assert set(run.forecasts["champion_of"]) == {grid.grid_id}
    assert [r.scored for r in runs] == [0, 3, 3, 3, 3, 3]  # each day scores the day before's
    ledger = query(settings.warehouse, "SELECT * FROM forecasts WHERE mode = 'live'")
    assert ledger.height == 18 and ledger["actual_usd"].null_count() == 3  # the last day's wait
    # The champions are the grid's three runs ranked on validation, refitted on each day's
    # prices as refit grids; the grid itself stays "the latest grid".
    ranked = query(settings.warehouse, f"""
        SELECT run_key FROM report_runs WHERE grid_id = '{grid.grid_id}' ORDER BY best_val_loss""")
    by_rank = ledger.sort("champion_rank").unique("champion_rank", keep="first", maintain_order=True)
    keys = [json.loads(c) for c in by_rank["config"]]
    assert by_rank["config_key"].to_list() == ranked["run_key"].to_list()
    assert all(k["hidden"] == 8 and k["epochs"] == 2 for k in keys)
    refits = query(settings.warehouse, "SELECT * FROM grids WHERE preset = 'refit'")
    assert refits.height == 6 and (refits["status"] == "completed").all()
    assert set(ledger["grid_id"]) == set(refits["grid_id"])


def test_scores_are_the_stored_closes_of_target_and_origin(replayed):
    settings = replayed[0]
    closes = load_prices(settings.warehouse, "ETH").select("date", "close")
    scores = query(settings.warehouse, "SELECT * FROM forecast_scores WHERE mode = 'live'")
    assert scores.height == 15
    joined = (scores.join(closes.rename({"date": "target_date", "close": "target_close"}),
                          on="target_date")
              .join(closes.rename({"date": "origin_date", "close": "origin_close"}),
                    on="origin_date"))
    assert (joined["actual_usd"] == joined["target_close"]).all()
    assert (joined["persistence_usd"] == joined["origin_close"]).all()
    assert (joined["error_usd"] == joined["predicted_usd"] - joined["actual_usd"]).all()
    assert not joined["actual_revised"].any()


def test_a_live_forecast_is_what_predict_gives_from_the_same_checkpoint(replayed):
    from pathlib import Path

    from seqlab.engine import predict_next

    settings, _, runs, _ = replayed
    prices = load_prices(settings.warehouse, "ETH")
    for row in runs[-1].forecasts.iter_rows(named=True):
        [(path, sha)] = query(settings.warehouse, f"SELECT checkpoint_path, checkpoint_sha256 "
                                                  f"FROM runs WHERE run_id = '{row['run_id']}'").rows()
        assert sha is not None
        day, close = predict_next(Path(path), prices, expected_sha256=sha)
        assert day == row["target_date"] and close == pytest.approx(row["predicted_usd"], rel=1e-6)


def test_a_retrain_on_unchanged_prices_reuses_its_runs_and_writes_nothing(replayed):
    settings = replayed[0]
    again = retrain_champions(settings, "ETH", log=lambda line: None)
    assert again.stored == 0 and again.scored == 0 and again.forecasts.height == 3
    last = query(settings.warehouse, "SELECT n_trained, n_reused FROM grids WHERE preset = 'refit' "
                                     "ORDER BY started_at DESC, grid_id DESC LIMIT 1")
    assert last.row(0) == (0, 3)


@pytest.fixture(scope="module")
def backtest(replayed):
    """Two months of real history walked forward, refitting every 20 days (1 epoch each)."""
    settings = replayed[0]
    return settings, run_backtest(settings, "ETH", start=dt.date(2025, 4, 1),
                                  end=dt.date(2025, 5, 31), refit_every=20, epochs=1,
                                  log=lambda line: None)


def test_the_backtest_never_sees_its_target_day(backtest):
    settings, run = backtest
    rows = query(settings.warehouse, f"SELECT * FROM forecasts WHERE batch_id = '{run.batch_id}'")
    assert rows.height == 3 * 60  # every origin 2025-04-01..05-30, three champions
    assert rows["origin_date"].min() == dt.date(2025, 4, 1)
    assert rows["target_date"].max() == dt.date(2025, 5, 31)
    assert (rows["trained_through"] <= rows["origin_date"]).all()
    assert (rows["origin_date"] < rows["target_date"]).all()
    assert sorted(set(rows["trained_through"])) == [dt.date(2025, 4, 1) + dt.timedelta(days=20 * k)
                                                    for k in range(3)]
    # What each refit run was actually given: its features' last day is its trained_through.
    given = query(settings.warehouse, f"""
        SELECT DISTINCT f.run_id, CAST(json_extract_string(x.fingerprint, '$.split.test.last')
            AS DATE) AS last_day, f.trained_through, r.epochs
        FROM forecasts f JOIN runs r USING (run_id) JOIN features x USING (feature_key)
        WHERE f.batch_id = '{run.batch_id}'""")
    assert given.height == 9 and (given["last_day"] == given["trained_through"]).all()
    assert (given["epochs"] == 1).all()


def test_the_backtest_persistence_is_the_stored_previous_close(backtest):
    settings, run = backtest
    closes = load_prices(settings.warehouse, "ETH").select(
        (pl.col("date") + pl.duration(days=1)).alias("target_date"),
        pl.col("close").alias("previous_close"))
    scores = query(settings.warehouse,
                   f"SELECT * FROM forecast_scores WHERE batch_id = '{run.batch_id}'")
    assert scores.height == 180 and run.scored == 180
    joined = scores.join(closes, on="target_date")
    assert joined.height == 180
    assert (joined["persistence_usd"] == joined["previous_close"]).all()


def test_the_commands_print_forecasts_and_the_track_record(replayed, backtest):
    settings = replayed[0]
    paths = ["--warehouse", str(settings.warehouse), "--out", str(settings.output_dir)]
    result = CliRunner().invoke(app, ["backtest", "--start", "2025-05-20", "--end", "2025-05-31",
                                      "--top", "2", "--refit-every", "30", "--epochs", "1",
                                      *paths, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["mode"] == "backtest" and len(payload["forecasts"]) == 2 * 11
    assert payload["scored"] == 22
    shown = CliRunner().invoke(app, ["retrain", "--top", "3", *paths])
    assert shown.exit_code == 0, shown.output
    assert "Tomorrow's forecasts" in shown.stdout and "2025-06-06" in shown.stdout
    assert "| live | #1 " in shown.stdout
    refused = CliRunner().invoke(app, ["backtest", "--start", "2030-01-01", *paths])
    assert refused.exit_code == 2 and "no forecast day between 2030-01-01" in refused.output


def test_the_report_shows_the_track_record_live_and_backtest_apart(replayed, backtest):
    from seqlab.runners.report import build_report

    settings, grid = replayed[0], replayed[1]
    built = build_report(settings.warehouse, grid_id=grid.grid_id, out_dir=settings.output_dir / "r")
    markdown = built.markdown_path.read_text()
    section = markdown[markdown.index("## Track record"):markdown.index("## Claims")]
    assert "| live | #1 " in section and f"| backtest {backtest[1].batch_id} | #1 " in section
    assert "not tested (fewer than 30 scored days)" in section  # 5 live days
    assert "### Latest live forecasts" in section and "](figures/track_record.png)" in section
    assert (settings.output_dir / "r" / "figures" / "track_record.png").stat().st_size > 1000
    page = built.html_path.read_text()
    assert '<section id="track"><h2>Track record</h2>' in page and "2025-06-06" in page
