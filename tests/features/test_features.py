"""Feature sets, the chronological split, train-only scaling and windows."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from seqlab.features.scaling import ScalerParams, fit_scaler
from seqlab.features.sets import select_feature_columns
from seqlab.features.windows import FeatureSpec, build_features, build_latest_window
from seqlab.schemas.canonical import PRICE_COLUMNS


def _scaled_close(data, values: np.ndarray) -> np.ndarray:
    return data.scaler.transform_column(values, "close")


def test_close_set_is_close_only(coincodex_prices):
    assert select_feature_columns(coincodex_prices, "close") == ["close"]


def test_all_set_takes_every_complete_price_column(coincodex_prices):
    assert select_feature_columns(coincodex_prices, "all") == list(PRICE_COLUMNS)
    # A partly NULL column (a source without market cap) is dropped, not imputed.
    holed = coincodex_prices.with_columns(
        pl.when(pl.col("date").dt.year() == 2016).then(None).otherwise(pl.col("market_cap")).alias("market_cap")
    ).drop("volume")
    assert select_feature_columns(holed, "all") == ["open", "high", "low", "close"]


def test_unknown_feature_set_lists_allowed(coincodex_prices):
    with pytest.raises(ValueError, match=r"unknown feature set 'hlc'.*all, close, ohlc"):
        select_feature_columns(coincodex_prices, "hlc")


def test_ohlc_is_the_four_prices_and_refuses_a_source_without_them(coincodex_prices):
    assert select_feature_columns(coincodex_prices, "ohlc") == ["open", "high", "low", "close"]
    with pytest.raises(ValueError, match=r"feature set 'ohlc' needs complete columns.*open"):
        select_feature_columns(coincodex_prices.drop("open"), "ohlc")


def test_window_counts_and_contents(coincodex_prices):
    spec = FeatureSpec(feature_set="all", lookback=30, horizon=1)
    data = build_features(coincodex_prices, spec)
    n = len(coincodex_prices)  # 3,654 days
    n_test = round(n * 0.2)
    n_train = n - n_test
    assert data.X_train.shape == (n_train - 30, 30, 6)
    assert data.X_test.shape == (n_test, 30, 6)
    assert data.y_train.shape == (n_train - 30,) and data.y_test.shape == (n_test,)
    assert data.X_val.shape == (0, 30, 6)
    assert all(a.dtype == np.float32 for a in (data.X_train, data.y_train, data.X_test, data.y_test))

    close = coincodex_prices.get_column("close").to_numpy()
    dates = coincodex_prices.get_column("date").to_numpy().astype("datetime64[D]")
    close_col = data.feature_names.index("close")
    # First test window: target is the first test day, inputs are the 30 days before it.
    first = n_train
    assert data.test_dates[0] == dates[first]
    np.testing.assert_allclose(data.X_test[0, :, close_col], _scaled_close(data, close[first - 30 : first]), rtol=1e-6)
    assert data.y_test[0] == pytest.approx(_scaled_close(data, close[first]), rel=1e-6)
    assert data.test_actual_usd[0] == close[first]
    assert data.test_last_close_usd[0] == close[first - 1]
    # The scaled target maps back to USD.
    np.testing.assert_allclose(data.scaler.inverse_column(data.y_test, "close"), data.test_actual_usd, rtol=1e-5)


def test_horizon_moves_the_target_not_the_inputs(coincodex_prices):
    data = build_features(coincodex_prices, FeatureSpec(lookback=10, horizon=3))
    close = coincodex_prices.get_column("close").to_numpy()
    n_train = len(close) - round(len(close) * 0.2)
    assert data.X_train.shape[0] == n_train - 10 - 3 + 1
    # Window 0 covers days 0..9 and predicts day 12.
    np.testing.assert_allclose(data.X_train[0, :, 0], _scaled_close(data, close[:10]), rtol=1e-6)
    assert data.y_train[0] == pytest.approx(_scaled_close(data, close[12]), rel=1e-6)
    # The last-known close of a test target is 3 days before it.
    assert data.test_last_close_usd[0] == close[n_train - 3]


def test_split_never_leaks(coincodex_prices):
    spec = FeatureSpec(feature_set="all", lookback=30, val_fraction=0.1)
    data = build_features(coincodex_prices, spec)
    split = data.fingerprint["split"]
    train_last = np.datetime64(split["train"]["last"])
    assert data.test_dates.min() > np.datetime64(split["val"]["last"]) > train_last

    # Changing every price after the train period leaves the scaler and train windows untouched.
    later = pl.col("date") > pl.lit(train_last.astype(object))
    shocked = coincodex_prices.with_columns(
        [pl.when(later).then(pl.col(c) * 10 + 1).otherwise(pl.col(c)).alias(c) for c in PRICE_COLUMNS]
    )
    shocked_data = build_features(shocked, spec)
    assert shocked_data.scaler == data.scaler
    np.testing.assert_array_equal(shocked_data.X_train, data.X_train)
    np.testing.assert_array_equal(shocked_data.y_train, data.y_train)
    assert not np.array_equal(shocked_data.y_test, data.y_test)
    # Min-max fitted on train rows only: train inputs span exactly [0, 1].
    assert data.X_train.min() == pytest.approx(0.0, abs=1e-6)
    assert data.X_train.max() == pytest.approx(1.0, abs=1e-6)


def test_standard_scaler_centres_train_rows(coincodex_prices):
    data = build_features(coincodex_prices, FeatureSpec(scaler="standard", lookback=5))
    close = coincodex_prices.get_column("close").to_numpy()
    n_train = len(close) - round(len(close) * 0.2)
    train_scaled = _scaled_close(data, close[:n_train])
    assert train_scaled.mean() == pytest.approx(0.0, abs=1e-9)
    assert train_scaled.std() == pytest.approx(1.0, abs=1e-9)


def test_scaler_params_round_trip_and_constant_column():
    values = np.array([[1.0, 5.0], [3.0, 5.0], [2.0, 5.0]])
    params = fit_scaler(values, ["close", "volume"], "minmax")
    assert params.offset == (1.0, 5.0) and params.scale == (2.0, 1.0)  # constant column: scale 1
    restored = ScalerParams.from_dict(json.loads(json.dumps(params.to_dict())))
    assert restored == params
    np.testing.assert_allclose(restored.transform(values)[:, 0], [0.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="unknown scaler 'robust'; allowed: minmax, standard"):
        fit_scaler(values, ["close", "volume"], "robust")


def test_fingerprint_key_is_stable_and_specific(coincodex_prices):
    spec = FeatureSpec(lookback=20)
    first = build_features(coincodex_prices, spec)
    assert build_features(coincodex_prices, spec).key == first.key
    assert json.loads(json.dumps(first.fingerprint)) == first.fingerprint
    assert build_features(coincodex_prices, FeatureSpec(lookback=20, scaler="standard")).key != first.key
    assert build_features(coincodex_prices, FeatureSpec(lookback=20, test_fraction=0.25)).key != first.key
    nudged = coincodex_prices.with_columns(pl.col("close") * 1.0001)
    assert build_features(nudged, spec).key != first.key


def test_too_few_rows_is_a_clear_error(coincodex_prices):
    with pytest.raises(ValueError, match=r"too few rows: 35 days give 28 train days.*lookback 30"):
        build_features(coincodex_prices.head(35), FeatureSpec(lookback=30))


def test_bad_frames_are_refused(coincodex_prices):
    with pytest.raises(ValueError, match="strictly ascending"):
        build_features(coincodex_prices.reverse(), FeatureSpec())
    with pytest.raises(ValueError, match="several symbols"):
        two = coincodex_prices.with_columns(
            pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.lit("BTC")).otherwise(pl.col("symbol")).alias("symbol")
        )
        build_features(two, FeatureSpec())
    with pytest.raises(ValueError, match="'close' is missing or has NULL/NaN"):
        build_features(coincodex_prices.with_columns(pl.lit(None, pl.Float64).alias("close")), FeatureSpec())
    infinite = coincodex_prices.with_columns(
        pl.when(pl.int_range(pl.len()) == 100).then(float("inf")).otherwise(pl.col("volume")).alias("volume")
    )
    with pytest.raises(ValueError, match=r"non-finite value in column 'volume' on 2015-11-16"):
        build_features(infinite, FeatureSpec(feature_set="all"))


def test_spec_validation_names_the_field():
    with pytest.raises(ValueError, match="lookback must be >= 1"):
        FeatureSpec(lookback=0)
    with pytest.raises(ValueError, match="test_fraction must be in"):
        FeatureSpec(test_fraction=1.0)
    with pytest.raises(ValueError, match="unknown scaler 'log'"):
        FeatureSpec(scaler="log")


def test_latest_window_uses_the_stored_scaler(coincodex_prices):
    data = build_features(coincodex_prices, FeatureSpec(feature_set="all", lookback=30))
    window, last_date = build_latest_window(coincodex_prices, list(data.feature_names), data.scaler, 30)
    assert window.shape == (1, 30, 6) and window.dtype == np.float32
    assert last_date == np.datetime64("2025-08-08")
    expected = data.scaler.transform(coincodex_prices.tail(30).select(data.feature_names).to_numpy())
    np.testing.assert_allclose(window[0], expected, rtol=1e-6)
    with pytest.raises(ValueError, match="lack the model's feature columns"):
        build_latest_window(coincodex_prices.drop("volume"), list(data.feature_names), data.scaler, 30)
