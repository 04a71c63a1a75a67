"""Training-dynamics metrics that mean the same at 30 and at 2,000 epochs (pure).

Fractions of a run ("the first 20% of epochs") measure different things at different
run lengths, and raw loss spreads grow with the loss level. So every window here is a
fixed number of epochs, and every spread is taken on the log of the loss:

- **loss at epoch E** (E = 10, 50, 200; missing when the run is shorter): how far a run
  has come after a fixed amount of training. The claims use E = 10, or the grid's
  length when shorter (:func:`early_epoch`).
- **late log-loss wobble**: over the last ``min(50, n // 2)`` epochs of a run (at least
  5), the standard deviation of the residuals of a straight line fitted to ``log(loss)``
  against the epoch. The log makes 5% noise read the same at any loss level; the line
  takes out a loss that is still falling (an exponential decay is a straight line in log
  space), so only fluctuation remains.
- **epochs to a shared threshold** (:func:`epochs_to_shared_threshold`): for runs being
  compared, the first epoch each one's trailing 5-epoch median reaches ``1.1 x`` the
  highest smoothed minimum among them, a level every one of them reaches. A run that stalls early is not "fast" because it
  reached its own (poor) minimum soon.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

FIXED_EPOCHS = (10, 50, 200)
EARLY_EPOCH = 10
LATE_EPOCHS = 50
MIN_LATE_EPOCHS = 5
THRESHOLD_SLACK = 1.1
SMOOTH_EPOCHS = 5
LOSSES = ("train", "test")

DEFINITIONS = {
    "loss at epoch E": "the train or test loss (MSE on the scaled close) after exactly E "
                       "epochs, E = 10 (or the run length when shorter)",
    "late log-loss wobble": f"std of the residuals of a straight-line fit of log(loss) vs "
                            f"epoch over the last min({LATE_EPOCHS}, n/2) epochs "
                            f"(at least {MIN_LATE_EPOCHS}); 0.05 = about 5% epoch-to-epoch "
                            "fluctuation, whatever the loss level",
    "epochs to shared threshold": f"first epoch at which each compared run's loss (trailing "
                                  f"median of {SMOOTH_EPOCHS} epochs) is at most "
                                  f"{THRESHOLD_SLACK:g} x the highest smoothed minimum among "
                                  "the runs of that config pair, a level all of them reach",
}


def curves(epochs: pl.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """run_id -> {'train': losses, 'test': losses}, in epoch order, finite epochs only."""
    ordered = epochs.sort(["run_id", "epoch"])
    run_ids = ordered["run_id"].to_numpy()
    values = {loss: ordered[f"{loss}_loss"].cast(pl.Float64).fill_null(math.nan).to_numpy()
              for loss in LOSSES}
    if run_ids.size == 0:
        return {}
    starts = np.flatnonzero(np.r_[True, run_ids[1:] != run_ids[:-1]])
    bounds = zip(starts, [*starts[1:], run_ids.size], strict=True)
    out: dict[str, dict[str, np.ndarray]] = {}
    for start, stop in bounds:
        losses = {}
        for loss in LOSSES:
            part = values[loss][start:stop]
            losses[loss] = part[np.isfinite(part) & (part > 0)]
        out[str(run_ids[start])] = losses
    return out


def smoothed(values: np.ndarray) -> np.ndarray:
    """Trailing median over ``SMOOTH_EPOCHS`` epochs: one lucky dip is not convergence."""
    if values.size < SMOOTH_EPOCHS:
        return values
    windows = np.lib.stride_tricks.sliding_window_view(values, SMOOTH_EPOCHS)
    return np.concatenate([values[: SMOOTH_EPOCHS - 1], np.median(windows, axis=1)])


def loss_at(values: np.ndarray, epoch: int) -> float | None:
    return float(values[epoch - 1]) if values.size >= epoch else None


def late_wobble(values: np.ndarray) -> float | None:
    """Detrended std of log(loss) over the run's last min(50, n // 2) epochs."""
    window = min(LATE_EPOCHS, values.size // 2)
    if window < MIN_LATE_EPOCHS:
        return None
    tail = np.log(values[-window:])
    x = np.arange(window, dtype=float)
    slope, intercept = np.polyfit(x, tail, 1)
    residuals = tail - (slope * x + intercept)
    return float(np.sqrt((residuals**2).sum() / (window - 2)))


def early_epoch(run_lengths: list[int]) -> int:
    """The epoch the claims read early losses at: 10, or the longest run when shorter."""
    longest = max(run_lengths, default=0)
    return max(1, min(EARLY_EPOCH, longest))


def run_dynamics_frame(epochs: pl.DataFrame,
                       per_run: dict[str, dict[str, np.ndarray]] | None = None) -> pl.DataFrame:
    """One row per run: losses at the fixed epochs, the early epoch and the late wobble."""
    per_run = curves(epochs) if per_run is None else per_run
    at = early_epoch([c["train"].size for c in per_run.values()])
    rows = []
    for run_id, losses in per_run.items():
        row: dict[str, object] = {"run_id": run_id, "epochs_recorded": int(losses["train"].size),
                                  "early_epoch": at}
        for loss in LOSSES:
            values = losses[loss]
            row[f"early_{loss}_loss"] = loss_at(values, at)
            for e in FIXED_EPOCHS:
                row[f"{loss}_loss_at_{e}"] = loss_at(values, e)
            row[f"late_{loss}_wobble"] = late_wobble(values)
            row[f"min_{loss}_loss"] = float(values.min()) if values.size else None
            row[f"final_{loss}_loss"] = float(values[-1]) if values.size else None
        rows.append(row)
    schema = {"run_id": pl.String, "epochs_recorded": pl.Int64, "early_epoch": pl.Int64}
    for loss in LOSSES:
        schema[f"early_{loss}_loss"] = pl.Float64
        schema.update({f"{loss}_loss_at_{e}": pl.Float64 for e in FIXED_EPOCHS})
        schema[f"late_{loss}_wobble"] = pl.Float64
        schema[f"min_{loss}_loss"] = pl.Float64
        schema[f"final_{loss}_loss"] = pl.Float64
    return pl.DataFrame(rows, schema=schema)


def epochs_to_shared_threshold(runs: list[np.ndarray]) -> list[int] | None:
    """For curves being compared, each one's first epoch (1-based) at which its trailing
    median is at most ``THRESHOLD_SLACK`` x the highest of their smoothed minima; None if
    any curve is empty."""
    if not runs or any(r.size == 0 for r in runs):
        return None
    smooth = [smoothed(r) for r in runs]
    threshold = THRESHOLD_SLACK * max(float(r.min()) for r in smooth)
    return [int(np.argmax(r <= threshold)) + 1 for r in smooth]
