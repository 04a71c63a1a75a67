"""PNG figures for report.md, drawn with matplotlib's object API (no pyplot global state)."""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass

import polars as pl
from matplotlib import dates as mdates
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from seqlab.report.curves import line_values, panel_keys, seed_bands
from seqlab.report.style import (
    ACTUAL_COLOUR,
    BASELINE_COLOUR,
    LINE_TITLES,
    LOSS_TITLES,
    PREDICTED_COLOUR,
    colour_for,
    config_label,
    panel_title,
)

DPI = 110
PNG_POINTS = 600  # epoch buckets per curve; enough for a 2,000-epoch study at print size
ZOOM_DAYS = 90


@dataclass(frozen=True)
class FigurePNG:
    """A finished figure: file name (beside report.md), caption, PNG bytes."""

    name: str
    caption: str
    png: bytes


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # Constrained layout already fits everything; bbox_inches="tight" would draw it twice.
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def loss_grid(epochs: pl.DataFrame, loss: str, line: str, caption: str, name: str) -> FigurePNG:
    """Small multiples, cell (rows) × depth (columns), one line per ``line`` value with a band."""
    bands = seed_bands(epochs, loss, line=line, max_points=PNG_POINTS)
    cells, depths = panel_keys(epochs)
    values = line_values(epochs, line)
    figure = Figure(figsize=(3.2 * len(depths) + 0.8, 2.4 * len(cells) + 0.9), layout="constrained")
    axes = figure.subplots(len(cells), len(depths), sharex=True, sharey=True, squeeze=False)
    for r, cell in enumerate(cells):
        for c, depth in enumerate(depths):
            ax = axes[r][c]
            for i, value in enumerate(values):
                part = bands.filter(
                    (pl.col("cell") == cell) & (pl.col("depth") == depth) & (pl.col(line) == value)
                )
                if part.is_empty():
                    continue
                colour = colour_for(value, i)
                x = part["epoch"].to_numpy()
                ax.fill_between(x, part["low"].to_numpy(), part["high"].to_numpy(),
                                color=colour, alpha=0.18, linewidth=0)
                ax.plot(x, part["mean"].to_numpy(), color=colour, linewidth=1.4, label=value)
            ax.set_yscale("log")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 2.5
            ax.set_title(panel_title(cell, depth), fontsize=9)
            ax.grid(True, which="major", alpha=0.3)
            if r == len(cells) - 1:
                ax.set_xlabel("epoch")
            if c == 0:
                ax.set_ylabel(f"{LOSS_TITLES[loss].lower()} (log)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, title=LINE_TITLES.get(line, line), loc="outside right upper")
    # Wrapped to the panels' width, so a long caption never runs into the legend.
    panels_inches = figure.get_size_inches()[0] - 1.6  # less the legend column
    figure.suptitle(textwrap.fill(caption, max(30, int(panels_inches * 9))), fontsize=10)
    return FigurePNG(name, caption, _png(figure))


def loss_figures(epochs: pl.DataFrame) -> list[FigurePNG]:
    """Test and train curves per feature set (lines per norm), then close vs all (lines per set)."""
    figures = []
    feature_sets = line_values(epochs, "feature_set")
    for loss in ("test_loss", "train_loss"):
        for feature_set in feature_sets:
            part = epochs.filter(pl.col("feature_set") == feature_set)
            caption = (f"{LOSS_TITLES[loss]}, {feature_set} features: mean across seeds, "
                       "band = min to max")
            figures.append(loss_grid(part, loss, "norm", caption, f"{loss}_{feature_set}.png"))
    if len(feature_sets) > 1:
        caption = "Test loss, close vs all features: mean across norms and seeds, band = min to max"
        figures.append(loss_grid(epochs, "test_loss", "feature_set", caption,
                                 "test_loss_features.png"))
    return figures


def _usd(value: float) -> str:
    # A bare "$" would start matplotlib mathtext.
    return f"\\${value:,.0f}"


def forecast_figure(forecasts: list[tuple[dict, pl.DataFrame]]) -> FigurePNG | None:
    """Actual vs predicted close (USD) per cell's best config: the whole test period on the
    left, its last ``ZOOM_DAYS`` days on the right (where a one-day lag becomes visible)."""
    if not forecasts:
        return None
    figure = Figure(figsize=(13, 2.7 * len(forecasts) + 0.7), layout="constrained")
    axes = figure.subplots(len(forecasts), 2, squeeze=False, width_ratios=(2.2, 1))
    for row, (run, frame) in zip(axes, forecasts, strict=True):
        for ax, part in ((row[0], frame), (row[1], frame.tail(ZOOM_DAYS))):
            dates = part["date"].to_numpy()
            ax.plot(dates, part["actual_usd"].to_numpy(), color=ACTUAL_COLOUR, linewidth=1.2,
                    label="actual")
            ax.plot(dates, part["baseline_usd"].to_numpy(), color=BASELINE_COLOUR, linewidth=1.0,
                    linestyle=":", label="persistence (tomorrow = today)")
            ax.plot(dates, part["predicted_usd"].to_numpy(), color=PREDICTED_COLOUR,
                    linewidth=1.0, label="model")
            ax.grid(True, alpha=0.3)
            locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        row[0].set_title(f"{config_label(run)} · seed {run['seed']} · RMSE "
                         f"{_usd(run['test_rmse_usd'])} vs persistence "
                         f"{_usd(run['baseline_rmse_usd'])}", fontsize=9, loc="left")
        row[1].set_title(f"last {ZOOM_DAYS} days", fontsize=9)
        row[0].set_ylabel("close (USD)")
    axes[0][0].legend(loc="upper left", fontsize=8)
    caption = ("Forecasts on the test period: best config of each cell on validation loss "
               "(its seed with the lowest validation loss)")
    figure.suptitle(caption, fontsize=10)
    return FigurePNG("forecasts.png", caption, _png(figure))


def ratio_figure(leaderboard: pl.DataFrame) -> FigurePNG | None:
    """Test RMSE relative to persistence for every config: left of 1 beats the baseline."""
    ranked = leaderboard.filter(pl.col("rmse_ratio").is_not_null()).sort("rmse_ratio")
    if ranked.is_empty():
        return None
    labels = [config_label(r) for r in ranked.iter_rows(named=True)]
    ratios = ranked["rmse_ratio"].to_list()
    figure = Figure(figsize=(7.5, 0.26 * len(labels) + 1.2), layout="constrained")
    ax = figure.subplots()
    colours = ["#2ca02c" if r < 1 else "#d62728" for r in ratios]
    ax.barh(range(len(labels)), ratios, color=colours)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="#222222", linewidth=1)
    ax.set_xlabel("test RMSE / persistence RMSE (below 1 beats tomorrow = today)")
    ax.grid(True, axis="x", alpha=0.3)
    caption = "Every config against the persistence baseline (mean over seeds)"
    figure.suptitle(caption, fontsize=10)
    return FigurePNG("rmse_ratio.png", caption, _png(figure))
