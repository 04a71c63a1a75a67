"""`seqlab train` and `seqlab predict` on the real CoinCodex file, without Prefect."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from typer.testing import CliRunner

from seqlab.cli import app
from tests.conftest import COINCODEX

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_train_json_then_predict_the_next_day(tmp_path, coincodex_prices):
    warehouse, out = tmp_path / "w.duckdb", tmp_path / "out"
    trained = CliRunner().invoke(app, [
        "train", "--data", str(COINCODEX), "--cell", "gru", "--depth", "2", "--norm", "layer",
        "--features", "close", "--epochs", "3", "--lookback", "10", "--hidden", "8",
        "--device", "cpu", "--warehouse", str(warehouse), "--out", str(out), "--json",
    ])
    assert trained.exit_code == 0, trained.output
    result = json.loads(trained.output.strip().splitlines()[-1])
    assert result["status"] == "ok"
    assert len(result["train_loss"]) == len(result["test_loss"]) == 3
    # The epoch is chosen on the validation tail (10% by default), never on the test loss.
    assert result["selected_on"] == "validation" and result["n_val"] > 0
    assert result["best_epoch"] == result["val_loss"].index(min(result["val_loss"])) + 1
    assert result["best_test_loss"] == result["test_loss"][result["best_epoch"] - 1]
    assert result["test_rmse_usd"] > 0 and result["baseline_rmse_usd"] > 0
    assert result["determinism"]["recurrent_backward"] == "seqlab cpu_rnn"

    predicted = CliRunner().invoke(app, ["predict", result["checkpoint_path"], "--warehouse",
                                         str(warehouse), "--json"])
    assert predicted.exit_code == 0, predicted.output
    forecast = json.loads(predicted.output)
    last_day = coincodex_prices["date"].max()
    assert date.fromisoformat(forecast["date"]) == last_day + timedelta(days=1)
    last_close = coincodex_prices["close"][-1]
    assert 0.2 * last_close < forecast["predicted_close_usd"] < 5 * last_close


def test_train_refuses_an_unknown_cell_with_the_allowed_values(tmp_path):
    refused = CliRunner().invoke(app, ["train", "--cell", "transformer", "--warehouse",
                                       str(tmp_path / "w.duckdb")])
    assert refused.exit_code != 0 and "rnn, lstm, gru" in refused.output


def test_train_without_validation_keeps_the_last_epoch(tmp_path):
    trained = CliRunner().invoke(app, [
        "train", "--data", str(COINCODEX), "--cell", "rnn", "--epochs", "3", "--lookback", "10",
        "--hidden", "8", "--device", "cpu", "--val-fraction", "0", "--warehouse",
        str(tmp_path / "w.duckdb"), "--out", str(tmp_path / "out"),
    ])
    assert trained.exit_code == 0, trained.output
    assert "epoch 3 kept (last epoch, no validation)" in trained.output
