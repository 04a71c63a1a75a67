"""The six claims judged on simulated grids whose truth is known (tests/report/simulated.py)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from seqlab.report.claims import claims_document, claims_frame, evaluate_claims
from seqlab.report.dynamics import epochs_to_gap_share, late_wobble
from seqlab.report.narrative import claim_reading
from seqlab.report.stats import Verdict
from tests.report.simulated import simulate_grid

STUDY_LIKE = {"close": 0.5, "close_per_depth": 0.5, "batch_tau": 0.4, "batch_noise": 4.0,
              "model": 0.7}
QUIET = {"config_sd": 0.04, "seed_sd": 0.04, "epochs": 120}


def claims_of(frames) -> dict[int, object]:
    return {c.number: c for c in evaluate_claims(*frames)}


def verdicts(frames) -> dict[int, Verdict]:
    return {n: c.verdict for n, c in claims_of(frames).items()}


def comparison(claim, text: str):
    return next(c for c in claim.comparisons if text in c.label)


@pytest.mark.parametrize(("effects", "options", "expected"), [
    # Close-only wins, by less when deeper; BatchNorm fast early and noisy late; models beat
    # persistence. (LayerNorm is not faster here, so claim 5 is contradicted.)
    (STUDY_LIKE, {}, {1: "supported", 2: "supported", 4: "supported", 5: "contradicted",
                      6: "supported"}),
    # Cells alike: no cell effect, calm configs, three seeds (6 matched configs at depth 4
    # must clear TOST after Holm over the whole report).
    ({}, {"config_sd": 0.02, "seed_sd": 0.02, "seeds": 3}, {3: "supported"}),
    # LayerNorm falls faster and wobbles less than no norm and a noisy BatchNorm.
    ({"layer_tau": 0.5, "layer_noise": 0.3, "batch_noise": 3.0}, {}, {5: "supported"}),
], ids=["study-like", "cells-alike", "layernorm"])
def test_claims_find_the_effects_a_grid_was_built_with(effects, options, expected) -> None:
    found = verdicts(simulate_grid(effects, seed=1, **{**QUIET, **options}))
    assert {n: found[n].value for n in expected} == expected


def test_claim_2_needs_the_close_advantage_it_speaks_of() -> None:
    """All beats close, by more at each added layer: the all/close ratio falls with depth
    (the old test called that 'shrinking'), but there is no close advantage to shrink."""
    found = claims_of(simulate_grid({"close": 1.3, "close_per_depth": 2.0}, seed=2))
    assert found[1].verdict is Verdict.CONTRADICTED
    assert found[2].verdict is Verdict.CONTRADICTED
    slope = comparison(found[2], "per added layer")
    assert slope.ratio.mean < 1  # the slope alone points the claimed way
    assert comparison(found[2], "premise").verdict is Verdict.CONTRADICTED


def test_a_missing_norm_makes_claims_4_and_5_not_tested_never_supported() -> None:
    effects = {"batch_tau": 0.4, "batch_noise": 4.0}
    found = claims_of(simulate_grid(effects, norms=("none", "batch"), seed=3, epochs=100))
    for number in (4, 5):
        assert found[number].verdict is Verdict.NOT_TESTED, number
        notes = [c.note for c in found[number].comparisons if c.verdict is Verdict.NOT_TESTED]
        assert notes and all("no layer runs in the grid" in n for n in notes)
    # batch vs none on its own is clear: that is not enough for "than no norm and LayerNorm".
    assert comparison(found[4], "batch vs none: epochs to close 50% of its own train").verdict \
        is Verdict.SUPPORTED


def test_a_missing_cell_makes_claim_3_not_tested() -> None:
    found = claims_of(simulate_grid({}, cells=("rnn", "lstm"), seed=4))
    assert found[3].verdict is Verdict.NOT_TESTED
    assert "gru not in the grid" in found[3].comparisons[0].note


def test_claim_1_needs_both_feature_sets() -> None:
    found = claims_of(simulate_grid({}, feature_sets=("close",), seed=5))
    assert found[1].verdict is Verdict.NOT_TESTED
    assert "no all runs in the grid" in found[1].comparisons[0].note


def test_equal_relative_noise_at_a_higher_loss_is_not_more_fluctuation() -> None:
    """BatchNorm's loss twice as high with the same 5% noise: the raw std doubles, the
    level-free wobble does not, and claim 4's stability part is not supported."""
    frames = simulate_grid({"batch_level": 2.0}, seed=6, epochs=100)
    found = claims_of(frames)
    for other in ("none", "layer"):
        late = comparison(found[4], f"batch vs {other}: late test")
        assert late.verdict is not Verdict.SUPPORTED
        assert late.ratio.low < 1 < late.ratio.high
        assert late.ratio.mean == pytest.approx(1.0, abs=0.15)
    calm = comparison(found[5], "layer vs batch: late test")  # claim 5's side of the same
    assert calm.verdict is not Verdict.SUPPORTED and calm.ratio.low < 1 < calm.ratio.high
    runs, epochs, _ = frames
    tails = epochs.join(runs.select("run_id", "norm"), on="run_id").filter(pl.col("epoch") > 80)
    raw = tails.group_by("run_id", "norm").agg(pl.col("test_loss").std()).group_by("norm").agg(
        pl.col("test_loss").mean())
    by_norm = dict(raw.iter_rows())
    assert by_norm["batch"] / by_norm["none"] > 1.6  # what the old metric compared


def test_late_wobble_ignores_a_loss_that_is_still_falling() -> None:
    falling = 0.5 * np.exp(-np.arange(100) / 20)  # smooth exponential decay, no noise
    assert late_wobble(falling) == pytest.approx(0.0, abs=1e-9)
    slowing = 0.01 * (1 + 4 * np.exp(-np.arange(1, 101) / 30))  # still curving at the end
    assert late_wobble(slowing) < 0.005  # a tenth of 5% noise
    noisy = falling * np.exp(np.random.default_rng(0).normal(0, 0.05, 100))
    assert late_wobble(noisy) == pytest.approx(0.05, rel=0.3)
    assert late_wobble(falling[:9]) is None  # too short to judge


def test_a_run_that_stalls_is_not_the_faster_to_converge() -> None:
    """Stalled: falls slowly to a poor plateau. Improving: falls fast and far. Each run's
    speed is read against its own early level and plateau (on log loss), so the one that
    closes its own gap sooner is the faster; how low each gets is its level, compared
    apart (claim 1's kind of comparison)."""
    e = np.arange(1, 301)
    stalled = 0.5 + 0.5 * np.exp(-e / 10)
    improving = 0.01 + 1.0 * np.exp(-e / 4)
    assert epochs_to_gap_share(improving, 0.9) < epochs_to_gap_share(stalled, 0.9)
    # Through claim 5: LayerNorm improving, no norm stalled -> "layer converges faster".
    found = claims_of(simulate_grid({"stall_none": 1, "layer_tau": 0.5}, seed=7, epochs=100))
    assert comparison(found[5], "layer vs none: epochs to close 90% of its own train").verdict \
        is Verdict.SUPPORTED


def test_no_model_beats_persistence_is_said_plainly() -> None:
    found = claims_of(simulate_grid({"model": 1.0}, seed=9))
    claim = found[6]
    assert claim.verdict is not Verdict.SUPPORTED
    assert "does not beat persistence significantly" in claim_reading(claim)
    assert all(c.n_unit == "test days" and c.ratio.n == 250 for c in claim.comparisons)
    assert claim.comparisons[0].label.startswith("best overall on validation loss")
    worse = claims_of(simulate_grid({"model": 1.3}, seed=9))[6]
    assert worse.verdict is Verdict.CONTRADICTED


def test_claim_6_selects_on_validation_never_on_test() -> None:
    runs, epochs, predictions = simulate_grid({}, seed=10)
    # Give one run the best test RMSE of all but a poor validation loss: it must not be picked.
    cheat = runs["run_id"][0]
    runs = runs.with_columns(
        pl.when(pl.col("run_id") == cheat).then(0.0).otherwise(pl.col("test_rmse_usd")).alias("test_rmse_usd"),
        pl.when(pl.col("run_id") == cheat).then(1.0).otherwise(pl.col("best_val_loss")).alias("best_val_loss"),
    )
    best_val = runs.sort("best_val_loss").row(0, named=True)
    claim = claims_of((runs, epochs, predictions))[6]
    first = claim.comparisons[0].label
    assert f"seed {best_val['seed']}" in first and f"{best_val['cell']} depth {best_val['depth']}" in first
    assert all(cheat not in c.key for c in claim.comparisons)


@pytest.mark.slow
def test_false_supported_rate_under_the_null_is_at_most_5_percent_per_claim() -> None:
    """60 grids with no effect at all (and cells exactly x1.25 apart for claim 3): no
    claim is called supported in more than 5% of them."""
    supported = dict.fromkeys(range(1, 7), 0)
    sims = 60
    for seed in range(sims):
        null = verdicts(simulate_grid({}, seed=1000 + seed, depths=(1, 4), seeds=2, epochs=100,
                                      test_days=120))
        for number in (1, 2, 4, 5, 6):
            supported[number] += null[number] is Verdict.SUPPORTED
        apart = verdicts(simulate_grid({"lstm": 1.25, "gru": 1.25 ** 2}, seed=5000 + seed,
                                       depths=(1, 4), seeds=2, epochs=20, test_days=120))
        supported[3] += apart[3] is Verdict.SUPPORTED
    rates = {n: k / sims for n, k in supported.items()}
    assert all(rate <= 0.05 for rate in rates.values()), rates


def test_claims_json_and_frame_carry_the_same_numbers() -> None:
    claims = evaluate_claims(*simulate_grid(STUDY_LIKE, seed=1, **QUIET))
    document = claims_document(claims)
    frame = claims_frame(claims)
    assert [c["number"] for c in document["claims"]] == [1, 2, 3, 4, 5, 6]
    assert frame.height == sum(len(c["comparisons"]) for c in document["claims"])
    first = document["claims"][0]["comparisons"][0]
    assert set(first) >= {"label", "verdict", "ratio", "low", "high", "p_adjusted", "n_configs",
                          "interval", "key"}
    row = frame.row(0, named=True)
    assert (row["effect"], row["ci_low"], row["p_adjusted"]) == (
        first["ratio"], first["low"], first["p_adjusted"])
    # close/all is 0.5 at depth 1, 0.5**0.5 at 2, 0.5**0.125 at 4: a geometric mean of 0.70
    truth = 0.5 ** ((1 + 0.5 + 0.125) / 3)
    assert first["low"] <= truth <= first["high"] and first["n_configs"] == 27
    assert first["p_adjusted"] >= first["p_value"]
    assert "selection" in document["method"]
    assert all(c["operational_test"]["decision"] for c in document["claims"])
