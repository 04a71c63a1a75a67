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


def test_one_config_on_two_symbols_keeps_two_checkpoints_and_predict_checks_them(tmp_path):
    """Issue 23: the second symbol's run overwrote the first's checkpoint (named by the config
    alone), and `predict <first run>` changed its answer without a word."""
    warehouse, out = tmp_path / "w.duckdb", tmp_path / "out"
    shorter = tmp_path / "eth_shorter.csv"  # other prices for the second symbol
    lines = COINCODEX.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    shorter.write_text("".join(lines[:-300]), encoding="utf-8")
    config = ["--cell", "rnn", "--epochs", "2", "--lookback", "10", "--hidden", "8",
              "--device", "cpu", "--warehouse", str(warehouse), "--out", str(out), "--json"]

    def train(data, symbol) -> dict:
        done = CliRunner().invoke(app, ["train", "--data", str(data), "--symbol", symbol, *config])
        assert done.exit_code == 0, done.output
        return json.loads(done.output.strip().splitlines()[-1])

    def predict(run_id: str):
        return CliRunner().invoke(app, ["predict", run_id, "--warehouse", str(warehouse), "--json"])

    first = train(COINCODEX, "ETH")
    before = predict(first["run_id"])
    assert before.exit_code == 0, before.output
    second = train(shorter, "ETH-GEMINI")
    assert first["checkpoint_path"] != second["checkpoint_path"]
    after = predict(first["run_id"])
    assert after.exit_code == 0 and after.stdout == before.stdout  # the same model answers
    # A file that is not the run's (here the other run's, copied over it) is refused.
    copied = open(second["checkpoint_path"], "rb").read()
    with open(first["checkpoint_path"], "wb") as handle:
        handle.write(copied)
    refused = predict(first["run_id"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert refused.stderr.strip().splitlines() == [
        f"error: checkpoint {first['checkpoint_path']} is not run {first['run_id']}'s: its "
        "sha256 differs from the one the run recorded (another run or a copy replaced it); "
        "retrain the run (`seqlab train ... --force`)"]
