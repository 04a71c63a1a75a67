"""backtest: the champions walked forward over stored history into the forecast ledger."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from prefect import flow

from seqlab.config import Settings
from seqlab.tasks.forecast import publish_forecast, walk_forward


@flow(name="backtest", log_prints=True)
def backtest(
    start: dt.date, end: dt.date | None = None, symbol: str = "ETH", grid_id: str | None = None,
    top: int = 3, refit_every: int = 7, epochs: int | None = None,
    warehouse: str | None = None, output_dir: str | None = None, pack_size: int = 0,
    pack_mode: Literal["streams", "batched", "fused"] = "streams",
) -> dict:
    """Refit the top ``top`` configs of ``grid_id`` (the latest full grid) every
    ``refit_every`` days from ``start`` and forecast every day up to ``end``; rows are
    stored with mode 'backtest' and scored; the ``forecast`` artifact shows the record."""
    settings = Settings.from_env(warehouse, output_dir)
    run = walk_forward(settings, symbol, start, end, top, grid_id, refit_every, epochs,
                       pack_mode, pack_size)
    artifact = publish_forecast(settings, run)
    return {"batch_id": run.batch_id, "summary": run.summary(), "forecasts": run.forecasts.height,
            "scored": run.scored, "refit_seconds": run.refit_seconds,
            "forecast_seconds": run.forecast_seconds, "artifact": artifact}
