"""The sentences a report opens with, shared by the HTML page, report.md and the artifact."""

from __future__ import annotations

import polars as pl

from seqlab.report.claims import Claim, left_out_note
from seqlab.report.content import ReportContent
from seqlab.report.context import DataSummary
from seqlab.report.stats import Verdict
from seqlab.report.tables import fmt_usd

VERDICT_CLASSES = {
    Verdict.SUPPORTED: "supported",
    Verdict.CONTRADICTED: "contradicted",
    Verdict.INCONCLUSIVE: "inconclusive",
    Verdict.NOT_TESTED: "not-tested",
}


def verdict_class(verdict: Verdict) -> str:
    return VERDICT_CLASSES[verdict]


def _describe_config(row: dict) -> str:
    return (f"{row['cell'].upper()} depth {row['depth']}, norm {row['norm']}, "
            f"{row['feature_set']} features")


def headline(content: ReportContent) -> list[str]:
    """A few plain sentences: the winner, the baseline, the claims, what was trained."""
    lines = []
    best = content.best
    if best is None and content.leaderboard["test_rmse_usd"].is_not_null().any():
        lines.append("No validation split: configs are not ranked (the test set never picks "
                     "a winner).")
    elif best is None:
        lines.append("No run of this grid produced test metrics (all failed).")
    else:
        lines.append(
            f"Best config on validation loss: {_describe_config(best)}. On the test period it "
            f"scores {fmt_usd(best['test_rmse_usd'])} RMSE vs persistence "
            f"{fmt_usd(best['baseline_rmse_usd'])} (ratio {best['rmse_ratio']:.3f}), mean over "
            f"{best['n_runs']} seed(s)."
        )
    beating, scored = content.beating_baseline
    if scored:
        if beating == 0:
            lines.append(f"No config beats the persistence baseline (tomorrow = today): 0 of "
                         f"{scored} have a mean test RMSE below it.")
        else:
            lines.append(f"{beating} of {scored} configs beat the persistence baseline "
                         "(tomorrow = today) on mean test RMSE.")
    counts = content.verdict_counts()
    lines.append("Claims: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n) + ".")
    if content.claims_left_out:
        lines.append(left_out_note(content.claims_left_out).capitalize() + ".")
    runs = content.runs
    spec = content.reproducibility.spec
    status = runs.group_by("status").len().sort("status") if runs.height else pl.DataFrame()
    by_status = ", ".join(f"{n} {s}" for s, n in status.iter_rows()) if status.height else "none"
    lines.append(
        f"Grid {content.grid_id}: {runs.height} runs ({by_status}); cells "
        f"{'/'.join(spec.get('cells', []))}, depths {'/'.join(map(str, spec.get('depths', [])))}, "
        f"norms {'/'.join(spec.get('norms', []))}, features "
        f"{'/'.join(spec.get('feature_sets', []))}, seeds {'/'.join(map(str, spec.get('seeds', [])))}, "
        f"{spec.get('epochs')} epochs, hidden {spec.get('hidden')}."
    )
    return lines


def data_facts(data: DataSummary) -> list[tuple[str, str]]:
    """Key/value lines of the data section."""
    gate = {True: "passed", False: "FAILED", None: "not recorded"}[data.gate_passed]
    critical = [g for g in data.gate if g["severity"] == "critical"]
    warned = [g["expectation"] for g in data.gate if g["severity"] != "critical" and not g["success"]]
    gate_text = (f"{gate}: {sum(g['success'] for g in critical)} of {len(critical)} critical "
                 "expectations met" + (f"; warnings: {', '.join(warned)}" if warned else ""))
    facts = [
        ("symbol", data.symbol + (" (SYNTHETIC sample, not real prices)" if data.synthetic else "")),
        ("data version", data.data_version),
        ("rows", f"{data.rows:,}" if data.rows is not None else "–"),
        ("date range", f"{data.first_date} to {data.last_date}" if data.first_date else "–"),
    ]
    if data.train is not None and data.test is not None:
        facts.append(("train period", f"{data.train.first} to {data.train.last} ({data.train.rows:,} days)"))
        if data.val is not None:
            facts.append(("validation period", f"{data.val.first} to {data.val.last} "
                          f"({data.val.rows:,} days): picks each run's epoch"))
        else:
            facts.append(("validation period", "none: each run keeps its last epoch"))
        facts.append(("test period", f"{data.test.first} to {data.test.last} ({data.test.rows:,} days)"))
    if data.lookback is not None:
        facts.append(("lookback", f"{data.lookback} days, predicting the next day's close"))
    for feature_set, columns in data.feature_columns.items():
        facts.append((f"features '{feature_set}'", ", ".join(columns)))
    facts.append(("rows quarantined", f"{data.rows_quarantined:,} across {len(data.sources)} source file(s)"))
    facts.append(("validation gate", gate_text))
    return facts


def _effect(comparison) -> str:
    r = comparison.ratio
    p = f", p = {r.p_value:.2g}"
    if r.p_adjusted is not None:
        p += f", Holm-adjusted {r.p_adjusted:.2g}"
    if r.p_flip is not None:
        p += f", sign-flip {r.p_flip:.2g}"
    return (f"{r.mean:.3g} ({100 * r.confidence:.3g}% "
            f"{'adjusted ' if r.p_adjusted is not None else 'unadjusted '}interval "
            f"{r.low:.3g} to {r.high:.3g}, n = {r.n} {comparison.n_unit}{p})")


def _persistence_reading(claim: Claim) -> str:
    """Claim 6 decides on the run chosen on validation; the other cells' best are shown.
    Every sentence here is true of the rows it speaks of."""
    deciding = [c for c in claim.comparisons if c.decides and c.ratio is not None]
    shown = [c for c in claim.comparisons if not c.decides and c.ratio is not None]
    lead = {
        Verdict.SUPPORTED: "The model chosen on validation beats persistence significantly. ",
        Verdict.CONTRADICTED: "The model chosen on validation is significantly worse than "
                              "persistence. ",
        Verdict.INCONCLUSIVE: "The model chosen on validation does not beat persistence "
                              "significantly (after the Holm adjustment). ",
    }[claim.verdict]
    text = lead + "; ".join(f"{c.label}: {_effect(c)}" for c in deciding) + "."
    rows = deciding + shown
    better = sum(c.verdict is Verdict.SUPPORTED for c in rows)
    worse = sum(c.verdict is Verdict.CONTRADICTED for c in rows)
    text += (f" Of the {len(rows)} runs compared here (the chosen one at the claim's level, "
             f"each other cell's best unadjusted), {better} have a significantly lower and "
             f"{worse} a significantly higher test RMSE than persistence.")
    if shown:
        text += " " + "; ".join(f"{c.label}: {_effect(c)}" for c in shown) + "."
    return text


def claim_reading(claim: Claim) -> str:
    """One or two sentences saying what the verdict rests on."""
    deciding = [c for c in claim.comparisons if c.decides]
    if claim.number == 6 and claim.verdict is not Verdict.NOT_TESTED and deciding:
        return _persistence_reading(claim)
    if claim.verdict is Verdict.NOT_TESTED:
        reasons = sorted({c.note for c in deciding if c.verdict is Verdict.NOT_TESTED and c.note})
        return f"This grid cannot test it: {'; '.join(reasons) or 'too few configs'}."
    if claim.verdict is Verdict.CONTRADICTED:
        c = next(c for c in deciding if c.verdict is Verdict.CONTRADICTED)
        return f"The grid says the opposite. {c.label}: {_effect(c)}; effect = {c.effect_unit}."
    if claim.verdict is Verdict.SUPPORTED:
        return "Supported by every deciding comparison. " + "; ".join(
            f"{c.label}: {_effect(c)}" for c in deciding) + "."
    open_ones = [c for c in deciding if c.verdict is Verdict.INCONCLUSIVE]
    why = ("alike needs the interval inside the x1.25 band" if claim.number == 3
           else "no significant difference after the Holm adjustment, or the sign-flip test "
                "does not agree")
    return "Not settled. " + "; ".join(f"{c.label}: {_effect(c)}" for c in open_ones) + f"; {why}."


def claims_facts(content: ReportContent) -> list[str]:
    """What the claims were decided on: runs left out, divergence by norm and cell."""
    lines = []
    if content.claims_left_out:
        lines.append(left_out_note(content.claims_left_out).capitalize() + ".")
    for factor in ("norm", "cell"):
        rows = [r for r in content.divergence if r["factor"] == factor]
        if rows:
            lines.append(f"Diverged runs by {factor}: " + ", ".join(
                f"{r['level']} {r['diverged']} of {r['runs']} "
                f"({100 * r['diverged'] / r['runs']:.0f}%)" for r in rows)
                + " (a diverged run counts as the least stable, never dropped).")
    return lines
