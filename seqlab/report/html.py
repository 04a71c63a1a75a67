"""index.html: one self-contained page (inline CSS, inline plotly.js, no network)."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from seqlab.report.claims import METHOD, SHORT_NAMES, comparison_record, interval_label
from seqlab.report.content import ReportContent
from seqlab.report.interactive import forecasts_html, loss_curves_html, plotly_script, ratio_html
from seqlab.report.narrative import (
    claim_reading,
    claims_facts,
    data_facts,
    headline,
    verdict_class,
)
from seqlab.report.page_style import PAGE_CSS, SORT_SCRIPT
from seqlab.report.protocol import CLAIM_TESTS
from seqlab.report.tables import (
    CONFIG_DYNAMICS_COLUMNS,
    LEADERBOARD_COLUMNS,
    RUN_DYNAMICS_COLUMNS,
    Column,
    dynamics_caption,
    fmt_int,
    fmt_ratio,
    present_columns,
)
from seqlab.report.track_record import section_html

SECTIONS = (
    ("summary", "Summary"), ("data", "Data"), ("curves", "Loss curves"),
    ("leaderboard", "Leaderboard"), ("dynamics", "Convergence & stability"),
    ("forecasts", "Forecasts"), ("track", "Track record"), ("claims", "Claims"), ("reproducibility", "Reproducibility"),
)  # fmt: skip


def _cell(text: str, value, column: Column) -> str:
    raw = "" if value is None else (repr(value) if isinstance(value, float) else str(value))
    kind = ' class="num"' if column.numeric else ""
    return f'<td{kind} data-col="{column.name}" data-value="{escape(raw)}">{escape(text)}</td>'


def html_table(frame, columns: tuple[Column, ...], table_id: str, row_class=None) -> str:
    """A sortable table; each cell carries its raw value in data-value (tests read it back)."""
    shown = present_columns(frame, columns)
    head = "".join(
        f'<th{" class=num" if c.numeric else ""} title="{escape(c.help or c.name)}">'
        f"{escape(c.header)}</th>"
        for c in shown
    )
    body = []
    for row in frame.iter_rows(named=True):
        css = f' class="{row_class(row)}"' if row_class and row_class(row) else ""
        cells = "".join(_cell(c.fmt(row[c.name]), row[c.name], c) for c in shown)
        body.append(f"<tr{css}>{cells}</tr>")
    return (f'<div class="scroll"><table id="{table_id}" class="sortable"><thead><tr>{head}'
            f'</tr></thead><tbody>{"".join(body)}</tbody></table></div>')


def _kv(pairs: list[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv">{rows}</table>'


def _summary(content: ReportContent) -> str:
    items = "".join(f"<li>{escape(line)}</li>" for line in headline(content))
    chips = "".join(
        f'<a class="chip {verdict_class(c.verdict)}" href="#claim-{c.number}" '
        f'title="{escape(c.statement)}">{c.number}. {escape(SHORT_NAMES[c.number])}: '
        f"{escape(c.verdict.value)}</a>"
        for c in content.claims
    )
    return f'<ul class="headline">{items}</ul><p class="chips">{chips}</p>'


def _data(content: ReportContent) -> str:
    data = content.data
    parts = [_kv(data_facts(data))]
    if data.sources:
        rows = "".join(
            f"<tr><td>{escape(s['source'])}</td><td>{escape(s['layout'])}</td>"
            f"<td><code>{escape(s['sha256'])}</code></td><td class=num>{s['rows_read']:,}</td>"
            f"<td class=num>{s['rows_valid']:,}</td><td class=num>{s['rows_quarantined']:,}</td>"
            f"<td>{escape(str(s['started_at'])[:19])}</td></tr>"
            for s in data.sources
        )
        parts.append(
            '<h3>Source files</h3><div class="scroll"><table id="sources"><thead><tr><th>source'
            "</th><th>layout</th><th>sha256</th><th class=num>rows read</th><th class=num>valid"
            "</th><th class=num>quarantined</th><th>ingested (UTC)</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>"
        )
    if data.quarantine_rules:
        rules = ", ".join(f"{escape(r)}: {n:,}" for r, n in data.quarantine_rules.items())
        parts.append(f"<p>Quarantined rows by rule: {rules}.</p>")
    if data.gate:
        rows = "".join(
            f'<tr class="{_gate_class(g)}"><td>{escape(g["expectation"])}</td>'
            f'<td>{escape(g["severity"])}</td><td>{"passed" if g["success"] else "FAILED"}</td>'
            f'<td class="observed">{escape(str(g["observed"] or ""))}</td></tr>'
            for g in data.gate
        )
        when = f" ({escape(data.validated_at)} UTC)" if data.validated_at else ""
        docs = (f'<p class="note">Great Expectations\' own data docs of this validation, an extra: '
                f'<a href="{escape(Path(data.docs_path).as_uri())}">{escape(data.docs_path)}</a> '
                "(they load their styles from the internet; this table is the same outcomes).</p>"
                if data.docs_path and Path(data.docs_path).is_absolute() else "")
        parts.append(
            f'<h3>Validation gate</h3><p>Every expectation of the latest validation of this '
            f"data version{when}, with what was observed.</p>"
            '<div class="scroll"><table id="gate"><thead><tr>'
            "<th>expectation</th><th>severity</th><th>result</th><th>observed</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>{docs}"
        )
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in data.notes)
    return "".join(parts) + notes


def _gate_class(outcome: dict) -> str:
    if outcome["success"]:
        return "ok"
    return "bad" if outcome["severity"] == "critical" else "warn"


def _baseline_class(row: dict) -> str:
    return "beats" if row.get("beats_baseline") else "loses"


def _p(value) -> str:
    return "–" if value is None else f"{value:.2g}"


def _operational_tests() -> str:
    fields = (("measured", "what is measured"), ("loss", "on which loss"), ("unit", "unit"),
              ("test", "test"), ("decision", "decision rule"), ("minimum_grid", "minimum grid"))
    head = "".join(f"<th>{escape(title)}</th>" for _, title in fields)
    rows = "".join(
        f'<tr id="test-{t.number}"><td>{t.number}. {escape(t.short_name)}</td>'
        + "".join(f"<td>{escape(getattr(t, name))}</td>" for name, _ in fields) + "</tr>"
        for t in CLAIM_TESTS.values())
    return ('<h3 id="method">Method: one operational test per claim</h3><div class="scroll">'
            f'<table id="operational-tests"><thead><tr><th>claim</th>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")


def _claims(content: ReportContent) -> str:
    method = "".join(f"<li><b>{escape(k)}</b>: {escape(v)}</li>" for k, v in METHOD.items())
    facts = "".join(f'<p class="note">{escape(line)}</p>' for line in claims_facts(content))
    blocks = ['<p class="method">Effects are ratios: 1 means no difference; 0.8 means 20% lower '
              "for the first of the pair. Each claim is one test of its deciding rows (its p is "
              "the largest of theirs), Holm-adjusted across the claims; each interval is drawn "
              "at the level its claim was decided at (its column says which). Rows in grey are "
              "shown and do not decide the claim; their intervals are unadjusted. The same "
              "records are in <code>claims.json</code>.</p>" + facts + _operational_tests()
              + f'<details><summary>method details</summary><ul class="method">{method}</ul>'
              "</details>"]
    for claim in content.claims:
        rows = []
        for c in claim.comparisons:
            r = comparison_record(c)
            ci = (f"{fmt_ratio(r['low'])} – {fmt_ratio(r['high'])} ({interval_label(c)})"
                  if r["ratio"] is not None else "–")
            css = "" if c.decides else ' class="secondary"'
            rows.append(
                f'<tr{css}><td>{escape(c.label)}<div class="unit">effect = {escape(c.effect_unit)}'
                f'</div></td><td class="{verdict_class(c.verdict)}">{escape(c.verdict.value)}</td>'
                f'<td class=num data-value="{r["ratio"] if r["ratio"] is not None else ""}">'
                f"{fmt_ratio(r['ratio'])}</td><td class=num>{ci}</td>"
                f"<td class=num>{_p(r['p_value'])}</td><td class=num>{_p(r['p_adjusted'])}</td>"
                f"<td class=num>{fmt_int(r['n'])} {escape(c.n_unit)}</td>"
                f"<td>{escape(c.note)}</td></tr>"
            )
        note = (f'<p class="test">Test: {escape(claim.operational_test)}</p>'
                f'<p class="reading">{escape(claim_reading(claim))}</p>')
        if claim.p_adjusted is not None:
            note += (f'<p class="claim-p">Claim p = {_p(claim.p_value)} ({claim.direction} the '
                     f"claim), Holm-adjusted across the claims {_p(claim.p_adjusted)}.</p>")
        if claim.note:
            note += f'<p class="note">{escape(claim.note)}</p>'
        blocks.append(
            f'<div class="claim" id="claim-{claim.number}" data-verdict="{claim.verdict.value}">'
            f'<h3><span class="chip {verdict_class(claim.verdict)}">{escape(claim.verdict.value)}'
            f"</span> {claim.number}. {escape(claim.statement)}</h3>{note}"
            '<div class="scroll"><table class="claim-table"><thead><tr><th>comparison</th>'
            "<th>verdict</th><th class=num>effect</th><th class=num>interval (level)</th>"
            "<th class=num>p</th><th class=num>p (Holm)</th><th class=num>n</th><th>note</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div></div>"
        )
    return "".join(blocks)


def _reproducibility(content: ReportContent) -> str:
    r = content.reproducibility
    wall = f"{r.grid_seconds:,.1f} s" if r.grid_seconds is not None else "not finished"
    pairs = [
        ("grid", f"{r.grid_id} (preset {r.preset}, {r.dispatch} dispatch, {r.status})"),
        ("runs", f"{r.n_runs} ({r.n_reused} reused from earlier grids)"),
        ("code version", r.code_version), ("data version", r.data_version),
        ("devices", ", ".join(r.devices) or "–"), ("torch (training)", ", ".join(r.torch_versions) or "–"),
        ("wall time", f"{wall}; training {r.train_seconds:,.1f} s summed over runs"),
        ("started / finished (UTC)", f"{r.started_at[:19]} / {(r.finished_at or '–')[:19]}"),
        ("report built (UTC)", f"{content.built_at:%Y-%m-%d %H:%M:%S}"),
        ("libraries (report build)", ", ".join(f"{k} {v}" for k, v in r.libraries.items())),
    ]  # fmt: skip
    spec = escape(json.dumps(r.spec, indent=1, sort_keys=True))
    determinism = "".join(f"<pre>{escape(d)}</pre>" for d in r.determinism)
    return (f"{_kv(pairs)}<details><summary>grid spec</summary><pre>{spec}</pre></details>"
            f"<details><summary>determinism settings</summary>{determinism}</details>")


def render_html(content: ReportContent, figure_links: list[tuple[str, str]]) -> str:
    """The whole page. ``figure_links``: (file, caption) of the PNGs beside report.md."""
    ratio = ratio_html(content.leaderboard)
    forecasts = forecasts_html(content.forecasts) or "<p>No forecasts stored.</p>"
    sections = {
        "summary": _summary(content),
        "data": _data(content),
        "curves": ('<p>Mean across seeds, band = min to max; log scale. Drag to zoom, double-click '
                   "to reset, click a legend entry to hide it; buttons switch test/train and "
                   "feature set.</p>" + loss_curves_html(content.epochs)),
        "leaderboard": ("<p>One row per config, means over its seeds, ranked on validation loss "
                        "(the test period never picks a winner). RMSE ratio = model RMSE / "
                        "persistence RMSE on the same test days: below 1 beats tomorrow = today."
                        " Persistence predicts no change, so it never calls a direction: its "
                        "direction hit is ~0% by construction; judge the model's against 50%."
                        " Click a header to sort.</p>"
                        + html_table(content.leaderboard, LEADERBOARD_COLUMNS, "leaderboard-table",
                                     _baseline_class)
                        + ("<h3>Each config against persistence</h3>" + ratio if ratio else "")),
        "dynamics": (f'<p class="caption">{escape(dynamics_caption())}</p>'
                     + "".join(f'<p class="note">{escape(line)}</p>'
                               for line in claims_facts(content) if line.startswith("Diverged"))
                     + html_table(content.config_dynamics, CONFIG_DYNAMICS_COLUMNS, "dynamics-table")
                     + "<details><summary>every run</summary>"
                     + html_table(content.run_dynamics, RUN_DYNAMICS_COLUMNS, "runs-dynamics-table")
                     + "</details>"),
        "forecasts": forecasts,
        "track": section_html(content.track_records, content.latest_forecasts),
        "claims": _claims(content),
        "reproducibility": _reproducibility(content),
    }  # fmt: skip
    nav = "".join(f'<a href="#{key}">{escape(title)}</a>' for key, title in SECTIONS)
    body = "".join(
        f'<section id="{key}"><h2>{escape(title)}</h2>{sections[key]}</section>'
        for key, title in SECTIONS
    )
    pngs = " · ".join(f'<a href="{escape(f)}" title="{escape(c)}">{escape(f)}</a>'
                      for f, c in figure_links)
    banner = ""
    if content.data.synthetic:
        banner = ('<div class="warning" id="synthetic-warning">SYNTHETIC DATA: symbol '
                  f"{escape(content.data.symbol)} is a generated sample, not real prices. "
                  "Nothing here says anything about the market.</div>")
    title = f"seqlab report · {content.data.symbol} · grid {content.grid_id}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{PAGE_CSS}</style>
<script>{plotly_script()}</script></head>
<body><header><h1>{escape(title)}</h1><nav>{nav}</nav></header>{banner}<main>{body}
<footer>The same report as Markdown: <a href="report.md">report.md</a>; its figures: {pngs or "none"}.</footer></main>
<script>{SORT_SCRIPT}</script></body></html>
"""
