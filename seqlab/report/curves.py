"""Loss curves summarised across seeds: mean line and min-max band per epoch, per group."""

from __future__ import annotations

import polars as pl

GRID_KEYS = ("cell", "depth")
LOSSES = ("test_loss", "train_loss")


def seed_bands(
    epochs: pl.DataFrame, loss: str, *, line: str, max_points: int | None = None
) -> pl.DataFrame:
    """Per (cell, depth, ``line`` value, epoch): mean, min and max of ``loss`` across runs.

    ``line`` is the column that gets one line per value (``norm`` or ``feature_set``); the
    runs averaged are the seeds (and, for ``feature_set`` lines, the norms too). Missing and
    non-finite losses are skipped. With ``max_points``, long curves are cut into at most
    that many consecutive epoch buckets: the line keeps the bucket's mean, the band its
    extremes, so a spike still shows in the band after thinning.
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss column {loss!r}; allowed: {', '.join(LOSSES)}")
    keys = [*GRID_KEYS, line]
    finite = epochs.filter(pl.col(loss).is_not_null() & pl.col(loss).is_finite())
    bands = (
        finite.group_by([*keys, "epoch"])
        .agg(
            mean=pl.col(loss).mean(),
            low=pl.col(loss).min(),
            high=pl.col(loss).max(),
            runs=pl.len(),
        )
        .sort([*keys, "epoch"])
    )
    if max_points is None or bands.is_empty():
        return bands
    longest = int(bands["epoch"].max())
    width = max(1, -(-longest // max_points))  # ceil division
    if width == 1:
        return bands
    return (
        bands.with_columns(bucket=(pl.col("epoch") - 1) // width)
        .group_by([*keys, "bucket"])
        .agg(
            epoch=pl.col("epoch").max(),
            mean=pl.col("mean").mean(),
            low=pl.col("low").min(),
            high=pl.col("high").max(),
            runs=pl.col("runs").min(),
        )
        .drop("bucket")
        .sort([*keys, "epoch"])
    )


def panel_keys(epochs: pl.DataFrame) -> tuple[list[str], list[int]]:
    """The cells (rows of the small multiples) and depths (columns), in a stable order."""
    cell_order = {"rnn": 0, "lstm": 1, "gru": 2}
    cells = sorted(epochs["cell"].unique().to_list(), key=lambda c: (cell_order.get(c, 9), c))
    depths = sorted(epochs["depth"].unique().to_list())
    return cells, depths


def line_values(epochs: pl.DataFrame, line: str) -> list[str]:
    """The values that get a line each, in the order the legend shows them."""
    order = {"none": 0, "batch": 1, "layer": 2, "close": 0, "all": 1}
    return sorted(epochs[line].unique().to_list(), key=lambda v: (order.get(v, 9), v))
