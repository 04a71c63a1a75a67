"""Schema of the forecast ledger: migration 7's DDL (the frame is seqlab.schemas.forecasts).

Kept apart from ``seqlab.warehouse.forecasts`` (which connects) because the migrations
import it. The ``forecasts`` table is written once per forecast and changed only by scoring.
"""

FORECASTS_SQL = """
CREATE TABLE forecasts (
    forecast_id VARCHAR PRIMARY KEY,  -- hash of (mode, run_id, origin_date, target_date)
    symbol VARCHAR NOT NULL,
    mode VARCHAR NOT NULL CHECK (mode IN ('live', 'backtest')),
    origin_date DATE NOT NULL,        -- the last price the forecast saw
    target_date DATE NOT NULL,
    trained_through DATE NOT NULL,    -- the last date of the prices the model was trained on
    config_key VARCHAR NOT NULL,      -- the champion config's run_key (the same across refits)
    config VARCHAR NOT NULL,          -- JSON of that config
    champion_rank BIGINT NOT NULL,    -- 1 = best on validation in champion_of
    champion_of VARCHAR NOT NULL,     -- the full grid the champion was chosen from
    run_id VARCHAR NOT NULL,          -- the refit run that made the forecast
    grid_id VARCHAR NOT NULL,         -- the refit grid that trained (or reused) that run
    batch_id VARCHAR NOT NULL,        -- the retrain or backtest that wrote the row
    predicted_usd DOUBLE NOT NULL,
    persistence_usd DOUBLE NOT NULL,  -- the close on origin_date, as the forecast saw it
    data_version VARCHAR NOT NULL,    -- the symbol's prices the forecast read
    code_version VARCHAR NOT NULL,
    made_at TIMESTAMP NOT NULL,
    actual_usd DOUBLE,                -- set once by scoring: the target's close as first stored
    actual_stored_at TIMESTAMP,       -- when that close was stored
    scored_at TIMESTAMP,
    CHECK (origin_date < target_date),
    CHECK (trained_through <= origin_date)
);
-- Scored forecasts with their errors (read-only like every view). actual_usd is the target's
-- close as first stored; actual_revised says the price stored now differs from it.
CREATE VIEW forecast_scores AS
SELECT f.forecast_id, f.symbol, f.mode, f.origin_date, f.target_date, f.trained_through,
    f.config_key, f.config, f.champion_rank, f.champion_of, f.run_id, f.grid_id, f.batch_id,
    f.predicted_usd, f.persistence_usd, f.actual_usd,
    f.predicted_usd - f.actual_usd AS error_usd,
    f.persistence_usd - f.actual_usd AS persistence_error_usd,
    abs(f.predicted_usd - f.actual_usd) AS abs_error_usd,
    abs(f.persistence_usd - f.actual_usd) AS persistence_abs_error_usd,
    p.close AS stored_close_usd,
    p.close IS DISTINCT FROM f.actual_usd AS actual_revised,
    f.actual_stored_at, f.scored_at, f.data_version, f.code_version, f.made_at
FROM forecasts f LEFT JOIN prices p ON p.symbol = f.symbol AND p.date = f.target_date
WHERE f.actual_usd IS NOT NULL;
"""
