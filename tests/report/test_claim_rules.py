"""Issue 21: one test per rule a verdict must keep, each on a simulated grid (or sample)
whose truth is known (tests/report/simulated.py). Numbered as the issue's items."""

from __future__ import annotations

import json
import math

import duckdb
import numpy as np
import polars as pl
import pytest

import seqlab.warehouse.views as views
from seqlab.report.claims import (
    Claim,
    Comparison,
    assess_claims,
    claims_document,
    claims_frame,
    evaluate_claims,
)
from seqlab.report.narrative import claim_reading
from seqlab.report.protocol import CLAIM_TESTS, MIN_DYNAMICS_EPOCHS
from seqlab.report.stats import (
    ALPHA,
    Estimate,
    Verdict,
    config_interval,
    diebold_mariano,
    dm_ratio_interval,
    t_estimate,
)
from seqlab.warehouse.migrations import MIGRATIONS, apply_migrations
from tests.report.simulated import simulate_grid, truncate

SMALL = {"depths": (1,), "seeds": 2}  # 18 configs, 6 matched per norm pair: fast


def claims_of(frames) -> dict[int, Claim]:
    return {c.number: c for c in evaluate_claims(*frames)}


def part(claim: Claim, text: str) -> Comparison:
    return next(c for c in claim.comparisons if text in c.label)


# 1. speed is not the loss level -------------------------------------------------------------

def test_1_level_shifted_curves_of_the_same_shape_are_neither_faster_nor_noisier() -> None:
    """BatchNorm and LayerNorm at half no-norm's loss, same shape and noise: no claim of
    speed or stability may follow (the old epoch-10 loss read 'faster', ratio 0.50)."""
    found = claims_of(simulate_grid({"batch_level": 0.5, "layer_level": 0.5}, seed=21,
                                    epochs=120, **SMALL))
    for claim, norm, others in ((4, "batch", ("none", "layer")), (5, "layer", ("none", "batch"))):
        for other in others:
            if {norm, other} == {"batch", "layer"}:
                continue  # both halved: no level difference to be fooled by
            for text in (f"{norm} vs {other}: epochs", f"{norm} vs {other}: late test"):
                c = part(found[claim], text)
                assert c.verdict is Verdict.INCONCLUSIVE, (text, c.ratio)
                assert c.ratio.mean == pytest.approx(1.0, abs=0.1), text
        assert found[claim].verdict is Verdict.INCONCLUSIVE


# 2. no false sentence about persistence ----------------------------------------------------

def _row(label: str, verdict: Verdict, mean: float, decides: bool = True) -> Comparison:
    estimate = Estimate(math.log(mean), math.log(mean) - 0.1, math.log(mean) + 0.1, 250, 0.01,
                        0.02)
    return Comparison(key=label, label=label, effect_unit="RMSE ratio", test="lower",
                      estimate=estimate, verdict=verdict, decides=decides, n_unit="test days")


def test_2_the_reading_never_says_none_beat_persistence_when_one_did() -> None:
    claim = Claim(6, "The models beat persistence.", Verdict.INCONCLUSIVE, (
        _row("best overall", Verdict.INCONCLUSIVE, 0.97),
        _row("best lstm", Verdict.SUPPORTED, 0.8)))
    text = claim_reading(claim)
    assert "none of the models" not in text
    assert "1 have a significantly lower" in text


# 3. runs chosen on the test set never decide -------------------------------------------------

def test_3_runs_selected_on_test_are_left_out_and_counted() -> None:
    runs, epochs, predictions = simulate_grid({"close": 0.5}, seed=23, **SMALL)
    # Every 'all' run is from before validation selection: claim 1 has nothing to compare.
    old = runs.with_columns(pl.when(pl.col("feature_set") == "all").then(None)
                            .otherwise(pl.col("selected_on")).alias("selected_on"))
    assessment = assess_claims(old, epochs, predictions)
    claims = {c.number: c for c in assessment.claims}
    assert claims[1].verdict is Verdict.NOT_TESTED
    assert "no all runs" in claims[1].comparisons[0].note
    assert assessment.left_out == runs.filter(pl.col("feature_set") == "all").height
    assert "--force" in claims[1].note and f"{assessment.left_out} runs" in claims[1].note
    document = claims_document(assessment.claims, left_out=assessment.left_out)
    assert document["left_out_selected_on_test"] == assessment.left_out


def test_3_migration_6_marks_runs_stored_before_validation_selection() -> None:
    con = duckdb.connect()
    apply_migrations(con, MIGRATIONS[:5])
    columns = con.execute("SELECT column_name, data_type, is_nullable FROM "
                          "information_schema.columns WHERE table_name = 'runs'").fetchall()
    literal = {"VARCHAR": "'x'", "TIMESTAMP": "TIMESTAMP '2020-01-01'", "DATE": "DATE '2020-01-01'",
               "BOOLEAN": "false"}
    for index, selected in enumerate(("NULL", "'validation'")):
        row = {name: literal.get(kind, "0") for name, kind, nullable in columns if nullable == "NO"}
        row |= {"run_id": f"'r{index}'", "selected_on": selected}
        con.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join(row.values())})")
    assert apply_migrations(con, MIGRATIONS[:6]) == [6]
    marked = dict(con.execute("SELECT run_id, selected_on FROM runs ORDER BY run_id").fetchall())
    assert marked == {"r0": "test", "r1": "validation"}
    cols = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                      "WHERE table_name = 'claims'").fetchall()}
    assert {"operational_test", "ci_level", "claim_p_adjusted"} <= cols


# 4. claim 3 is about depth 4 -----------------------------------------------------------------

def test_4_a_grid_without_depth_4_leaves_claim_3_not_tested() -> None:
    found = claims_of(simulate_grid({}, seed=24, depths=(1, 2), seeds=3, config_sd=0.02,
                                    seed_sd=0.02))
    assert found[3].verdict is Verdict.NOT_TESTED
    assert "about depth 4" in found[3].comparisons[0].note


# 5. the Holm family: one p per claim, shown rows outside, one key per pair -------------------

def test_5_holm_runs_across_claims_on_their_largest_deciding_p() -> None:
    claims = evaluate_claims(*simulate_grid({"close": 0.5, "model": 0.8}, seed=25, epochs=100,
                                            **SMALL))
    family = [c for c in claims if c.p_value is not None]
    assert 1 <= len(family) <= 6
    for claim in family:
        deciding = [c for c in claim.comparisons if c.decides]
        if claim.direction == "for":
            assert claim.p_value == max(c.estimate.p_value for c in deciding)
        assert claim.p_adjusted >= claim.p_value
        for c in claim.comparisons:
            if not c.decides:
                assert c.estimate is None or c.estimate.p_adjusted is None  # not in the family
    # Holm over the claims by hand.
    order = sorted(family, key=lambda c: c.p_value)
    running = 0.0
    for rank, claim in enumerate(order):
        running = max(running, (len(family) - rank) * claim.p_value)
        assert claim.p_adjusted == pytest.approx(min(1.0, running))
    keys = [c.key for claim in claims for c in claim.comparisons]
    assert "norm:batch/layer:late_test_wobble" in keys
    assert "norm:layer/batch:late_test_wobble" not in keys


def test_5_cells_exactly_alike_make_claim_3_reachable_at_the_study_shape() -> None:
    """Study shape (4 depths, 3 seeds, so 6 matched configs per pair of cells at depth 4)
    with cells exactly alike: claim 3 is supported in some grids, never contradicted.
    (The old family of 24 comparisons never let it through: 0 of 60.) The power at this
    noise over 60 grids is measured by benchmarks/bench_claim_power.py."""
    supported = 0
    for seed in range(4):
        found = claims_of(simulate_grid({}, seed=2500 + seed, depths=(1, 2, 3, 4), seeds=3,
                                        config_sd=0.05, seed_sd=0.05, epochs=20, test_days=60))
        assert found[3].verdict is not Verdict.CONTRADICTED
        supported += found[3].verdict is Verdict.SUPPORTED
    assert supported >= 2


# 6. intervals agree with the decisions --------------------------------------------------------

def test_6_every_deciding_interval_agrees_with_its_verdict() -> None:
    for seed, effects in enumerate(({"close": 0.85, "model": 0.97}, {"close": 0.9},
                                    {"batch_tau": 0.8, "model": 0.95}, {})):
        for claim in evaluate_claims(*simulate_grid(effects, seed=2600 + seed, epochs=100,
                                                    config_sd=0.15, **SMALL)):
            for c in claim.comparisons:
                if not c.decides or c.verdict is Verdict.NOT_TESTED:
                    continue
                r = c.ratio
                if c.test == "alike":
                    excludes = 1 / 1.25 < r.low and r.high < 1.25
                    decided = c.verdict is Verdict.SUPPORTED
                else:
                    excludes = not (r.low <= 1 <= r.high)
                    decided = c.verdict in (Verdict.SUPPORTED, Verdict.CONTRADICTED)
                assert excludes == decided, (claim.number, c.label, r, c.verdict)
                assert r.confidence >= 1 - 2 * ALPHA


def test_6_claim_6_interval_inverts_the_diebold_mariano_test() -> None:
    """Equal accuracy, 120 test days: the interval misses ratio 1 exactly when the test
    rejects (the bootstrap interval missed it in ~15% of cases, the test in 3-6%)."""
    rng = np.random.default_rng(26)
    misses = rejects = 0
    for _ in range(200):
        vol = np.abs(rng.standard_t(4, 120)) + 0.5
        a, b = vol * rng.normal(0, 1, 120), vol * rng.normal(0, 1, 120)
        low, high = dm_ratio_interval(a, b)
        miss = not (low <= 0 <= high)
        reject = diebold_mariano(a, b)[1] < 0.05
        assert miss == reject
        misses += miss
        rejects += reject
    assert misses / 200 <= 0.08


# 7. small samples with outlier configs -------------------------------------------------------

@pytest.mark.parametrize("n_configs", [5, 7, 9])
def test_7_outlier_configs_keep_coverage_at_or_above_93_percent(n_configs: int) -> None:
    """10% of configs are outliers (their effect shifted by +1.5, five config sds, all one
    way); the truth is the other configs' centre. The shown interval (t and sign-flip hull)
    covers it >= 93% of the time."""
    rng = np.random.default_rng(27 + n_configs)
    truth, sims = math.log(0.8), 800
    covered = 0
    for _ in range(sims):
        values = rng.normal(truth, 0.3, n_configs)
        values += np.where(rng.random(n_configs) < 0.1, 1.5, 0.0)
        low, high = config_interval(values, 0.95, 0.95)
        covered += low <= truth <= high
    assert covered / sims >= 0.93, covered / sims


def test_7_normal_effects_are_not_made_much_wider() -> None:
    rng = np.random.default_rng(70)
    widths = []
    for _ in range(300):
        values = rng.normal(0.0, 0.3, 9)
        low, high = config_interval(values, 0.95, 0.95)
        t = t_estimate(values)
        widths.append((high - low) / (t.high - t.low))
    assert np.median(widths) < 1.3


# 8. diverged runs count ----------------------------------------------------------------------

def test_8_diverged_batchnorm_runs_count_against_its_stability() -> None:
    """Same noise for every norm, but half of the BatchNorm runs diverge: BatchNorm is the less
    stable, the rates are reported, nothing is silently dropped."""
    frames = simulate_grid({"batch_diverge": 0.5}, seed=28, epochs=100, depths=(1, 2), seeds=2)
    assessment = assess_claims(*frames)
    claims = {c.number: c for c in assessment.claims}
    for other in ("none", "layer"):
        c = part(claims[4], f"batch vs {other}: late test")
        assert c.ratio.mean > 1.15 and c.verdict is Verdict.SUPPORTED, c.ratio
    assert part(claims[5], "layer vs batch: late test").ratio.mean < 1 / 1.15
    rates = {(r["factor"], r["level"]): (r["diverged"], r["runs"]) for r in assessment.divergence}
    runs = frames[0]
    assert rates[("norm", "batch")] == (runs.filter(pl.col("status") == "diverged").height,
                                        runs.filter(pl.col("norm") == "batch").height)
    assert rates[("norm", "none")][0] == 0 and ("cell", "rnn") in rates
    assert "diverged runs (least stable) by norm: none 0/" in claims[4].note


def test_8_a_nan_in_a_third_of_runs_does_not_void_claim_2() -> None:
    runs, epochs, predictions = simulate_grid({"close": 0.5, "close_per_depth": 0.5}, seed=29,
                                              config_sd=0.04, seed_sd=0.04)
    runs = runs.with_columns(pl.when(pl.int_range(pl.len()) % 3 == 0).then(float("nan"))
                             .otherwise(pl.col("best_test_loss")).alias("best_test_loss"))
    claim = claims_of((runs, epochs, predictions))[2]
    assert claim.verdict is not Verdict.NOT_TESTED
    assert "without a finite test loss left out" in part(claim, "per added layer").note


# 9. run length does not matter ---------------------------------------------------------------

def test_9_the_same_curves_at_120_500_and_2000_epochs_give_the_same_speed_ratio() -> None:
    frames = simulate_grid({"layer_tau": 0.5, "batch_tau": 0.7}, seed=30, epochs=2000,
                           cells=("rnn", "gru"), depths=(1,), seeds=2, test_days=40)
    ratios = {}
    for length in (120, 500, 2000):
        found = claims_of(truncate(frames, length))
        ratios[length] = (part(found[5], "layer vs none: epochs to close 90% of its own train")
                          .ratio.mean, part(found[4], "batch vs none: epochs to close 50% of "
                                            "its own train").ratio.mean)
    for length in (120, 500):
        for got, full in zip(ratios[length], ratios[2000], strict=True):
            assert got == pytest.approx(full, rel=0.05), ratios
    assert ratios[2000][0] == pytest.approx(0.5, rel=0.15)  # the truth: half the time constant


def test_9_claims_4_and_5_are_not_tested_on_short_runs() -> None:
    found = claims_of(simulate_grid({"batch_tau": 0.4, "batch_noise": 4.0}, seed=31,
                                    epochs=MIN_DYNAMICS_EPOCHS - 1, **SMALL))
    for number in (4, 5):
        assert found[number].verdict is Verdict.NOT_TESTED
        assert all(f"need at least {MIN_DYNAMICS_EPOCHS}" in c.note
                   for c in found[number].comparisons)


# 11. the smaller items -----------------------------------------------------------------------

def test_11_claim_6_decides_on_the_run_chosen_on_validation() -> None:
    """GRU forecasts worse than persistence but GRU's validation loss is the worst too:
    the run chosen on validation beats persistence, GRU's best is shown, not deciding."""
    found = claims_of(simulate_grid({"model": 0.7, "model_gru": 1.3, "gru": 1.6}, seed=32,
                                    **SMALL))
    claim = found[6]
    deciding = [c for c in claim.comparisons if c.decides]
    assert len(deciding) == 1 and deciding[0].label.startswith("best overall")
    gru = part(claim, "best gru")
    assert not gru.decides and gru.ratio.mean > 1
    assert claim.verdict is Verdict.SUPPORTED


def test_11_views_docstring_and_claims_json_counts() -> None:
    assert "bootstrap" not in views.__doc__
    claims = evaluate_claims(*simulate_grid({}, seed=33, depths=(1, 2), seeds=1))
    document = json.loads(json.dumps(claims_document(claims)))
    slope = next(c for c in document["claims"][1]["comparisons"] if "per added layer" in c["label"])
    assert slope["n_configs"] is None and slope["n_unit"] == "(cell, norm) slopes"
    first = document["claims"][0]["comparisons"][0]
    assert first["n_configs"] == first["n"]


def test_operational_tests_are_one_source_for_every_output() -> None:
    claims = evaluate_claims(*simulate_grid({}, seed=34, **SMALL))
    frame = claims_frame(claims)
    document = claims_document(claims)
    for claim in claims:
        line = CLAIM_TESTS[claim.number].one_line()
        assert set(frame.filter(pl.col("claim_no") == claim.number)["operational_test"]) == {line}
        assert document["claims"][claim.number - 1]["operational_test"]["decision"] in line
