"""Verdicts on the reference study's six claims, from a grid's runs (pure).

Each claim follows its operational test in seqlab.report.protocol. Every number it rests
on is measured on test data at the epoch chosen on *validation* data; runs stored before
that selection existed (``selected_on`` 'test' or missing) never decide and are counted.

A comparison matches configs that differ only in the factor under test and takes one
number per matched pair of configs: the mean over their common seeds of ``log(a / b)``
(seqlab.report.stats says why the config, not the run, is the unit). Claim 6 compares the
forecasts of the run chosen on validation day by day with persistence instead.

A claim is an intersection-union test of its deciding parts: its p-value is the largest
of theirs, Holm runs across the claims (not across parts, and never over the rows shown
for the other loss), and each part's interval is drawn at the level its claim was decided
at, so an interval that excludes 1 sits beside a decision that does. A part the grid
cannot make (a factor level missing, too few configs, runs too short) makes the claim
"not tested" and says which.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import combinations

import numpy as np
import polars as pl

from seqlab.models.cells import CELL_NAMES as CELLS
from seqlab.models.cells import NORMS
from seqlab.report.dynamics import DEFINITIONS, curves, run_dynamics_frame
from seqlab.report.protocol import (
    CLAIM_DEPTH,
    CLAIM_TESTS,
    DIVERGED_WOBBLE_FACTOR,
    MIN_DYNAMICS_EPOCHS,
    MIN_TEST_DAYS,
    SHORT_NAMES,
    STATEMENTS,
)
from seqlab.report.stats import (
    ALPHA,
    EQUIVALENCE_RATIO,
    MIN_CONFIGS,
    Estimate,
    Verdict,
    combine_verdicts,
    config_equivalence_estimate,
    config_estimate,
    config_interval,
    diebold_mariano,
    dm_ratio_interval,
    holm_multipliers,
    least_squares_slope,
)

__all__ = ["SHORT_NAMES", "STATEMENTS", "Claim", "ClaimInputs", "Comparison", "evaluate_claims",
           "assess_claims", "Assessment"]

FACTORS = ("cell", "depth", "norm", "feature_set")
USABLE = ("ok", "diverged")
MARGIN = math.log(EQUIVALENCE_RATIO)

METHOD = {
    "unit": "a matched pair of configs (equal in every factor but the one compared): the "
            "mean over their common seeds of log(a/b); seeds of one config are not independent",
    "test": "Student t over configs (its p enters Holm) and the exact sign-flip permutation "
            f"test over configs, which must also reject at {ALPHA:g} (a gate against outlier "
            f"configs); at least {MIN_CONFIGS} configs, else 'not tested'",
    "multiple comparisons": "a claim is an intersection-union test of its deciding parts (its "
                            "p = the largest of theirs); Holm across the claims; rows shown "
                            f"for the other loss are outside the family; a verdict needs "
                            f"adjusted p < {ALPHA:g}",
    "intervals": "the hull of the t interval at the level the claim was decided at "
                 "(1 - 0.05/h for Holm factor h; equivalence rows 1 - 2 x 0.05/h, as TOST "
                 "reads) and the sign-flip interval at 95% (90%), so an interval excluding 1 "
                 "sits beside a significant decision; rows marked 'unadjusted' are at 95% "
                 "(90% for 'alike') and decide nothing",
    "alike": f"within x{EQUIVALENCE_RATIO:g} either way, by two one-sided tests (TOST)",
    "claim 6": "the run with the lowest validation loss, a Diebold-Mariano test of squared "
               "errors against persistence over test days (Harvey-Leybourne-Newbold, "
               "Newey-West variance); the interval inverts the same statistic",
    "selection": "each run's epoch and checkpoint are the ones with the lowest validation "
                 "loss (selected_on='validation'); with no validation split the last epoch "
                 "(selected_on='last_epoch'); runs selected on the test loss (stored before "
                 "validation selection) never decide a claim",
    "run length": f"claims 4 and 5 need runs of at least {MIN_DYNAMICS_EPOCHS} epochs",
    **DEFINITIONS,
}


def method_text() -> str:
    return "; ".join(f"{k}: {v}" for k, v in METHOD.items())


@dataclass(frozen=True)
class Comparison:
    """One part of a claim; ``estimate`` is on the log-ratio scale."""

    key: str  # sorted factor levels: one pair, one key
    label: str
    effect_unit: str
    test: str  # "lower" | "higher" | "alike": what the claim expects of the ratio
    estimate: Estimate | None
    verdict: Verdict = Verdict.NOT_TESTED
    decides: bool = True
    n_unit: str = "configs"
    note: str = ""
    interval_of: Callable[[float, float], tuple[float, float]] | None = field(
        default=None, compare=False, repr=False)

    @property
    def ratio(self) -> Estimate | None:
        return self.estimate.as_ratio() if self.estimate is not None else None

    @property
    def tested(self) -> bool:
        return self.estimate is not None and self.estimate.n >= _min_n(self)

    @property
    def claimed_way(self) -> bool:
        mean = self.estimate.mean
        return {"lower": mean < 0, "higher": mean > 0, "alike": abs(mean) < MARGIN}[self.test]

    @property
    def adjusted(self) -> bool:
        return self.estimate is not None and self.estimate.p_adjusted is not None

    def at_level(self, alpha: float, factor: float | None) -> Comparison:
        """Judged at ``alpha`` (the claim's level), its interval redrawn to match; p
        adjusted by ``factor`` (None: unadjusted, a shown row)."""
        if not self.tested:
            return replace(self, verdict=Verdict.NOT_TESTED)
        sides = 2 if self.test == "alike" else 1
        confidence = 1 - sides * alpha
        low, high = self.interval_of(confidence, 1 - sides * ALPHA)
        p, flip = self.estimate.p_value, self.estimate.p_flip
        adjusted = min(1.0, p * factor) if factor is not None else None
        estimate = replace(self.estimate, low=low, high=high, confidence=confidence,
                           p_adjusted=adjusted)
        if p >= alpha or (flip is not None and flip >= ALPHA):
            verdict = Verdict.INCONCLUSIVE
        else:
            verdict = Verdict.SUPPORTED if self.claimed_way else Verdict.CONTRADICTED
        return replace(self, estimate=estimate, verdict=verdict)


@dataclass(frozen=True)
class Claim:
    number: int
    statement: str
    verdict: Verdict
    comparisons: tuple[Comparison, ...]
    note: str = ""
    p_value: float | None = None  # the intersection-union p (or the contradiction's)
    p_adjusted: float | None = None  # Holm across the claims
    direction: str = ""  # "for" | "against": which test the p-value is

    @property
    def operational_test(self) -> str:
        return CLAIM_TESTS[self.number].one_line()


# --- inputs -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClaimInputs:
    """A grid's deciding runs with their metrics, their loss curves and test predictions."""

    metrics: pl.DataFrame  # one row per usable, validation-selected run: factors, metrics
    curves: dict[str, dict[str, np.ndarray]]
    predictions: pl.DataFrame  # run_id, date, actual_usd, predicted_usd, baseline_usd
    run_epochs: int  # the longest run's recorded epochs
    left_out: int = 0  # usable runs selected on the test loss: never decide
    divergence: tuple[dict, ...] = ()  # factor, level, diverged, runs


def _selected_on_test(runs: pl.DataFrame) -> pl.Expr:
    if "selected_on" not in runs.columns:
        return pl.lit(True)
    return pl.col("selected_on").is_null() | (pl.col("selected_on") == "test")


def divergence_rates(m: pl.DataFrame) -> tuple[dict, ...]:
    """Per norm and per cell: how many of its runs diverged."""
    rows = []
    for factor in ("norm", "cell"):
        if not m.height:
            continue
        counts = m.group_by(factor).agg(diverged=pl.col("diverged").sum(), runs=pl.len())
        order = NORMS if factor == "norm" else CELLS
        for row in sorted(counts.iter_rows(named=True),
                          key=lambda r: order.index(r[factor]) if r[factor] in order else 9):
            rows.append({"factor": factor, "level": row[factor],
                         "diverged": int(row["diverged"]), "runs": int(row["runs"])})
    return tuple(rows)


def claim_inputs(runs: pl.DataFrame, epochs: pl.DataFrame, predictions: pl.DataFrame) -> ClaimInputs:
    per_run = curves(epochs)
    dynamics = run_dynamics_frame(epochs, per_run)
    usable = runs.filter(pl.col("status").is_in(USABLE))
    left_out = usable.filter(_selected_on_test(usable)).height
    usable = usable.filter(~_selected_on_test(usable))
    columns = [c for c in ("best_val_loss", "selected_on") if c in usable.columns]
    metrics = (
        usable.select(*FACTORS, "seed", "run_id", "status", "best_test_loss", "test_rmse_usd",
                      "baseline_rmse_usd", *columns)
        .join(dynamics, on="run_id", how="left")
        .with_columns(diverged=(pl.col("status") == "diverged") | pl.col("nonfinite").fill_null(False))
    )
    # A diverged run is the least stable: its wobble is twice the grid's largest finite one.
    for loss in ("train", "test"):
        column = f"late_{loss}_wobble"
        finite = metrics.filter(~pl.col("diverged"))[column].drop_nulls()
        worst = DIVERGED_WOBBLE_FACTOR * (float(finite.max()) if finite.len() else 0.5)
        metrics = metrics.with_columns(
            pl.when(pl.col("diverged")).then(worst).otherwise(pl.col(column)).alias(column))
    longest = int(dynamics["epochs_recorded"].max()) if dynamics.height else 0
    return ClaimInputs(metrics, per_run, predictions, longest, left_out, divergence_rates(metrics))


# --- matched differences -----------------------------------------------------------------

def _levels_missing(m: pl.DataFrame, factor: str, levels) -> list:
    present = set(m[factor].to_list()) if m.height else set()
    return [level for level in levels if level not in present]


def _matched(m: pl.DataFrame, factor: str, a, b) -> pl.DataFrame:
    """Runs of a and b joined on every other factor and the seed: columns *keys, seed,
    run_id_a, run_id_b and the metrics of b suffixed _b."""
    keys = [f for f in FACTORS if f != factor]
    left = m.filter(pl.col(factor) == a).drop(factor)
    right = m.filter(pl.col(factor) == b).drop(factor)
    return left.join(right, on=[*keys, "seed"], how="inner", suffix="_b").rename(
        {"run_id": "run_id_a"})


def config_log_ratios(m: pl.DataFrame, factor: str, a, b, metric: str) -> tuple[np.ndarray, int]:
    """Per matched config pair, the mean over common seeds of log(metric_a / metric_b),
    and how many matched run pairs had no finite positive value (counted, not hidden)."""
    keys = [f for f in FACTORS if f != factor]
    joined = _matched(m, factor, a, b)
    if joined.is_empty():
        return np.array([]), 0
    d = (pl.col(metric) / pl.col(f"{metric}_b")).log()
    with_d = joined.with_columns(d=pl.when((pl.col(metric) > 0) & (pl.col(f"{metric}_b") > 0))
                                 .then(d).otherwise(None))
    valid = with_d.filter(pl.col("d").is_finite())
    per_pair = valid.group_by(keys).agg(pl.col("d").mean())
    return per_pair["d"].to_numpy(), joined.height - valid.height


def _pair_key(factor: str, a, b, metric: str) -> str:
    return f"{factor}:{'/'.join(sorted(map(str, (a, b))))}:{metric}"


def _config_comparison(key: str, label: str, unit: str, test: str, values: np.ndarray, *,
                       decides: bool = True, n_unit: str = "configs", note: str = "") -> Comparison:
    estimate = (config_equivalence_estimate(values) if test == "alike"
                else config_estimate(values))
    n = 0 if estimate is None else estimate.n
    notes = [note] if note else []
    if n < MIN_CONFIGS:
        notes.insert(0, f"only {n} {n_unit} (need {MIN_CONFIGS})")
    sample = np.asarray(values, dtype=float)
    return Comparison(key, label, unit, test, estimate, decides=decides, n_unit=n_unit,
                      note="; ".join(notes),
                      interval_of=lambda confidence, flip: config_interval(sample, confidence, flip))


def _missing(key: str, label: str, unit: str, test: str, why: str, decides: bool = True) -> Comparison:
    return Comparison(key, label, unit, test, None, Verdict.NOT_TESTED, decides, note=why)


def _factor_comparison(m: pl.DataFrame, factor: str, a, b, metric: str, what: str, test: str,
                       *, decides: bool = True) -> Comparison:
    key = _pair_key(factor, a, b, metric)
    label = f"{a} vs {b}: {what}"
    unit = f"{a}/{b} ratio of {what} (< 1: {a} lower)"
    absent = _levels_missing(m, factor, (a, b))
    if absent:
        return _missing(key, label, unit, test, f"no {', '.join(map(str, absent))} runs in the "
                                                f"grid", decides)
    values, unmatched = config_log_ratios(m, factor, a, b, metric)
    note = (f"{unmatched} matched run pairs without a finite value" if unmatched else "")
    return _config_comparison(key, label, unit, test, values, decides=decides, note=note)


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
        return [premise, replace(_missing(key, label, unit, "lower", why),
                                 n_unit="(cell, norm) slopes")]
    keys = ["cell", "norm"]
    joined = _matched(m, "feature_set", "all", "close").with_columns(
        d=(pl.col("best_test_loss") / pl.col("best_test_loss_b")).log())
    finite = joined.filter(pl.col("d").is_finite())  # one NaN must not void a whole depth
    per_depth = finite.group_by([*keys, "depth"]).agg(pl.col("d").mean())
    slopes = [least_squares_slope(g["depth"].to_numpy(), g["d"].to_numpy())
              for _, g in per_depth.group_by(keys)]
    dropped = joined.height - finite.height
    note = f"{dropped} run pairs without a finite test loss left out" if dropped else ""
    return [premise, _config_comparison(key, label, unit, "lower", np.asarray(slopes),
                                        n_unit="(cell, norm) slopes", note=note)]


def claim_cells_alike_when_deep(inputs: ClaimInputs) -> list[Comparison]:
    """At depth 4 (the claim's deep stacks), each pair of cells within x1.25."""
    m = inputs.metrics
    unit = "ratio of test loss at the selected epoch"
    absent = _levels_missing(m, "cell", CELLS)
    depths = sorted(set(m["depth"].to_list())) if m.height else []
    if absent or CLAIM_DEPTH not in depths:
        why = (f"{', '.join(absent)} not in the grid" if absent
               else f"the claim is about depth {CLAIM_DEPTH}; the grid's depths are "
                    f"{', '.join(map(str, depths)) or 'none'}")
        return [_missing("cell:deep", f"RNN, LSTM and GRU at depth {CLAIM_DEPTH}", unit,
                         "alike", why)]
    deep = m.filter(pl.col("depth") == CLAIM_DEPTH)
    return [
        _factor_comparison(deep, "cell", a, b, "best_test_loss",
                           f"test loss at the selected epoch, depth {CLAIM_DEPTH}", "alike")
        for a, b in combinations(CELLS, 2)
    ]


def _too_short(inputs: ClaimInputs) -> str:
    if inputs.run_epochs < MIN_DYNAMICS_EPOCHS:
        return (f"runs of {inputs.run_epochs} epochs; speed and late wobble need at least "
                f"{MIN_DYNAMICS_EPOCHS}")
    return ""


def _dynamics_comparisons(inputs: ClaimInputs, norm: str, others: tuple[str, ...],
                          speed: str, speed_what: str, speed_test: str,
                          wobble_test: str) -> list[Comparison]:
    """Speed (train loss decides, test shown) and late wobble (test decides, train shown)
    of ``norm`` against each of ``others``."""
    m, short = inputs.metrics, _too_short(inputs)
    parts = []
    for other in others:
        for loss in ("train", "test"):
            parts.append((other, f"{speed}_{loss}_epochs", f"epochs to close {speed_what} of "
                          f"its own {loss}-loss gap", speed_test, loss == "train"))
    for other in others:
        for loss in ("test", "train"):
            parts.append((other, f"late_{loss}_wobble", f"late {loss} log-loss wobble",
                          wobble_test, loss == "test"))
    out = []
    for other, metric, what, test, decides in parts:
        if short and not _levels_missing(m, "norm", (norm, other)):
            out.append(_missing(_pair_key("norm", norm, other, metric), f"{norm} vs {other}: "
                                f"{what}", f"{norm}/{other} ratio of {what}", test, short,
                                decides))
        else:
            out.append(_factor_comparison(m, "norm", norm, other, metric, what, test,
                                          decides=decides))
    return out


def claim_batchnorm_early_fast_late_noisy(inputs: ClaimInputs) -> list[Comparison]:
    return _dynamics_comparisons(inputs, "batch", ("none", "layer"), "half", "50%",
                                 "lower", "higher")


def claim_layernorm_fast_stable(inputs: ClaimInputs) -> list[Comparison]:
    return _dynamics_comparisons(inputs, "layer", ("none", "batch"), "gap90", "90%",
                                 "lower", "lower")


def selection_scores(m: pl.DataFrame) -> tuple[pl.Expr, str]:
    """How runs are ranked without touching the test set: validation loss at the selected
    epoch, or (no validation split) the last epoch's train loss."""
    if "best_val_loss" in m.columns and m["best_val_loss"].is_not_null().any():
        return pl.col("best_val_loss"), "validation loss"
    return pl.col("final_train_loss"), "last-epoch train loss (no validation split)"


def select_runs(m: pl.DataFrame) -> list[tuple[str, dict]]:
    """(label, run) for the best run overall and then each cell's best run; chosen on
    validation loss only."""
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
    """The run chosen on validation decides; each other cell's best is shown."""
    m, predictions = inputs.metrics, inputs.predictions
    unit = "model/persistence RMSE ratio over test days (< 1: model better)"
    chosen = select_runs(m)
    if not chosen:
        return [_missing("persistence", "selected model vs persistence", unit, "lower",
                         "no run has a selection score")]
    _, basis = selection_scores(m)
    out = []
    for role, run in chosen:
        decides = role == "best overall"
        label = f"{role} on {basis} ({_describe(run)}) vs persistence: test RMSE"
        rows = predictions.filter(pl.col("run_id") == run["run_id"]).sort("date")
        key = f"persistence:{run['run_id']}"
        if rows.height < MIN_TEST_DAYS:
            out.append(replace(_missing(key, label, unit, "lower",
                                        f"only {rows.height} test days (need {MIN_TEST_DAYS})",
                                        decides), n_unit="test days"))
            continue
        actual = rows["actual_usd"].to_numpy()
        model_err = rows["predicted_usd"].to_numpy() - actual
        base_err = rows["baseline_usd"].to_numpy() - actual
        _, p = diebold_mariano(model_err, base_err)
        point = 0.5 * math.log(float(np.mean(model_err**2)) / float(np.mean(base_err**2)))
        low, high = dm_ratio_interval(model_err, base_err)
        estimate = Estimate(point, low, high, rows.height, p if math.isfinite(p) else 1.0)
        out.append(Comparison(
            key, label, unit, "lower", estimate, decides=decides, n_unit="test days",
            interval_of=lambda c, _, a=model_err, b=base_err: dm_ratio_interval(a, b, confidence=c)))
    return out


CLAIM_BUILDERS = {
    1: claim_close_beats_all, 2: claim_advantage_shrinks, 3: claim_cells_alike_when_deep,
    4: claim_batchnorm_early_fast_late_noisy, 5: claim_layernorm_fast_stable,
    6: claim_beats_persistence,
}


def _min_n(c: Comparison) -> int:
    return MIN_TEST_DAYS if c.n_unit == "test days" else MIN_CONFIGS


def claim_p_value(comparisons: list[Comparison]) -> tuple[float, str, int] | None:
    """(p, direction, parts) of a claim from its deciding parts, or None when it cannot be
    decided. "for": every part points the claimed way, p = the largest part p (an
    intersection-union test). "against": some part points the other way, p = parts x the
    smallest such p (Bonferroni over the parts). Which one applies is fixed by the
    estimates, and at most one could reject."""
    deciding = [c for c in comparisons if c.decides]
    tested = [c for c in deciding if c.tested]
    against = [c for c in tested if not c.claimed_way]
    if against:
        return min(1.0, len(deciding) * min(c.estimate.p_value for c in against)), "against", len(deciding)
    if not deciding or len(tested) < len(deciding):
        return None
    return max(c.estimate.p_value for c in deciding), "for", len(deciding)


def _judge(raw: dict[int, list[Comparison]]) -> dict[int, tuple[list[Comparison], tuple | None]]:
    """Holm across the claims; each deciding part judged at its claim's level."""
    tests = {n: claim_p_value(parts) for n, parts in raw.items()}
    family = [n for n, t in tests.items() if t is not None]
    factors = dict(zip(family, holm_multipliers([tests[n][0] for n in family]), strict=True))
    out = {}
    for number, parts in raw.items():
        test = tests[number]
        judged = []
        for c in parts:
            if not c.decides or test is None:
                judged.append(c.at_level(ALPHA, None))  # shown, unadjusted
                continue
            _, direction, k = test
            factor = factors[number] * (k if direction == "against" else 1)
            judged.append(c.at_level(ALPHA / factor, factor))
        out[number] = (judged, None if test is None else (*test, factors[number]))
    return out


def _claim_note(number: int, comparisons: list[Comparison], inputs: ClaimInputs) -> str:
    m = inputs.metrics
    notes = []
    if number == 3:
        notes.append(f"alike = within x{EQUIVALENCE_RATIO:g} either way, at depth {CLAIM_DEPTH}")
    if number in (4, 5):
        diverged = [f"{r['level']} {r['diverged']}/{r['runs']}" for r in inputs.divergence
                    if r["factor"] == "norm"]
        if diverged:
            notes.append("diverged runs (least stable) by norm: " + ", ".join(diverged))
    if number == 6:
        scored = m.filter(pl.col("test_rmse_usd").is_not_null())
        beating = int((scored["test_rmse_usd"] < scored["baseline_rmse_usd"]).sum())
        notes.append(f"{beating} of {scored.height} runs have a test RMSE below persistence's")
    gated = [c for c in comparisons if c.decides and c.adjusted and c.estimate.p_flip is not None
             and c.estimate.p_adjusted < ALPHA and c.estimate.p_flip >= ALPHA]
    if gated:
        notes.append(f"the exact sign-flip test does not agree with t for {len(gated)} deciding "
                     f"part(s) (p >= {ALPHA:g}), so they are not settled")
    if inputs.left_out:
        notes.append(left_out_note(inputs.left_out))
    return "; ".join(notes)


def left_out_note(count: int) -> str:
    return (f"{count} runs were selected on the test loss (stored before validation "
            "selection) and decide nothing; retrain them with `seqlab run ... --force`")


@dataclass(frozen=True)
class Assessment:
    """The six claims and the facts about the runs behind them."""

    claims: list[Claim]
    left_out: int
    divergence: tuple[dict, ...]
    run_epochs: int


def assess_claims(runs: pl.DataFrame, epochs: pl.DataFrame,
                  predictions: pl.DataFrame) -> Assessment:
    """All six claims for one grid, from its report_runs, epoch curves and predictions."""
    inputs = claim_inputs(runs, epochs, predictions)
    raw = {number: build(inputs) for number, build in CLAIM_BUILDERS.items()}
    claims = []
    for number, (comparisons, test) in _judge(raw).items():
        deciding = [c.verdict for c in comparisons if c.decides]
        verdict = combine_verdicts(deciding)
        p = p_adj = None
        direction = ""
        if test is not None:
            p, direction, _, factor = test
            p_adj = min(1.0, p * factor)
        claims.append(Claim(number, STATEMENTS[number], verdict, tuple(comparisons),
                            _claim_note(number, comparisons, inputs), p, p_adj, direction))
    return Assessment(claims, inputs.left_out, inputs.divergence, inputs.run_epochs)


def evaluate_claims(runs: pl.DataFrame, epochs: pl.DataFrame,
                    predictions: pl.DataFrame) -> list[Claim]:
    return assess_claims(runs, epochs, predictions).claims


# --- outputs ---------------------------------------------------------------------------------

def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def interval_label(c: Comparison) -> str:
    """What the shown interval is: its level and whether it is adjusted."""
    r = c.estimate
    if r is None:
        return ""
    level = f"{100 * r.confidence:.3g}%"
    return f"{level} adjusted" if c.adjusted else f"{level} unadjusted"


def comparison_record(c: Comparison) -> dict:
    r = c.ratio
    return {
        "key": c.key, "label": c.label, "verdict": c.verdict.value, "decides": c.decides,
        "expects": c.test,
        "ratio": _number(r.mean) if r else None, "low": _number(r.low) if r else None,
        "high": _number(r.high) if r else None,
        "confidence": r.confidence if r else None, "interval": interval_label(c),
        "p_value": _number(r.p_value) if r else None,
        "p_adjusted": _number(r.p_adjusted) if r else None,
        "p_sign_flip": _number(r.p_flip) if r and r.p_flip is not None else None,
        "n": r.n if r else 0, "n_unit": c.n_unit,
        "n_configs": (r.n if r else 0) if c.n_unit == "configs" else None,
        "effect_unit": c.effect_unit, "note": c.note,
    }


def claims_document(claims: list[Claim], *, left_out: int = 0,
                    divergence: tuple[dict, ...] = ()) -> dict:
    """The claims.json document; the HTML and markdown render the same records."""
    return {
        "claims": [
            {"number": c.number, "short_name": SHORT_NAMES[c.number], "statement": c.statement,
             "verdict": c.verdict.value, "p_value": _number(c.p_value),
             "p_adjusted": _number(c.p_adjusted), "test_direction": c.direction or None,
             "operational_test": CLAIM_TESTS[c.number].record(),
             "comparisons": [comparison_record(x) for x in c.comparisons], "note": c.note}
            for c in claims
        ],
        "left_out_selected_on_test": left_out,
        "divergence": list(divergence),
        "method": METHOD,
    }


CLAIM_COLUMNS = {
    "claim_no": pl.Int32, "claim": pl.String, "claim_verdict": pl.String,
    "comparison": pl.String, "verdict": pl.String, "effect": pl.Float64, "ci_low": pl.Float64,
    "ci_high": pl.Float64, "effect_unit": pl.String, "n_pairs": pl.Int64, "method": pl.String,
    "note": pl.String, "p_value": pl.Float64, "p_adjusted": pl.Float64, "decides": pl.Boolean,
    "n_unit": pl.String, "ci_level": pl.Float64, "claim_p_adjusted": pl.Float64,
    "operational_test": pl.String,
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
                "decides": c.decides, "n_unit": c.n_unit, "ci_level": record["confidence"],
                "claim_p_adjusted": _number(claim.p_adjusted),
                "operational_test": claim.operational_test,
            })  # fmt: skip
    return pl.DataFrame(rows, schema=CLAIM_COLUMNS)


def claims_summary(claims: list[Claim]) -> dict[str, str]:
    return {str(c.number): c.verdict.value for c in claims}
