"""The columns a forecast is written to the ledger with (``forecasts``), defined once."""

import polars as pl

FORECAST_SCHEMA: dict[str, pl.DataType] = {
    "forecast_id": pl.String, "symbol": pl.String, "mode": pl.String, "origin_date": pl.Date,
    "target_date": pl.Date, "trained_through": pl.Date, "config_key": pl.String,
    "config": pl.String, "champion_rank": pl.Int64, "champion_of": pl.String,
    "run_id": pl.String, "grid_id": pl.String, "batch_id": pl.String,
    "predicted_usd": pl.Float64, "persistence_usd": pl.Float64, "data_version": pl.String,
    "code_version": pl.String, "made_at": pl.Datetime("us"),
}  # fmt: skip
