"""Paired comparisons with a seeded bootstrap: effect sizes, 95% intervals and verdicts.

Method (the one the report names): every comparison is a set of *pairs*, two runs that
differ only in the factor under test (same cell, depth, norm, features, seed otherwise).
Each pair gives one difference, usually ``log(a / b)`` of a positive metric, so effects
read as ratios and losses spanning orders of magnitude weigh alike. The effect is the mean
difference; its 95% interval is the percentile interval of the mean over ``n_resamples``
bootstrap resamples of the pairs, drawn with a seeded generator so a report rebuilt from
the same warehouse prints the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 20_251_126
CONFIDENCE = 0.95
# Fewer pairs than this and a percentile bootstrap interval is too optimistic to act on.
MIN_PAIRS = 6
# Ratios within 1/1.25 .. 1.25 count as "alike" for equivalence claims.
EQUIVALENCE_RATIO = 1.25


class Verdict(StrEnum):
    SUPPORTED = "supported"
    CONTRADICTED = "contradicted"
    INCONCLUSIVE = "inconclusive"
    TOO_SMALL = "too small to decide"


@dataclass(frozen=True)
class Interval:
    """Mean of paired differences with its bootstrap interval over ``n`` pairs."""

    mean: float
    low: float
    high: float
    n: int

    def as_ratio(self) -> Interval:
        """The same interval for differences of logs, read as a ratio (exp)."""
        return Interval(math.exp(self.mean), math.exp(self.low), math.exp(self.high), self.n)


def bootstrap_mean(
    differences: np.ndarray | list[float],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Mean of ``differences`` with a seeded percentile-bootstrap interval.

    Non-finite values are dropped first. Raises ValueError when nothing is left.
    """
    values = np.asarray(differences, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("bootstrap_mean needs at least one finite difference")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(n_resamples, values.size))
    means = values[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(values.mean()), float(low), float(high), int(values.size))


def log_ratios(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> np.ndarray:
    """``log(a / b)`` per pair; pairs where either side is not a positive number are dropped."""
    a_values, b_values = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_values.shape != b_values.shape:
        raise ValueError(f"paired arrays differ in length: {a_values.size} vs {b_values.size}")
    keep = np.isfinite(a_values) & np.isfinite(b_values) & (a_values > 0) & (b_values > 0)
    return np.log(a_values[keep] / b_values[keep])


def directional_verdict(
    interval: Interval | None, *, expect_negative: bool, min_pairs: int = MIN_PAIRS
) -> Verdict:
    """Supported when the whole interval lies on the claimed side of zero, contradicted when
    it lies wholly on the other side, inconclusive when it straddles zero."""
    if interval is None or interval.n < min_pairs:
        return Verdict.TOO_SMALL
    if expect_negative:
        below, above = interval.high < 0, interval.low > 0
    else:
        below, above = interval.low > 0, interval.high < 0
    if below:
        return Verdict.SUPPORTED
    if above:
        return Verdict.CONTRADICTED
    return Verdict.INCONCLUSIVE


def equivalence_verdict(
    interval: Interval | None, *, margin: float = math.log(EQUIVALENCE_RATIO),
    min_pairs: int = MIN_PAIRS,
) -> Verdict:
    """For "alike" claims on log ratios: supported when the interval sits inside
    ``±margin``, contradicted when it lies wholly outside, inconclusive otherwise."""
    if interval is None or interval.n < min_pairs:
        return Verdict.TOO_SMALL
    if -margin < interval.low and interval.high < margin:
        return Verdict.SUPPORTED
    if interval.low > margin or interval.high < -margin:
        return Verdict.CONTRADICTED
    return Verdict.INCONCLUSIVE


def combine_verdicts(parts: list[Verdict]) -> Verdict:
    """A claim made of several comparisons: every part must hold for it to be supported;
    one contradicted part contradicts it; too-small parts are ignored unless all are."""
    decided = [v for v in parts if v is not Verdict.TOO_SMALL]
    if not decided:
        return Verdict.TOO_SMALL
    if any(v is Verdict.CONTRADICTED for v in decided):
        return Verdict.CONTRADICTED
    if all(v is Verdict.SUPPORTED for v in decided):
        return Verdict.SUPPORTED
    return Verdict.INCONCLUSIVE


def least_squares_slope(x: np.ndarray | list[float], y: np.ndarray | list[float]) -> float:
    """Slope of the least-squares line through (x, y); NaN with fewer than two distinct x."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    if np.unique(xs).size < 2:
        return math.nan
    centred = xs - xs.mean()
    return float((centred * (ys - ys.mean())).sum() / (centred**2).sum())
