"""The ``seqlab`` command line: it parses settings, calls the runners and the runtime, prints.

Settings are read here, once per command (``Settings.from_env`` and the ``SEQLAB_*`` limits),
and passed down; below the commands, flows and tasks only the GPU kernels' tuning variables
(``SEQLAB_CUDA_TF32``, ``SEQLAB_FUSED_*``, read where the kernels are chosen) come from it.
"""

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
    rich_markup_mode=None,  # plain help: no `<bool>` column beside every flag
)

WarehouseOpt = Annotated[
    Path | None, typer.Option("--warehouse", metavar="FILE", help="DuckDB file (default: $SEQLAB_WAREHOUSE or data/seqlab.duckdb)")
]
OutputOpt = Annotated[
    Path | None, typer.Option("--out", metavar="DIR", help="Output folder (default: $SEQLAB_OUTPUT_DIR or data/output)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
PrivateUrlsOpt = Annotated[bool, typer.Option(
    "--allow-private-urls",
    help="Let URL sources reach loopback, private and link-local hosts "
    "(default: refused; or SEQLAB_ALLOW_PRIVATE_URLS=1).")]


@app.callback()
def _check_environment() -> None:
    """Every SEQLAB_* variable is checked before any command runs: one line naming a bad one."""
    from seqlab.config import EnvironmentSettings, SettingsError

    try:
        EnvironmentSettings.load()
    except SettingsError as exc:
        _fail(str(exc))


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
    path: Annotated[Path, typer.Argument(metavar="PATH", help="CSV file or folder to write the synthetic series to.")],
    seed: Annotated[int, typer.Option(metavar="N", help="Random seed of the synthetic series.")] = 7,
) -> None:
    """Write a deterministic SYNTHETIC ETH-like daily series (no download needed)."""
    from seqlab.sample import SampleExistsError, SampleSpec, write_sample_csv

    try:
        written = write_sample_csv(path, SampleSpec(seed=seed), new_only=True)
    except (SampleExistsError, OSError) as exc:
        _fail(str(exc))
    typer.echo(f"wrote synthetic sample (symbol ETH-SYNTHETIC, not real prices): {written}")


@app.command()
def ingest(
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="CSV file, folder, glob, or http(s) URL.")],
    symbol: Annotated[str, typer.Option(metavar="SYMBOL", help="Symbol the prices are stored under.",
                                        callback=_checked_symbol)] = "ETH",
    warehouse: WarehouseOpt = None,
    out: OutputOpt = None,
    as_json: JsonOpt = False,
    allow_private_urls: PrivateUrlsOpt = False,
) -> None:
    """Parse, validate and store a price CSV; bad rows are quarantined with their reason."""
    from seqlab.ingest.sources import SourceError, read_sources
    from seqlab.runners.ingest import ingest_raw
    from seqlab.warehouse import WarehouseError

    settings = Settings.from_env(warehouse, out)
    try:
        options = _ingest_options(settings, symbol, allow_private_urls)
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


def _list(text: str | None, flag: str, cast=str) -> list | None:
    """A comma-separated list option; a value that is not of its type is refused naming the flag."""
    if text is None:
        return None
    values = [v.strip() for v in text.split(",") if v.strip()]
    try:
        return [cast(v) for v in values]
    except ValueError:
        kind = "integers" if cast is int else "values"
        _fail(f"{flag} takes comma-separated {kind} (e.g. {flag} 0,1,2), got {text!r}")


@app.command()
def train(
    data: Annotated[str | None, typer.Option(metavar="SOURCE", help="Ingest this source first.")] = None,
    cell: Annotated[str, typer.Option(metavar="CELL", help="rnn | lstm | gru")] = "lstm",
    depth: Annotated[int, typer.Option(metavar="N", help="Stacked recurrent layers.")] = 1,
    norm: Annotated[str, typer.Option(metavar="NORM", help="none | batch | layer")] = "none",
    feature_set: Annotated[str, typer.Option(
        "--feature-set", "--features", metavar="SET", help="Feature set: close | all.")] = "close",
    seed: Annotated[int, typer.Option(metavar="N")] = 0,
    epochs: Annotated[int, typer.Option(metavar="N")] = 50,
    lookback: Annotated[int, typer.Option(metavar="N")] = 30,
    hidden: Annotated[int, typer.Option(metavar="N")] = 64,
    batch_size: Annotated[int, typer.Option("--batch-size", metavar="N")] = 64,
    lr: Annotated[float, typer.Option(metavar="X")] = 1e-3,
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction", metavar="X",
        help="Validation tail that picks the epoch (0: keep the last epoch).")] = 0.1,
    device: Annotated[str, typer.Option(metavar="DEVICE", help="auto | cpu | cuda | cuda:N")] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Retrain even if this config was "
                                                        "trained on the same data.")] = False,
    symbol: Annotated[str, typer.Option(metavar="SYMBOL", help="Symbol the prices are stored under.",
                                        callback=_checked_symbol)] = "ETH",
    warehouse: WarehouseOpt = None,
    out: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train one config on the stored prices, without Prefect, and store it like a grid run.

    Prints its run_id (for `seqlab predict`); the same config on the same data and code is
    reused unless --force.
    """
    from seqlab.engine import TrainConfig, tune_malloc
    from seqlab.grid.spec import GridError
    from seqlab.runners.grid import train_single
    from seqlab.warehouse import WarehouseError
    from seqlab.warehouse.gate import GateClosed

    settings = Settings.from_env(warehouse, out)
    try:
        config = TrainConfig(
            cell=cell, depth=depth, norm=norm, feature_set=feature_set, seed=seed, epochs=epochs,
            lookback=lookback, hidden=hidden, batch_size=batch_size, lr=lr, device=device,
            val_fraction=val_fraction,
        )
    except ValueError as exc:
        _fail(str(exc))
    if data:
        _ingest_quietly(data, symbol, settings)
    tune_malloc()
    on_epoch = None if as_json else _epoch_printer(epochs)
    try:
        single = train_single(config, settings, symbol=symbol, force=force, on_epoch=on_epoch)
    except (GridError, ValueError, WarehouseError, GateClosed) as exc:
        _fail(str(exc))
    if single.reused:
        _print_reused(single.run_id, settings, as_json)
        return
    outcome = single.outcome
    if outcome.error is not None:
        _fail(f"run {single.run_id} failed: {outcome.error}", code=1)
    result = outcome.result
    if as_json:
        typer.echo(json.dumps({"run_id": single.run_id, "grid_id": single.grid_id, "reused": False,
                               **result.to_dict()}, default=str))
        return
    typer.echo(
        f"{result.status}: epoch {result.best_epoch} kept ({_selection(result.selected_on)}), "
        f"test loss {result.best_test_loss:.4g}; "
        f"test RMSE ${result.test_rmse_usd:,.2f} vs persistence ${result.baseline_rmse_usd:,.2f}; "
        f"checkpoint {result.checkpoint_path}"
        if result.status == "ok"
        else f"{result.status} at epoch {result.diverged_epoch}"
    )
    typer.echo(f"run_id {single.run_id}  ({_seqlab_command()} predict {single.run_id})")


def _print_reused(run_id: str, settings: Settings, as_json: bool) -> None:
    from seqlab.warehouse.runs import load_run_checkpoint

    found = load_run_checkpoint(settings.warehouse, run_id)
    checkpoint = found[0] if found else None
    if as_json:
        typer.echo(json.dumps({"run_id": run_id, "reused": True, "checkpoint_path": checkpoint}))
        return
    typer.echo(f"reused: this config was trained on the same data and code (--force retrains); "
               f"checkpoint {checkpoint}")
    typer.echo(f"run_id {run_id}  ({_seqlab_command()} predict {run_id})")


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
    from seqlab.runners.ingest import ingest_source

    try:
        options = _ingest_options(settings, symbol)
        for summary in ingest_source(source, options):
            typer.echo(f"ingested {summary.source}: {summary.rows_valid} valid, "
                       f"{summary.rows_quarantined} quarantined", err=True)
    except (SourceError, ValueError) as exc:  # ValueError: a symbol that is not allowed
        _fail(str(exc))


@app.command()
def predict(
    model: Annotated[str, typer.Argument(
        metavar="RUN", help="A run_id (as `seqlab train` prints it), a checkpoint file, or `best`: "
                            "the best validated run of the symbol's latest grid.")],
    symbol: Annotated[str, typer.Option(metavar="SYMBOL", help="Symbol the prices are stored under.",
                                        callback=_checked_symbol)] = "ETH",
    warehouse: WarehouseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Forecast the next day's close from the latest stored prices with a trained model."""
    from seqlab.engine import predict_next
    from seqlab.warehouse import WarehouseError, load_prices
    from seqlab.warehouse.runs import best_validated_run, load_run_checkpoint, symbols_with_runs

    settings = Settings.from_env(warehouse, None)
    path, run_id, recorded = Path(model), None, None
    try:
        if model == "best":
            best = best_validated_run(settings.warehouse, symbol)
            if best is None:
                others = symbols_with_runs(settings.warehouse)
                hint = (f"grids here are of {', '.join(others)} (--symbol)" if others
                        else f"run `{_seqlab_command()} run` first")
                _fail(f"no validated run of {symbol} in a grid of {settings.warehouse}; {hint}")
            model = run_id = best[0]
        if model == run_id or not path.exists():
            found = load_run_checkpoint(settings.warehouse, model)
            if found is None or found[0] is None:
                _fail(f"no checkpoint file or run_id {model!r} (in {settings.warehouse})")
            path, symbol, recorded = Path(found[0]), found[1], found[2]
            run_id = model
            if recorded is None:
                typer.echo(f"note: run {run_id} was stored before checkpoint hashes were "
                           f"recorded; {path} cannot be checked as its own", err=True)
        prices = load_prices(settings.warehouse, symbol)
        day, close = predict_next(path, prices, expected_sha256=recorded, run_id=run_id)
    except (ValueError, FileNotFoundError, WarehouseError) as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps({"symbol": symbol, "date": str(day), "predicted_close_usd": close,
                               "run_id": run_id, "checkpoint": str(path)}))
    else:
        by = f"run {run_id}, {path}" if run_id else str(path)
        typer.echo(f"{symbol} {day}: predicted close ${close:,.2f} ({by})")


@app.command()
def query(
    sql: Annotated[str, typer.Argument(metavar="SQL", help="SQL to run on the warehouse (read-only).")],
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help="table | csv | json")] = "table",
    timeout_s: Annotated[float, typer.Option(
        "--timeout-s", metavar="SECONDS", help="Stop the query after this many seconds (above 0).")] = 30.0,
    max_rows: Annotated[int, typer.Option(
        "--max-rows", metavar="N", help="Print at most this many rows; says so on stderr when it cuts (0: all).")] = 100_000,
    memory_limit: Annotated[str | None, typer.Option(
        "--memory-limit", metavar="SIZE", help="DuckDB memory for the query, e.g. 512MB or 4GiB "
        "(default: $SEQLAB_QUERY_MEMORY_LIMIT or 2GiB).")] = None,
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
    from seqlab.config import EnvironmentSettings, parse_memory_limit

    settings = Settings.from_env(warehouse, None)
    try:
        memory = parse_memory_limit(memory_limit or EnvironmentSettings.load().query_memory_limit)
        limits = QueryLimits(timeout_s=timeout_s, max_rows=max_rows, memory_limit_bytes=memory)
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


# Control characters a terminal acts on (ESC starts colour, title and clipboard sequences;
# CR overwrites a line): shown as \xNN, never sent raw. Tab and newline stay.
_CONTROL = r"[\x00-\x08\x0b-\x1f\x7f\x{80}-\x{9f}]"
_CONTROL_NAMES = {c: f"\\x{c:02x}" for c in [*range(0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]}


def _printable(frame):
    """``frame`` with the control characters of its text columns escaped; a column is
    rewritten only when it holds one (5M clean rows cost one scan)."""
    import polars as pl

    for name, kind in frame.schema.items():
        if kind == pl.String and frame[name].str.contains(_CONTROL).any():
            frame = frame.with_columns(pl.col(name).map_elements(
                lambda text: text.translate(_CONTROL_NAMES), return_dtype=pl.String))
    return frame


def _write_csv(stream) -> None:
    import polars as pl

    header = True
    for batch in stream.batches:
        typer.echo(_printable(pl.from_arrow(batch)).write_csv(include_header=header), nl=False)
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

    frame = _printable(pl.from_arrow(pa.Table.from_batches(list(stream.batches), schema=stream.schema)))
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
def validations(
    symbol: Annotated[str | None, typer.Option(metavar="SYMBOL", help="One symbol (default: all).",
                                               callback=_checked_symbol)] = None,
    warehouse: WarehouseOpt = None,
) -> None:
    """The latest validation of each symbol's prices: every expectation, its observed value,
    pass/fail (offline; GX's data docs are an extra)."""
    from seqlab.runners.report import validations_text
    from seqlab.warehouse import WarehouseError

    settings = Settings.from_env(warehouse, None)
    try:
        typer.echo(validations_text(settings.warehouse, symbol, timeout_s=settings.lock_timeout_s))
    except (ValueError, WarehouseError) as exc:
        _fail(str(exc))


@app.command()
def report(
    grid_id: Annotated[str | None, typer.Option("--grid-id", metavar="ID", help="Grid to report (default: latest).")] = None,
    warehouse: WarehouseOpt = None,
    out: Annotated[Path | None, typer.Option(
        "--out", metavar="DIR", help="Report folder, seqlab's own or a new one (default: "
        "reports/<grid_id> under $SEQLAB_OUTPUT_DIR or data/output)")] = None,
) -> None:
    """Rebuild the comparison report of a grid from the warehouse alone."""
    from seqlab.runners.report import build_report
    from seqlab.warehouse import WarehouseError
    from seqlab.warehouse.reports import latest_grid_id

    settings = Settings.from_env(warehouse, None)
    try:
        grid_id = grid_id or latest_grid_id(settings.warehouse, timeout_s=settings.lock_timeout_s)
        # Each grid its own folder, the one the flows write: never one index.html over them all.
        out_dir = out or settings.output_dir / "reports" / grid_id
        built = build_report(settings.warehouse, grid_id=grid_id, out_dir=Path(out_dir),
                             timeout_s=settings.lock_timeout_s)
    except (ValueError, WarehouseError) as exc:
        _fail(str(exc))
    typer.echo(f"report of grid {built.grid_id}:\n  {built.html_path}\n  {built.markdown_path}")


@app.command()
def publish(
    grid: Annotated[str, typer.Option("--grid", "--grid-id", metavar="GRID_ID|latest",
                                      help="Grid to publish (default: the latest study grid).")] = "latest",
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Study folder to write (seqlab's "
                                      "own or a new one).")] = Path("docs/study"),
    warehouse: WarehouseOpt = None,
) -> None:
    """Export a finished grid as a committable study folder: report.md, claims.json,
    figures, verdicts.md, Parquet runs/epoch metrics/predictions and study.json (how to
    reproduce it)."""
    from seqlab.grid.requests import code_version
    from seqlab.runners.publish import publish_grid
    from seqlab.warehouse import WarehouseError

    settings = Settings.from_env(warehouse, None)
    try:
        published = publish_grid(settings.warehouse, out_dir=out, grid_id=grid,
                                 code_version_now=code_version(), timeout_s=settings.lock_timeout_s)
    except (ValueError, WarehouseError) as exc:
        _fail(str(exc))
    typer.echo(f"published grid {published.grid_id} to {published.out_dir}:")
    for name, size in sorted(published.files.items()):
        typer.echo(f"  {name:<40} {_size(size):>9}")
    typer.echo(f"  {'total':<40} {_size(sum(published.files.values())):>9}")


def _size(n: int) -> str:
    return f"{n:,} B" if n < 1024 else f"{n / 1024:,.1f} KiB" if n < 1024**2 else f"{n / 1024**2:,.2f} MiB"


TopOpt = Annotated[int, typer.Option("--top", metavar="N", help="Champions: the N best configs "
                                     "of the grid on validation.")]
ChampionsOfOpt = Annotated[str, typer.Option(
    "--grid", metavar="GRID_ID|latest", help="Grid the champions come from (default: the latest "
                                             "full grid of the symbol).")]


def _print_forecast_run(settings: Settings, run, as_json: bool) -> None:
    from seqlab.runners.forecast import forecast_artifact

    if as_json:
        rows = run.forecasts.with_columns(run.forecasts["origin_date", "target_date",
                                                        "trained_through", "made_at"].cast(str))
        typer.echo(json.dumps({"batch_id": run.batch_id, "mode": run.mode, "symbol": run.symbol,
                               "stored": run.stored, "scored": run.scored, "refits": run.refits,
                               "failed_refits": run.failed_refits,
                               "refit_seconds": run.refit_seconds,
                               "forecast_seconds": run.forecast_seconds,
                               "forecasts": rows.to_dicts()}))
        return
    typer.echo(f"{run.symbol} {run.summary()} (batch {run.batch_id})")
    typer.echo(forecast_artifact(settings, run))


@app.command()
def retrain(
    data: Annotated[str | None, typer.Option(metavar="SOURCE", help="Price source to ingest first "
                                                                    "(default: the stored prices).")] = None,
    symbol: Annotated[str, typer.Option(metavar="SYMBOL", callback=_checked_symbol)] = "ETH",
    top: TopOpt = 3,
    grid: ChampionsOfOpt = "latest",
    warehouse: WarehouseOpt = None,
    out: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Refit the champions on every stored price, write one live forecast each for the next
    day to the `forecasts` ledger and score every earlier forecast whose day has come."""
    from seqlab.runners.forecast import retrain_champions
    from seqlab.warehouse import WarehouseError
    from seqlab.warehouse.gate import GateClosed

    settings = Settings.from_env(warehouse, out)
    if data is not None:
        _ingest_quietly(data, symbol, settings)
    try:
        run = retrain_champions(settings, symbol, top=top, grid_id=grid,
                                log=lambda line: typer.echo(line, err=True))
    except (GateClosed, ValueError, WarehouseError) as exc:
        _fail(str(exc))
    _print_forecast_run(settings, run, as_json)


def _day(value: str | None, flag: str):
    import datetime as dt

    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=flag) from None


@app.command()
def backtest(
    start: Annotated[str, typer.Option(metavar="DATE", help="First forecast origin (YYYY-MM-DD); "
                                                            "the first refit uses prices through it.")],
    end: Annotated[str | None, typer.Option(metavar="DATE", help="Last target day (default: the "
                                                                 "latest stored price).")] = None,
    symbol: Annotated[str, typer.Option(metavar="SYMBOL", callback=_checked_symbol)] = "ETH",
    top: TopOpt = 3,
    grid: ChampionsOfOpt = "latest",
    refit_every: Annotated[int, typer.Option("--refit-every", metavar="DAYS", min=1,
                                             help="Days between refits.")] = 7,
    epochs: Annotated[int | None, typer.Option(metavar="N", min=1, help="Epochs per refit (default: "
                                                                        "the champion's own).")] = None,
    warehouse: WarehouseOpt = None,
    out: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Walk the champions forward over stored history: refit each on the prices through
    every refit date, forecast each following day until the next refit, store the rows
    as mode 'backtest' in the `forecasts` ledger and score them."""
    from seqlab.runners.forecast import run_backtest
    from seqlab.warehouse import WarehouseError
    from seqlab.warehouse.gate import GateClosed

    first, last = _day(start, "--start"), _day(end, "--end")
    settings = Settings.from_env(warehouse, out)
    try:
        run = run_backtest(settings, symbol, start=first, end=last, top=top, grid_id=grid,
                           refit_every=refit_every, epochs=epochs,
                           log=lambda line: typer.echo(line, err=True))
    except (GateClosed, ValueError, WarehouseError) as exc:
        _fail(str(exc))
    _print_forecast_run(settings, run, as_json)


@app.command()
def run(
    data: Annotated[str | None, typer.Option(metavar="SOURCE", help="Price source (default: the bundled SYNTHETIC sample).")] = None,
    preset: Annotated[str, typer.Option(metavar="NAME", help="quick | study | tiny")] = "quick",
    cells: Annotated[str | None, typer.Option(metavar="LIST", help="e.g. rnn,gru")] = None,
    depths: Annotated[str | None, typer.Option(metavar="LIST", help="e.g. 1,2")] = None,
    norms: Annotated[str | None, typer.Option(metavar="LIST", help="e.g. none,layer")] = None,
    feature_sets: Annotated[str | None, typer.Option(
        "--feature-sets", metavar="LIST", help="e.g. close,all")] = None,
    features: Annotated[str | None, typer.Option("--features", hidden=True)] = None,
    seeds: Annotated[str | None, typer.Option(metavar="LIST", help="Seeds, e.g. 0 or 0,1,2")] = None,
    epochs: Annotated[int | None, typer.Option(metavar="N")] = None,
    lookback: Annotated[int | None, typer.Option(metavar="N")] = None,
    hidden: Annotated[int | None, typer.Option(metavar="N")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", metavar="N")] = None,
    lr: Annotated[float | None, typer.Option(metavar="X")] = None,
    val_fraction: Annotated[float | None, typer.Option(
        "--val-fraction", metavar="X", help="Validation tail that picks each run's epoch (default "
                                            "0.1; 0: the last epoch).")] = None,
    dispatch: Annotated[str, typer.Option(metavar="MODE", help="local | pool")] = "local",
    pack_mode: Annotated[str, typer.Option(
        "--pack-mode", metavar="MODE",
        help="GPU packing: streams | batched | fused (many models as one; needs triton). "
             "Off CUDA every run trains alone.")] = "streams",
    pack_size: Annotated[int, typer.Option(
        "--pack-size", metavar="N", help="Configs per GPU pack (0: sized from free memory).")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Retrain configs already trained on the "
                                                        "same data.")] = False,
    symbol: Annotated[str | None, typer.Option(metavar="SYMBOL", help="Default ETH, or ETH-SYNTHETIC for the sample.",
                                               callback=_checked_symbol)] = None,
    warehouse: WarehouseOpt = None,
    out: OutputOpt = None,
    allow_private_urls: PrivateUrlsOpt = False,
) -> None:
    """Run the whole job: ingest -> gate -> train the grid on an ephemeral Prefect -> report.

    Every grid setting is checked first. A grid whose configs are all trained on the same
    data and code already finishes without Prefect and points at its report.
    """
    import time

    clock = time.perf_counter()
    _say("checking the grid's settings…")
    # Torch-free: a refused setting answers before anything heavy loads (seqlab.grid.spec).
    from seqlab.grid.dispatch import PACK_MODES
    from seqlab.grid.spec import GridError, GridParams, resolve_spec

    try:  # refused here, before anything is ingested or any server starts
        grid = GridParams(
            preset=preset, cells=_list(cells, "--cells"), depths=_list(depths, "--depths", int),
            norms=_list(norms, "--norms"),
            feature_sets=_list(feature_sets if feature_sets is not None else features,
                               "--feature-sets"),
            seeds=_list(seeds, "--seeds", int), epochs=epochs, lookback=lookback, hidden=hidden,
            batch_size=batch_size, lr=lr, val_fraction=val_fraction)
        spec = resolve_spec(grid)
    except (GridError, ValueError) as exc:
        _fail(str(exc))
    if dispatch not in ("local", "pool"):
        _fail(f"unknown dispatch {dispatch!r}; allowed: local, pool")
    if pack_mode not in PACK_MODES:
        _fail(f"unknown pack mode {pack_mode!r}; allowed: {', '.join(PACK_MODES)}")
    if pack_size < 0:
        _fail(f"--pack-size must be >= 0 (0: automatic), got {pack_size}")
    settings = Settings.from_env(warehouse, out)
    _say(f"grid: {_plural(spec.n_configs, 'config')} ({preset} preset), "
         f"{_plural(spec.epochs, 'epoch')} each")

    from seqlab.runtime import job

    if data is None:
        data, symbol = job.sample_source(settings), symbol or "ETH-SYNTHETIC"
    symbol = symbol or "ETH"
    try:
        options = _ingest_options(settings, symbol, allow_private_urls)
        plan = job.ingest_and_plan(data, spec, settings, options, force=force, say=_say)
        if plan.to_train == 0:
            grid_id, report_path = job.finish_reused(plan, spec, preset, symbol, settings)
            _say(f"nothing to train: {plan.reused} reused (grid {grid_id}), "
                 f"{time.perf_counter() - clock:.1f}s")
        else:
            trained = job.train_on_local_prefect(
                grid, settings, symbol=symbol, dispatch=dispatch, force=force,
                pack_mode=pack_mode, pack_size=pack_size, to_train=plan.to_train, say=_say)
            grid_id, report_path = trained.grid["grid_id"], trained.report_path
            typer.echo(f"grid {grid_id}: {trained.grid['trained']} trained, "
                       f"{trained.grid['reused']} reused, {trained.grid['failed']} failed")
    except job.REFUSALS as exc:
        _fail(str(exc))
    typer.echo(_closing(grid_id, report_path, settings))
    _exit_now()


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _exit_now() -> None:
    """Exit at once from the console command once everything is said: tearing down torch's,
    Great Expectations' and Prefect's modules (and Prefect's server) takes Python 2-7 s here
    (measured on 2 busy cores) after the last line. Results and the report are written by
    then; the local Prefect server is ended by its watchdog when this process ends."""
    import os

    if Path(sys.argv[0]).name == "seqlab":  # not inside a test runner calling the app
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _say(line: str) -> None:
    """A progress line at once, on stderr (stdout keeps the results)."""
    typer.echo(line, err=True)


def _ingest_options(settings: Settings, symbol: str, allow_private_urls: bool = False):
    """One ingest's options: the resolved settings and the ``SEQLAB_*`` limits, read here at
    the command (``--allow-private-urls`` overrides its variable)."""
    from seqlab.ingest.options import IngestOptions, limits_from_env

    sources, values = limits_from_env(allow_private_urls or None)
    return IngestOptions.from_settings(settings, symbol, sources=sources, values=values)


def _seqlab_command() -> str:
    """How to call seqlab as it was called: bare when `seqlab` on PATH is this one, else the
    path of this environment's script (`.venv/bin/seqlab` after `make run`)."""
    import os
    import shutil

    script = Path(sys.executable).parent / "seqlab"
    found = shutil.which("seqlab")
    if found and Path(found).resolve() == script.resolve():
        return "seqlab"
    relative = os.path.relpath(script)
    return str(script) if relative.startswith("..") else relative


def _closing(grid_id: str, report_path: str | None, settings: Settings) -> str:
    """Where the report is, and a query of this grid's runs that works as printed."""
    sql = ("select symbol, cell, depth, norm, feature_set, seed, test_rmse_usd, baseline_rmse_usd "
           f"from report_runs where grid_id = '{grid_id}' order by test_rmse_usd limit 5")
    return (f"report: {report_path}\n"
            f"query:  {_seqlab_command()} query --warehouse {settings.warehouse} \"{sql}\"")


def main() -> None:  # pragma: no cover - console entry for `python -m seqlab.cli`
    app(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    main()
