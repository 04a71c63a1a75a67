"""Dataset-level checks on a symbol's stored prices, run as a Great Expectations 1.x suite.

Row rules (``seqlab.schemas.prices``) judge one row at a time; these expectations judge
the series as a whole: is there enough of it, are dates unique and ordered, does close sit
inside [low, high], are there holes, implausible jumps, or stale data. Critical
expectations gate the dataset; warnings are reported but do not fail it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from seqlab.checks.dataset_text import describe_result
from seqlab.schemas.row_rules import OHLC_REL_TOLERANCE
from seqlab.schemas.symbols import SymbolError, check_symbol

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core import ExpectationValidationResult
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.expectations import Expectation

REQUIRED_COLUMNS: tuple[str, ...] = ("date", "open", "high", "low", "close")
CRITICAL = "critical"
WARNING = "warning"


@dataclass(frozen=True)
class DatasetCheckConfig:
    """Thresholds for the dataset expectations."""

    min_rows: int = 100
    max_gap_days: int = 3
    max_abs_daily_return: float = 0.75
    max_staleness_days: int = 30  # the latest date may lag ``today`` by at most this much


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's verdict with a short human account of what was seen."""

    name: str
    severity: str  # "critical" | "warning"
    success: bool
    observed: str


@dataclass
class DatasetValidation:
    """All expectation outcomes for one symbol; ``passed`` when every critical one held."""

    symbol: str
    passed: bool
    outcomes: list[ExpectationOutcome]
    docs_path: Path | None

    def failed(self, severity: str | None = None) -> list[ExpectationOutcome]:
        """Outcomes that did not succeed, optionally only those of ``severity``."""
        return [o for o in self.outcomes if not o.success and severity in (None, o.severity)]


def data_docs_dir(output_dir: Path, symbol: str) -> Path:
    """``<output_dir>/data_docs/<symbol>``, the folder one symbol's Data Docs are built in.

    The symbol is checked first (SymbolError), and the folder, symlinks resolved, must sit
    directly inside ``<output_dir>/data_docs``: GX writes wherever it is pointed, so a symbol
    such as ``../../elsewhere`` or a planted symlink must never move the site out.
    """
    root = (Path(output_dir) / "data_docs").resolve()
    docs = (root / check_symbol(symbol)).resolve()
    if docs.parent != root:
        raise SymbolError(f"data docs of {symbol!r} would be written to {docs}, outside {root}")
    return docs


def build_check_frame(prices: pl.DataFrame, today: dt.date) -> pl.DataFrame:
    """The columns the expectations read, derived with polars (GX only compares them).

    ``gap_days``: days since the previous row's date (null on the first row).
    ``daily_return``: close over the previous row's close, minus 1.
    ``close_outside_range``: how far close lies outside [low, high], relative to the
    larger of the two values compared (<= 0 inside; null when neither bound is present).
    ``age_days``: days from each date to ``today``.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in prices.columns]
    if missing:
        raise ValueError(f"prices lack column(s) {missing} needed by the dataset checks")
    close, high, low = pl.col("close"), pl.col("high"), pl.col("low")
    # Scaled like the row rules' tolerance, so the two agree on what "outside" means.
    above = (close - high) / pl.max_horizontal(close.abs(), high.abs())
    below = (low - close) / pl.max_horizontal(low.abs(), close.abs())
    outside = pl.max_horizontal(above, below)
    return prices.select(
        "date",
        "close",
        pl.col("date").diff().dt.total_days().alias("gap_days"),
        (close / close.shift(1) - 1.0).alias("daily_return"),
        outside.alias("close_outside_range"),
        (pl.lit(today) - pl.col("date")).dt.total_days().alias("age_days"),
    )


def build_expectations(config: DatasetCheckConfig) -> list[Expectation]:
    """The suite; each expectation carries its name in ``meta`` and its GX ``severity``."""
    import great_expectations.expectations as gxe

    def named(name: str, severity: str, expectation: Expectation) -> Expectation:
        expectation.meta = {"name": name}
        expectation.severity = severity
        return expectation

    limit = config.max_abs_daily_return
    return [
        named(
            "enough_rows", CRITICAL, gxe.ExpectTableRowCountToBeBetween(min_value=config.min_rows)
        ),
        named("unique_dates", CRITICAL, gxe.ExpectColumnValuesToBeUnique(column="date")),
        named("increasing_dates", CRITICAL, gxe.ExpectColumnValuesToBeIncreasing(column="date")),
        named(
            "close_within_low_high",
            CRITICAL,
            # Same float-noise slack as the row rules, so a stored row never fails here.
            gxe.ExpectColumnValuesToBeBetween(
                column="close_outside_range", max_value=OHLC_REL_TOLERANCE
            ),
        ),
        named(
            "no_long_gaps",
            WARNING,
            gxe.ExpectColumnValuesToBeBetween(column="gap_days", max_value=config.max_gap_days),
        ),
        named(
            "plausible_daily_returns",
            WARNING,
            gxe.ExpectColumnValuesToBeBetween(
                column="daily_return", min_value=-limit, max_value=limit
            ),
        ),
        named(
            "fresh_data",
            WARNING,
            gxe.ExpectColumnMinToBeBetween(column="age_days", max_value=config.max_staleness_days),
        ),
    ]


def _build_context(docs_dir: Path | None) -> AbstractDataContext:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    sites = {}
    if docs_dir is not None:
        sites["seqlab"] = {
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                # GX refuses a relative base directory without a project root.
                "base_directory": str(Path(docs_dir).resolve()),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites,
        analytics_enabled=False,  # no phoning home from a pipeline run
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _run_suite(
    context: AbstractDataContext, frame: pd.DataFrame, symbol: str, config: DatasetCheckConfig
) -> list[ExpectationValidationResult]:
    import great_expectations as gx

    # GX names become Data Docs paths: keep them to safe characters.
    name = re.sub(r"[^A-Za-z0-9_-]", "_", symbol)
    asset = context.data_sources.add_pandas(f"{name}_prices").add_dataframe_asset(name)
    batch = asset.add_batch_definition_whole_dataframe("all_rows")
    suite = context.suites.add(gx.ExpectationSuite(name=f"{name}_dataset"))
    for expectation in build_expectations(config):
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{name}_dataset_check", data=batch, suite=suite)
    )
    result = definition.run(
        batch_parameters={"dataframe": frame},
        # SUMMARY caps the listed failures at 20. No unexpected_index_column_names: GX
        # would fetch those per failing row in Python (>3 min for 1M bad rows).
        result_format={"result_format": "SUMMARY"},
    )
    return list(result.results)


def check_dataset(
    prices: pl.DataFrame,
    *,
    symbol: str,
    config: DatasetCheckConfig = DatasetCheckConfig(),
    today: dt.date | None = None,
    docs_dir: Path | None = None,
) -> DatasetValidation:
    """Run the dataset expectations on ``prices`` (canonical columns, ascending by date).

    Critical: enough_rows, unique_dates, increasing_dates, close_within_low_high.
    Warnings: no_long_gaps, plausible_daily_returns, fresh_data (``today`` defaults to the
    UTC date). With ``docs_dir``, GX Data Docs for this run are written there and
    ``docs_path`` is its index.html (the index lists this run only).
    """
    today = today or dt.datetime.now(dt.UTC).date()
    checked = build_check_frame(prices, today)
    context = _build_context(docs_dir)
    results = _run_suite(context, checked.to_pandas(), symbol, config)
    dates = checked.get_column("date")

    limits = {**asdict(config), "today": today}
    outcomes = []
    for result in results:
        expectation = result.expectation_config
        severity = str(getattr(expectation.severity, "value", expectation.severity))
        name = expectation.meta["name"]
        observed = describe_result(name, result.to_json_dict(), limits, dates)
        outcomes.append(ExpectationOutcome(name, severity, bool(result.success), observed))

    docs_path = None
    if docs_dir is not None:
        context.build_data_docs(site_names=["seqlab"])
        docs_path = Path(docs_dir).resolve() / "index.html"
    passed = all(o.success for o in outcomes if o.severity == CRITICAL)
    return DatasetValidation(symbol=symbol, passed=passed, outcomes=outcomes, docs_path=docs_path)
