"""The ``seqlab`` command line: thin wrappers over the pipeline functions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from seqlab.config import Settings

app = typer.Typer(
    help="seqlab: which sequential model to trust on a price series, and why.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

WarehouseOpt = Annotated[
    Path | None, typer.Option("--warehouse", help="DuckDB file (default: $SEQLAB_WAREHOUSE or data/seqlab.duckdb)")
]
OutputOpt = Annotated[
    Path | None, typer.Option("--out", help="Output folder (default: $SEQLAB_OUTPUT_DIR or data/output)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command("sample-data")
def sample_data(
    path: Annotated[Path, typer.Argument(help="CSV file or folder to write the synthetic series to.")],
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic series.")] = 7,
) -> None:
    """Write a deterministic SYNTHETIC ETH-like daily series (no download needed)."""
    from seqlab.sample import SampleSpec, write_sample_csv

    written = write_sample_csv(path, SampleSpec(seed=seed))
    typer.echo(f"wrote synthetic sample (symbol ETH-SYNTHETIC, not real prices): {written}")


@app.command()
def ingest(
    source: Annotated[str, typer.Argument(help="CSV file, folder, glob, or http(s) URL.")],
    symbol: Annotated[str, typer.Option(help="Symbol the prices are stored under.")] = "ETH",
    warehouse: WarehouseOpt = None,
    out: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Parse, validate and store a price CSV; bad rows are quarantined with their reason."""
    from seqlab.ingest.pipeline import IngestOptions, ingest_raw
    from seqlab.ingest.sources import SourceError, read_sources

    settings = Settings.from_env(warehouse, out)
    options = IngestOptions(
        symbol=symbol,
        warehouse=settings.warehouse,
        docs_dir=settings.output_dir / "data_docs",
        lock_timeout_s=settings.lock_timeout_s,
    )
    try:
        raws = read_sources(source)
    except SourceError as exc:
        _fail(str(exc))
    summaries, errors = [], []
    for raw in raws:
        try:
            summaries.append(ingest_raw(raw, options))
        except SourceError as exc:
            errors.append(str(exc))
    if as_json:
        payload = _ingest_payload(source, [s.to_dict() for s in summaries], errors)
        typer.echo(json.dumps(payload, default=str))
    else:
        for summary in summaries:
            _print_ingest(summary)
    for error in errors:
        typer.echo(f"error: {error}", err=True)
    if errors or not summaries:
        raise typer.Exit(1)


def _ingest_payload(source: str, files: list[dict], errors: list[str]) -> dict:
    if len(files) == 1 and not errors:
        return files[0]
    totals = {
        key: sum(f[key] for f in files)
        for key in ("rows_read", "rows_valid", "rows_quarantined", "rows_inserted", "rows_updated")
    }
    return {
        "source": source,
        "files": files,
        "errors": errors,
        **totals,
        "data_version": files[-1]["data_version"] if files else None,
    }


def _print_ingest(summary) -> None:
    gate = "passed" if summary.gate_passed else f"FAILED ({', '.join(summary.gate_failed)})"
    typer.echo(
        f"{summary.source}\n"
        f"  layout {summary.layout}, sha256 {summary.sha256[:12]}\n"
        f"  rows read {summary.rows_read}: valid {summary.rows_valid}, "
        f"quarantined {summary.rows_quarantined} {summary.quarantine_rules or ''}\n"
        f"  stored: {summary.rows_inserted} inserted, {summary.rows_updated} updated, "
        f"{summary.rows_unchanged} unchanged; data_version {summary.data_version[:12]}\n"
        f"  dataset gate {gate}; data docs {summary.docs_path}"
    )


def main() -> None:  # pragma: no cover - console entry for `python -m seqlab.cli`
    app(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    main()
