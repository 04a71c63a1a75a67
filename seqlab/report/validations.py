"""The latest validation of a symbol's data, readable without Great Expectations' data docs.

GX's data docs load their styles and scripts from a CDN, so offline they render unstyled
with empty tables. The same outcomes are rows in the ``validations`` table; this module
turns them into plain text (for a terminal) and is what the report's "Validation gate"
table shows. The data docs stay linked as an extra.
"""

from __future__ import annotations

import polars as pl

OBSERVED_WIDTH = 100  # characters of the observed value per line in the text view


def latest_validations(validations: pl.DataFrame) -> pl.DataFrame:
    """Only each symbol's latest validation run (the one recorded last), critical first."""
    if validations.is_empty():
        return validations
    latest = (validations.sort("validated_at", "validation_id")
              .group_by("symbol").agg(pl.col("validation_id").last()))
    return (validations.join(latest, on=["symbol", "validation_id"])
            .sort("symbol", "severity", "expectation"))


def gate_word(outcomes: list[dict]) -> str:
    """passed / FAILED by the critical expectations; not decided without any."""
    critical = [o for o in outcomes if o["severity"] == "critical"]
    if not critical:
        return "not decided (no critical expectation)"
    held = sum(bool(o["success"]) for o in critical)
    return f"{'passed' if held == len(critical) else 'FAILED'}: {held} of {len(critical)} critical held"


def _clip(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render_validations_text(validations: pl.DataFrame, *, width: int = OBSERVED_WIDTH) -> str:
    """Each symbol's latest validation: its gate, then every expectation with pass/fail,
    severity and the observed value; the data docs' path last (it needs the internet)."""
    latest = latest_validations(validations)
    if latest.is_empty():
        return "No validation is recorded (run `seqlab ingest` first)."
    blocks = []
    for (symbol,), rows in latest.group_by("symbol", maintain_order=True):
        outcomes = rows.to_dicts()
        first = outcomes[0]
        lines = [f"{symbol} · data_version {first['data_version'][:12]} · validated "
                 f"{str(first['validated_at'])[:19]} UTC · gate {gate_word(outcomes)}"]
        name_width = max(len(o["expectation"]) for o in outcomes)
        for o in outcomes:
            lines.append(f"  {'pass' if o['success'] else 'FAIL'}  {o['severity']:<8}  "
                         f"{o['expectation']:<{name_width}}  {_clip(o['observed'], width)}")
        if first.get("docs_path"):
            lines.append(f"  GX data docs (styled only online): {first['docs_path']}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
