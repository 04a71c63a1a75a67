"""Task functions called directly (no Prefect run): the gate, the snapshot, the ledger's reuse."""

from __future__ import annotations

import pytest

from seqlab.engine.config import TrainConfig
from seqlab.engine.result import TrainResult
from seqlab.grid import PRESETS
from seqlab.grid.requests import RunOutcome, plan_requests
from seqlab.grid.results import outcome_frames
from seqlab.runners.grid import PreparedGrid, gate_prices
from seqlab.tasks.grid import GateClosed, open_grid, snapshot_prices
from seqlab.warehouse import query
from seqlab.warehouse.runs import start_grid, store_run_results
from tests.conftest import ingest_coincodex


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    return ingest_coincodex(tmp_path_factory.mktemp("tasks"))


def test_gate_gives_the_current_version_or_refuses(warehouse):
    data_version, rows = gate_prices(warehouse, "ETH")
    assert rows == 3654 and len(data_version) == 64
    with pytest.raises(GateClosed, match="refusing to train on BTC"):
        gate_prices(warehouse, "BTC")


def test_snapshot_is_named_by_data_version_and_matches_the_prices(warehouse, tmp_path):
    import polars as pl

    version, _ = gate_prices(warehouse, "ETH")
    path = snapshot_prices.fn(warehouse, "ETH", version, tmp_path)
    assert version[:16] in path
    frame = pl.read_parquet(path)
    assert frame.height == 3654 and frame["date"].is_sorted()


def test_reuse_splits_finished_runs_from_the_rest(warehouse, tmp_path):
    configs = [TrainConfig(cell=c, epochs=1, hidden=4) for c in ("rnn", "gru")]
    requests = plan_requests(configs, symbol="ETH", data_version="dv", code="c",
                             prices_path="unused", checkpoint_dir=str(tmp_path))
    start_grid(warehouse, grid_id="g1", symbol="ETH", preset="tiny", spec=PRESETS["tiny"].to_dict(),
               spec_key="k", data_version="dv", code_version="c", dispatch="local", n_configs=2)
    fake = TrainResult(
        run_key="k", config={}, status="ok", diverged_epoch=None, epochs_run=1,
        stopped_early=False, train_loss=[0.5], test_loss=[0.4], val_loss=[], epoch_seconds=[0.1],
        final_test_loss=0.4, best_test_loss=0.4, best_epoch=1, selected_on="last_epoch",
        test_rmse_usd=None, test_mae_usd=None, test_mape_pct=None, test_directional_accuracy=None,
        baseline_rmse_usd=1.0, baseline_mae_usd=1.0, baseline_mape_pct=1.0,
        baseline_directional_accuracy=0.5, predictions={})
    store_run_results(warehouse, "g1", outcome_frames([RunOutcome(requests[0], fake)], "g1").as_dict())
    prepared = PreparedGrid("ETH", "dv", 3654, "unused", requests)
    ledger = open_grid.fn(warehouse, PRESETS["tiny"], prepared, preset="tiny", dispatch="local",
                          force=False)
    assert ledger.reused == [requests[0].run_id] and ledger.todo == [requests[1]]
    forced = open_grid.fn(warehouse, PRESETS["tiny"], prepared, preset="tiny", dispatch="local",
                          force=True)
    assert forced.reused == [] and forced.todo == requests
    links = query(warehouse, "SELECT grid_id, reused FROM grid_runs ORDER BY grid_id")
    assert sorted(links.rows()) == sorted([("g1", False), (ledger.grid_id, True)])
