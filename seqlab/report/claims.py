"""Verdicts on the reference study's claims, from paired comparisons of a grid's runs.

Every comparison pairs runs that differ only in the factor under test and bootstraps the
mean log ratio of a metric (see seqlab.report.stats). Effects are reported as ratios
(``exp`` of the mean log ratio: 1 = no difference, 0.8 = 20% lower). A claim whose
comparisons lack pairs (the grid does not vary that factor, or has too few seeds and
configs) is "too small to decide", never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import polars as pl

from seqlab.report.stats import (
    CONFIDENCE,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    EQUIVALENCE_RATIO,
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

METHOD = (
    f"paired bootstrap of the mean log ratio ({DEFAULT_RESAMPLES:,} resamples, seed "
    f"{DEFAULT_SEED}), {CONFIDENCE:.0%} percentile interval; at least {MIN_PAIRS} pairs"
)
FACTORS = ("cell", "depth", "norm", "feature_set", "seed")
USABLE = ("ok", "diverged")


@dataclass(frozen=True)
class Comparison:
    """One paired comparison behind a claim; ``interval`` is on the log-ratio scale."""

    label: str
    verdict: Verdict
    interval: Interval | None
    effect_unit: str
    note: str = ""

    @property
    def ratio(self) -> Interval | None:
        return self.interval.as_ratio() if self.interval is not None else None


@dataclass(frozen=True)
class Claim:
    number: int
    statement: str
    verdict: Verdict
    comparisons: tuple[Comparison, ...]
    note: str = ""


SHORT_NAMES = {
    1: "close beats all",
    2: "close advantage shrinks with depth",
    3: "cells alike when deep",
    4: "BatchNorm fast early, noisy late",
    5: "LayerNorm fast and stable",
    6: "models beat persistence",
}
STATEMENTS = {
    1: "Close-only features reach a lower test loss than all features.",
    2: "The close-only advantage shrinks as depth grows.",
    3: "With deep stacks, RNN, LSTM and GRU perform alike.",
    4: "BatchNorm learns faster in early epochs but fluctuates more late in training "
       "than no norm and LayerNorm.",
    5: "LayerNorm converges faster and more stably than no norm and BatchNorm.",
    6: "The models beat the naive persistence baseline (tomorrow = today).",
}


def run_metrics(runs: pl.DataFrame, convergence: pl.DataFrame, stability: pl.DataFrame) -> pl.DataFrame:
    """One row per usable run: its factors and every metric a claim compares."""
    return (
        runs.filter(pl.col("status").is_in(USABLE))
        .select(*FACTORS, "run_id", "best_test_loss", "test_rmse_usd", "baseline_rmse_usd")
        .join(convergence.select("run_id", "early_test_loss", "epochs_to_within_10pct"),
              on="run_id", how="left")
        .join(stability.select("run_id", "late_test_loss_std"), on="run_id", how="left")
    )


def paired_values(
    metrics: pl.DataFrame, factor: str, a, b, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Metric of runs with ``factor == a`` and ``factor == b`` that agree on every other factor."""
    keys = [f for f in FACTORS if f != factor]
    left = metrics.filter(pl.col(factor) == a).select(*keys, pl.col(metric).alias("a"))
    right = metrics.filter(pl.col(factor) == b).select(*keys, pl.col(metric).alias("b"))
    joined = left.join(right, on=keys, how="inner").drop_nulls(["a", "b"])
    return joined["a"].to_numpy(), joined["b"].to_numpy()


def _interval(differences: np.ndarray) -> Interval | None:
    return bootstrap_mean(differences) if np.isfinite(differences).any() else None


def _directional(
    metrics: pl.DataFrame, factor: str, a, b, metric: str, *, expect_lower: bool, what: str
) -> Comparison:
    """Is ``metric`` of ``a`` lower (or higher) than of ``b``, pair by pair?"""
    label = f"{a} vs {b}: {what}"
    unit = f"{a}/{b} ratio of {what} (< 1: {a} lower)"
    if not (metrics[factor] == a).any() or not (metrics[factor] == b).any():
        missing = a if not (metrics[factor] == a).any() else b
        return Comparison(label, Verdict.TOO_SMALL, None, unit, f"no {missing} runs in the grid")
    interval = _interval(log_ratios(*paired_values(metrics, factor, a, b, metric)))
    verdict = directional_verdict(interval, expect_negative=expect_lower)
    return Comparison(label, verdict, interval, unit, _pairs_note(interval))


def _pairs_note(interval: Interval | None, unit: str = "pairs") -> str:
    """Only says something when there are too few pairs to decide."""
    n = 0 if interval is None else interval.n
    return f"only {n} {unit} (need {MIN_PAIRS})" if n < MIN_PAIRS else ""


def _claim(number: int, comparisons: list[Comparison], note: str = "") -> Claim:
    verdict = combine_verdicts([c.verdict for c in comparisons])
    return Claim(number, STATEMENTS[number], verdict, tuple(comparisons), note)


def claim_close_beats_all(m: pl.DataFrame) -> Claim:
    return _claim(1, [_directional(m, "feature_set", "close", "all", "best_test_loss",
                                   expect_lower=True, what="best test loss")])


def claim_advantage_shrinks(m: pl.DataFrame) -> Claim:
    """Slope over depth of log(all/close), one slope per (cell, norm, seed); shrinking < 0."""
    label = "all/close best test loss ratio vs depth"
    unit = "change of the all/close ratio per added layer (< 1: close's edge shrinks)"
    keys = [f for f in FACTORS if f != "feature_set"]

    def side(name: str) -> pl.DataFrame:
        return m.filter(pl.col("feature_set") == name).select(*keys, pl.col("best_test_loss").alias(name))

    pairs = side("all").join(side("close"), on=keys).filter((pl.col("all") > 0) & (pl.col("close") > 0))
    if pairs.is_empty() or pairs["depth"].n_unique() < 2:
        why = "needs both feature sets at two or more depths"
        return _claim(2, [Comparison(label, Verdict.TOO_SMALL, None, unit, why)])
    slopes = [
        least_squares_slope(g["depth"].to_numpy(), np.log(g["all"].to_numpy() / g["close"].to_numpy()))
        for _, g in pairs.group_by(["cell", "norm", "seed"], maintain_order=True)
    ]
    interval = _interval(np.asarray(slopes, dtype=float))
    verdict = directional_verdict(interval, expect_negative=True)
    note = _pairs_note(interval, "(cell, norm, seed) slopes")
    return _claim(2, [Comparison(label, verdict, interval, unit, note)])


def claim_cells_alike_when_deep(m: pl.DataFrame) -> Claim:
    """At the grid's deepest depth (>= 2), every pair of cells within ±25% (equivalence)."""
    deepest = int(m["depth"].max()) if m.height else 0
    cells = sorted(m["cell"].unique().to_list()) if m.height else []
    if deepest < 2 or len(cells) < 2:
        why = "needs two or more cells at depth >= 2"
        return _claim(3, [Comparison("cells at the deepest depth", Verdict.TOO_SMALL, None,
                                     "ratio of best test loss", why)])
    deep = m.filter(pl.col("depth") == deepest)
    comparisons = []
    for a, b in combinations(cells, 2):
        interval = _interval(log_ratios(*paired_values(deep, "cell", a, b, "best_test_loss")))
        comparisons.append(Comparison(
            f"{a} vs {b} at depth {deepest}: best test loss",
            equivalence_verdict(interval), interval, f"{a}/{b} ratio of best test loss",
            _pairs_note(interval),
        ))  # fmt: skip
    missing = sorted({"rnn", "lstm", "gru"} - set(cells))
    note = f"alike = within ×{EQUIVALENCE_RATIO:g} either way"
    if missing:
        note += f"; {', '.join(missing)} not in the grid"
    return _claim(3, comparisons, note)


def claim_batchnorm_early_fast_late_noisy(m: pl.DataFrame) -> Claim:
    comparisons = []
    for other in ("none", "layer"):
        comparisons.append(_directional(m, "norm", "batch", other, "early_test_loss",
                                        expect_lower=True, what="test loss, first 20% of epochs"))
        comparisons.append(_directional(m, "norm", "batch", other, "late_test_loss_std",
                                        expect_lower=False, what="test loss std, last 20% of epochs"))
    return _claim(4, comparisons)


def claim_layernorm_fast_stable(m: pl.DataFrame) -> Claim:
    comparisons = []
    for other in ("none", "batch"):
        comparisons.append(_directional(m, "norm", "layer", other, "epochs_to_within_10pct",
                                        expect_lower=True, what="epochs to within 10% of best"))
        comparisons.append(_directional(m, "norm", "layer", other, "late_test_loss_std",
                                        expect_lower=True, what="test loss std, last 20% of epochs"))
    return _claim(5, comparisons)


def claim_beats_persistence(m: pl.DataFrame) -> Claim:
    """Every run against the persistence forecast on its own test days."""
    label = "model vs persistence: test RMSE (USD)"
    unit = "model/persistence RMSE ratio (< 1: model better)"
    interval = _interval(log_ratios(m["test_rmse_usd"].to_numpy(), m["baseline_rmse_usd"].to_numpy()))
    verdict = directional_verdict(interval, expect_negative=True)
    beating = int((m["test_rmse_usd"] < m["baseline_rmse_usd"]).sum()) if m.height else 0
    note = "; ".join(x for x in (f"{beating} of {m.height} runs beat persistence",
                                  _pairs_note(interval, "runs")) if x)
    return _claim(6, [Comparison(label, verdict, interval, unit, note)])


def evaluate_claims(
    runs: pl.DataFrame, convergence: pl.DataFrame, stability: pl.DataFrame
) -> list[Claim]:
    """All six claims for one grid, from its report_runs, convergence and stability rows."""
    m = run_metrics(runs, convergence, stability)
    return [
        claim_close_beats_all(m),
        claim_advantage_shrinks(m),
        claim_cells_alike_when_deep(m),
        claim_batchnorm_early_fast_late_noisy(m),
        claim_layernorm_fast_stable(m),
        claim_beats_persistence(m),
    ]


CLAIM_COLUMNS = {
    "claim_no": pl.Int32, "claim": pl.String, "claim_verdict": pl.String,
    "comparison": pl.String, "verdict": pl.String, "effect": pl.Float64, "ci_low": pl.Float64,
    "ci_high": pl.Float64, "effect_unit": pl.String, "n_pairs": pl.Int64, "method": pl.String,
    "note": pl.String,
}


def claims_frame(claims: list[Claim]) -> pl.DataFrame:
    """One row per comparison, effects as ratios: the ``claim_results`` columns."""
    rows = []
    for claim in claims:
        for c in claim.comparisons:
            ratio = c.ratio
            rows.append({
                "claim_no": claim.number, "claim": claim.statement,
                "claim_verdict": claim.verdict.value, "comparison": c.label,
                "verdict": c.verdict.value,
                "effect": ratio.mean if ratio else None,
                "ci_low": ratio.low if ratio else None,
                "ci_high": ratio.high if ratio else None,
                "effect_unit": c.effect_unit, "n_pairs": ratio.n if ratio else 0,
                "method": METHOD, "note": "; ".join(x for x in (c.note, claim.note) if x),
            })  # fmt: skip
    return pl.DataFrame(rows, schema=CLAIM_COLUMNS)


def claims_summary(claims: list[Claim]) -> dict[str, str]:
    return {str(c.number): c.verdict.value for c in claims}

