"""report.md, with PNG figures beside it."""

from __future__ import annotations

import json

import polars as pl

from seqlab.report.claims import METHOD, comparison_record, interval_label
from seqlab.report.content import ReportContent
from seqlab.report.figures import FigurePNG
from seqlab.report.narrative import claim_reading, claims_facts, data_facts, headline
from seqlab.report.protocol import operational_lines
from seqlab.report.tables import (
    CONFIG_DYNAMICS_COLUMNS,
    LEADERBOARD_COLUMNS,
    Column,
    dynamics_caption,
    fmt_int,
    fmt_ratio,
    present_columns,
)
from seqlab.report.track_record import TRACK_FIGURE, section_markdown


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(frame: pl.DataFrame, columns: tuple[Column, ...], limit: int | None = None) -> str:
    shown = present_columns(frame, columns)
    if frame.is_empty():
        return "_(no rows)_"
    head = "| " + " | ".join(c.header for c in shown) + " |"
    rule = "|" + "|".join("---:" if c.numeric else "---" for c in shown) + "|"
    rows = frame.head(limit) if limit else frame
    body = ["| " + " | ".join(_escape(c.fmt(r[c.name])) for c in shown) + " |"
            for r in rows.iter_rows(named=True)]
    return "\n".join([head, rule, *body])


def _p(value) -> str:
    return "–" if value is None else f"{value:.2g}"


def _claims_md(content: ReportContent) -> list[str]:
    out = ["Effects are ratios (1 = no difference). Each claim is one test of its deciding rows "
           "(its p is the largest of theirs), Holm-adjusted across the claims; intervals are "
           "drawn at the level the claim was decided at (the column says which); rows marked "
           "(shown) do not decide the claim.", ""]
    out += [f"- {line}" for line in claims_facts(content)]
    out += ["", "### Method: one operational test per claim", ""]
    out += [f"- {line}" for line in operational_lines()] + ["", "Details:", ""]
    out += [f"- **{k}**: {v}" for k, v in METHOD.items()] + [""]
    for claim in content.claims:
        out.append(f"**{claim.number}. {claim.statement}** — **{claim.verdict.value}**"
                   + (f" ({claim.note})" if claim.note else ""))
        out.append("")
        out.append(claim_reading(claim))
        if claim.p_adjusted is not None:
            out.append(f"Claim p = {_p(claim.p_value)} ({claim.direction} the claim), "
                       f"Holm-adjusted {_p(claim.p_adjusted)}.")
        out.append("")
        out.append("| comparison | verdict | effect | interval (level) | p | p (Holm) | n | note |")
        out.append("|---|---|---:|---:|---:|---:|---:|---|")
        for c in claim.comparisons:
            r = comparison_record(c)
            ci = (f"{fmt_ratio(r['low'])} – {fmt_ratio(r['high'])} ({interval_label(c)})"
                  if r["ratio"] is not None else "–")
            label = c.label + ("" if c.decides else " (shown)")
            out.append(f"| {_escape(label)} | {c.verdict.value} | {fmt_ratio(r['ratio'])} | {ci} "
                       f"| {_p(r['p_value'])} | {_p(r['p_adjusted'])} | {fmt_int(r['n'])} "
                       f"{c.n_unit} | {_escape(c.note)} |")
        out.append("")
    return out


def render_markdown(content: ReportContent, figures: list[FigurePNG], figure_dir: str) -> str:
    """The report as Markdown; figures are linked as ``figure_dir/<name>``."""
    data, repro = content.data, content.reproducibility
    by_name = {f.name: f for f in figures}
    out = [f"# seqlab report · {data.symbol} · grid {content.grid_id}", ""]
    if data.synthetic:
        out += [f"> **SYNTHETIC DATA**: {data.symbol} is a generated sample, not real prices.", ""]
    out += ["## Summary", "", *(f"- {line}" for line in headline(content)), ""]
    out += ["## Data", "", *(f"- **{k}**: {v}" for k, v in data_facts(data)), ""]
    for source in data.sources:
        out.append(f"- source `{source['source']}` ({source['layout']}, sha256 {source['sha256']}): "
                   f"{source['rows_read']:,} read, {source['rows_valid']:,} valid, "
                   f"{source['rows_quarantined']:,} quarantined")
    if data.quarantine_rules:
        out.append("- quarantined by rule: " + ", ".join(f"{r} {n:,}" for r, n in data.quarantine_rules.items()))
    out += [f"- {note}" for note in data.notes]
    if data.gate:
        when = f" ({data.validated_at} UTC)" if data.validated_at else ""
        out += ["", f"### Validation gate{when}", "", "| expectation | severity | result | observed |",
                "|---|---|---|---|"]
        out += [f"| {_escape(g['expectation'])} | {g['severity']} | "
                f"{'passed' if g['success'] else 'FAILED'} | {_escape(str(g['observed'] or ''))} |"
                for g in data.gate]
        if data.docs_path:
            out += ["", f"Great Expectations' data docs (styled only online): `{data.docs_path}`"]
    out += ["", "## Loss curves", ""]
    out += [f"![{f.caption}]({figure_dir}/{f.name})\n" for f in figures if "loss" in f.name]
    out += ["## Leaderboard", "", ("Means over seeds, ranked on validation loss (the test period never picks a winner); "
             "RMSE ratio below 1 beats persistence. Persistence predicts no change, so its "
             "direction hit is 0% by construction: judge the model's against 50%."), "",
            md_table(content.leaderboard, LEADERBOARD_COLUMNS), ""]
    if "rmse_ratio.png" in by_name:
        out += [f"![{by_name['rmse_ratio.png'].caption}]({figure_dir}/rmse_ratio.png)", ""]
    out += ["## Convergence & stability", "", dynamics_caption(), "", md_table(content.config_dynamics, CONFIG_DYNAMICS_COLUMNS), ""]
    out += ["## Forecasts", ""]
    if "forecasts.png" in by_name:
        out += [f"![{by_name['forecasts.png'].caption}]({figure_dir}/forecasts.png)", ""]
    track = f"{figure_dir}/{TRACK_FIGURE}" if TRACK_FIGURE in by_name else None
    out += section_markdown(content.track_records, content.latest_forecasts, track)
    out += ["## Claims", "", *_claims_md(content)]
    wall = f"{repro.grid_seconds:,.1f} s" if repro.grid_seconds is not None else "not finished"
    out += [
        "## Reproducibility", "",
        f"- grid {repro.grid_id}, preset {repro.preset}, {repro.dispatch} dispatch, {repro.status}",
        f"- code version {repro.code_version}; data version {repro.data_version}",
        f"- devices: {', '.join(repro.devices) or '–'}; torch {', '.join(repro.torch_versions) or '–'}",
        f"- wall time {wall}; training {repro.train_seconds:,.1f} s summed over {repro.n_runs} runs "
        f"({repro.n_reused} reused)",
        "- libraries: " + ", ".join(f"{k} {v}" for k, v in repro.libraries.items()),
        f"- report built {content.built_at:%Y-%m-%d %H:%M:%S} UTC", "",
        "```json", json.dumps(repro.spec, indent=1, sort_keys=True), "```", "",
    ]  # fmt: skip
    return "\n".join(out)
