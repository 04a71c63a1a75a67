"""Statistics helpers and claim verdicts on constructed data whose answer is known."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest

from seqlab.report.claims import claims_frame, evaluate_claims
from seqlab.report.stats import (
    MIN_PAIRS,
    Interval,
    Verdict,
    bootstrap_mean,
    combine_verdicts,
    directional_verdict,
    equivalence_verdict,
    least_squares_slope,
    log_ratios,
)

RNG = np.random.default_rng(12345)


def test_bootstrap_interval_covers_the_mean_and_is_repeatable() -> None:
    values = RNG.normal(2.0, 1.0, size=40)
    first, second = bootstrap_mean(values), bootstrap_mean(values)
    assert first == second  # seeded: a rebuilt report prints the same numbers
    assert first.low < values.mean() < first.high
    assert first.mean == pytest.approx(values.mean())
    # The percentile interval of a mean is about ±1.96 standard errors wide.
    half_width = 1.96 * values.std(ddof=1) / math.sqrt(values.size)
    assert (first.high - first.low) / 2 == pytest.approx(half_width, rel=0.15)
    assert bootstrap_mean(values, seed=1) != first


def test_bootstrap_drops_non_finite_and_refuses_empty() -> None:
    interval = bootstrap_mean([1.0, float("nan"), 3.0, float("inf")])
    assert interval.n == 2 and interval.mean == 2.0
    with pytest.raises(ValueError, match="at least one finite"):
        bootstrap_mean([float("nan")])


def test_clear_win_clear_loss_and_noise() -> None:
    win = bootstrap_mean(RNG.normal(-0.5, 0.1, size=20))
    loss = bootstrap_mean(RNG.normal(0.5, 0.1, size=20))
    half = RNG.normal(0.0, 1.0, size=15)
    noise = bootstrap_mean(np.concatenate([half, -half]))  # mean exactly 0
    assert directional_verdict(win, expect_negative=True) is Verdict.SUPPORTED
    assert directional_verdict(loss, expect_negative=True) is Verdict.CONTRADICTED
    assert directional_verdict(noise, expect_negative=True) is Verdict.INCONCLUSIVE
    # The same data read for the opposite claim flips the verdict.
    assert directional_verdict(win, expect_negative=False) is Verdict.CONTRADICTED
    assert directional_verdict(loss, expect_negative=False) is Verdict.SUPPORTED


def test_pure_noise_is_decided_about_as_rarely_as_the_interval_promises() -> None:
    """A 95% interval should exclude a true zero in roughly 5% of noise data sets."""
    rng = np.random.default_rng(2024)
    decided = sum(
        directional_verdict(bootstrap_mean(rng.normal(0.0, 1.0, size=30), n_resamples=2000),
                            expect_negative=True) is not Verdict.INCONCLUSIVE
        for _ in range(300)
    )
    assert 3 <= decided <= 36  # 1% .. 12% of 300; the percentile bootstrap runs a bit hot


def test_too_few_pairs_is_too_small_to_decide() -> None:
    few = bootstrap_mean([-5.0] * (MIN_PAIRS - 1))
    assert directional_verdict(few, expect_negative=True) is Verdict.TOO_SMALL
    assert directional_verdict(None, expect_negative=True) is Verdict.TOO_SMALL
    assert equivalence_verdict(few) is Verdict.TOO_SMALL


def test_equivalence_verdicts() -> None:
    margin = math.log(1.25)
    alike = bootstrap_mean(RNG.normal(0.0, 0.02, size=20))
    apart = bootstrap_mean(RNG.normal(1.0, 0.05, size=20))
    vague = bootstrap_mean(RNG.normal(0.2, 0.6, size=10))
    assert equivalence_verdict(alike, margin=margin) is Verdict.SUPPORTED
    assert equivalence_verdict(apart, margin=margin) is Verdict.CONTRADICTED
    assert equivalence_verdict(vague, margin=margin) is Verdict.INCONCLUSIVE


def test_log_ratios_pairs_and_drops_unusable_values() -> None:
    ratios = log_ratios([1.0, 2.0, 0.0, float("nan"), 4.0], [2.0, 2.0, 1.0, 1.0, -1.0])
    assert ratios.tolist() == pytest.approx([math.log(0.5), 0.0])
    with pytest.raises(ValueError, match="differ in length"):
        log_ratios([1.0], [1.0, 2.0])


def test_interval_as_ratio_exponentiates() -> None:
    ratio = Interval(math.log(0.5), math.log(0.4), math.log(0.6), 9).as_ratio()
    assert (ratio.mean, ratio.low, ratio.high, ratio.n) == pytest.approx((0.5, 0.4, 0.6, 9))


def test_combine_verdicts() -> None:
    S, C, U, T = Verdict.SUPPORTED, Verdict.CONTRADICTED, Verdict.INCONCLUSIVE, Verdict.TOO_SMALL
    assert combine_verdicts([S, S]) is S
    assert combine_verdicts([S, T]) is S  # a comparison the grid cannot make is left out
    assert combine_verdicts([S, U]) is U
    assert combine_verdicts([S, C, U]) is C
    assert combine_verdicts([T, T]) is T


def test_least_squares_slope() -> None:
    assert least_squares_slope([1, 2, 3, 4], [3.0, 5.0, 7.0, 9.0]) == pytest.approx(2.0)
    assert math.isnan(least_squares_slope([2, 2], [1.0, 3.0]))


# ---- claims on a constructed grid ---------------------------------------------------------


def constructed_grid(effects: dict[str, float], *, seeds: int = 3, noise: float = 0.05,
                     depths=(1, 2, 3), feature_sets=("close", "all"),
                     norms=("none", "batch", "layer")) -> tuple[pl.DataFrame, ...]:
    """Runs whose metrics follow known multiplicative effects plus small lognormal noise.

    effects: close (loss factor of close vs all), close_per_depth (how that factor moves
    toward 1 per layer), lstm / gru (loss factor vs rnn), batch_early, batch_late_std,
    layer_epochs, layer_late_std (factors vs no norm), model (RMSE factor vs persistence).
    """
    rng = np.random.default_rng(99)
    rows, conv, stab = [], [], []
    for i, (cell, depth, norm, fs, seed) in enumerate(itertools.product(
        ("rnn", "lstm", "gru"), depths, norms, feature_sets, range(seeds)
    )):
        jitter = lambda: float(np.exp(rng.normal(0, noise)))  # noqa: E731
        loss = 0.01 * jitter()
        if fs == "close":
            loss *= effects.get("close", 1.0) ** (1 + effects.get("close_per_depth", 0.0) * (depth - 1))
        loss *= effects.get(cell, 1.0)
        run_id = f"r{i}"
        rows.append({"run_id": run_id, "cell": cell, "depth": depth, "norm": norm,
                     "feature_set": fs, "seed": seed, "status": "ok", "best_test_loss": loss,
                     "test_rmse_usd": 100 * effects.get("model", 1.0) * jitter(),
                     "baseline_rmse_usd": 100.0})
        early = 0.1 * jitter() * (effects.get("batch_early", 1.0) if norm == "batch" else 1.0)
        std = 0.001 * jitter()
        std *= {"batch": effects.get("batch_late_std", 1.0),
                "layer": effects.get("layer_late_std", 1.0)}.get(norm, 1.0)
        epochs = 50 * jitter() * (effects.get("layer_epochs", 1.0) if norm == "layer" else 1.0)
        conv.append({"run_id": run_id, "early_test_loss": early, "epochs_to_within_10pct": epochs})
        stab.append({"run_id": run_id, "late_test_loss_std": std})
    return pl.DataFrame(rows), pl.DataFrame(conv), pl.DataFrame(stab)


def verdicts(frames) -> dict[int, Verdict]:
    return {c.number: c.verdict for c in evaluate_claims(*frames)}


def test_claims_all_supported_when_the_grid_behaves_as_the_study_says() -> None:
    frames = constructed_grid({
        "close": 0.6, "close_per_depth": -0.4, "batch_early": 0.7, "batch_late_std": 2.0,
        "layer_epochs": 0.6, "layer_late_std": 0.5, "model": 0.8,
    })  # fmt: skip
    # Cells alike (no cell effect) -> claim 3 supported too.
    assert verdicts(frames) == {n: Verdict.SUPPORTED for n in range(1, 7)}


def test_claims_contradicted_when_the_grid_does_the_opposite() -> None:
    frames = constructed_grid({
        "close": 1.6, "close_per_depth": -0.4, "gru": 2.0, "batch_early": 1.5,
        "batch_late_std": 0.5, "layer_epochs": 1.6, "layer_late_std": 2.0, "model": 1.3,
    })  # fmt: skip
    assert verdicts(frames) == {n: Verdict.CONTRADICTED for n in range(1, 7)}


def test_claims_on_pure_noise_are_inconclusive() -> None:
    frames = constructed_grid({}, noise=0.5)
    found = verdicts(frames)
    for number in (1, 2, 4, 5, 6):
        assert found[number] is Verdict.INCONCLUSIVE, number
    # Cells alike within ±25% cannot be shown when runs scatter by ±50%.
    assert found[3] is Verdict.INCONCLUSIVE


def test_claims_say_too_small_when_the_grid_lacks_the_factor() -> None:
    frames = constructed_grid({"model": 0.8}, depths=(1,), feature_sets=("close",),
                              norms=("none",), seeds=3)
    found = {c.number: c for c in evaluate_claims(*frames)}
    for number in (1, 2, 3, 4, 5):
        assert found[number].verdict is Verdict.TOO_SMALL, number
    assert found[6].verdict is Verdict.SUPPORTED  # 9 runs against persistence
    notes = " ".join(c.note for c in found[1].comparisons)
    assert "no all runs" in notes


def test_claims_frame_has_one_row_per_comparison_with_ratio_effects() -> None:
    frames = constructed_grid({"close": 0.5, "model": 0.8})
    claims = evaluate_claims(*frames)
    table = claims_frame(claims)
    assert table.height == sum(len(c.comparisons) for c in claims)
    close = table.filter(pl.col("claim_no") == 1).row(0, named=True)
    assert close["verdict"] == "supported"
    assert close["ci_low"] < close["effect"] < close["ci_high"]
    assert close["effect"] == pytest.approx(0.5, rel=0.05)  # the constructed factor
    assert close["n_pairs"] == 3 * 3 * 3 * 3  # cells × depths × norms × seeds
    assert "bootstrap" in close["method"]
