"""A finished grid as a committable study folder (pure): the report, compact Parquet, provenance.

From the frames the report reads (``seqlab.warehouse.reports.load_report_inputs``) and the
report rendered from them, :func:`publication_files` makes every file of the folder:

- ``report.md``, ``claims.json``, ``figures/*.png``: the report as rendered (``index.html``
  stays out: GitHub shows ``report.md``, and the HTML repeats it at several times the size);
- ``runs.parquet``, ``epoch_metrics.parquet``, ``predictions.parquet`` (zstd): what a
  reader needs to recompute the verdicts with ``seqlab.report.claims.evaluate_claims``;
- ``verdicts.md``: one row per claim, from the same records as ``claims.json``;
- ``study.json``: how to reproduce it: the command, code and data versions, the data
  files and their sha256, devices, runs by status.

The shell (``seqlab.runners.publish``) reads the frames and writes the folder through
``seqlab.report.output.write_report_files``, which owns it by its manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

# Columns a reader needs: the config, its identity, how it ended and was selected, losses
# and USD metrics with persistence's on the same days, and the periods they cover. Left out:
# local paths (checkpoints), per-run JSON (config, determinism), timings, workers.
RUN_COLUMNS = (
    "run_id", "run_key", "reused", "symbol", "data_version", "code_version",
    "cell", "depth", "norm", "feature_set", "seed", "epochs", "lookback", "hidden",
    "batch_size", "lr", "val_fraction", "status", "diverged_epoch", "epochs_run",
    "best_epoch", "selected_on", "best_val_loss", "best_test_loss", "final_test_loss",
    "test_rmse_usd", "test_mae_usd", "test_mape_pct", "test_directional_accuracy",
    "baseline_rmse_usd", "baseline_mae_usd", "baseline_mape_pct",
    "baseline_directional_accuracy", "n_train", "n_val", "n_test", "n_parameters",
    "train_first", "train_last", "val_first", "val_last", "test_first", "test_last",
    "device", "torch_version",
)  # fmt: skip
# float32 keeps ~7 significant digits of a loss, plenty for curves and thresholds, and
# halves the biggest file: the study's 216 runs x 2,000 epochs are 432,000 rows.
EPOCH_SCHEMA = {"run_id": pl.String, "epoch": pl.Int32, "train_loss": pl.Float32,
                "val_loss": pl.Float32, "test_loss": pl.Float32}
PREDICTION_COLUMNS = ("run_id", "date", "actual_usd", "predicted_usd", "baseline_usd")
FINISHED = ("completed", "completed_with_failures")
SINGLE_RUN_PRESET = "train"  # `seqlab train`'s one-config grids (seqlab.warehouse.runs)
REPORT_FILES_LEFT_OUT = ("index.html",)


class PublishError(ValueError):
    """A grid that cannot be published; the message says why in one line."""


@dataclass(frozen=True)
class Provenance:
    """What the publishing process knows that the warehouse does not."""

    created_at: datetime
    seqlab_version: str
    git_commit: str | None = None
    git_dirty: bool | None = None
    code_version_now: str | None = None  # this checkout's training-code hash


def check_publishable(grid: dict) -> None:
    """Refuse a grid that is still running, was interrupted or failed, or is one config."""
    if grid["status"] not in FINISHED:
        raise PublishError(f"grid {grid['grid_id']} is {grid['status']}, not finished; "
                           "publish a completed grid")
    if grid.get("preset") == SINGLE_RUN_PRESET:
        raise PublishError(f"grid {grid['grid_id']} is one `seqlab train` config, not a study "
                           "grid; publish a grid of `seqlab run`")


# --- the Parquet exports ------------------------------------------------------------------

def _parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", compression_level=10, statistics=False)
    return buffer.getvalue()


def shareable_frames(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The frames with this machine's paths taken out, so a committed report names data
    files by name and no local folder (GX's data docs are not published)."""
    out = dict(frames)
    if "ingestions" in out:
        source = pl.col("source")
        name = source.str.replace_all("\\", "/", literal=True).str.strip_chars_end("/")
        out["ingestions"] = out["ingestions"].with_columns(
            source=pl.when(source.str.contains("^https?://")).then(source)
            .otherwise(name.str.split("/").list.last()))
    if "validations" in out and "docs_path" in out["validations"].columns:
        out["validations"] = out["validations"].with_columns(docs_path=pl.lit(None, pl.String))
    return out


def export_frames(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The runs, epoch metrics and predictions of the grid, in the exported columns."""
    runs = frames["runs"].select(c for c in RUN_COLUMNS if c in frames["runs"].columns)
    epochs = frames["epochs"].select(
        pl.col(name).cast(kind) for name, kind in EPOCH_SCHEMA.items()).sort("run_id", "epoch")
    predictions = frames["predictions"].select(PREDICTION_COLUMNS).sort("run_id", "date")
    return {"runs": runs.sort("cell", "depth", "norm", "feature_set", "seed"),
            "epoch_metrics": epochs, "predictions": predictions}


# --- verdicts.md --------------------------------------------------------------------------

def _deciding(claim: dict) -> dict | None:
    """The comparison that settles the claim, among its deciding ones with the claim's
    verdict: the least certain (a claim is supported only when every part is), or for a
    contradicted claim the clearest contradiction (one is enough)."""
    deciding = [c for c in claim["comparisons"] if c["decides"]] or claim["comparisons"]
    same = [c for c in deciding if c["verdict"] == claim["verdict"]] or deciding
    if claim["verdict"] == "contradicted":
        return min(same, key=lambda c: 2.0 if c["p_adjusted"] is None else c["p_adjusted"],
                   default=None)
    return max(same, key=lambda c: -1.0 if c["p_adjusted"] is None else c["p_adjusted"],
               default=None)


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def verdicts_markdown(document: dict, *, heading: str) -> str:
    """The verdict table (one row per claim) from a claims.json document, ready to paste."""
    lines = [heading, "",
             "| claim | verdict | deciding comparison | ratio (95% CI) | n | p (Holm) |",
             "|---|---|---|---:|---:|---:|"]
    for claim in document["claims"]:
        c = _deciding(claim) or {}
        estimate = "–" if c.get("ratio") is None else (
            f"{_ratio(c['ratio'])} ({_ratio(c['low'])} – {_ratio(c['high'])})")
        n = f"{c['n']:,} {c['n_unit']}" if c.get("n") else "–"
        p = "–" if c.get("p_adjusted") is None else f"{c['p_adjusted']:.2g}"
        lines.append(f"| {claim['number']}. {_cell(claim['statement'])} | {claim['verdict']} "
                     f"| {_cell(c.get('label', '–'))} | {estimate} | {n} | {p} |")
    lines += ["", "Ratios are the claim's first term over its second (1: no difference); the "
                  "deciding comparison is the one that settles the verdict. Every "
                  "comparison, its unadjusted p-value and the method: `report.md`, "
                  "`claims.json`."]
    return "\n".join(lines) + "\n"


# --- study.json ---------------------------------------------------------------------------

def _source_name(source: str) -> str:
    """A URL as given, a local file by its name: the folder it sat in is nobody else's."""
    if source.startswith(("http://", "https://")):
        return source
    return source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def data_files(ingestions: pl.DataFrame) -> list[dict]:
    """The ingestions that changed the symbol's prices before the grid started, in order:
    ingesting these files in this order stores the prices the grid trained on."""
    changed = ingestions.filter((pl.col("rows_inserted") + pl.col("rows_updated")) > 0)
    return [{"name": _source_name(r["source"]), "sha256": r["sha256"], "layout": r["layout"],
             "rows_valid": r["rows_valid"], "rows_quarantined": r["rows_quarantined"],
             "data_version": r["data_version"], "ingested_at": _iso(r["started_at"])}
            for r in changed.sort("started_at", "ingestion_id").iter_rows(named=True)]


def reproduce_command(grid: dict, files: list[dict]) -> str:
    """`seqlab run` with every setting of the grid's resolved spec spelled out, so the
    command means the same grid even if a preset's defaults change later; earlier files
    are ingested first."""
    symbol = ["--symbol", grid["symbol"]]
    steps = [["seqlab", "ingest", f["name"], *symbol] for f in files[:-1]]
    run = ["seqlab", "run", *(["--data", files[-1]["name"]] if files else []), *symbol]
    if grid.get("preset"):
        run += ["--preset", grid["preset"]]
    for name, value in json.loads(grid["spec"]).items():
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        run += [f"--{name.replace('_', '-')}", text]
    if grid.get("dispatch", "local") != "local":
        run += ["--dispatch", grid["dispatch"]]
    return " && ".join(shlex.join(step) for step in [*steps, run])


def _determinism(runs: pl.DataFrame) -> list[dict]:
    """Each distinct determinism setting and how many runs had it (seeds and pack slots,
    which differ per run by design, left out)."""
    if "determinism" not in runs.columns:
        return []
    counts: Counter[str] = Counter()
    for text in runs["determinism"].drop_nulls():
        settings = {k: v for k, v in json.loads(text).items() if k not in ("seed", "pack")}
        counts[json.dumps(settings, sort_keys=True)] += 1
    return [{**json.loads(k), "runs": n} for k, n in sorted(counts.items())]


def _counts(series: pl.Series) -> dict:
    return dict(sorted(Counter(series.drop_nulls().to_list()).items()))


def study_record(grid: dict, frames: dict[str, pl.DataFrame], provenance: Provenance,
                 files: dict[str, bytes]) -> dict:
    """study.json: how the folder was made and how to make it again."""
    runs = frames["runs"]
    sources = data_files(frames["ingestions"])
    git = {"commit": provenance.git_commit, "dirty": provenance.git_dirty}
    first, last = (runs[c].drop_nulls() for c in ("train_first", "test_last"))
    return {
        "grid_id": grid["grid_id"], "symbol": grid["symbol"], "preset": grid.get("preset"),
        "spec": json.loads(grid["spec"]), "dispatch": grid.get("dispatch"),
        "command": reproduce_command(grid, sources),
        "code": {
            "code_version": grid["code_version"],
            "run_code_versions": _counts(runs["code_version"]),
            "seqlab_version": provenance.seqlab_version, "git": git,
            # True: this checkout's training code is the code the runs were trained with.
            "checkout_matches_code_version": (None if provenance.code_version_now is None
                                              else provenance.code_version_now == grid["code_version"]),
            "torch_versions": _counts(runs["torch_version"]),
        },
        "data": {
            "data_version": grid["data_version"], "files": sources,
            "first_date": str(first.min()) if first.len() else None,
            "last_date": str(last.max()) if last.len() else None,
        },
        "devices": _counts(runs["device"]), "determinism": _determinism(runs),
        "runs": {"total": runs.height, "by_status": _counts(runs["status"]),
                 "reused": int(runs["reused"].sum()) if "reused" in runs.columns else 0},
        "grid_started_at": _iso(grid.get("started_at")),
        "grid_finished_at": _iso(grid.get("finished_at")),
        "created_at": _iso(provenance.created_at),
        "files": {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                  for name, data in sorted(files.items())},
    }  # fmt: skip


def _iso(value: datetime | None) -> str | None:
    """The warehouse's times are naive UTC; say so in the text."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def publication_files(grid: dict, frames: dict[str, pl.DataFrame], report_files: dict[str, bytes],
                      provenance: Provenance) -> dict[str, bytes]:
    """Every file of the study folder (relative name -> bytes)."""
    files = {k: v for k, v in report_files.items() if k not in REPORT_FILES_LEFT_OUT}
    files |= {f"{name}.parquet": _parquet(frame) for name, frame in export_frames(frames).items()}
    document = json.loads(report_files["claims.json"])
    heading = (f"Verdicts of grid `{grid['grid_id']}` ({frames['runs'].height} runs, "
               f"{grid['symbol']}, data_version `{grid['data_version'][:12]}`):")
    files["verdicts.md"] = verdicts_markdown(document, heading=heading).encode("utf-8")
    study = study_record(grid, frames, provenance, files)
    files["study.json"] = (json.dumps(study, indent=1, allow_nan=False, default=str) + "\n").encode()
    return files
