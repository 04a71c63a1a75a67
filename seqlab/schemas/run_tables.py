"""Schema of the training-result tables: migration 2's DDL and the frames stored into it.

Pure polars, so the grid kit (``seqlab.grid``) builds these frames on a machine without
DuckDB; the warehouse creates the tables from the same columns."""

import polars as pl

RUN_TABLES_SQL = """
CREATE TABLE grids (
    grid_id VARCHAR PRIMARY KEY,
    symbol VARCHAR NOT NULL,
    preset VARCHAR,
    spec VARCHAR NOT NULL,            -- JSON of the resolved grid spec
    spec_key VARCHAR NOT NULL,
    data_version VARCHAR NOT NULL,
    code_version VARCHAR NOT NULL,
    dispatch VARCHAR NOT NULL,        -- local | pool
    status VARCHAR NOT NULL,          -- running | completed | failed
    n_configs BIGINT NOT NULL,
    n_trained BIGINT,
    n_reused BIGINT,
    n_failed BIGINT,
    message VARCHAR,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    seconds DOUBLE
);
-- Which runs make up a grid; a reused run links to the grid that reused it too.
CREATE TABLE grid_runs (
    grid_id VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    reused BOOLEAN NOT NULL,
    PRIMARY KEY (grid_id, run_id)
);
CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY,
    grid_id VARCHAR NOT NULL,         -- the grid that trained it
    run_key VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    data_version VARCHAR NOT NULL,
    code_version VARCHAR NOT NULL,
    cell VARCHAR NOT NULL, depth BIGINT NOT NULL, norm VARCHAR NOT NULL,
    feature_set VARCHAR NOT NULL, seed BIGINT NOT NULL, epochs BIGINT NOT NULL,
    lookback BIGINT NOT NULL, hidden BIGINT NOT NULL, batch_size BIGINT NOT NULL, lr DOUBLE NOT NULL,
    config VARCHAR NOT NULL,
    device VARCHAR, worker VARCHAR,
    status VARCHAR NOT NULL,          -- ok | diverged | failed
    error VARCHAR,
    diverged_epoch BIGINT, epochs_run BIGINT,
    final_test_loss DOUBLE, best_test_loss DOUBLE, best_epoch BIGINT,
    test_rmse_usd DOUBLE, test_mae_usd DOUBLE, test_mape_pct DOUBLE,
    test_directional_accuracy DOUBLE,
    baseline_rmse_usd DOUBLE, baseline_mae_usd DOUBLE, baseline_mape_pct DOUBLE,
    baseline_directional_accuracy DOUBLE,
    n_train BIGINT, n_test BIGINT, n_parameters BIGINT,
    feature_key VARCHAR, determinism VARCHAR, torch_version VARCHAR,
    seconds DOUBLE, checkpoint_path VARCHAR,
    stored_at TIMESTAMP NOT NULL
);
CREATE TABLE epoch_metrics (
    run_id VARCHAR NOT NULL,
    epoch BIGINT NOT NULL,
    train_loss DOUBLE,
    test_loss DOUBLE,
    seconds DOUBLE,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE predictions (
    run_id VARCHAR NOT NULL,
    date DATE NOT NULL,
    actual_usd DOUBLE,
    predicted_usd DOUBLE,
    baseline_usd DOUBLE,
    PRIMARY KEY (run_id, date)
);
-- How a run's inputs were built: enough to rebuild its windows exactly from the prices.
CREATE TABLE features (
    feature_key VARCHAR PRIMARY KEY,
    symbol VARCHAR NOT NULL,
    data_version VARCHAR NOT NULL,
    feature_set VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL,     -- JSON: split, lookback, horizon, columns
    scaler VARCHAR NOT NULL,          -- JSON: scaler kind and its train-only parameters
    created_at TIMESTAMP NOT NULL
);
"""

# --- the result tables as polars schemas ---------------------------------------------------
# The one column list of each result table: the shard Parquet writer (seqlab.grid.results)
# builds its frames with it and store_run_results inserts exactly these columns. The DDL
# above and migration 4 are shipped and never edited; tests/schemas/test_run_tables.py
# checks that a migrated warehouse has exactly these columns and types.
FRAME_NAMES = ("runs", "epoch_metrics", "predictions", "features")

RUN_COLUMNS = {
    "run_id": pl.String, "grid_id": pl.String, "run_key": pl.String, "symbol": pl.String,
    "data_version": pl.String, "code_version": pl.String, "cell": pl.String, "depth": pl.Int64,
    "norm": pl.String, "feature_set": pl.String, "seed": pl.Int64, "epochs": pl.Int64,
    "lookback": pl.Int64, "hidden": pl.Int64, "batch_size": pl.Int64, "lr": pl.Float64,
    "config": pl.String, "device": pl.String, "worker": pl.String, "status": pl.String,
    "error": pl.String, "diverged_epoch": pl.Int64, "epochs_run": pl.Int64,
    "final_test_loss": pl.Float64, "best_test_loss": pl.Float64, "best_epoch": pl.Int64,
    "test_rmse_usd": pl.Float64, "test_mae_usd": pl.Float64, "test_mape_pct": pl.Float64,
    "test_directional_accuracy": pl.Float64, "baseline_rmse_usd": pl.Float64,
    "baseline_mae_usd": pl.Float64, "baseline_mape_pct": pl.Float64,
    "baseline_directional_accuracy": pl.Float64, "n_train": pl.Int64, "n_test": pl.Int64,
    "n_parameters": pl.Int64, "feature_key": pl.String, "determinism": pl.String,
    "torch_version": pl.String, "seconds": pl.Float64, "checkpoint_path": pl.String,
    "selected_on": pl.String, "val_fraction": pl.Float64, "best_val_loss": pl.Float64,
    "n_val": pl.Int64, "feature_columns": pl.String, "train_first": pl.Date,
    "train_last": pl.Date, "val_first": pl.Date, "val_last": pl.Date, "test_first": pl.Date,
    "test_last": pl.Date, "checkpoint_sha256": pl.String,
}
EPOCH_COLUMNS = {
    "run_id": pl.String, "epoch": pl.Int64, "train_loss": pl.Float64, "test_loss": pl.Float64,
    "seconds": pl.Float64, "val_loss": pl.Float64,
}
PREDICTION_COLUMNS = {
    "run_id": pl.String, "date": pl.Date, "actual_usd": pl.Float64, "predicted_usd": pl.Float64,
    "baseline_usd": pl.Float64,
}
FEATURE_COLUMNS = {
    "feature_key": pl.String, "symbol": pl.String, "data_version": pl.String,
    "feature_set": pl.String, "fingerprint": pl.String, "scaler": pl.String,
}
FRAME_SCHEMAS = {"runs": RUN_COLUMNS, "epoch_metrics": EPOCH_COLUMNS,
                 "predictions": PREDICTION_COLUMNS, "features": FEATURE_COLUMNS}
