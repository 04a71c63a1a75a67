"""Named feature sets: which price columns a model sees.

A feature set is a function from a canonical price frame to an ordered list of column
names. The registry is a read-only mapping; a new set is one function plus one entry in
``FEATURE_SETS`` (or an extended mapping passed to :func:`select_feature_columns`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from seqlab.schemas.columns import PRICE_COLUMNS

if TYPE_CHECKING:  # the selectors only read a frame: the names check without polars
    import polars as pl

TARGET_COLUMN = "close"

FeatureSelector = Callable[["pl.DataFrame"], list[str]]


def _has_values(prices: pl.DataFrame, column: str) -> bool:
    """True when the column exists and holds no NULL or NaN."""
    if column not in prices.columns:
        return False
    values = prices.get_column(column)
    if values.null_count() > 0:
        return False
    return not (values.dtype.is_float() and bool(values.is_nan().any()))


def select_close(prices: pl.DataFrame) -> list[str]:
    """The close price alone (the study's univariate setting)."""
    return [TARGET_COLUMN]


def select_all_prices(prices: pl.DataFrame) -> list[str]:
    """Every canonical price column the data holds completely (no NULL, no NaN).

    A column that is missing or partly NULL (e.g. market_cap from a source without it) is
    left out rather than imputed, so the feature set never invents values.
    """
    return [name for name in PRICE_COLUMNS if _has_values(prices, name)]


def select_ohlc(prices: pl.DataFrame) -> list[str]:
    """Open, high, low and close: all prices, no volume or market cap. Beside ``all`` it shows
    whether volume and market cap are what makes the wider set lose. A source without the
    four is refused (not quietly narrowed), so an ``ohlc`` run always saw all four."""
    return ["open", "high", "low", TARGET_COLUMN]


FEATURE_SETS: Mapping[str, FeatureSelector] = MappingProxyType(
    {
        "close": select_close,
        "all": select_all_prices,
        "ohlc": select_ohlc,
    }
)


def select_feature_columns(
    prices: pl.DataFrame,
    feature_set: str,
    registry: Mapping[str, FeatureSelector] = FEATURE_SETS,
) -> list[str]:
    """Resolve a feature set name to the ordered feature columns for ``prices``.

    The target column (close) must always be among them and hold no NULL/NaN.
    """
    if feature_set not in registry:
        allowed = ", ".join(sorted(registry))
        raise ValueError(f"unknown feature set {feature_set!r}; allowed: {allowed}")
    if not _has_values(prices, TARGET_COLUMN):
        raise ValueError(
            f"column {TARGET_COLUMN!r} is missing or has NULL/NaN values; "
            "it is the prediction target and must be complete"
        )
    columns = registry[feature_set](prices)
    incomplete = [name for name in columns if not _has_values(prices, name)]
    if incomplete:
        raise ValueError(
            f"feature set {feature_set!r} needs complete columns, but {incomplete} "
            "are missing or hold NULL/NaN values"
        )
    if TARGET_COLUMN not in columns:
        raise ValueError(f"feature set {feature_set!r} must include {TARGET_COLUMN!r}")
    return columns
