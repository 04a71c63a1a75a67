"""Verdicts on the reference study's six claims, from a grid's runs (pure).

Every number a claim rests on is measured on test data at the epoch chosen on
*validation* data (``runs.selected_on``); nothing here picks anything by test loss.

A comparison matches configs that differ only in the factor under test and takes one
number per matched pair of configs: the mean over their common seeds of ``log(a / b)``
(seqlab.report.stats says why the config, not the run, is the unit). Claim 6 compares
forecasts day by day on the shared test period instead. All comparisons of the report
form one family: p-values are Holm-adjusted across it and verdicts read the adjusted
ones. A claim is supported only when each of its deciding comparisons is; a comparison
the grid cannot make (a factor level missing, too few configs) makes the claim
"not tested" and says which.

Some comparisons are shown but do not decide (``decides=False``): the same question on
the other loss (test loss for speed, train loss for stability), so a reader sees when
the two disagree. They are adjusted with the family all the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np
import polars as pl

from seqlab.report.dynamics import (
    DEFINITIONS,
    LATE_EPOCHS,
    THRESHOLD_SLACK,
    curves,
    epochs_to_shared_threshold,
    run_dynamics_frame,
)
from seqlab.report.stats import (
    ALPHA,
    BLOCK_DAYS,
    CONFIDENCE,
    EQUIVALENCE_RATIO,
    MIN_CONFIGS,
    Estimate,
    Verdict,
    block_bootstrap_rmse_ratio,
    combine_verdicts,
    diebold_mariano,
    directional_verdict,
    equivalence_estimate,
    equivalence_verdict,
    holm,
    least_squares_slope,
    t_estimate,
)

FACTORS = ("cell", "depth", "norm", "feature_set")
USABLE = ("ok", "diverged")
CELLS = ("rnn", "lstm", "gru")
MIN_TEST_DAYS = 30

METHOD = {
    "unit": "a matched pair of configs (equal in every factor but the one compared): the "
            "mean over their common seeds of log(a/b); seeds of one config are not independent",
    "interval": f"Student t {CONFIDENCE:.0%} interval over matched configs; at least "
                f"{MIN_CONFIGS} configs, else 'not tested'",
    "multiple comparisons": f"Holm over every comparison in the report; a verdict needs "
                            f"adjusted p < {ALPHA:g}",
    "alike": f"within x{EQUIVALENCE_RATIO:g} either way, by two one-sided t tests (TOST)",
    "claim 6": f"per selected run, a Diebold-Mariano test of squared errors against "
               f"persistence over test days (Harvey-Leybourne-Newbold correction, Newey-West "
               f"variance) and a {BLOCK_DAYS}-day moving-block bootstrap interval of the "
               f"RMSE ratio; runs are selected on validation loss",
    "selection": "each run's epoch and checkpoint are the ones with the lowest validation "
                 "loss (selected_on='validation'); with no validation split the last epoch "
                 "(selected_on='last_epoch'); never the test loss",
    **DEFINITIONS,
}


def method_text() -> str:
    return "; ".join(f"{k}: {v}" for k, v in METHOD.items())


@dataclass(frozen=True)
class Comparison:
    """One comparison behind a claim; ``estimate`` is on the log-ratio scale."""

    key: str  # identity within the report's family (a comparison shared by claims counts once)
    label: str
    effect_unit: str
    test: str  # "lower" | "higher" | "alike": what the claim expects of the ratio
    estimate: Estimate | None
    verdict: Verdict = Verdict.NOT_TESTED
    decides: bool = True
    n_unit: str = "configs"
    note: str = ""

    @property
    def ratio(self) -> Estimate | None:
        return self.estimate.as_ratio() if self.estimate is not None else None

    def judged(self) -> Comparison:
        if self.test == "alike":
            verdict = equivalence_verdict(self.estimate)
        else:
            verdict = directional_verdict(self.estimate, expect_negative=self.test == "lower")
        return replace(self, verdict=verdict)


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


# --- inputs -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClaimInputs:
    """A grid's usable runs with their metrics, their loss curves and test predictions."""

    metrics: pl.DataFrame  # one row per usable run: factors, seed, metrics, dynamics
    curves: dict[str, dict[str, np.ndarray]]
    predictions: pl.DataFrame  # run_id, date, actual_usd, predicted_usd, baseline_usd
    early_epoch: int


def claim_inputs(runs: pl.DataFrame, epochs: pl.DataFrame, predictions: pl.DataFrame) -> ClaimInputs:
    per_run = curves(epochs)
    dynamics = run_dynamics_frame(epochs, per_run)
    usable = runs.filter(pl.col("status").is_in(USABLE))
    columns = [c for c in ("best_val_loss", "selected_on") if c in usable.columns]
    metrics = (
        usable.select(*FACTORS, "seed", "run_id", "best_test_loss", "test_rmse_usd",
                      "baseline_rmse_usd", *columns)
        .join(dynamics, on="run_id", how="left")
    )
    at = int(dynamics["early_epoch"][0]) if dynamics.height else 1
    return ClaimInputs(metrics, per_run, predictions, at)


# --- matched differences -----------------------------------------------------------------

def _levels_missing(m: pl.DataFrame, factor: str, levels) -> list:
    present = set(m[factor].to_list()) if m.height else set()
    return [level for level in levels if level not in present]


def _matched(m: pl.DataFrame, factor: str, a, b) -> pl.DataFrame:
    """Runs of a and b joined on every other factor and the seed: columns *keys, seed,
    run_a, run_b and the metrics suffixed _a / _b."""
    keys = [f for f in FACTORS if f != factor]
    left = m.filter(pl.col(factor) == a).drop(factor)
    right = m.filter(pl.col(factor) == b).drop(factor)
    return left.join(right, on=[*keys, "seed"], how="inner", suffix="_b").rename(
        {"run_id": "run_id_a"})


def config_log_ratios(m: pl.DataFrame, factor: str, a, b, metric: str) -> np.ndarray:
    """Per matched config pair, the mean over common seeds of log(metric_a / metric_b)."""
    keys = [f for f in FACTORS if f != factor]
    joined = _matched(m, factor, a, b)
    if joined.is_empty():
        return np.array([])
    d = (pl.col(metric) / pl.col(f"{metric}_b")).log()
    per_pair = (
        joined.filter(pl.col(metric) > 0, pl.col(f"{metric}_b") > 0)
        .with_columns(d=d).filter(pl.col("d").is_finite())
        .group_by(keys).agg(pl.col("d").mean())
    )
    return per_pair["d"].to_numpy()


def threshold_log_ratios(inputs: ClaimInputs, factor: str, a, b, loss: str) -> np.ndarray:
    """Per matched config pair, mean over seeds of log(epochs_a / epochs_b) to a loss
    level every run of the pair reaches (seqlab.report.dynamics)."""
    keys = [f for f in FACTORS if f != factor]
    joined = _matched(inputs.metrics, factor, a, b)
    values = []
    for _, group in joined.group_by(keys):
        pairs = [(inputs.curves.get(ra, {}).get(loss), inputs.curves.get(rb, {}).get(loss))
                 for ra, rb in group.select("run_id_a", "run_id_b").iter_rows()]
        pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
        reached = epochs_to_shared_threshold([c for pair in pairs for c in pair])
        if reached is None:
            continue
        values.append(float(np.mean([math.log(reached[2 * i] / reached[2 * i + 1])
                                     for i in range(len(pairs))])))
    return np.asarray(values)


def _config_comparison(key: str, label: str, unit: str, test: str, diffs: np.ndarray,
                       *, decides: bool = True) -> Comparison:
    estimate = (equivalence_estimate(diffs) if test == "alike" else t_estimate(diffs))
    n = 0 if estimate is None else estimate.n
    note = f"only {n} matched configs (need {MIN_CONFIGS})" if n < MIN_CONFIGS else ""
    return Comparison(key, label, unit, test, estimate, decides=decides, note=note)


def _missing(key: str, label: str, unit: str, test: str, why: str, decides: bool = True) -> Comparison:
    return Comparison(key, label, unit, test, None, Verdict.NOT_TESTED, decides, note=why)


def _factor_comparison(m: pl.DataFrame, factor: str, a, b, metric: str, what: str, test: str,
                       *, decides: bool = True,
                       diffs: Callable[[], np.ndarray] | None = None) -> Comparison:
    key = f"{factor}:{a}/{b}:{metric}"
    label = f"{a} vs {b}: {what}"
    unit = f"{a}/{b} ratio of {what} (< 1: {a} lower)"
    absent = _levels_missing(m, factor, (a, b))
    if absent:
        return _missing(key, label, unit, test, f"no {', '.join(map(str, absent))} runs in the "
                                                f"grid", decides)
    values = diffs() if diffs is not None else config_log_ratios(m, factor, a, b, metric)
    return _config_comparison(key, label, unit, test, values, decides=decides)


# --- the claims ----------------------------------------------------------------------------

def _close_beats_all(m: pl.DataFrame) -> Comparison:
    return _factor_comparison(m, "feature_set", "close", "all", "best_test_loss",
                              "test loss at the selected epoch", "lower")


def claim_close_beats_all(inputs: ClaimInputs) -> list[Comparison]:
    return [_close_beats_all(inputs.metrics)]


def claim_advantage_shrinks(inputs: ClaimInputs) -> list[Comparison]:
    """Premise: close beats all (claim 1). Then, per (cell, norm), the slope over depth of
    the seed-mean log(all/close): shrinking is a negative slope."""
    m = inputs.metrics
    premise = replace(_close_beats_all(m), label="premise, close vs all: test loss at the "
                                                 "selected epoch")
    key, label = "depth-slope:all/close", "change per added layer of the all/close loss ratio"
    unit = "factor by which the all/close ratio changes per added layer (< 1: close's edge shrinks)"
    absent = _levels_missing(m, "feature_set", ("close", "all"))
    if absent or m["depth"].n_unique() < 2:
        why = "needs both feature sets at two or more depths"
        return [premise, _missing(key, label, unit, "lower", why)]
    keys = ["cell", "norm"]
    joined = _matched(m, "feature_set", "all", "close").filter(
        pl.col("best_test_loss") > 0, pl.col("best_test_loss_b") > 0)
    per_depth = (
        joined.with_columns(d=(pl.col("best_test_loss") / pl.col("best_test_loss_b")).log())
        .group_by([*keys, "depth"]).agg(pl.col("d").mean())
    )
    slopes = [least_squares_slope(g["depth"].to_numpy(), g["d"].to_numpy())
              for _, g in per_depth.group_by(keys)]
    comparison = _config_comparison(key, label, unit, "lower", np.asarray(slopes))
    return [premise, replace(comparison, n_unit="(cell, norm) slopes",
                             note=comparison.note.replace("matched configs", "(cell, norm) slopes"))]


def claim_cells_alike_when_deep(inputs: ClaimInputs) -> list[Comparison]:
    """At the grid's deepest depth (>= 2), each pair of cells within x1.25 (equivalence)."""
    m = inputs.metrics
    deepest = int(m["depth"].max()) if m.height else 0
    unit = "ratio of test loss at the selected epoch"
    absent = _levels_missing(m, "cell", CELLS)
    if deepest < 2 or absent:
        why = (f"{', '.join(absent)} not in the grid" if absent
               else "needs depth >= 2")
        return [_missing("cells-deep", "RNN, LSTM and GRU at the deepest depth", unit, "alike", why)]
    deep = m.filter(pl.col("depth") == deepest)
    return [
        _factor_comparison(deep, "cell", a, b, "best_test_loss",
                           f"test loss at the selected epoch, depth {deepest}", "alike")
        for a, b in combinations(CELLS, 2)
    ]


def _late_wobble(m: pl.DataFrame, norm: str, others: tuple[str, ...], test: str) -> list[Comparison]:
    """Late stability of ``norm`` against each of ``others``: decided on the test loss, the
    train loss shown beside it."""
    return [
        _factor_comparison(m, "norm", norm, other, f"late_{loss}_wobble",
                           f"late {loss} log-loss wobble", test, decides=loss == "test")
        for other in others for loss in ("test", "train")
    ]


def claim_batchnorm_early_fast_late_noisy(inputs: ClaimInputs) -> list[Comparison]:
    m, at = inputs.metrics, inputs.early_epoch
    out = []
    for other in ("none", "layer"):
        out.append(_factor_comparison(m, "norm", "batch", other, "early_train_loss",
                                      f"train loss at epoch {at}", "lower"))
        out.append(_factor_comparison(m, "norm", "batch", other, "early_test_loss",
                                      f"test loss at epoch {at}", "lower", decides=False))
    return out + _late_wobble(m, "batch", ("none", "layer"), "higher")


def claim_layernorm_fast_stable(inputs: ClaimInputs) -> list[Comparison]:
    m = inputs.metrics
    out = []
    for other in ("none", "batch"):
        for loss, decides in (("train", True), ("test", False)):
            out.append(_factor_comparison(
                m, "norm", "layer", other, f"threshold_{loss}",
                f"epochs to a shared {loss}-loss threshold", "lower", decides=decides,
                diffs=lambda other=other, loss=loss: threshold_log_ratios(
                    inputs, "norm", "layer", other, loss),
            ))
    return out + _late_wobble(m, "layer", ("none", "batch"), "lower")


def selection_scores(m: pl.DataFrame) -> tuple[pl.Expr, str]:
    """How runs are ranked without touching the test set: validation loss at the selected
    epoch, or (no validation split) the last epoch's train loss."""
    if "best_val_loss" in m.columns and m["best_val_loss"].is_not_null().any():
        return pl.col("best_val_loss"), "validation loss"
    return pl.col("final_train_loss"), "last-epoch train loss (no validation split)"


def select_runs(m: pl.DataFrame) -> list[tuple[str, dict]]:
    """(label, run) for each cell's best run and, first, the best run overall; chosen
    on validation loss only."""
    score, _ = selection_scores(m)
    ranked = m.filter(score.is_not_null() & score.is_finite()).sort([score, "run_id"])
    if ranked.is_empty():
        return []
    best = ranked.row(0, named=True)
    chosen = [("best overall", best)]
    for cell in CELLS:
        of_cell = ranked.filter(pl.col("cell") == cell)
        if of_cell.height and of_cell["run_id"][0] != best["run_id"]:
            chosen.append((f"best {cell}", of_cell.row(0, named=True)))
    return chosen


def _describe(run: dict) -> str:
    return (f"{run['cell']} depth {run['depth']} {run['norm']} norm {run['feature_set']} "
            f"seed {run['seed']}")


def claim_beats_persistence(inputs: ClaimInputs) -> list[Comparison]:
    """Each selected run's forecasts against persistence on the same test days."""
    m, predictions = inputs.metrics, inputs.predictions
    unit = "model/persistence RMSE ratio over test days (< 1: model better)"
    chosen = select_runs(m)
    if not chosen:
        return [_missing("persistence", "selected model vs persistence", unit, "lower",
                         "no run has a selection score")]
    _, basis = selection_scores(m)
    out = []
    for role, run in chosen:
        label = f"{role} on {basis} ({_describe(run)}) vs persistence: test RMSE"
        rows = predictions.filter(pl.col("run_id") == run["run_id"]).sort("date")
        key = f"persistence:{run['run_id']}"
        if rows.height < MIN_TEST_DAYS:
            out.append(replace(_missing(key, label, unit, "lower",
                                        f"only {rows.height} test days (need {MIN_TEST_DAYS})"),
                               n_unit="test days"))
            continue
        actual = rows["actual_usd"].to_numpy()
        model_err = rows["predicted_usd"].to_numpy() - actual
        base_err = rows["baseline_usd"].to_numpy() - actual
        _, p = diebold_mariano(model_err, base_err)
        mean, low, high, n = block_bootstrap_rmse_ratio(model_err, base_err)
        estimate = Estimate(mean, low, high, n, p if math.isfinite(p) else 1.0)
        out.append(Comparison(key, label, unit, "lower", estimate, n_unit="test days"))
    return out


CLAIM_BUILDERS = {
    1: claim_close_beats_all, 2: claim_advantage_shrinks, 3: claim_cells_alike_when_deep,
    4: claim_batchnorm_early_fast_late_noisy, 5: claim_layernorm_fast_stable,
    6: claim_beats_persistence,
}


def _adjust(comparisons_by_claim: dict[int, list[Comparison]]) -> dict[int, list[Comparison]]:
    """Holm across every distinct comparison that has a p-value, then judge each."""
    family: dict[str, float] = {}
    for comparisons in comparisons_by_claim.values():
        for c in comparisons:
            if c.estimate is not None and c.estimate.n >= _min_n(c):
                family.setdefault(c.key, c.estimate.p_value)
    keys = list(family)
    adjusted = dict(zip(keys, holm([family[k] for k in keys]), strict=True))
    out = {}
    for number, comparisons in comparisons_by_claim.items():
        judged = []
        for c in comparisons:
            if c.key in adjusted:
                c = replace(c, estimate=replace(c.estimate, p_adjusted=adjusted[c.key])).judged()
            else:
                c = replace(c, verdict=Verdict.NOT_TESTED)
            judged.append(c)
        out[number] = judged
    return out


def _min_n(c: Comparison) -> int:
    return MIN_TEST_DAYS if c.n_unit == "test days" else MIN_CONFIGS


def _claim_note(number: int, comparisons: list[Comparison], inputs: ClaimInputs) -> str:
    m = inputs.metrics
    if number == 3:
        return f"alike = within x{EQUIVALENCE_RATIO:g} either way"
    if number == 5:
        return (f"shared threshold = {THRESHOLD_SLACK:g} x the highest smoothed minimum loss "
                f"among a config pair's runs; wobble over the last min({LATE_EPOCHS}, n/2) epochs")
    if number == 6:
        scored = m.filter(pl.col("test_rmse_usd").is_not_null())
        beating = int((scored["test_rmse_usd"] < scored["baseline_rmse_usd"]).sum())
        note = f"{beating} of {scored.height} runs have a test RMSE below persistence's"
        if not any(c.verdict is Verdict.SUPPORTED for c in comparisons):
            note += "; no selected model beats persistence significantly"
        return note
    return ""


def evaluate_claims(runs: pl.DataFrame, epochs: pl.DataFrame,
                    predictions: pl.DataFrame) -> list[Claim]:
    """All six claims for one grid, from its report_runs, epoch curves and predictions."""
    inputs = claim_inputs(runs, epochs, predictions)
    raw = {number: build(inputs) for number, build in CLAIM_BUILDERS.items()}
    judged = _adjust(raw)
    claims = []
    for number, comparisons in judged.items():
        deciding = [c.verdict for c in comparisons if c.decides]
        claims.append(Claim(number, STATEMENTS[number], combine_verdicts(deciding),
                            tuple(comparisons), _claim_note(number, comparisons, inputs)))
    return claims


# --- outputs ---------------------------------------------------------------------------------

def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def comparison_record(c: Comparison) -> dict:
    r = c.ratio
    return {
        "label": c.label, "verdict": c.verdict.value, "decides": c.decides, "expects": c.test,
        "ratio": _number(r.mean) if r else None, "low": _number(r.low) if r else None,
        "high": _number(r.high) if r else None,
        "p_value": _number(r.p_value) if r else None,
        "p_adjusted": _number(r.p_adjusted) if r else None,
        "n": r.n if r else 0, "n_unit": c.n_unit,
        "n_configs": (r.n if r else 0) if c.n_unit != "test days" else None,
        "effect_unit": c.effect_unit, "note": c.note,
    }


def claims_document(claims: list[Claim]) -> dict:
    """The claims.json document; the HTML and markdown render the same records."""
    return {
        "claims": [
            {"number": c.number, "short_name": SHORT_NAMES[c.number], "statement": c.statement,
             "verdict": c.verdict.value, "comparisons": [comparison_record(x) for x in c.comparisons],
             "note": c.note}
            for c in claims
        ],
        "method": METHOD,
    }


CLAIM_COLUMNS = {
    "claim_no": pl.Int32, "claim": pl.String, "claim_verdict": pl.String,
    "comparison": pl.String, "verdict": pl.String, "effect": pl.Float64, "ci_low": pl.Float64,
    "ci_high": pl.Float64, "effect_unit": pl.String, "n_pairs": pl.Int64, "method": pl.String,
    "note": pl.String, "p_value": pl.Float64, "p_adjusted": pl.Float64, "decides": pl.Boolean,
    "n_unit": pl.String,
}


def claims_frame(claims: list[Claim]) -> pl.DataFrame:
    """One row per comparison, effects as ratios: the ``claim_results`` columns."""
    rows = []
    for claim in claims:
        for c in claim.comparisons:
            record = comparison_record(c)
            rows.append({
                "claim_no": claim.number, "claim": claim.statement,
                "claim_verdict": claim.verdict.value, "comparison": c.label,
                "verdict": c.verdict.value, "effect": record["ratio"], "ci_low": record["low"],
                "ci_high": record["high"], "effect_unit": c.effect_unit, "n_pairs": record["n"],
                "method": method_text(), "note": "; ".join(x for x in (c.note, claim.note) if x),
                "p_value": record["p_value"], "p_adjusted": record["p_adjusted"],
                "decides": c.decides, "n_unit": c.n_unit,
            })  # fmt: skip
    return pl.DataFrame(rows, schema=CLAIM_COLUMNS)


def claims_summary(claims: list[Claim]) -> dict[str, str]:
    return {str(c.number): c.verdict.value for c in claims}
