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
PrivateUrlsOpt = Annotated[bool, typer.Option(
    "--allow-private-urls",
    help="Let URL sources reach loopback, private and link-local hosts "
    "(default: refused; or SEQLAB_ALLOW_PRIVATE_URLS=1).")]


def _checked_symbol(value: str | None) -> str | None:
    """--symbol's callback: the one symbol rule, as a usage error before anything runs."""
    from seqlab.schemas.symbols import SymbolError, check_symbol

    if value is None:
        return None
    try:
        return check_symbol(value)
    except SymbolError as exc:
        raise typer.BadParameter(str(exc)) from exc


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
    symbol: Annotated[str, typer.Option(help="Symbol the prices are stored under.",
                                        callback=_checked_symbol)] = "ETH",
    warehouse: WarehouseOpt = None,
    out: OutputOpt = None,
    as_json: JsonOpt = False,
    allow_private_urls: PrivateUrlsOpt = False,
) -> None:
    """Parse, validate and store a price CSV; bad rows are quarantined with their reason."""
    from seqlab.ingest.sources import SourceError, read_sources
    from seqlab.runners.ingest import IngestOptions, ingest_raw
    from seqlab.warehouse import WarehouseError

    settings = Settings.from_env(warehouse, out)
    try:
        options = IngestOptions.from_settings(settings, symbol,
                                              allow_private_urls=allow_private_urls or None)
        raws = read_sources(source, options.sources)
    except (SourceError, ValueError) as exc:
        _fail(str(exc))
    summaries, errors = [], []
    for raw in raws:
        try:
            summaries.append(ingest_raw(raw, options))
        except (SourceError, WarehouseError, ValueError) as exc:
            errors.append(str(exc))
    errors += [f"{s.source}: no data rows (header only)" for s in summaries if s.rows_read == 0]
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
    import hashlib

    return {
        "source": source,
        # Several files: one digest over the files' digests, and every layout seen.
        "sha256": hashlib.sha256("".join(f["sha256"] for f in files).encode()).hexdigest(),
        "layout": ",".join(sorted({f["layout"] for f in files})),
        "files": files,
        "errors": errors,
        **totals,
        "data_version": files[-1]["data_version"] if files else None,
    }


def _print_ingest(summary) -> None:
    from seqlab.ingest.options import summary_lines

    source, *details = summary_lines(summary)
    typer.echo("\n  ".join([source, *details]))


def _list(text: str | None, cast=str) -> list | None:
    return None if text is None else [cast(v.strip()) for v in text.split(",") if v.strip()]


@app.command()
def train(
    data: Annotated[str | None, typer.Option(help="Ingest this source first.")] = None,
    cell: Annotated[str, typer.Option(help="rnn | lstm | gru")] = "lstm",
    depth: Annotated[int, typer.Option(help="Stacked recurrent layers.")] = 1,
    norm: Annotated[str, typer.Option(help="none | batch | layer")] = "none",
    features: Annotated[str, typer.Option(help="Feature set: close | all.")] = "close",
    seed: int = 0,
    epochs: int = 50,
    lookback: int = 30,
    hidden: int = 64,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 64,
    lr: float = 1e-3,
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction", help="Validation tail that picks the epoch (0: keep the last epoch).")] = 0.1,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = "auto",
    symbol: Annotated[str, typer.Option(help="Symbol the prices are stored under.",
                                        callback=_checked_symbol)] = "ETH",
    warehouse: WarehouseOpt = None,
    out: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train one config on the stored prices, without Prefect (quick experiments)."""
    from seqlab.engine import TrainConfig, tune_malloc
    from seqlab.engine.graphed import train_on_device
    from seqlab.warehouse import WarehouseError
    from seqlab.warehouse.gate import GateClosed, require_validated

    settings = Settings.from_env(warehouse, out)
    if data:
        _ingest_quietly(data, symbol, settings)
    try:
        config = TrainConfig(
            cell=cell, depth=depth, norm=norm, feature_set=features, seed=seed, epochs=epochs,
            lookback=lookback, hidden=hidden, batch_size=batch_size, lr=lr, device=device,
            val_fraction=val_fraction,
        )
        prices = require_validated(settings.warehouse, symbol).prices  # the same gate as run
    except (ValueError, WarehouseError, GateClosed) as exc:
        _fail(str(exc))
    tune_malloc()
    on_epoch = None if as_json else _epoch_printer(epochs)
    try:
        result = train_on_device(config, prices, checkpoint_dir=settings.output_dir / "checkpoints",
                                 on_epoch=on_epoch)
    except ValueError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), default=str))
        return
    typer.echo(
        f"{result.status}: epoch {result.best_epoch} kept ({_selection(result.selected_on)}), "
        f"test loss {result.best_test_loss:.4g}; "
        f"test RMSE ${result.test_rmse_usd:,.2f} vs persistence ${result.baseline_rmse_usd:,.2f}; "
        f"checkpoint {result.checkpoint_path}"
        if result.status == "ok"
        else f"{result.status} at epoch {result.diverged_epoch}"
    )


def _selection(selected_on: str) -> str:
    return "lowest validation loss" if selected_on == "validation" else "last epoch, no validation"


def _epoch_printer(epochs: int):
    step = max(1, epochs // 10)

    def show(record) -> None:
        if record.epoch == 1 or record.epoch % step == 0 or record.epoch == epochs:
            val = f"val {record.val_loss:.5g}  " if record.val_loss is not None else ""
            typer.echo(f"epoch {record.epoch:>5}: train {record.train_loss:.5g}  {val}"
                       f"test {record.test_loss:.5g}  ({record.seconds:.2f}s)")

    return show


def _ingest_quietly(source: str, symbol: str, settings: Settings) -> None:
    from seqlab.ingest.sources import SourceError
    from seqlab.runners.ingest import IngestOptions, ingest_source

    try:
        options = IngestOptions.from_settings(settings, symbol)
        for summary in ingest_source(source, options):
            typer.echo(f"ingested {summary.source}: {summary.rows_valid} valid, "
                       f"{summary.rows_quarantined} quarantined", err=True)
    except (SourceError, ValueError) as exc:  # ValueError: a symbol that is not allowed
        _fail(str(exc))


@app.command()
def predict(
    checkpoint: Annotated[str, typer.Argument(help="Checkpoint file, or a run_id from the runs table.")],
    symbol: Annotated[str, typer.Option(help="Symbol the prices are stored under.",
                                        callback=_checked_symbol)] = "ETH",
    warehouse: WarehouseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Forecast the next day's close from the latest stored prices with a trained model."""
    from seqlab.engine import predict_next
    from seqlab.warehouse import WarehouseError, load_prices
    from seqlab.warehouse.runs import load_run_checkpoint

    settings = Settings.from_env(warehouse, None)
    path = Path(checkpoint)
    try:
        if not path.exists():
            found = load_run_checkpoint(settings.warehouse, checkpoint)
            if found is None or found[0] is None:
                _fail(f"no checkpoint file or run_id {checkpoint!r} (in {settings.warehouse})")
            path, symbol = Path(found[0]), found[1]
        prices = load_prices(settings.warehouse, symbol)
        day, close = predict_next(path, prices)
    except (ValueError, FileNotFoundError, WarehouseError) as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps({"symbol": symbol, "date": str(day), "predicted_close_usd": close,
                               "checkpoint": str(path)}))
    else:
        typer.echo(f"{symbol} {day}: predicted close ${close:,.2f} ({path})")


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL to run on the warehouse (read-only).")],
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
    timeout_s: Annotated[float, typer.Option(
        "--timeout-s", help="Stop the query after this many seconds (0: no limit).")] = 30.0,
    max_rows: Annotated[int, typer.Option(
        "--max-rows", help="Print at most this many rows; says so on stderr when it cuts (0: all).")] = 100_000,
    warehouse: WarehouseOpt = None,
) -> None:
    """Query the warehouse with SQL; writes, ATTACH, extensions and file access are refused.

    csv and json stream out batch by batch (constant memory); the table holds at most
    --max-rows rows to lay them out.
    """
    from seqlab.warehouse import WarehouseError
    from seqlab.warehouse.sandbox import QueryLimits, open_user_query

    if fmt not in _QUERY_WRITERS:
        _fail(f"unknown format {fmt!r}; allowed: table, csv, json")
    settings = Settings.from_env(warehouse, None)
    try:
        limits = QueryLimits(timeout_s=timeout_s, max_rows=max_rows)
        with open_user_query(settings.warehouse, sql, limits=limits,
                             lock_timeout_s=settings.lock_timeout_s) as stream:
            _QUERY_WRITERS[fmt](stream)
    except (ValueError, WarehouseError) as exc:
        _fail(str(exc))
    except BrokenPipeError:  # `seqlab query ... | head` closed the pipe: stop quietly
        _silence_stdout()
        return
    if stream.cut:
        typer.echo(f"note: output cut at {max_rows:,} rows (--max-rows); the query has more",
                   err=True)


def _write_csv(stream) -> None:
    import polars as pl

    header = True
    for batch in stream.batches:
        typer.echo(pl.from_arrow(batch).write_csv(include_header=header), nl=False)
        header = False
    if header:  # no rows: the header alone
        typer.echo(pl.from_arrow(stream.schema.empty_table()).write_csv(), nl=False)


def _write_json(stream) -> None:
    import polars as pl

    typer.echo("[", nl=False)
    separator = ""
    for batch in stream.batches:  # each batch's rows without its brackets
        rows = json.dumps(pl.from_arrow(batch).to_dicts(), default=str)[1:-1]
        typer.echo(separator + rows, nl=False)
        separator = ", "
    typer.echo("]")


def _write_table(stream) -> None:
    import polars as pl
    import pyarrow as pa

    frame = pl.from_arrow(pa.Table.from_batches(list(stream.batches), schema=stream.schema))
    with pl.Config(tbl_rows=100, tbl_cols=30, fmt_str_lengths=60, tbl_width_chars=200):
        typer.echo(str(frame))


_QUERY_WRITERS = {"table": _write_table, "csv": _write_csv, "json": _write_json}


def _silence_stdout() -> None:
    import os

    try:  # Python would otherwise report the closed pipe again when it flushes at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@app.command()
def report(
    grid_id: Annotated[str | None, typer.Option("--grid-id", help="Grid to report (default: latest).")] = None,
    warehouse: WarehouseOpt = None,
    out: OutputOpt = None,
) -> None:
    """Rebuild the comparison report of a grid from the warehouse alone."""
    from seqlab.runners.report import build_report
    from seqlab.warehouse import WarehouseError

    settings = Settings.from_env(warehouse, None)
    out_dir = out or settings.output_dir / "reports"
    try:
        built = build_report(settings.warehouse, grid_id=grid_id, out_dir=Path(out_dir),
                             timeout_s=settings.lock_timeout_s)
    except (ValueError, WarehouseError) as exc:
        _fail(str(exc))
    typer.echo(f"report of grid {built.grid_id}:\n  {built.html_path}\n  {built.markdown_path}")


@app.command()
def run(
    data: Annotated[str | None, typer.Option(help="Price source (default: the bundled SYNTHETIC sample).")] = None,
    preset: Annotated[str, typer.Option(help="quick | study | tiny")] = "quick",
    cells: Annotated[str | None, typer.Option(help="e.g. rnn,gru")] = None,
    depths: Annotated[str | None, typer.Option(help="e.g. 1,2")] = None,
    norms: Annotated[str | None, typer.Option(help="e.g. none,layer")] = None,
    features: Annotated[str | None, typer.Option(help="Feature sets, e.g. close,all")] = None,
    seeds: Annotated[str | None, typer.Option(help="Number of seeds (3 = 0,1,2) or a list 0,5")] = None,
    epochs: int | None = None,
    lookback: int | None = None,
    hidden: int | None = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size")] = None,
    lr: float | None = None,
    val_fraction: Annotated[float | None, typer.Option(
        "--val-fraction", help="Validation tail that picks each run's epoch (default 0.1; 0: the "
                               "last epoch).")] = None,
    dispatch: Annotated[str, typer.Option(help="local | pool")] = "local",
    force: Annotated[bool, typer.Option(help="Retrain configs already trained on the same data.")] = False,
    symbol: Annotated[str | None, typer.Option(help="Default ETH, or ETH-SYNTHETIC for the sample.",
                                               callback=_checked_symbol)] = None,
    warehouse: WarehouseOpt = None,
    out: OutputOpt = None,
    allow_private_urls: PrivateUrlsOpt = False,
) -> None:
    """Run the whole pipeline (ingest -> gate -> train grid -> report) on an ephemeral Prefect."""
    import os

    if allow_private_urls:  # the flows run in this process and read the setting there
        os.environ["SEQLAB_ALLOW_PRIVATE_URLS"] = "1"

    # An offline machine cannot send telemetry; Prefect's per-task log lines would bury the bar.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # A busy 2-core machine can take longer than Prefect's default to start its local server.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from seqlab.flows.ephemeral import start_watched_server
    from seqlab.flows.pipeline import pipeline
    from seqlab.grid.spec import GridError, GridParams, resolve_spec
    from seqlab.warehouse import WarehouseError
    from seqlab.warehouse.gate import GateClosed

    settings = Settings.from_env(warehouse, out)
    try:
        grid = GridParams(
            preset=preset, cells=_list(cells), depths=_list(depths, int), norms=_list(norms),
            feature_sets=_list(features), seeds=_seed_list(seeds), epochs=epochs,
            lookback=lookback, hidden=hidden, batch_size=batch_size, lr=lr,
            val_fraction=val_fraction)
        resolve_spec(grid)  # refused here, before a server starts
    except (GridError, ValueError) as exc:
        _fail(str(exc))
    params = dict(grid=grid, data=data, dispatch=dispatch, force=force, symbol=symbol,
                  warehouse=str(settings.warehouse), output_dir=str(settings.output_dir))
    start_watched_server()  # ends with this process, even on SIGKILL (seqlab.flows.ephemeral)
    try:
        with _progress_bar():
            result = pipeline(**params)
    except (GridError, GateClosed, WarehouseError) as exc:
        _fail(str(exc))
    grid, built = result["grid"], result["report"]
    typer.echo(
        f"grid {grid['grid_id']}: {grid['trained']} trained, {grid['reused']} reused, "
        f"{grid['failed']} failed\n"
        f"report: {built.get('html_path')}\n"
        f"        {built.get('markdown_path')}\n"
        f"query:  seqlab query --warehouse {settings.warehouse} "
        f"\"select cell, depth, norm, feature_set, best_test_loss, test_rmse_usd, baseline_rmse_usd "
        f"from runs order by test_rmse_usd limit 5\""
    )


def _seed_list(text: str | None) -> list[int] | None:
    values = _list(text, int)
    if values is not None and len(values) == 1 and "," not in (text or ""):
        return list(range(values[0]))  # "--seeds 3" means three seeds
    return values


class _progress_bar:
    """A terminal progress bar fed by the grid's progress listener."""

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        from seqlab.grid.progress import progress_listener

        self.bar = Progress("[progress.description]{task.description}", BarColumn(),
                            MofNCompleteColumn(), TimeRemainingColumn(), transient=False)
        self.task = self.bar.add_task("training configs", total=None)
        self.bar.start()

        def listen(progress, line: str) -> None:
            self.bar.update(self.task, total=progress.total, completed=progress.done)
            self.bar.console.print(line, highlight=False)

        self.token = progress_listener.set(listen)
        return self

    def __exit__(self, *exc) -> None:
        from seqlab.grid.progress import progress_listener

        progress_listener.reset(self.token)
        self.bar.stop()


def main() -> None:  # pragma: no cover - console entry for `python -m seqlab.cli`
    app(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    main()
