"""Prefect tasks around the forecast ledger: each wraps one runner of seqlab.runners.forecast."""

from __future__ import annotations

import datetime as dt
import logging

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from seqlab.config import Settings
from seqlab.runners.forecast import (
    ForecastRun,
    forecast_artifact,
    retrain_champions,
    run_backtest,
    score_ledger_of,
)

FORECAST_KEY = "forecast"


def _log(message: str) -> None:
    try:
        get_run_logger().info(message)
    except MissingContextError:  # a test calling .fn outside a run
        logging.getLogger("seqlab.forecast").info(message)


# No retries: a refit that failed is stored as a failed run, and a rerun on the same prices
# reuses every stored refit and writes no forecast twice, so rerunning the flow is the retry.
@task(name="retrain-champions", cache_policy=NO_CACHE)
def refit_and_forecast(settings: Settings, symbol: str, top: int, grid_id: str | None,
                       pack_mode: str, pack_size: int) -> ForecastRun:
    """Refit the champions on today's prices, forecast tomorrow, score what has arrived."""
    return retrain_champions(settings, symbol, top=top, grid_id=grid_id, pack_mode=pack_mode,
                             pack_size=pack_size, log=_log)


@task(name="walk-forward-backtest", cache_policy=NO_CACHE)
def walk_forward(settings: Settings, symbol: str, start: dt.date, end: dt.date | None, top: int,
                 grid_id: str | None, refit_every: int, epochs: int | None, pack_mode: str,
                 pack_size: int) -> ForecastRun:
    """The champions refitted every ``refit_every`` days from ``start``, every day forecast."""
    return run_backtest(settings, symbol, start=start, end=end, top=top, grid_id=grid_id,
                        refit_every=refit_every, epochs=epochs, pack_mode=pack_mode,
                        pack_size=pack_size, log=_log)


@task(name="publish-forecast", cache_policy=NO_CACHE)
def publish_forecast(settings: Settings, run: ForecastRun) -> str:
    """The ``forecast`` artifact: the forecasts just made and the track record so far."""
    markdown = forecast_artifact(settings, run)
    artifact_id = create_markdown_artifact(
        key=FORECAST_KEY, markdown=markdown,
        description=f"{run.symbol}: {run.summary()}")
    return str(artifact_id)


@task(name="score-forecasts", cache_policy=NO_CACHE)
def score_ledger(settings: Settings, symbol: str) -> int:
    """Score every stored forecast of ``symbol`` whose target close has arrived."""
    return score_ledger_of(settings, symbol)
