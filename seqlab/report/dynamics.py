"""Training-dynamics metrics read from each run's own curve (pure).

A run's speed and stability must not follow from its loss *level* (a curve x 0.5 is no
faster and no noisier) nor from its *length* (the same curve run for 120 or 2,000 epochs
reads the same). So everything here is on ``log(loss)``, relative to the run itself, and
over fixed numbers of epochs:

- **epochs to close a share of its own gap** (:func:`epochs_to_gap_share`): the run's
  early level is the median log loss of its first ``EARLY_EPOCHS`` epochs, its plateau the
  lowest median log loss it held over ``PLATEAU_EPOCHS`` consecutive epochs. The epoch
  (interpolated) at which its centred ``SMOOTH_EPOCHS``-epoch median first closes 50%
  (``half``: how fast it learns early) or 90% (``gap90``: how fast it converges) of the
  gap between the two. Multiplying a curve by a constant shifts both ends equally;
  running on after the plateau changes neither.
- **late log-loss wobble**: over the last ``min(50, n // 2)`` epochs (at least 5), the
  standard deviation of the epoch-to-epoch change of ``log(loss)``, divided by sqrt(2):
  0.05 = about 5% independent noise per epoch at any level. Differencing removes a smooth
  trend (a still-falling loss changes by nearly the same step each epoch), so the wobble
  does not measure convergence.
- **loss at epoch E** (E = 10, 50, 200) and the run's minimum: its *level*, shown beside
  the speed and compared separately.
- **diverged**: a run whose status is ``diverged`` or whose curve holds a non-finite or
  non-positive loss. Its metrics are read on its finite epochs; the claims count it as the
  least stable run (seqlab.report.claims), never drop it.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

FIXED_EPOCHS = (10, 50, 200)
LATE_EPOCHS = 50
MIN_LATE_EPOCHS = 5
EARLY_EPOCHS = 3
PLATEAU_EPOCHS = 20
SMOOTH_EPOCHS = 5
GAP_SHARES = {"half": 0.5, "gap90": 0.9}
LOSSES = ("train", "test")

DEFINITIONS = {
    "epochs to close 50% / 90% of its own gap": (
        f"the epoch (interpolated) at which a run's log loss (centred median of "
        f"{SMOOTH_EPOCHS} epochs) first closes that share of the gap between its early level "
        f"(median log loss of epochs 1-{EARLY_EPOCHS}) and its plateau (the lowest median log "
        f"loss it held over {PLATEAU_EPOCHS} consecutive epochs); free of the loss level and "
        "of the run length once the run has levelled off"),
    "late log-loss wobble": (
        f"std of the epoch-to-epoch change of log(loss) over the last min({LATE_EPOCHS}, n/2) "
        f"epochs (at least {MIN_LATE_EPOCHS}), / sqrt(2); 0.05 = about 5% epoch-to-epoch noise "
        "at any loss level; a smooth trend does not count"),
    "loss at epoch E": "the train or test loss (MSE on the scaled close) after exactly E "
                       "epochs (E = 10, 50, 200): the level, compared apart from the speed",
    "diverged": "status 'diverged' or a non-finite loss in its curve; counted as the least "
                "stable run, never dropped",
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


def nonfinite_runs(epochs: pl.DataFrame) -> set[str]:
    """Runs whose recorded curve holds a missing, non-finite or non-positive loss."""
    if epochs.is_empty():
        return set()
    bad = pl.lit(False)
    for loss in LOSSES:
        value = pl.col(f"{loss}_loss").cast(pl.Float64)
        bad = bad | value.is_null() | ~value.is_finite() | (value <= 0)
    return set(epochs.filter(bad)["run_id"].cast(pl.String).to_list())


def rolling_median(values: np.ndarray, window: int, *, centred: bool) -> np.ndarray:
    """Median over ``window`` epochs (centred or trailing); shorter near the ends."""
    n = values.size
    if n == 0 or window <= 1:
        return values.copy()
    half = window // 2 if centred else window - 1
    out = np.empty(n)
    if n >= window:  # full windows at once; only the ends loop
        full = np.median(np.lib.stride_tricks.sliding_window_view(values, window), axis=1)
        out[half:half + full.size] = full
        ends = [*range(half), *range(half + full.size, n)]
    else:
        ends = range(n)
    for i in ends:
        lo = i - half
        out[i] = np.median(values[max(0, lo):min(n, lo + window)])
    return out


def loss_at(values: np.ndarray, epoch: int) -> float | None:
    return float(values[epoch - 1]) if values.size >= epoch else None


def epochs_to_gap_share(values: np.ndarray, share: float) -> float | None:
    """Epoch (1-based, interpolated) at which the run has closed ``share`` of the gap
    between its own early level and its own plateau, on log loss; None when the run is
    too short or never fell."""
    return epochs_to_gap_shares(values, (share,))[0]


def epochs_to_gap_shares(values: np.ndarray, shares) -> list[float | None]:
    """:func:`epochs_to_gap_share` for several shares, reading the curve once."""
    if values.size < 2 * EARLY_EPOCHS:
        return [None] * len(shares)
    logs = np.log(values)
    early = float(np.median(logs[:EARLY_EPOCHS]))
    window = min(PLATEAU_EPOCHS, values.size // 2)
    held = np.median(np.lib.stride_tricks.sliding_window_view(logs, window), axis=1)
    gap = early - float(held.min())
    if not gap > 0:
        return [None] * len(shares)
    smooth = rolling_median(logs, SMOOTH_EPOCHS, centred=True)
    out: list[float | None] = []
    for share in shares:
        target = early - share * gap
        below = np.flatnonzero(smooth <= target)
        if below.size == 0:
            out.append(None)
            continue
        i = int(below[0])
        if i == 0:
            out.append(1.0)
            continue
        before, after = smooth[i - 1], smooth[i]
        out.append(float(i + (before - target) / (before - after)))
    return out


def late_wobble(values: np.ndarray) -> float | None:
    """Std of the epoch-to-epoch change of log(loss) over the last min(50, n // 2) epochs,
    / sqrt(2)."""
    window = min(LATE_EPOCHS, values.size // 2)
    if window < MIN_LATE_EPOCHS:
        return None
    steps = np.diff(np.log(values[-window:]))
    return float(steps.std(ddof=1) / math.sqrt(2))


def run_dynamics_frame(epochs: pl.DataFrame,
                       per_run: dict[str, dict[str, np.ndarray]] | None = None) -> pl.DataFrame:
    """One row per run: its speed (epochs to close 50% / 90% of its own gap), late
    wobble, losses at fixed epochs, minimum and last loss, and whether it diverged."""
    per_run = curves(epochs) if per_run is None else per_run
    broken = nonfinite_runs(epochs)
    rows = []
    for run_id, losses in per_run.items():
        row: dict[str, object] = {"run_id": run_id, "epochs_recorded": int(losses["train"].size),
                                  "nonfinite": run_id in broken}
        for loss in LOSSES:
            values = losses[loss]
            speeds = epochs_to_gap_shares(values, tuple(GAP_SHARES.values()))
            for name, epochs_to in zip(GAP_SHARES, speeds, strict=True):
                row[f"{name}_{loss}_epochs"] = epochs_to
            for e in FIXED_EPOCHS:
                row[f"{loss}_loss_at_{e}"] = loss_at(values, e)
            row[f"late_{loss}_wobble"] = late_wobble(values)
            row[f"min_{loss}_loss"] = float(values.min()) if values.size else None
            row[f"final_{loss}_loss"] = float(values[-1]) if values.size else None
        rows.append(row)
    return pl.DataFrame(rows, schema=dynamics_schema())


def dynamics_schema() -> dict[str, pl.DataType]:
    schema: dict[str, pl.DataType] = {"run_id": pl.String, "epochs_recorded": pl.Int64,
                                      "nonfinite": pl.Boolean}
    for loss in LOSSES:
        schema.update({f"{name}_{loss}_epochs": pl.Float64 for name in GAP_SHARES})
        schema.update({f"{loss}_loss_at_{e}": pl.Float64 for e in FIXED_EPOCHS})
        schema[f"late_{loss}_wobble"] = pl.Float64
        schema[f"min_{loss}_loss"] = pl.Float64
        schema[f"final_{loss}_loss"] = pl.Float64
    return schema
