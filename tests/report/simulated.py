"""Grids whose truth is known: runs, loss curves and forecasts drawn from stated effects.

Every run's loss level is ``0.01 x effects x exp(config effect + seed noise)``: the config
effect is shared by a config's seeds (the correlation real grids show), so a test that
treated seeds as independent would be too sure of itself. Curves fall from 5x the level
with a time constant set per norm, carry multiplicative noise set per norm, and forecasts
have day-to-day errors whose RMSE ratio to persistence is the ``model`` effect.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import numpy as np
import polars as pl

CELLS = ("rnn", "lstm", "gru")
NORMS = ("none", "batch", "layer")


def simulate_grid(
    effects: dict[str, float] | None = None, *, seed: int = 0, cells=CELLS, depths=(1, 2, 4),
    norms=NORMS, feature_sets=("close", "all"), seeds: int = 2, epochs: int = 60,
    config_sd: float = 0.3, seed_sd: float = 0.1, test_days: int = 250,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(runs, epochs, predictions) frames shaped like the report's.

    effects (all multiplicative, 1 = none): ``close`` (loss of close vs all at depth 1),
    ``close_per_depth`` (factor on log(close effect) per added layer), ``lstm``/``gru``
    (loss vs rnn), ``batch_tau``/``layer_tau`` (time constant of the fall vs none),
    ``batch_noise``/``layer_noise`` (late relative noise vs none), ``batch_level`` /
    ``layer_level`` (loss level vs none, shape and noise unchanged), ``model`` (RMSE ratio
    to persistence; ``model_<cell>`` replaces it for one cell), ``stall_none`` (1: no-norm
    runs stop falling at 3x their level), ``batch_diverge`` / ``<norm>_diverge`` (share of
    that norm's runs that diverge: training stops at a random epoch in the second half of
    the run with a non-finite loss, status 'diverged', as the engine records it).
    """
    effects = effects or {}
    rng = np.random.default_rng(seed)
    runs, curves, predictions = [], [], []
    days = pl.date_range(date(2024, 1, 1), date(2024, 1, 1) + timedelta(days=test_days - 1),
                         eager=True)
    e = np.arange(1, epochs + 1)
    for i, (cell, depth, norm, fs) in enumerate(itertools.product(cells, depths, norms, feature_sets)):
        config_effect = rng.normal(0, config_sd)
        for s in range(seeds):
            run_id = f"run{i}-{s}"
            level = 0.01 * float(np.exp(config_effect + rng.normal(0, seed_sd)))
            if fs == "close":
                close = np.log(effects.get("close", 1.0))
                level *= float(np.exp(close * effects.get("close_per_depth", 1.0) ** (depth - 1)))
            level *= effects.get(cell, 1.0)
            level *= effects.get(f"{norm}_level", 1.0)
            tau = 8.0 * effects.get(f"{norm}_tau", 1.0)
            noise = 0.05 * effects.get(f"{norm}_noise", 1.0)
            floor = 3.0 if (norm == "none" and effects.get("stall_none")) else 1.0
            shape = floor + (5.0 - floor) * np.exp(-e / tau)
            train, test, val = (level * shape * np.exp(rng.normal(0, noise, epochs))
                                for _ in range(3))
            status, stop = "ok", epochs
            if rng.random() < effects.get(f"{norm}_diverge", 0.0):
                status, stop = "diverged", int(rng.integers(epochs // 2, epochs))
                train, test, val = (np.r_[c[:stop - 1], np.nan] for c in (train, test, val))
            best = int(np.nanargmin(val))
            curves.append(pl.DataFrame({"run_id": run_id, "epoch": e[:stop], "train_loss": train,
                                        "test_loss": test, "val_loss": val}))
            base_err = rng.normal(0, 100.0, test_days)
            model_err = rng.normal(0, 100.0 * effects.get(f"model_{cell}", effects.get("model", 1.0)),
                                   test_days)
            actual = 3000 + np.cumsum(rng.normal(0, 50, test_days))
            predictions.append(pl.DataFrame({
                "run_id": run_id, "date": days, "actual_usd": actual,
                "predicted_usd": actual + model_err, "baseline_usd": actual + base_err,
            }))
            runs.append({
                "run_id": run_id, "cell": cell, "depth": depth, "norm": norm, "feature_set": fs,
                "seed": s, "status": status, "selected_on": "validation", "best_epoch": best + 1,
                "best_val_loss": float(val[best]), "best_test_loss": float(test[best]),
                "test_rmse_usd": float(np.sqrt(np.mean(model_err**2))),
                "baseline_rmse_usd": float(np.sqrt(np.mean(base_err**2))),
            })
    return pl.DataFrame(runs), pl.concat(curves), pl.concat(predictions)


def truncate(frames, epochs: int):
    """The same grid had its runs stopped after ``epochs`` epochs (its curves cut there)."""
    runs, curves, predictions = frames
    return runs, curves.filter(pl.col("epoch") <= epochs), predictions
