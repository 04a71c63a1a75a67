"""The track record of kept forecasts: each champion against persistence, as days are scored.

Pure: frames in (rows of the ``forecast_scores`` view), numbers and text out. Live and
backtest forecasts are never pooled. Live rows of one champion form one record over time
(the latest forecast per target day, should a day have been forecast twice); each backtest
(batch) is a record of its own, since two backtests of the same days are two experiments.
A record's RMSE ratio gets a Diebold-Mariano test and the interval that inverts that same
test (seqlab.report.stats, as claim 6), so the interval excludes 1 exactly when the test
rejects, once it has ``MIN_TESTED_DAYS`` scored days.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from seqlab.report.stats import diebold_mariano, dm_ratio_interval

MIN_TESTED_DAYS = 30
TRACK_FIGURE = "track_record.png"


@dataclass(frozen=True)
class TrackRecord:
    """One champion's scored forecasts in one mode (one backtest, or every live day)."""

    mode: str
    batch_id: str | None  # the backtest; None for live
    config_key: str
    rank: int
    label: str
    days: int
    first_target: str
    last_target: str
    rmse_usd: float
    persistence_rmse_usd: float
    rmse_ratio: float
    ratio_low: float | None  # 95% interval inverting the DM test, from MIN_TESTED_DAYS days
    ratio_high: float | None
    dm_statistic: float | None  # negative: the model's squared errors are smaller
    dm_p_value: float | None
    revised_days: int  # scored against a close that has since been revised

    @property
    def tested(self) -> bool:
        return self.dm_p_value is not None

    def verdict(self) -> str:
        if not self.tested:
            return f"not tested (fewer than {MIN_TESTED_DAYS} scored days)"
        if self.dm_p_value < 0.05:
            return "beats persistence" if self.rmse_ratio < 1 else "worse than persistence"
        return "no difference shown"


def config_label(config_json: str) -> str:
    c = json.loads(config_json)
    return f"{c['cell']} d{c['depth']} {c['norm']} {c['feature_set']} s{c['seed']}"


def record_rows(scores: pl.DataFrame) -> pl.DataFrame:
    """The rows each record is computed from: live rows keep the latest forecast of each
    (champion, target day); backtest rows are kept per batch. Sorted by target day."""
    if scores.is_empty():
        return scores
    live = (scores.filter(pl.col("mode") == "live").sort("made_at")
            .unique(["config_key", "target_date"], keep="last")
            .with_columns(pl.lit(None, dtype=pl.String).alias("record_batch")))
    backtest = (scores.filter(pl.col("mode") == "backtest")
                .with_columns(pl.col("batch_id").alias("record_batch")))
    return pl.concat([live, backtest]).sort("mode", "record_batch", "config_key", "target_date",
                                            nulls_last=True)


def track_records(scores: pl.DataFrame) -> list[TrackRecord]:
    """One record per (mode, backtest batch, champion), live first, best rank first."""
    rows = record_rows(scores)
    records = []
    if rows.is_empty():
        return records
    for (mode, batch, key), group in rows.group_by(["mode", "record_batch", "config_key"],
                                                   maintain_order=True):
        errors = group.get_column("error_usd").to_numpy()
        base = group.get_column("persistence_error_usd").to_numpy()
        rmse, base_rmse = float(np.sqrt(np.mean(errors**2))), float(np.sqrt(np.mean(base**2)))
        ratio = rmse / base_rmse if base_rmse > 0 else math.nan
        low = high = stat = p = None
        if len(errors) >= MIN_TESTED_DAYS:
            stat, p = diebold_mariano(errors, base)
            if math.isnan(p):
                stat = p = None
            else:
                log_low, log_high = dm_ratio_interval(errors, base)
                low, high = math.exp(log_low), math.exp(log_high)
        first = group.row(0, named=True)
        records.append(TrackRecord(
            mode=mode, batch_id=batch, config_key=key, rank=int(first["champion_rank"]),
            label=config_label(first["config"]), days=len(errors),
            first_target=str(group["target_date"].min()), last_target=str(group["target_date"].max()),
            rmse_usd=rmse, persistence_rmse_usd=base_rmse, rmse_ratio=ratio, ratio_low=low,
            ratio_high=high, dm_statistic=stat, dm_p_value=p,
            revised_days=int(group.get_column("actual_revised").sum()),
        ))
    return sorted(records, key=lambda r: (r.mode != "live", r.batch_id or "", r.rank))


def cumulative_errors(scores: pl.DataFrame) -> pl.DataFrame:
    """Per record and target day: the running RMSE of the champion and of persistence and
    their ratio (< 1: ahead of persistence so far); what the track-record figure draws."""
    rows = record_rows(scores)
    if rows.is_empty():
        return pl.DataFrame()
    by = ["mode", "record_batch", "config_key"]
    n = pl.int_range(1, pl.len() + 1).over(by)
    return rows.select(
        *by, "champion_rank", "config", "target_date",
        (pl.col("error_usd").pow(2).cum_sum().over(by) / n).sqrt().alias("running_rmse_usd"),
        (pl.col("persistence_error_usd").pow(2).cum_sum().over(by) / n).sqrt()
        .alias("running_persistence_rmse_usd"),
    ).with_columns(
        (pl.col("running_rmse_usd") / pl.col("running_persistence_rmse_usd"))
        .alias("running_rmse_ratio"))


def _num(value: float | None, fmt: str = ",.2f") -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def records_markdown(records: list[TrackRecord]) -> list[str]:
    """The records as a markdown table (lines)."""
    lines = ["| mode | champion | days | RMSE | persistence RMSE | ratio | 95% interval | "
             "DM p | verdict |", "|---|---|---:|---:|---:|---:|---|---:|---|"]
    for r in records:
        mode = r.mode if r.batch_id is None else f"backtest {r.batch_id}"
        interval = "–" if r.ratio_low is None else f"{r.ratio_low:.3f}–{r.ratio_high:.3f}"
        revised = f" ({r.revised_days} revised)" if r.revised_days else ""
        lines.append(
            f"| {mode} | #{r.rank} {r.label} | {r.days}{revised} | ${_num(r.rmse_usd)} | "
            f"${_num(r.persistence_rmse_usd)} | {_num(r.rmse_ratio, '.3f')} | {interval} | "
            f"{_num(r.dm_p_value, '.3g')} | {r.verdict()} |")
    return lines


def latest_markdown(forecasts: pl.DataFrame) -> list[str]:
    """Forecast rows (the ledger's columns) as a markdown table, one line per champion."""
    lines = ["| target day | champion | forecast | persistence (close on origin) | "
             "trained through | run |", "|---|---|---:|---:|---|---|"]
    for row in forecasts.sort("target_date", "champion_rank").iter_rows(named=True):
        lines.append(f"| {row['target_date']} | #{row['champion_rank']} "
                     f"{config_label(row['config'])} | ${row['predicted_usd']:,.2f} | "
                     f"${row['persistence_usd']:,.2f} | {row['trained_through']} | "
                     f"`{row['run_id']}` |")
    return lines


def forecast_markdown(forecasts: pl.DataFrame, scores: pl.DataFrame, *, mode: str) -> str:
    """The ``forecast`` artifact: the forecasts just made and the track record of ``mode``."""
    what = "Tomorrow's forecasts" if mode == "live" else "Backtest forecasts (latest days)"
    shown = forecasts if mode == "live" else forecasts.sort("target_date").tail(10)
    lines = [f"## {what}", ""]
    lines += latest_markdown(shown) if shown.height else ["No forecast was made (every refit failed)."]
    records = [r for r in track_records(scores) if r.mode == mode]
    lines += ["", f"## Track record ({mode}) against persistence (tomorrow = today)", ""]
    if records:
        lines += records_markdown(records)
        lines += ["", f"Ratio = RMSE / persistence RMSE on the same scored days (< 1 beats "
                      f"persistence); interval and Diebold-Mariano test from {MIN_TESTED_DAYS} days."]
    else:
        lines.append("No forecast has been scored yet: scores come once the target day's close is stored.")
    return "\n".join(lines) + "\n"


# --- the report's Track record section ------------------------------------------------------

def section_markdown(records: list[TrackRecord], latest: pl.DataFrame,
                     figure_link: str | None) -> list[str]:
    """The report's Track record section (markdown lines, its heading included)."""
    out = ["## Track record", ""]
    if not records and latest.is_empty():
        return out + ["No forecast is kept for this symbol yet: `seqlab retrain` writes live "
                      "forecasts, `seqlab backtest` walks the champions over history.", ""]
    out += [_SECTION_TEXT, ""]
    if records:
        out += records_markdown(records) + [""]
    if figure_link:
        out += [f"![Running RMSE ratio against persistence]({figure_link})", ""]
    if latest.height:
        out += ["### Latest live forecasts", "", *latest_markdown(latest), ""]
    return out


_SECTION_TEXT = (
    "Every forecast kept in the `forecasts` ledger, scored against the target day's close "
    "as first stored: each champion against persistence (tomorrow = today) on the same days, "
    "live and backtest apart. Ratio = RMSE / persistence RMSE (< 1 beats persistence); the "
    f"Diebold-Mariano test and its 95% interval (the ratios the test keeps) need {MIN_TESTED_DAYS} "
    "scored days.")


def section_html(records: list[TrackRecord], latest: pl.DataFrame) -> str:
    """The same section's body as HTML (tables; escaped)."""
    from html import escape

    if not records and latest.is_empty():
        return ("<p>No forecast is kept for this symbol yet: <code>seqlab retrain</code> writes "
                "live forecasts, <code>seqlab backtest</code> walks the champions over history.</p>")
    parts = [f"<p>{escape(_SECTION_TEXT)}</p>"]
    for title, lines in (("", records_markdown(records) if records else []),
                         ("Latest live forecasts", latest_markdown(latest) if latest.height else [])):
        if not lines:
            continue
        head, _, *body = lines
        cells = [[escape(c.strip().strip("`")) for c in line.strip("|").split(" | ")]
                 for line in (head, *body)]
        rows = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in cells[1:])
        header = "".join(f"<th>{c}</th>" for c in cells[0])
        parts.append((f"<h3>{escape(title)}</h3>" if title else "")
                     + f'<table class="track"><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>')
    return "".join(parts)


def running_ratio_png(running: pl.DataFrame) -> bytes | None:
    """Running RMSE ratio against persistence over target days, one panel per mode."""
    if running.is_empty():
        return None
    import io

    from matplotlib.figure import Figure

    modes = [m for m in ("live", "backtest") if m in set(running["mode"])]
    figure = Figure(figsize=(9, 2.8 * len(modes) + 0.6), layout="constrained")
    axes = figure.subplots(len(modes), 1, squeeze=False)
    for ax, mode in zip(axes[:, 0], modes, strict=True):
        part = running.filter(pl.col("mode") == mode)
        for (batch, _), line in part.group_by(["record_batch", "config_key"], maintain_order=True):
            first = line.row(0, named=True)
            label = f"#{first['champion_rank']} {config_label(first['config'])}"
            ax.plot(line["target_date"].to_numpy(), line["running_rmse_ratio"].to_numpy(),
                    linewidth=1.1, label=label if batch is None else f"{label} ({batch[-8:]})")
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle=":")
        ax.set_title(f"{mode}: running RMSE / persistence RMSE (below 1 beats persistence)",
                     fontsize=9, loc="left")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
