"""`seqlab train` stores its run like a grid member; `seqlab predict` takes its run_id or `best`."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from seqlab.cli import app
from seqlab.config import Settings
from seqlab.grid import GridParams, resolve_spec
from seqlab.runners.grid import run_grid
from seqlab.warehouse import query
from tests.conftest import COINCODEX

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIG = ["--cell", "gru", "--epochs", "2", "--lookback", "10", "--hidden", "8", "--device", "cpu"]


def _train(warehouse, out, *extra) -> dict:
    done = CliRunner().invoke(app, ["train", *CONFIG, "--warehouse", str(warehouse), "--out",
                                    str(out), "--json", *extra])
    assert done.exit_code == 0, done.output
    return json.loads(done.output.strip().splitlines()[-1])


def test_train_stores_its_run_reuses_it_and_predict_takes_the_run_id(tmp_path, coincodex_prices):
    warehouse, out = tmp_path / "w.duckdb", tmp_path / "out"
    first = _train(warehouse, out, "--data", str(COINCODEX))
    run_id = first["run_id"]
    assert first["reused"] is False and first["status"] == "ok"
    stored = query(warehouse, f"SELECT * FROM runs WHERE run_id = '{run_id}'")
    assert stored.height == 1 and stored["symbol"][0] == "ETH" and stored["cell"][0] == "gru"
    for table in ("epoch_metrics", "predictions"):
        assert query(warehouse, f"SELECT count(*) AS n FROM {table} WHERE run_id = '{run_id}'")["n"][0] > 0
    assert query(warehouse, "SELECT count(*) AS n FROM features")["n"][0] >= 1
    linked = query(warehouse, f"SELECT grid_id, reused FROM report_runs WHERE run_id = '{run_id}'")
    assert linked.to_dicts() == [{"grid_id": first["grid_id"], "reused": False}]

    again = _train(warehouse, out)  # same config, data and code: reused, not retrained
    assert again == {"run_id": run_id, "reused": True,
                     "checkpoint_path": stored["checkpoint_path"][0]}
    assert query(warehouse, "SELECT stored_at FROM runs")["stored_at"].to_list() == \
        stored["stored_at"].to_list()
    assert query(warehouse, "SELECT count(*) AS n FROM grids")["n"][0] == 1  # nothing new
    forced = _train(warehouse, out, "--force")
    assert forced["run_id"] == run_id and forced["reused"] is False
    assert query(warehouse, "SELECT count(*) AS n FROM runs")["n"][0] == 1

    text = CliRunner().invoke(app, ["train", *CONFIG, "--warehouse", str(warehouse), "--out",
                                    str(out)])
    assert f"run_id {run_id}" in text.output

    predicted = CliRunner().invoke(app, ["predict", run_id, "--warehouse", str(warehouse), "--json"])
    assert predicted.exit_code == 0, predicted.output
    forecast = json.loads(predicted.output)
    assert forecast["run_id"] == run_id and forecast["symbol"] == "ETH"
    assert forecast["date"] == str(coincodex_prices["date"].max() + timedelta(days=1))
    assert forecast["checkpoint"] == stored["checkpoint_path"][0]  # two epochs: any close


def test_predict_best_takes_the_best_validated_run_of_the_latest_grid(tmp_path):
    warehouse, out = tmp_path / "w.duckdb", tmp_path / "out"
    refused = CliRunner().invoke(app, ["predict", "best", "--warehouse", str(warehouse)])
    assert refused.exit_code == 2
    _train(warehouse, out, "--data", str(COINCODEX))  # a one-config grid: not what best means
    refused = CliRunner().invoke(app, ["predict", "best", "--warehouse", str(warehouse)])
    assert refused.exit_code == 2 and "no validated run of ETH" in refused.output
    grid = run_grid(resolve_spec(GridParams(preset="tiny", epochs=2, lookback=10)),
                    Settings(warehouse, out), symbol="ETH", preset="tiny", log=lambda line: None)
    best = query(warehouse, f"SELECT run_id FROM report_runs WHERE grid_id = '{grid.grid_id}' "
                            "AND status = 'ok' ORDER BY best_val_loss LIMIT 1")["run_id"][0]
    predicted = CliRunner().invoke(app, ["predict", "best", "--warehouse", str(warehouse), "--json"])
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.output)["run_id"] == best
    other = CliRunner().invoke(app, ["predict", "best", "--symbol", "BTC", "--warehouse",
                                     str(warehouse)])
    assert other.exit_code == 2 and "grids here are of ETH (--symbol)" in other.output
    unknown = CliRunner().invoke(app, ["predict", "nope", "--warehouse", str(warehouse)])
    assert unknown.exit_code == 2 and "no checkpoint file or run_id 'nope'" in unknown.output
