"""Schema of the training-result tables (migration 2)."""

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
