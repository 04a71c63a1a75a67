"""Forecast metrics in USD, shared by the models and the persistence baseline."""

from __future__ import annotations

import numpy as np


def forecast_metrics(
    actual: np.ndarray, predicted: np.ndarray, last_known: np.ndarray
) -> dict[str, float]:
    """RMSE, MAE, MAPE (percent) and directional accuracy of USD forecasts.

    Directional accuracy is the share of days where ``sign(predicted - last_known)``
    equals ``sign(actual - last_known)``. A flat forecast (sign 0) is only right on a
    day the price did not move, so the persistence baseline scores near 0 here by
    construction: it never calls a direction.
    """
    actual = np.asarray(actual, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    last_known = np.asarray(last_known, dtype=np.float64)
    if not actual.shape == predicted.shape == last_known.shape or actual.ndim != 1:
        raise ValueError(
            f"need three equal 1-d arrays, got {actual.shape}, {predicted.shape}, {last_known.shape}"
        )
    if actual.size == 0:
        raise ValueError("no forecasts to score")
    if np.any(actual == 0):
        raise ValueError("MAPE is undefined: an actual price is 0")
    error = predicted - actual
    return {
        "rmse_usd": float(np.sqrt(np.mean(error**2))),
        "mae_usd": float(np.mean(np.abs(error))),
        "mape_pct": float(np.mean(np.abs(error) / np.abs(actual)) * 100.0),
        "directional_accuracy": float(
            np.mean(np.sign(predicted - last_known) == np.sign(actual - last_known))
        ),
    }
