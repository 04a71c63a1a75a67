"""The statistics behind verdicts, on simulated data whose truth is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqlab.report.stats import (
    MIN_CONFIGS,
    Estimate,
    Verdict,
    combine_verdicts,
    diebold_mariano,
    directional_verdict,
    dm_ratio_interval,
    equivalence_estimate,
    equivalence_verdict,
    holm,
    least_squares_slope,
    t_estimate,
)


def config_means(rng, n_configs: int, *, effect: float, seeds: int = 3,
                 config_sd: float = 0.3, seed_sd: float = 0.1) -> np.ndarray:
    """Per config, the seed-mean log ratio: a shared config effect plus seed noise."""
    shared = rng.normal(effect, config_sd, n_configs)
    return shared + rng.normal(0, seed_sd, (seeds, n_configs)).mean(axis=0)


@pytest.mark.parametrize("n_configs", [MIN_CONFIGS, 12])
def test_interval_coverage_is_honest_at_the_smallest_decided_size(n_configs: int) -> None:
    """4,000 simulated comparisons with correlated seeds: the 95% interval covers the true
    effect 93-97% of the time at the smallest config count the report decides on."""
    rng = np.random.default_rng(7)
    truth = math.log(0.8)
    covered = 0
    for _ in range(4000):
        est = t_estimate(config_means(rng, n_configs, effect=truth))
        covered += est.low <= truth <= est.high
    assert 0.93 <= covered / 4000 <= 0.97


def test_seeds_treated_as_independent_would_have_covered_too_rarely() -> None:
    """Why configs are the unit: the same data resampled run by run (the old method)
    covers the truth far less often than 95%."""
    rng = np.random.default_rng(8)
    covered = 0
    for _ in range(2000):
        shared = rng.normal(0.0, 0.3, MIN_CONFIGS)
        runs = (shared + rng.normal(0, 0.1, (3, MIN_CONFIGS))).ravel()
        mean, se = runs.mean(), runs.std(ddof=1) / math.sqrt(runs.size)
        covered += abs(mean) <= 1.96 * se
    assert covered / 2000 < 0.90


def test_t_estimate_p_value_and_degenerate_cases() -> None:
    est = t_estimate([0.1, 0.2, 0.3, 0.2, 0.2])
    assert est.mean == pytest.approx(0.2) and est.n == 5
    assert est.low < 0.2 < est.high and est.p_value < 0.01
    assert t_estimate([0.5]) is None
    flat = t_estimate([0.3, 0.3, 0.3])
    assert (flat.low, flat.high, flat.p_value) == (0.3, 0.3, 0.0)
    assert t_estimate([1.0, float("nan"), 2.0]).n == 2


def test_holm_by_hand() -> None:
    # sorted 0.01, 0.02, 0.03, 0.5 -> 4x.01, 3x.02, 2x.03 (monotone), 1x.5
    assert holm([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert holm([0.9, 0.9]) == [1.0, 1.0]


def test_directional_verdicts_read_the_adjusted_p_value() -> None:
    clear = Estimate(-0.2, -0.3, -0.1, 10, 0.001)
    assert directional_verdict(clear, expect_negative=True) is Verdict.SUPPORTED
    assert directional_verdict(clear, expect_negative=False) is Verdict.CONTRADICTED
    adjusted = Estimate(-0.2, -0.3, -0.1, 10, 0.001, p_adjusted=0.2)
    assert directional_verdict(adjusted, expect_negative=True) is Verdict.INCONCLUSIVE
    few = Estimate(-0.2, -0.3, -0.1, MIN_CONFIGS - 1, 0.001)
    assert directional_verdict(few, expect_negative=True) is Verdict.NOT_TESTED
    assert directional_verdict(None, expect_negative=True) is Verdict.NOT_TESTED


def test_equivalence_needs_the_interval_inside_the_band() -> None:
    rng = np.random.default_rng(3)
    alike = equivalence_estimate(rng.normal(0.0, 0.05, 20))
    assert equivalence_verdict(alike) is Verdict.SUPPORTED
    apart = equivalence_estimate(rng.normal(0.6, 0.05, 20))
    assert equivalence_verdict(apart) is Verdict.CONTRADICTED
    vague = equivalence_estimate(rng.normal(0.0, 0.8, 6))
    assert equivalence_verdict(vague) is Verdict.INCONCLUSIVE


def test_equivalence_at_the_margin_is_rarely_called_alike() -> None:
    """Cells that truly differ by exactly x1.25: 'alike' at most 5% of the time."""
    rng = np.random.default_rng(11)
    alike = sum(
        equivalence_verdict(equivalence_estimate(config_means(rng, 6, effect=math.log(1.25))))
        is Verdict.SUPPORTED
        for _ in range(2000)
    )
    assert alike / 2000 <= 0.05


def test_combine_verdicts_intersection_union() -> None:
    yes, no, open_, untested = (Verdict.SUPPORTED, Verdict.CONTRADICTED, Verdict.INCONCLUSIVE,
                                Verdict.NOT_TESTED)
    assert combine_verdicts([yes, yes]) is yes
    assert combine_verdicts([yes, open_]) is open_
    assert combine_verdicts([yes, no, untested]) is no
    assert combine_verdicts([yes, untested]) is untested  # a missing comparison never passes
    assert combine_verdicts([]) is untested


def test_least_squares_slope() -> None:
    assert least_squares_slope([1, 2, 3, 4], [3.0, 5.0, 7.0, 9.0]) == pytest.approx(2.0)
    assert math.isnan(least_squares_slope([2, 2], [1.0, 3.0]))


def garch_errors(rng, n: int) -> np.ndarray:
    """Errors whose size clusters in time, like daily crypto moves."""
    out, var = np.empty(n), 1.0
    for t in range(n):
        out[t] = rng.normal(0, math.sqrt(var))
        var = 0.1 + 0.15 * out[t] ** 2 + 0.75 * var
    return out


def test_diebold_mariano_size_under_the_null_with_clustered_volatility() -> None:
    """Equal accuracy by construction: rejected about 5% of the time, not more."""
    rng = np.random.default_rng(5)
    rejected = 0
    for _ in range(600):
        vol = np.abs(garch_errors(rng, 300))
        a, b = vol * rng.normal(0, 1, 300), vol * rng.normal(0, 1, 300)
        rejected += diebold_mariano(a, b)[1] < 0.05
    assert rejected / 600 <= 0.075


def test_diebold_mariano_finds_a_real_edge_and_its_sign() -> None:
    rng = np.random.default_rng(6)
    base = rng.normal(0, 100, 700)
    better = 0.8 * base + rng.normal(0, 20, 700)
    statistic, p = diebold_mariano(better, base)
    assert statistic < 0 and p < 0.001
    low, high = dm_ratio_interval(better, base)
    ratio = np.sqrt(np.mean(better**2) / np.mean(base**2))
    assert low < math.log(ratio) < high < 0
