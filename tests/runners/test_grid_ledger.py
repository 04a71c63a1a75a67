"""The grid ledger on its own: open splits reuse, deliveries count failures, close writes the
counts; every runtime (run_grid, train_single, carried import, the flows) goes through it."""

from __future__ import annotations

import pytest

from seqlab.config import Settings
from seqlab.engine.config import TrainConfig
from seqlab.engine.result import TrainResult
from seqlab.grid import GridParams, resolve_spec
from seqlab.grid.requests import RunOutcome
from seqlab.runners.grid import GridLedger, already_trained, prepare_grid
from seqlab.warehouse import query
from tests.conftest import ingest_coincodex

SPEC = resolve_spec(GridParams(preset="tiny", cells=["rnn", "gru"], epochs=1, lookback=10))


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    folder = tmp_path_factory.mktemp("ledger")
    return Settings(ingest_coincodex(folder), folder / "out")


def _result(status: str = "ok") -> TrainResult:
    return TrainResult(
        run_key="k", config={}, status=status, diverged_epoch=None, epochs_run=1,
        stopped_early=False, train_loss=[0.5], test_loss=[0.4], val_loss=[], epoch_seconds=[0.1],
        final_test_loss=0.4, best_test_loss=0.4, best_epoch=1, selected_on="last_epoch",
        test_rmse_usd=None, test_mae_usd=None, test_mape_pct=None, test_directional_accuracy=None,
        baseline_rmse_usd=1.0, baseline_mae_usd=1.0, baseline_mape_pct=1.0,
        baseline_directional_accuracy=0.5, predictions={})


def test_a_grid_opened_delivered_and_closed_then_reused(settings):
    prepared = prepare_grid(SPEC, settings, "ETH")
    assert prepared.rows == 3654 and len(prepared.requests) == SPEC.n_configs == 2
    assert all(r.prices_path == prepared.prices_path for r in prepared.requests)

    ledger = GridLedger.open(settings.warehouse, SPEC, prepared, preset="tiny", dispatch="local")
    assert ledger.todo == prepared.requests and ledger.reused == []
    ok, broken = ledger.todo
    failed = ledger.deliver([RunOutcome(ok, _result())])
    failed += ledger.deliver([RunOutcome(broken, None, "RuntimeError: boom")])
    closed = ledger.close(failed=failed)
    assert (closed.trained, closed.reused, closed.failed) == (1, 0, 1)
    assert closed.status == "completed_with_failures"
    row = query(settings.warehouse, "SELECT status, n_trained, n_reused, n_failed FROM grids "
                                    f"WHERE grid_id = '{closed.grid_id}'").row(0)
    assert row == ("completed_with_failures", 1, 0, 1)

    # The stored ok run is reused; the failed one is to train again.
    assert already_trained(settings.warehouse, prepared.requests, force=False) == {ok.run_id}
    assert already_trained(settings.warehouse, prepared.requests, force=True) == set()
    again = GridLedger.open(settings.warehouse, SPEC, prepared_again := prepare_grid(
        SPEC, settings, "ETH"), preset="tiny", dispatch="local")
    assert again.reused == [ok.run_id] and [r.run_id for r in again.todo] == [broken.run_id]
    assert prepared_again.requests == prepared.requests  # the same runs: same data, same code
    closed = again.close(failed=again.deliver([RunOutcome(again.todo[0], _result("diverged"))]))
    assert (closed.trained, closed.reused, closed.failed, closed.status) == (1, 1, 0, "completed")


def test_a_single_config_is_prepared_from_its_own_config(settings):
    config = TrainConfig(cell="lstm", depth=1, epochs=1, lookback=10, hidden=4)
    prepared = prepare_grid(SPEC, settings, "ETH", configs=[config])
    assert [r.config for r in prepared.requests] == [config]
