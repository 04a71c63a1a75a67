"""Forecasts from trained models: the walk-forward schedule, windows for many forecast days
at once, and the ledger rows they become. Pure: torch, numpy and polars, no warehouse."""
