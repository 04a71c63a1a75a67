"""The statistics behind every verdict: cluster-level t intervals, Holm, Diebold-Mariano.

The unit of independence is a *config*, not a run: the seeds of one config share its
architecture and data, so their results correlate (0.84 for claim 1's log ratio on the
real CoinCodex file). A comparison therefore reduces each matched pair of configs (equal
in every factor but the one under test) to one number, the mean over their common seeds
of ``log(a / b)``, and treats those numbers as the sample. Effects read as ratios.

Two tests must agree on that sample: Student's t (exact for normal config effects),
whose p-value enters Holm, and the exact sign-flip permutation test (Fisher's, exact for
any effect distribution symmetric about its centre, and hard to fool with an outlier
config: at 5-9 configs a t interval covers 0.71-0.76 when 10% of configs are outliers),
which must also reject at 0.05. It is a gate at the unadjusted level because at 6 configs
(claim 3 at the study's shape) its smallest possible p is 1/64, above any Holm level for
six claims: required at the adjusted level it would make that claim unreachable. A
comparison's interval is the hull of the t interval at its claim's level and the
sign-flip interval at 95% (90% for equivalence), so it excludes "no difference" exactly
when both tests reject (:func:`config_estimate`). The sign-flip interval is Hartigan's:
order statistics of the means of subsets of the sample.

A claim made of several comparisons is an intersection-union test: its p-value is the
largest of its parts'. Holm runs across the claims (:func:`holm_multipliers`), and each
part's interval is drawn at the level its claim was decided at, so what is shown agrees
with the verdict.

Claim 6 compares forecasts on the one shared test period, so there the unit is the test
day: a Diebold-Mariano test with the Harvey-Leybourne-Newbold small-sample correction
and a Newey-West variance (squared errors of daily prices cluster in volatile weeks).
Its interval for the RMSE ratio inverts the same statistic (:func:`dm_ratio_interval`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import lru_cache

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
ALPHA = 1.0 - CONFIDENCE
# Fewer matched configs than this and a comparison is "not tested": with 4 degrees of
# freedom a t interval is already 2.8 standard errors wide each way.
MIN_CONFIGS = 5
# Ratios within 1/1.25 .. 1.25 count as "alike" for equivalence claims.
EQUIVALENCE_RATIO = 1.25
DEFAULT_SEED = 20_251_126
# Up to this many configs the sign-flip test enumerates all 2^n sign patterns (16,384
# subset means at 14); beyond, it draws SIGN_FLIP_DRAWS random patterns with a fixed seed.
EXACT_SIGN_FLIP_MAX = 14
SIGN_FLIP_DRAWS = 20_000


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
    confidence: float = CONFIDENCE  # the level of low .. high
    p_flip: float | None = None  # the exact sign-flip test's p, where there is one

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


def holm_multipliers(p_values: list[float]) -> list[float]:
    """Per p-value, the factor ``h`` with Holm-adjusted p = min(1, h x p).

    The decision "adjusted p < alpha" is then "p < alpha / h": an interval drawn at
    confidence 1 - alpha / h excludes the null exactly when the adjusted test rejects.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    factors = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p_values[i])
        factors[i] = running / p_values[i] if p_values[i] > 0 else float(m - rank)
    return factors


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


# --- exact sign-flip (Fisher) test over configs -----------------------------------------

def subset_means(values) -> tuple[np.ndarray, int]:
    """See :func:`_subset_means`; cached, since a comparison reads one sample many times."""
    x = _finite(values)
    return _subset_means(tuple(x.tolist()))


@lru_cache(maxsize=256)
def _subset_means(x_values: tuple[float, ...]) -> tuple[np.ndarray, int]:
    """Sorted means of the non-empty subsets of ``values`` and the number of sign patterns
    they stand for (2^n exactly, or draws + 1 beyond ``EXACT_SIGN_FLIP_MAX`` values).

    Flipping the signs of a subset F of ``x - delta`` gives a sum at least the observed one
    exactly when mean(x over F) <= delta (Hartigan 1969), so p-values and intervals are
    counts of these means.
    """
    x = np.asarray(x_values)
    n = x.size
    if n <= EXACT_SIGN_FLIP_MAX:
        patterns = (np.arange(1, 2**n)[:, None] >> np.arange(n)) & 1
        total = 2**n
    else:
        rng = np.random.default_rng(DEFAULT_SEED)
        patterns = rng.integers(0, 2, size=(SIGN_FLIP_DRAWS, n), dtype=np.int8)
        patterns = patterns[patterns.sum(axis=1) > 0]
        total = SIGN_FLIP_DRAWS + 1
    means = np.sort((patterns @ x) / patterns.sum(axis=1))
    means.flags.writeable = False  # shared by the cache
    return means, total


def sign_flip_p(values, delta: float, side: str) -> float:
    """One-sided sign-flip p-value of centre = ``delta`` against centre > delta
    (``side='greater'``) or < delta (``'less'``)."""
    means, total = subset_means(values)
    if side == "greater":
        count = np.searchsorted(means, delta, side="right")  # means <= delta
    else:
        count = means.size - np.searchsorted(means, delta, side="left")  # means >= delta
    return float((1 + count) / total)


def sign_flip_interval(values, confidence: float) -> tuple[float, float]:
    """Every centre the two one-sided sign-flip tests at (1 - confidence) / 2 keep;
    infinite where the sample is too small to exclude anything."""
    means, total = subset_means(values)
    tail = (1 - confidence) / 2
    j = math.floor(tail * total - 1) + 1  # the j-th smallest mean is the lower end
    if j < 1:
        return -math.inf, math.inf
    return float(means[j - 1]), float(means[-j])


def _t_interval(values, confidence: float) -> tuple[float, float]:
    mean, se, n = _mean_se(values)
    q = float(sps.t.ppf(0.5 + confidence / 2, df=n - 1))
    return mean - q * se, mean + q * se


def config_interval(values, confidence: float, flip_confidence: float) -> tuple[float, float]:
    """Hull of the t interval at ``confidence`` and the sign-flip interval at
    ``flip_confidence``: the centres that not both tests reject."""
    t_low, t_high = _t_interval(values, confidence)
    s_low, s_high = sign_flip_interval(values, flip_confidence)
    return min(t_low, s_low), max(t_high, s_high)


def config_estimate(values, *, confidence: float = CONFIDENCE) -> Estimate | None:
    """Mean of per-config values, the t test's two-sided p of "no difference" and the
    sign-flip test's (``p_flip``), and the hull of their intervals."""
    estimate = t_estimate(values, confidence=confidence)
    if estimate is None:
        return None
    flip = min(1.0, 2 * min(sign_flip_p(values, 0.0, "greater"), sign_flip_p(values, 0.0, "less")))
    low, high = config_interval(values, confidence, confidence)
    return replace(estimate, low=low, high=high, p_flip=flip, confidence=confidence)


def config_equivalence_estimate(values, *, margin: float = math.log(EQUIVALENCE_RATIO),
                                alpha: float = ALPHA) -> Estimate | None:
    """As :func:`equivalence_estimate`, with the sign-flip versions of TOST and of
    "beyond the margin" as ``p_flip``, and the 1 - 2 alpha interval TOST reads."""
    estimate = t_estimate(values)
    if estimate is None:
        return None
    mean = estimate.mean
    if abs(mean) < margin:
        t_p = equivalence_p(values, margin)
        flip = max(sign_flip_p(values, -margin, "greater"), sign_flip_p(values, margin, "less"))
    else:
        t_p = beyond_margin_p(values, margin)
        flip = (sign_flip_p(values, margin, "greater") if mean > 0
                else sign_flip_p(values, -margin, "less"))
    confidence = 1 - 2 * alpha
    low, high = config_interval(values, confidence, confidence)
    return replace(estimate, low=low, high=high, p_value=t_p, p_flip=flip, confidence=confidence)


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


def _dm_statistic(sq_model: np.ndarray, sq_base: np.ndarray, ratio_sq: float, lags: int) -> float:
    d = sq_model - ratio_sq * sq_base
    n = d.size
    variance = newey_west_variance(d, lags)
    if variance <= 0:
        return math.nan
    statistic = float(d.mean() / math.sqrt(variance / n))
    return statistic * math.sqrt((n - 1) / n)  # HLN factor at horizon 1


def dm_ratio_interval(model_errors, baseline_errors, *,
                      confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The RMSE ratios (log scale) that the Diebold-Mariano test keeps at ``confidence``.

    Inverts the statistic claim 6 decides on: ratio r is kept while the test of
    MSE(model) = r^2 MSE(baseline), on d = e_model^2 - r^2 e_base^2 with the same
    Newey-West variance and t quantile, does not reject. So the interval excludes 1
    exactly when the test of equal accuracy rejects (a moving-block bootstrap interval
    missed 1 in 8-15% of equal-accuracy cases while the test rejected in 3-6%).
    """
    e_model, e_base = np.asarray(model_errors, float), np.asarray(baseline_errors, float)
    keep = np.isfinite(e_model) & np.isfinite(e_base)
    sq_model, sq_base = e_model[keep] ** 2, e_base[keep] ** 2
    n = sq_model.size
    lags = int(4 * (n / 100) ** (2 / 9))
    critical = float(sps.t.ppf(0.5 + confidence / 2, df=n - 1))
    point = 0.5 * math.log(sq_model.mean() / sq_base.mean())

    def kept(log_ratio: float) -> bool:
        statistic = _dm_statistic(sq_model, sq_base, math.exp(2 * log_ratio), lags)
        return math.isfinite(statistic) and abs(statistic) <= critical

    def end(direction: float) -> float:
        step, inside = 0.01, point
        while kept(point + direction * step):  # bracket the first rejected ratio
            inside = point + direction * step
            step *= 2
            if step > 20:
                return direction * math.inf
        outside = point + direction * step
        for _ in range(60):
            middle = (inside + outside) / 2
            inside, outside = (middle, outside) if kept(middle) else (inside, middle)
        return inside

    return end(-1.0), end(1.0)
