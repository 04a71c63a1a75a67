"""Report tables as plain data: which columns, how each number is written, what is best.

Both the HTML and the Markdown renderers use these, so the two never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

CONFIG_KEYS = ("cell", "depth", "norm", "feature_set")
CELL_ORDER = {"rnn": 0, "lstm": 1, "gru": 2}
NORM_ORDER = {"none": 0, "batch": 1, "layer": 2}


def config_order() -> list[pl.Expr]:
    """Sort keys that list configs the way the figures do: rnn, lstm, gru; none, batch, layer."""
    return [
        pl.col("cell").replace_strict(CELL_ORDER, default=9, return_dtype=pl.Int64),
        pl.col("depth"),
        pl.col("norm").replace_strict(NORM_ORDER, default=9, return_dtype=pl.Int64),
        pl.col("feature_set"),
    ]


def fmt_sig(value, digits: int = 4) -> str:
    """A number with ``digits`` significant digits (scientific when tiny or huge); '–' if missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude < 1e-3 or magnitude >= 1e6:
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def fmt_usd(value) -> str:
    return "–" if value is None else f"${value:,.2f}"


def fmt_pct(value) -> str:
    """A share in 0..1 as a percentage."""
    return "–" if value is None else f"{100 * value:.1f}%"


def fmt_ratio(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def fmt_int(value) -> str:
    return "–" if value is None else f"{int(value):,}"


def fmt_text(value) -> str:
    return "–" if value is None else str(value)


@dataclass(frozen=True)
class Column:
    """A table column: the frame column it shows, its header, and how values are written."""

    name: str
    header: str
    fmt: Callable[[object], str] = fmt_text
    numeric: bool = False
    help: str = ""


LEADERBOARD_COLUMNS = (
    Column("rank", "#", fmt_int, True, "rank on mean validation loss (never on test data)"),
    Column("cell", "cell"), Column("depth", "depth", fmt_int, True), Column("norm", "norm"),
    Column("feature_set", "features"),
    Column("n_runs", "runs", fmt_int, True),
    Column("val_loss", "val loss", fmt_sig, True, "validation loss at the selected epoch"),
    Column("best_test_loss", "test loss", fmt_sig, True, "test loss at the epoch chosen on validation"),
    Column("final_test_loss", "final test loss", fmt_sig, True),
    Column("test_rmse_usd", "RMSE", fmt_usd, True),
    Column("baseline_rmse_usd", "persistence RMSE", fmt_usd, True),
    Column("rmse_ratio", "RMSE ratio", fmt_ratio, True, "model RMSE / persistence RMSE; < 1 beats it"),
    Column("test_mae_usd", "MAE", fmt_usd, True),
    Column("baseline_mae_usd", "persistence MAE", fmt_usd, True),
    Column("mae_ratio", "MAE ratio", fmt_ratio, True),
    Column("test_directional_accuracy", "direction hit", fmt_pct, True,
           "share of test days whose up/down move the model called right"),
    Column("baseline_directional_accuracy", "persistence direction", fmt_pct, True,
           "persistence predicts no change, so it never calls a direction: 0% by construction, "
           "not a measurement"),
)  # fmt: skip

DYNAMICS_NUMBERS = ("half_train_epochs", "gap90_train_epochs", "half_test_epochs",
                    "gap90_test_epochs", "train_loss_at_50", "test_loss_at_50",
                    "late_train_wobble", "late_test_wobble", "spike_count")
_DYNAMICS = (
    Column("half_train_epochs", "train: epochs to 50%", fmt_sig, True,
           "epochs until the run's train log loss has closed 50% of the gap between its own "
           "early level and its own plateau (how fast it learns early; claim 4)"),
    Column("gap90_train_epochs", "train: epochs to 90%", fmt_sig, True,
           "epochs until it has closed 90% of that gap (how fast it converges; claim 5)"),
    Column("half_test_epochs", "test: epochs to 50%", fmt_sig, True,
           "the same on the test loss"),
    Column("gap90_test_epochs", "test: epochs to 90%", fmt_sig, True,
           "the same on the test loss"),
    Column("train_loss_at_50", "train loss @50", fmt_sig, True,
           "train loss after exactly 50 epochs: the level, apart from the speed"),
    Column("test_loss_at_50", "test loss @50", fmt_sig, True,
           "test loss after exactly 50 epochs"),
    Column("late_train_wobble", "late train wobble", fmt_sig, True,
           "std of the epoch-to-epoch change of log train loss over the last min(50, n/2) "
           "epochs, / sqrt(2): 0.05 = about 5% noise per epoch, a smooth trend not counted"),
    Column("late_test_wobble", "late test wobble", fmt_sig, True,
           "the same on the test loss (claims 4 and 5 decide on it)"),
)  # fmt: skip
_SPIKES = Column("spike_count", "spikes", fmt_sig, True,
                 "epochs whose test loss is above twice the median of the 10 before")
_DIVERGED = Column("diverged_runs", "diverged", fmt_int, True,
                   "runs that diverged (status or a non-finite loss): the least stable, "
                   "counted against their norm in claims 4 and 5")
CONFIG_DYNAMICS_COLUMNS = (
    Column("cell", "cell"), Column("depth", "depth", fmt_int, True), Column("norm", "norm"),
    Column("feature_set", "features"), *_DYNAMICS, _SPIKES, _DIVERGED,
)  # fmt: skip

RUN_DYNAMICS_COLUMNS = (
    Column("cell", "cell"), Column("depth", "depth", fmt_int, True), Column("norm", "norm"),
    Column("feature_set", "features"), Column("seed", "seed", fmt_int, True),
    Column("status", "status"),
    Column("epochs_recorded", "epochs", fmt_int, True),
    Column("selected_epoch", "selected epoch", fmt_int, True, "chosen on validation loss"),
    Column("min_test_loss", "min test loss", fmt_sig, True), *_DYNAMICS,
    Column("spike_count", "spikes", fmt_int, True, _SPIKES.help),
)  # fmt: skip


def dynamics_caption(columns: tuple[Column, ...] = CONFIG_DYNAMICS_COLUMNS) -> str:
    """What each column of the dynamics table is, from the columns themselves."""
    described = [f"{c.header}: {c.help}" for c in columns if c.help]
    return "Means over seeds. " + "; ".join(described) + "."


def run_dynamics(runs: pl.DataFrame, dynamics: pl.DataFrame, stability: pl.DataFrame) -> pl.DataFrame:
    """Per run: its factors, the level-free dynamics (seqlab.report.dynamics) and spikes."""
    spikes = stability.select("run_id", "spike_count", "spike_epochs")
    return (
        runs.select("run_id", *CONFIG_KEYS, "seed", "status", pl.col("best_epoch").alias("selected_epoch"))
        .join(dynamics, on="run_id", how="inner")
        .join(spikes, on="run_id", how="left")
        .with_columns(diverged=(pl.col("status") == "diverged") | pl.col("nonfinite").fill_null(False))
        .sort([*config_order(), pl.col("seed")])
    )


def config_dynamics(runs: pl.DataFrame) -> pl.DataFrame:
    """Per config, the mean over its seeds of every run-dynamics number."""
    return (
        runs.group_by(list(CONFIG_KEYS))
        .agg(*(pl.col(n).cast(pl.Float64).mean() for n in DYNAMICS_NUMBERS), seeds=pl.len(),
             diverged_runs=pl.col("diverged").sum())
        .sort(config_order())
    )


def best_per_cell(leaderboard: pl.DataFrame) -> pl.DataFrame:
    """The best-ranked config of every cell (ranked on validation loss; unranked without)."""
    ranked = leaderboard.filter(pl.col("val_loss").is_not_null()).sort(["rank", *CONFIG_KEYS])
    return ranked.group_by("cell", maintain_order=True).first()


def best_run_of(runs: pl.DataFrame, config: dict) -> dict | None:
    """The seed run of ``config`` with the lowest validation loss (its forecasts get plotted)."""
    match = runs.filter(
        *(pl.col(k) == config[k] for k in CONFIG_KEYS), pl.col("best_val_loss").is_not_null(),
        pl.col("test_rmse_usd").is_not_null(),
    ).sort(["best_val_loss", "seed"])
    return match.row(0, named=True) if match.height else None


def present_columns(frame: pl.DataFrame, columns: tuple[Column, ...]) -> tuple[Column, ...]:
    return tuple(c for c in columns if c.name in frame.columns)
