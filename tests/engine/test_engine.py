"""The training engine: identity, determinism, divergence, learning, baseline, checkpoints."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import polars as pl
import pytest
import torch

from seqlab.engine import (
    TrainConfig,
    TrainResult,
    forecast_metrics,
    load_checkpoint,
    predict_next,
    predict_scaled,
    resolve_device,
    train_config,
    tune_malloc,
)
from seqlab.engine.train import batch_plan, folds_single_window
from seqlab.features.windows import build_features
from seqlab.models.rnn import StackedRNN

TINY = {"hidden": 8, "lookback": 10, "batch_size": 32, "device": "cpu"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_run_key_is_stable_and_normalised():
    base = TrainConfig(cell="gru", depth=2, epochs=3)
    assert base.run_key() == TrainConfig(cell="gru", depth=2, epochs=3).run_key()
    assert TrainConfig(dropout=0).run_key() == TrainConfig(dropout=0.0).run_key()
    assert base.run_key() != TrainConfig(cell="gru", depth=2, epochs=3, seed=1).run_key()
    assert len(base.run_key()) == 16
    restored = TrainConfig.from_dict(json.loads(json.dumps(base.to_dict())))
    assert restored == base and restored.run_key() == base.run_key()


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="unknown TrainConfig fields \\['colour'\\]"):
        TrainConfig.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match="unknown cell 'tcn'; allowed: rnn, lstm, gru"):
        TrainConfig(cell="tcn")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        TrainConfig(device="tpu")
    with pytest.raises(ValueError, match="grad_clip must be > 0"):
        TrainConfig(grad_clip=0)
    with pytest.raises(ValueError, match="epochs must be an integer"):
        TrainConfig(epochs=2.5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_missing_cuda_is_a_clear_error():
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda:0")


def test_same_config_same_losses_on_cpu(recent_prices):
    config = TrainConfig(cell="gru", depth=2, norm="batch", dropout=0.2, epochs=3, seed=7, **TINY)
    first = train_config(config, recent_prices)
    second = train_config(config, recent_prices)
    assert first.status == "ok" and first.epochs_run == 3
    assert first.train_loss == second.train_loss  # bit-identical, not approximately equal
    assert first.test_loss == second.test_loss
    assert first.predictions == second.predictions
    other_seed = train_config(TrainConfig(**{**config.to_dict(), "seed": 8}), recent_prices)
    assert other_seed.train_loss != first.train_loss


def test_batch_plan_folds_a_lone_window_only_when_asked():
    assert batch_plan(319, 53, fold_single=False) == (6, 1)
    assert batch_plan(319, 53, fold_single=True) == (5, 54)
    assert batch_plan(318, 53, fold_single=True) == (6, 0)
    assert batch_plan(320, 53, fold_single=True) == (6, 2)
    assert batch_plan(1, 53, fold_single=True) == (0, 1)  # nothing to fold into
    assert folds_single_window("batch", 1) and not folds_single_window("batch", 2)
    assert not folds_single_window("layer", 1)


def test_lookback_one_batchnorm_trains_when_one_window_is_left_over(recent_prices):
    """319 one-day windows in batches of 53 leave one window: BatchNorm would see a single
    value per channel and torch raises; the engine folds it into the batch before."""
    config = TrainConfig(cell="gru", depth=2, norm="batch", lookback=1, hidden=8, batch_size=53,
                         epochs=2, device="cpu", val_fraction=0.0)
    assert build_features(recent_prices, config.feature_spec()).X_train.shape[0] == 319
    result = train_config(config, recent_prices)
    assert result.status == "ok" and all(np.isfinite(result.train_loss))
    model = StackedRNN(config.model_config(1)).train()
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        model(torch.zeros(1, 1, 1))  # what a one-window batch would do


def test_seeded_models_are_the_same_in_concurrent_threads():
    """Grid workers are threads of one process; torch's default generator is shared."""
    from concurrent.futures import ThreadPoolExecutor

    from seqlab.engine.runtime import seeded_model
    from seqlab.models.rnn import ModelConfig

    config, cpu = ModelConfig(cell="gru", depth=2, hidden=16, norm="layer"), torch.device("cpu")
    expected = {seed: seeded_model(config, seed, cpu).state_dict() for seed in range(6)}
    seeds = list(range(6)) * 8
    with ThreadPoolExecutor(4) as pool:
        built = list(pool.map(lambda seed: seeded_model(config, seed, cpu).state_dict(), seeds))
    for seed, state in zip(seeds, built, strict=True):
        for name, tensor in state.items():
            assert torch.equal(tensor, expected[seed][name]), (seed, name)


def test_huge_learning_rate_diverges_without_raising(recent_prices):
    seen = []
    result = train_config(TrainConfig(epochs=5, lr=1e30, **TINY), recent_prices, on_epoch=seen.append)
    assert result.status == "diverged"
    assert result.diverged_epoch == 1 == result.epochs_run == len(seen)
    assert not math.isfinite(result.train_loss[0])
    assert result.best_epoch is None and result.test_rmse_usd is None
    assert result.baseline_rmse_usd > 0  # the baseline is still scored
    payload = json.dumps(result.to_dict(), allow_nan=False)  # NaN became null
    assert json.loads(payload)["train_loss"] == [None]


def test_overflowing_test_price_diverges_at_first_epoch(recent_prices):
    # An absurd (finite) test-period price makes the float32 test loss overflow to inf.
    spiked = recent_prices.with_columns(
        pl.when(pl.int_range(pl.len()) == 390).then(1e38).otherwise(pl.col("close")).alias("close")
    )
    result = train_config(TrainConfig(epochs=4, **TINY), spiked)
    assert result.status == "diverged" and result.diverged_epoch == 1
    assert math.isfinite(result.train_loss[0]) and result.test_loss[0] == math.inf


def test_a_few_epochs_on_real_data_lower_the_test_loss(coincodex_prices):
    config = TrainConfig(cell="lstm", hidden=16, lookback=30, epochs=5, device="cpu")
    result = train_config(config, coincodex_prices)
    assert result.status == "ok"
    # 10% validation tail before the 20% test period; the epoch is chosen on validation.
    assert (result.n_train, result.n_val, result.n_test) == (2528, 365, 731)
    assert result.test_loss[-1] < result.test_loss[0]
    assert result.selected_on == "validation"
    assert result.best_epoch == int(np.argmin(result.val_loss)) + 1
    assert result.best_test_loss == result.test_loss[result.best_epoch - 1]
    assert len(result.epoch_seconds) == 5 and all(s > 0 for s in result.epoch_seconds)
    assert len(result.predictions["predicted_usd"]) == 731
    assert result.predictions["date"][0] == "2023-08-09"
    assert result.test_rmse_usd > 0 and 0 <= result.test_directional_accuracy <= 1


def test_forecast_metrics_by_hand():
    actual = np.array([10.0, 12.0, 9.0])
    predicted = np.array([11.0, 12.0, 12.0])
    last = np.array([10.0, 10.0, 12.0])
    metrics = forecast_metrics(actual, predicted, last)
    assert metrics["rmse_usd"] == pytest.approx(math.sqrt((1 + 0 + 9) / 3))
    assert metrics["mae_usd"] == pytest.approx(4 / 3)
    assert metrics["mape_pct"] == pytest.approx((1 / 10 + 0 + 3 / 9) / 3 * 100)
    # Directions: predicted up/up/flat vs actual flat/up/down -> only day 2 agrees.
    assert metrics["directional_accuracy"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="need three equal 1-d arrays"):
        forecast_metrics(actual, predicted[:2], last)


def test_persistence_baseline_in_a_run_by_hand():
    # Close rises by 2 USD a day from 100: persistence is off by exactly 2 on every test day.
    days = 50
    close = 100.0 + 2.0 * np.arange(days)
    prices = pl.DataFrame(
        {"symbol": "ETH", "date": pl.date_range(dt.date(2024, 1, 1), dt.date(2024, 2, 19), eager=True), "close": close}
    )
    result = train_config(TrainConfig(epochs=1, hidden=4, lookback=5, device="cpu"), prices)
    assert result.n_test == 10  # the last 10 days are test targets
    assert result.predictions["actual_usd"] == close[40:].tolist()
    assert result.predictions["baseline_usd"] == close[39:49].tolist()
    assert result.baseline_rmse_usd == pytest.approx(2.0)
    assert result.baseline_mae_usd == pytest.approx(2.0)
    assert result.baseline_mape_pct == pytest.approx(np.mean(2.0 / close[40:]) * 100)
    assert result.baseline_directional_accuracy == 0.0  # a flat forecast never calls a rise


def test_validation_split_selects_the_best_epoch(recent_prices):
    result = train_config(TrainConfig(epochs=3, val_fraction=0.1, **TINY), recent_prices)
    assert result.selected_on == "validation" and len(result.val_loss) == 3 and result.n_val == 40
    assert result.best_epoch == int(np.argmin(result.val_loss)) + 1
    assert result.best_test_loss == result.test_loss[result.best_epoch - 1]


def test_early_stopping_stops_after_patience(recent_prices):
    # lr=0.3 overshoots, so the validation loss stops improving within a few epochs.
    config = TrainConfig(epochs=40, lr=0.3, early_stopping_patience=2, **TINY)
    result = train_config(config, recent_prices)
    assert result.stopped_early and result.epochs_run < 40
    assert result.epochs_run == result.best_epoch + 2
    assert min(result.val_loss[-2:]) >= result.val_loss[result.best_epoch - 1]


def test_without_validation_the_last_epoch_is_kept_and_early_stopping_is_refused(recent_prices):
    """No validation split: the test loss never picks the epoch (the last one is kept), and
    early stopping, which would have to watch the test loss, is refused."""
    result = train_config(TrainConfig(epochs=4, val_fraction=0.0, **TINY), recent_prices)
    assert result.selected_on == "last_epoch" and result.best_epoch == 4 and result.n_val == 0
    assert result.best_test_loss == result.test_loss[-1] and result.best_val_loss is None
    with pytest.raises(ValueError, match="test set"):
        TrainConfig(epochs=4, val_fraction=0.0, early_stopping_patience=2, **TINY)


def test_checkpoint_round_trip_and_next_day_forecast(recent_prices, tmp_path):
    config = TrainConfig(cell="gru", depth=2, norm="layer", epochs=3, grad_clip=1.0, **TINY)
    result = train_config(config, recent_prices, checkpoint_dir=tmp_path)
    path = tmp_path / f"{config.run_key()}.pt"
    assert result.checkpoint_path == str(path) and path.is_file()

    checkpoint = load_checkpoint(path)
    assert checkpoint.config == config and checkpoint.best_epoch == result.best_epoch
    assert checkpoint.feature_names == ["close"] and checkpoint.scaler.to_dict() == result.scaler
    data = build_features(recent_prices, config.feature_spec())
    predicted = checkpoint.scaler.inverse_column(
        predict_scaled(checkpoint.model, torch.from_numpy(data.X_test)).numpy(), "close"
    )
    np.testing.assert_allclose(predicted, result.predictions["predicted_usd"], rtol=1e-6)

    date, close = predict_next(path, recent_prices)
    assert date == dt.date(2025, 8, 9)  # the day after the latest price
    window = checkpoint.scaler.transform(recent_prices.tail(10).select("close").to_numpy())
    with torch.no_grad():
        expected = checkpoint.model(torch.tensor(window[None], dtype=torch.float32)).item()
    assert close == pytest.approx(checkpoint.scaler.inverse_column(np.array([expected]), "close")[0])

    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="is not a seqlab checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_result_round_trips_through_json(recent_prices):
    result = train_config(TrainConfig(epochs=2, **TINY), recent_prices)
    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    for key in ("train_loss", "test_loss", "best_test_loss", "test_rmse_usd", "baseline_rmse_usd", "status"):
        assert key in payload
    assert TrainResult.from_dict(payload).to_dict() == payload
    assert payload["determinism"]["device_type"] == "cpu" and payload["determinism"]["seed"] == 0
    assert payload["torch_version"] == str(torch.__version__)


def test_tune_malloc_applies_on_linux_glibc():
    import platform

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert tune_malloc() is True
    else:
        assert tune_malloc() is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_run_records_determinism_and_repeats(recent_prices):
    config = TrainConfig(cell="lstm", depth=2, norm="batch", epochs=3, hidden=8, lookback=10,
                         batch_size=32, device="cuda")
    first = train_config(config, recent_prices)
    second = train_config(config, recent_prices)
    assert first.status == "ok" and first.device.startswith("cuda")
    assert first.determinism["cudnn.deterministic"] is True
    assert first.determinism["use_deterministic_algorithms"] == "warn_only"
    assert "CUBLAS_WORKSPACE_CONFIG" in first.determinism
    assert first.train_loss == second.train_loss and first.test_loss == second.test_loss
