"""Schema of the report tables and views (migration 3).

The views answer the report's questions in SQL, so ``seqlab query`` gets the same numbers
as the report without Python:

- ``report_runs``: every run of every grid (through ``grid_runs``, so reused runs count
  for each grid that reused them), with ``grid_id`` the grid it belongs to here.
- ``leaderboard``: one row per config (cell, depth, norm, feature set) of a grid, metrics
  averaged over its seeds. ``ok`` and ``diverged`` runs both count (a diverged run's
  metrics come from its best epoch before it diverged); failed runs have no metrics.
  ``rmse_ratio`` = model RMSE / persistence RMSE on the same test days: < 1 beats it.
- ``convergence``: per run, epochs until the test loss first comes within 10% of its
  minimum, the trapezoidal area under the test-loss curve (epochs as unit width), and the
  mean train/test loss over the first 20% of epochs (how fast it learns early).
- ``stability``: per run, the standard deviation and mean of the test loss over the last
  20% of epochs (at least one), and spikes: epochs whose test loss exceeds twice the
  median of the ``SPIKE_WINDOW`` epochs before it.
- ``claims``: the verdicts of the latest report of each grid. They come from tests SQL
  does not express well (t and exact sign-flip tests over configs, Holm across the claims,
  Diebold-Mariano over test days: seqlab.report.stats), so the report build writes them to
  ``claim_results`` and this view picks the newest build. Since migration 6 each row also
  carries its claim's written operational test, the level of its interval and the claim's
  Holm-adjusted p-value.

Epochs with a missing or non-finite loss (a diverged run's last epoch) are left out of
these curves; the report counts such runs as diverged (seqlab.report.dynamics).
"""

from __future__ import annotations

SPIKE_WINDOW = 10
EARLY_FRACTION = 0.2
LATE_FRACTION = 0.2

_CURVE = f"""
    SELECT rr.grid_id, rr.run_id, rr.cell, rr.depth, rr.norm, rr.feature_set, rr.seed,
        rr.status, e.epoch, e.train_loss, e.test_loss,
        row_number() OVER run_order AS position,
        count(*) OVER run_all AS n_epochs,
        min(e.test_loss) OVER run_all AS min_test_loss,
        median(e.test_loss) OVER (
            run_order ROWS BETWEEN {SPIKE_WINDOW} PRECEDING AND 1 PRECEDING
        ) AS rolling_median
    FROM report_runs rr JOIN epoch_metrics e ON e.run_id = rr.run_id
    WHERE e.test_loss IS NOT NULL AND isfinite(e.test_loss)
    WINDOW run_all AS (PARTITION BY rr.grid_id, rr.run_id),
        run_order AS (PARTITION BY rr.grid_id, rr.run_id ORDER BY e.epoch)
"""

REPORT_TABLES_SQL = f"""
CREATE TABLE reports (
    report_id VARCHAR PRIMARY KEY,
    grid_id VARCHAR NOT NULL,
    built_at TIMESTAMP NOT NULL,
    out_dir VARCHAR NOT NULL,
    html_path VARCHAR NOT NULL,
    markdown_path VARCHAR NOT NULL,
    figures VARCHAR NOT NULL,         -- JSON list of figure files beside report.md
    n_runs BIGINT NOT NULL,
    claims_summary VARCHAR NOT NULL,  -- JSON {{claim number: verdict}}
    html_bytes BIGINT,
    seconds DOUBLE,
    seqlab_version VARCHAR
);
-- One row per comparison behind a claim; claim_verdict repeats the claim's overall verdict.
CREATE TABLE claim_results (
    report_id VARCHAR NOT NULL,
    grid_id VARCHAR NOT NULL,
    claim_no INTEGER NOT NULL,
    claim VARCHAR NOT NULL,
    claim_verdict VARCHAR NOT NULL,
    comparison VARCHAR NOT NULL,
    verdict VARCHAR NOT NULL,
    effect DOUBLE, ci_low DOUBLE, ci_high DOUBLE,
    effect_unit VARCHAR,
    n_pairs BIGINT NOT NULL,
    method VARCHAR NOT NULL,
    note VARCHAR,
    PRIMARY KEY (report_id, claim_no, comparison)
);
CREATE VIEW report_runs AS
SELECT gr.grid_id, gr.reused, r.grid_id AS trained_in_grid, r.* EXCLUDE (grid_id)
FROM grid_runs gr JOIN runs r ON r.run_id = gr.run_id;

CREATE VIEW leaderboard AS
WITH per_config AS (
    SELECT grid_id, cell, depth, norm, feature_set,
        count(*) AS n_runs,
        count(*) FILTER (WHERE status = 'ok') AS n_ok,
        count(*) FILTER (WHERE status = 'diverged') AS n_diverged,
        count(*) FILTER (WHERE status = 'failed') AS n_failed,
        avg(best_test_loss) AS best_test_loss,
        stddev_samp(best_test_loss) AS best_test_loss_std,
        avg(final_test_loss) AS final_test_loss,
        avg(test_rmse_usd) AS test_rmse_usd,
        avg(test_mae_usd) AS test_mae_usd,
        avg(test_mape_pct) AS test_mape_pct,
        avg(test_directional_accuracy) AS test_directional_accuracy,
        avg(baseline_rmse_usd) FILTER (WHERE test_rmse_usd IS NOT NULL) AS baseline_rmse_usd,
        avg(baseline_mae_usd) FILTER (WHERE test_mae_usd IS NOT NULL) AS baseline_mae_usd,
        avg(baseline_directional_accuracy)
            FILTER (WHERE test_rmse_usd IS NOT NULL) AS baseline_directional_accuracy
    FROM report_runs
    GROUP BY grid_id, cell, depth, norm, feature_set
)
SELECT rank() OVER (PARTITION BY grid_id ORDER BY test_rmse_usd ASC NULLS LAST) AS rank,
    *,
    test_rmse_usd / baseline_rmse_usd AS rmse_ratio,
    test_mae_usd / baseline_mae_usd AS mae_ratio,
    test_rmse_usd < baseline_rmse_usd AS beats_baseline
FROM per_config;

CREATE VIEW convergence AS
WITH curve AS ({_CURVE})
SELECT grid_id, run_id, cell, depth, norm, feature_set, seed, status,
    max(n_epochs) AS epochs_recorded,
    min(test_loss) AS min_test_loss,
    arg_min(epoch, test_loss) AS min_test_epoch,
    min(epoch) FILTER (WHERE test_loss <= 1.1 * min_test_loss) AS epochs_to_within_10pct,
    sum(test_loss) - (arg_min(test_loss, epoch) + arg_max(test_loss, epoch)) / 2 AS test_auc,
    avg(test_loss) FILTER (
        WHERE position <= greatest(1, ceil({EARLY_FRACTION} * n_epochs))
    ) AS early_test_loss,
    avg(train_loss) FILTER (
        WHERE position <= greatest(1, ceil({EARLY_FRACTION} * n_epochs))
    ) AS early_train_loss
FROM curve
GROUP BY grid_id, run_id, cell, depth, norm, feature_set, seed, status;

CREATE VIEW stability AS
WITH curve AS ({_CURVE})
SELECT grid_id, run_id, cell, depth, norm, feature_set, seed, status,
    max(n_epochs) AS epochs_recorded,
    CAST(greatest(1, ceil({LATE_FRACTION} * max(n_epochs))) AS BIGINT) AS late_epochs,
    stddev_samp(test_loss) FILTER (
        WHERE position > n_epochs - greatest(1, ceil({LATE_FRACTION} * n_epochs))
    ) AS late_test_loss_std,
    avg(test_loss) FILTER (
        WHERE position > n_epochs - greatest(1, ceil({LATE_FRACTION} * n_epochs))
    ) AS late_test_loss_mean,
    count(*) FILTER (WHERE test_loss > 2 * rolling_median) AS spike_count,
    coalesce(
        list(epoch ORDER BY epoch) FILTER (WHERE test_loss > 2 * rolling_median), []
    ) AS spike_epochs
FROM curve
GROUP BY grid_id, run_id, cell, depth, norm, feature_set, seed, status;

CREATE VIEW claims AS
SELECT c.* FROM claim_results c
JOIN (SELECT grid_id, arg_max(report_id, built_at) AS report_id FROM reports GROUP BY grid_id)
    latest ON latest.grid_id = c.grid_id AND latest.report_id = c.report_id;
"""


# --- migration 4: validation-based selection, level-free dynamics, adjusted verdicts -------
# The per-run dynamics below mirror seqlab.report.dynamics (the report computes them in
# Python; tests/report/test_report.py::test_dynamics_in_the_html_are_the_pure_metrics_and_
# the_views_agree pins the two to the same numbers): loss at fixed epochs 10/50/200, and the
# late wobble, the residual std of a straight line through log(loss) over the last
# least(50, n // 2) epochs (at least 5). The numbers are written here, not imported: this
# SQL is a migration, frozen once shipped; a new definition is a new migration.
FIXED_EPOCHS = (10, 50, 200)
LATE_EPOCHS = 50
MIN_LATE_EPOCHS = 5

_LOSS_POINTS = """
    SELECT rr.grid_id, rr.run_id, rr.cell, rr.depth, rr.norm, rr.feature_set, rr.seed,
        rr.status, e.epoch, l.loss, l.value,
        count(*) OVER (PARTITION BY rr.grid_id, rr.run_id, l.loss) AS n,
        row_number() OVER (PARTITION BY rr.grid_id, rr.run_id, l.loss ORDER BY e.epoch DESC)
            AS from_end
    FROM report_runs rr JOIN epoch_metrics e ON e.run_id = rr.run_id,
        LATERAL (VALUES ('train', e.train_loss), ('test', e.test_loss)) l(loss, value)
    WHERE l.value > 0 AND isfinite(l.value)
"""


def _at(loss: str, epoch: int) -> str:
    return f"max(value) FILTER (WHERE loss = '{loss}' AND epoch = {epoch}) AS {loss}_loss_at_{epoch}"


def _wobble(loss: str) -> str:
    window = f"least({LATE_EPOCHS}, n // 2)"
    where = f"loss = '{loss}' AND {window} >= {MIN_LATE_EPOCHS} AND from_end <= {window}"
    sxx = f"regr_sxx(ln(value), epoch) FILTER (WHERE {where})"
    sxy = f"regr_sxy(ln(value), epoch) FILTER (WHERE {where})"
    syy = f"regr_syy(ln(value), epoch) FILTER (WHERE {where})"
    count = f"CAST(regr_count(ln(value), epoch) FILTER (WHERE {where}) AS BIGINT)"
    # greatest() skips NULLs in DuckDB, so an empty window must be caught explicitly.
    return (f"CASE WHEN {count} >= {MIN_LATE_EPOCHS} THEN sqrt(greatest(0, {syy} - {sxy} * "
            f"{sxy} / nullif({sxx}, 0)) / ({count} - 2)) END AS late_{loss}_wobble")


DYNAMICS_V4_SQL = f"""
DROP VIEW IF EXISTS claims;
DROP VIEW IF EXISTS stability;
DROP VIEW IF EXISTS convergence;
DROP VIEW IF EXISTS leaderboard;
DROP VIEW IF EXISTS report_runs;
ALTER TABLE runs ADD COLUMN selected_on VARCHAR;      -- validation | last_epoch
ALTER TABLE runs ADD COLUMN val_fraction DOUBLE;
ALTER TABLE runs ADD COLUMN best_val_loss DOUBLE;     -- validation loss at best_epoch
ALTER TABLE runs ADD COLUMN n_val BIGINT;
ALTER TABLE runs ADD COLUMN feature_columns VARCHAR;  -- JSON list of the columns the model saw
ALTER TABLE runs ADD COLUMN train_first DATE;
ALTER TABLE runs ADD COLUMN train_last DATE;
ALTER TABLE runs ADD COLUMN val_first DATE;
ALTER TABLE runs ADD COLUMN val_last DATE;
ALTER TABLE runs ADD COLUMN test_first DATE;
ALTER TABLE runs ADD COLUMN test_last DATE;
ALTER TABLE epoch_metrics ADD COLUMN val_loss DOUBLE;
ALTER TABLE claim_results ADD COLUMN p_value DOUBLE;
ALTER TABLE claim_results ADD COLUMN p_adjusted DOUBLE;  -- Holm over the report's comparisons
ALTER TABLE claim_results ADD COLUMN decides BOOLEAN;
ALTER TABLE claim_results ADD COLUMN n_unit VARCHAR;     -- configs | test days | ...
CREATE VIEW report_runs AS
SELECT gr.grid_id, gr.reused, r.grid_id AS trained_in_grid, r.* EXCLUDE (grid_id)
FROM grid_runs gr JOIN runs r ON r.run_id = gr.run_id;

-- Ranked on validation loss: the test columns are what the chosen configs then score.
CREATE VIEW leaderboard AS
WITH per_config AS (
    SELECT grid_id, cell, depth, norm, feature_set,
        count(*) AS n_runs,
        count(*) FILTER (WHERE status = 'ok') AS n_ok,
        count(*) FILTER (WHERE status = 'diverged') AS n_diverged,
        count(*) FILTER (WHERE status = 'failed') AS n_failed,
        avg(best_val_loss) AS val_loss,
        avg(best_test_loss) AS best_test_loss,
        stddev_samp(best_test_loss) AS best_test_loss_std,
        avg(final_test_loss) AS final_test_loss,
        avg(test_rmse_usd) AS test_rmse_usd,
        avg(test_mae_usd) AS test_mae_usd,
        avg(test_mape_pct) AS test_mape_pct,
        avg(test_directional_accuracy) AS test_directional_accuracy,
        avg(baseline_rmse_usd) FILTER (WHERE test_rmse_usd IS NOT NULL) AS baseline_rmse_usd,
        avg(baseline_mae_usd) FILTER (WHERE test_mae_usd IS NOT NULL) AS baseline_mae_usd,
        avg(baseline_directional_accuracy)
            FILTER (WHERE test_rmse_usd IS NOT NULL) AS baseline_directional_accuracy
    FROM report_runs
    GROUP BY grid_id, cell, depth, norm, feature_set
)
SELECT rank() OVER (PARTITION BY grid_id ORDER BY val_loss ASC NULLS LAST) AS rank,
    *,
    test_rmse_usd / baseline_rmse_usd AS rmse_ratio,
    test_mae_usd / baseline_mae_usd AS mae_ratio,
    test_rmse_usd < baseline_rmse_usd AS beats_baseline
FROM per_config;

CREATE VIEW convergence AS
WITH points AS ({_LOSS_POINTS})
SELECT grid_id, run_id, cell, depth, norm, feature_set, seed, status,
    max(n) FILTER (WHERE loss = 'train') AS epochs_recorded,
    {', '.join(_at(loss, e) for loss in ('train', 'test') for e in FIXED_EPOCHS)},
    min(value) FILTER (WHERE loss = 'train') AS min_train_loss,
    min(value) FILTER (WHERE loss = 'test') AS min_test_loss
FROM points
GROUP BY grid_id, run_id, cell, depth, norm, feature_set, seed, status;

CREATE VIEW stability AS
WITH points AS ({_LOSS_POINTS}),
curve AS ({_CURVE})
SELECT p.grid_id, p.run_id, p.cell, p.depth, p.norm, p.feature_set, p.seed, p.status,
    CAST(max(least({LATE_EPOCHS}, n // 2)) FILTER (WHERE loss = 'test') AS BIGINT) AS late_epochs,
    {_wobble('train')},
    {_wobble('test')},
    any_value(s.spike_count) AS spike_count,
    any_value(s.spike_epochs) AS spike_epochs
FROM points p LEFT JOIN (
    SELECT grid_id, run_id,
        count(*) FILTER (WHERE test_loss > 2 * rolling_median) AS spike_count,
        coalesce(list(epoch ORDER BY epoch) FILTER (WHERE test_loss > 2 * rolling_median), [])
            AS spike_epochs
    FROM curve GROUP BY grid_id, run_id
) s ON s.grid_id = p.grid_id AND s.run_id = p.run_id
GROUP BY p.grid_id, p.run_id, p.cell, p.depth, p.norm, p.feature_set, p.seed, p.status;

CREATE VIEW claims AS
SELECT c.* FROM claim_results c
JOIN (SELECT grid_id, arg_max(report_id, built_at) AS report_id FROM reports GROUP BY grid_id)
    latest ON latest.grid_id = c.grid_id AND latest.report_id = c.report_id;
"""


# --- migration 6: runs chosen on the test set marked; claims carry their operational test --
# Runs stored before validation selection (migration 4 added ``selected_on`` NULL to them)
# had their epoch chosen on the test loss: they are marked 'test' and decide no claim. The
# late wobble becomes the std of the epoch-to-epoch change of log(loss) over the last
# least(50, n // 2) epochs, / sqrt(2) (seqlab.report.dynamics.late_wobble): a smooth trend
# no longer counts as fluctuation. Frozen once shipped, like migration 4.


def _wobble_v6(loss: str) -> str:
    window = f"least({LATE_EPOCHS}, n // 2)"
    # from_end <= window - 1: each step's later epoch and the one before both in the window
    where = (f"loss = '{loss}' AND {window} >= {MIN_LATE_EPOCHS} AND from_end <= {window} - 1 "
             "AND step IS NOT NULL")
    return f"stddev_samp(step) FILTER (WHERE {where}) / sqrt(2) AS late_{loss}_wobble"


SELECTION_V6_SQL = f"""
DROP VIEW IF EXISTS claims;
DROP VIEW IF EXISTS stability;
UPDATE runs SET selected_on = 'test' WHERE selected_on IS NULL;
ALTER TABLE claim_results ADD COLUMN ci_level DOUBLE;          -- the level of ci_low .. ci_high
ALTER TABLE claim_results ADD COLUMN claim_p_adjusted DOUBLE;  -- Holm across the claims
ALTER TABLE claim_results ADD COLUMN operational_test VARCHAR; -- the claim's written test
CREATE VIEW stability AS
WITH points AS (
    SELECT *, ln(value) - lag(ln(value)) OVER (
        PARTITION BY grid_id, run_id, loss ORDER BY epoch) AS step
    FROM ({_LOSS_POINTS})
),
curve AS ({_CURVE})
SELECT p.grid_id, p.run_id, p.cell, p.depth, p.norm, p.feature_set, p.seed, p.status,
    CAST(max(least({LATE_EPOCHS}, n // 2)) FILTER (WHERE loss = 'test') AS BIGINT) AS late_epochs,
    {_wobble_v6('train')},
    {_wobble_v6('test')},
    any_value(s.spike_count) AS spike_count,
    any_value(s.spike_epochs) AS spike_epochs
FROM points p LEFT JOIN (
    SELECT grid_id, run_id,
        count(*) FILTER (WHERE test_loss > 2 * rolling_median) AS spike_count,
        coalesce(list(epoch ORDER BY epoch) FILTER (WHERE test_loss > 2 * rolling_median), [])
            AS spike_epochs
    FROM curve GROUP BY grid_id, run_id
) s ON s.grid_id = p.grid_id AND s.run_id = p.run_id
GROUP BY p.grid_id, p.run_id, p.cell, p.depth, p.norm, p.feature_set, p.seed, p.status;

CREATE VIEW claims AS
SELECT c.* FROM claim_results c
JOIN (SELECT grid_id, arg_max(report_id, built_at) AS report_id FROM reports GROUP BY grid_id)
    latest ON latest.grid_id = c.grid_id AND latest.report_id = c.report_id;
"""
