"""The statistics behind every verdict: cluster-level t intervals, Holm, Diebold-Mariano.

The unit of independence is a *config*, not a run: the seeds of one config share its
architecture and data, so their results correlate (0.84 for claim 1's log ratio on the
real CoinCodex file). A comparison therefore reduces each matched pair of configs (equal
in every factor but the one under test) to one number, the mean over their common seeds
of ``log(a / b)``, and treats those numbers as the sample. Effects read as ratios.

Intervals are Student t intervals on that sample: exact for normal config effects and,
unlike a percentile bootstrap, honest at the small counts a grid gives (simulated
coverage in tests/report/test_verdict_statistics.py). Every comparison also carries a
p-value; the report adjusts them by Holm over all its comparisons, and a verdict is
taken on the adjusted p-value only.

Claim 6 compares forecasts on the one shared test period, so there the unit is the test
day: a Diebold-Mariano test with the Harvey-Leybourne-Newbold small-sample correction
and a Newey-West variance (squared errors of daily prices cluster in volatile weeks),
plus a moving-block bootstrap interval for the RMSE ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
ALPHA = 1.0 - CONFIDENCE
# Fewer matched configs than this and a comparison is "not tested": with 4 degrees of
# freedom a t interval is already 2.8 standard errors wide each way.
MIN_CONFIGS = 5
# Ratios within 1/1.25 .. 1.25 count as "alike" for equivalence claims.
EQUIVALENCE_RATIO = 1.25
BLOCK_DAYS = 20  # moving-block bootstrap over test days: about a trading month
DEFAULT_RESAMPLES = 4_000
DEFAULT_SEED = 20_251_126


class Verdict(StrEnum):
    SUPPORTED = "supported"
    CONTRADICTED = "contradicted"
    INCONCLUSIVE = "inconclusive"
    NOT_TESTED = "not tested"


@dataclass(frozen=True)
class Estimate:
    """A mean effect on the log scale, its interval, the units behind it and its p-values.

    ``p_value`` tests the comparison's null (no difference, or for equivalence "not alike"
    / "alike"); ``p_adjusted`` is filled in by :func:`holm` across the report.
    """

    mean: float
    low: float
    high: float
    n: int
    p_value: float
    p_adjusted: float | None = None

    def as_ratio(self) -> Estimate:
        return replace(self, mean=math.exp(self.mean), low=math.exp(self.low),
                       high=math.exp(self.high))


def _finite(values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


def _mean_se(values) -> tuple[float, float, int]:
    """Mean, standard error and count of the finite values."""
    x = _finite(values)
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size)), int(x.size)


def t_estimate(values, *, confidence: float = CONFIDENCE) -> Estimate | None:
    """Mean of ``values`` with its t interval and the two-sided p-value of mean = 0.

    None with fewer than two finite values. Identical values give a zero-width interval
    and p = 0 (when the mean is not 0) or 1.
    """
    if _finite(values).size < 2:
        return None
    mean, se, n = _mean_se(values)
    if se == 0.0:
        return Estimate(mean, mean, mean, n, 1.0 if mean == 0.0 else 0.0)
    q = float(sps.t.ppf(0.5 + confidence / 2, df=n - 1))
    p = float(2 * sps.t.sf(abs(mean) / se, df=n - 1))
    return Estimate(mean, mean - q * se, mean + q * se, n, p)


def equivalence_p(values, margin: float) -> float:
    """Two one-sided t tests (TOST) of |mean| >= margin: small p means "alike"."""
    mean, se, n = _mean_se(values)
    if se == 0.0:
        return 0.0 if abs(mean) < margin else 1.0
    lower = sps.t.sf((mean + margin) / se, df=n - 1)  # H0: mean <= -margin
    upper = sps.t.cdf((mean - margin) / se, df=n - 1)  # H0: mean >= +margin
    return float(max(lower, upper))


def beyond_margin_p(values, margin: float) -> float:
    """One-sided t test that the mean lies beyond ``margin`` on the side it was observed."""
    mean, se, n = _mean_se(values)
    distance = abs(mean) - margin
    if se == 0.0:
        return 0.0 if distance > 0 else 1.0
    return float(sps.t.sf(distance / se, df=n - 1))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: controls the family-wise error at any alpha."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def directional_verdict(estimate: Estimate | None, *, expect_negative: bool,
                        alpha: float = ALPHA) -> Verdict:
    """On the adjusted p-value: significant in the claimed direction, or the other."""
    if estimate is None or estimate.n < MIN_CONFIGS:
        return Verdict.NOT_TESTED
    p = estimate.p_adjusted if estimate.p_adjusted is not None else estimate.p_value
    if p >= alpha:
        return Verdict.INCONCLUSIVE
    return Verdict.SUPPORTED if (estimate.mean < 0) == expect_negative else Verdict.CONTRADICTED


def equivalence_verdict(estimate: Estimate | None, *, margin: float = math.log(EQUIVALENCE_RATIO),
                        alpha: float = ALPHA) -> Verdict:
    """"Alike": the p-value is TOST's when the mean is inside the margin, else the
    one-sided test of lying beyond it (see :func:`equivalence_estimate`)."""
    if estimate is None or estimate.n < MIN_CONFIGS:
        return Verdict.NOT_TESTED
    p = estimate.p_adjusted if estimate.p_adjusted is not None else estimate.p_value
    if p >= alpha:
        return Verdict.INCONCLUSIVE
    return Verdict.SUPPORTED if abs(estimate.mean) < margin else Verdict.CONTRADICTED


def equivalence_estimate(values, *, margin: float = math.log(EQUIVALENCE_RATIO)) -> Estimate | None:
    """The t interval of the mean, with the p-value of the one test that could decide:
    TOST when the mean lies inside ``±margin``, "beyond the margin" otherwise. Each is a
    level-alpha test of its own null, and which one applies is fixed by the estimate's
    side, so at most one can reject."""
    estimate = t_estimate(values)
    if estimate is None:
        return None
    p = (equivalence_p(values, margin) if abs(estimate.mean) < margin
         else beyond_margin_p(values, margin))
    return replace(estimate, p_value=p)


def combine_verdicts(parts: list[Verdict]) -> Verdict:
    """A claim made of several comparisons (an intersection-union test): supported only
    when every part is; contradicted when any part is; not tested when any part could
    not be tested and nothing contradicts; inconclusive otherwise."""
    if not parts:
        return Verdict.NOT_TESTED
    if any(v is Verdict.CONTRADICTED for v in parts):
        return Verdict.CONTRADICTED
    if any(v is Verdict.NOT_TESTED for v in parts):
        return Verdict.NOT_TESTED
    if all(v is Verdict.SUPPORTED for v in parts):
        return Verdict.SUPPORTED
    return Verdict.INCONCLUSIVE


def least_squares_slope(x, y) -> float:
    """Slope of the least-squares line through (x, y); NaN with fewer than two distinct x."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    if np.unique(xs).size < 2:
        return math.nan
    centred = xs - xs.mean()
    return float((centred * (ys - ys.mean())).sum() / (centred**2).sum())


# --- claim 6: one shared test period, so the test day is the unit -----------------------

def newey_west_variance(d: np.ndarray, lags: int) -> float:
    """Long-run variance of ``d`` with Bartlett weights up to ``lags``."""
    centred = d - d.mean()
    n = centred.size
    variance = float(centred @ centred) / n
    for k in range(1, lags + 1):
        variance += 2 * (1 - k / (lags + 1)) * float(centred[k:] @ centred[:-k]) / n
    return variance


def diebold_mariano(model_errors, baseline_errors, *, horizon: int = 1) -> tuple[float, float]:
    """(statistic, two-sided p) of equal squared-error accuracy; negative: model better.

    Harvey, Leybourne and Newbold (1997): the statistic scaled by
    sqrt((n + 1 - 2h + h(h-1)/n) / n) and read against t with n - 1 degrees of freedom.
    The variance is Newey-West with floor(4 (n/100)^(2/9)) lags, not just the h - 1 the
    textbook DM uses, because squared daily price errors are autocorrelated.
    """
    e_model, e_base = np.asarray(model_errors, float), np.asarray(baseline_errors, float)
    keep = np.isfinite(e_model) & np.isfinite(e_base)
    d = e_model[keep] ** 2 - e_base[keep] ** 2
    n = d.size
    if n < 3:
        return math.nan, math.nan
    lags = max(horizon - 1, int(4 * (n / 100) ** (2 / 9)))
    variance = newey_west_variance(d, lags)
    if variance <= 0:
        return math.nan, math.nan
    statistic = float(d.mean() / math.sqrt(variance / n))
    statistic *= math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    return statistic, float(2 * sps.t.sf(abs(statistic), df=n - 1))


def block_bootstrap_rmse_ratio(
    model_errors, baseline_errors, *, block: int = BLOCK_DAYS,
    n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float, int]:
    """RMSE(model) / RMSE(baseline) over test days with a moving-block bootstrap interval
    (log scale: mean, low, high) and the number of days."""
    e_model, e_base = np.asarray(model_errors, float), np.asarray(baseline_errors, float)
    keep = np.isfinite(e_model) & np.isfinite(e_base)
    sq_model, sq_base = e_model[keep] ** 2, e_base[keep] ** 2
    n = sq_model.size
    point = 0.5 * math.log(sq_model.mean() / sq_base.mean())
    block = max(1, min(block, n))
    rng = np.random.default_rng(seed)
    n_blocks = math.ceil(n / block)
    starts = rng.integers(0, n - block + 1, size=(n_resamples, n_blocks))
    picks = (starts[:, :, None] + np.arange(block)).reshape(n_resamples, -1)[:, :n]
    ratios = 0.5 * np.log(sq_model[picks].mean(axis=1) / sq_base[picks].mean(axis=1))
    tail = (1 - confidence) / 2
    low, high = np.quantile(ratios, [tail, 1 - tail])
    return point, float(low), float(high), n
