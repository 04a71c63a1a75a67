"""The whole job of ``seqlab run``, without a command line: ingest -> gate -> plan -> train
(on a local Prefect, with a progress bar) or reuse -> report.

The command line parses settings, calls these in order and prints; every step says what it
does through ``say`` (a line on stderr in the CLI). Refusals are raised (see ``REFUSALS``),
never printed here. Settings arrive resolved: nothing here reads the environment, except
Prefect's own variables set for the local server it starts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from seqlab.config import Settings
from seqlab.grid.spec import GridError, GridParams, GridSpec
from seqlab.ingest.options import IngestOptions
from seqlab.ingest.sources import SourceError
from seqlab.runners.grid import GridPlan, plan_grid, run_grid
from seqlab.runners.ingest import ingest_source
from seqlab.runners.report import build_report
from seqlab.sample import write_sample_csv
from seqlab.warehouse import WarehouseError
from seqlab.warehouse.gate import GateClosed

Say = Callable[[str], None]
# What a job refuses with one line (the CLI exits 2 with the message).
REFUSALS = (SourceError, GridError, GateClosed, WarehouseError, ValueError)


def plural(n: int, noun: str) -> str:
    """``1 config``, ``2 configs``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def sample_source(settings: Settings) -> str:
    """The bundled SYNTHETIC series, written under the output folder (symbol ETH-SYNTHETIC)."""
    return str(write_sample_csv(settings.output_dir / "sample"))


def ingest_and_plan(data: str, spec: GridSpec, settings: Settings, options: IngestOptions, *,
                    force: bool, say: Say) -> GridPlan:
    """Ingest ``data``, gate it and count what the grid would train, without Prefect."""
    say(f"ingesting {data} as {options.symbol}…")
    for summary in ingest_source(data, options):
        say(f"ingested {summary.rows_valid} rows / {summary.rows_quarantined} quarantined "
            f"({summary.source})")
    plan = plan_grid(spec, settings, symbol=options.symbol, force=force)
    say(f"gate passed: {plan.rows} days, data_version {plan.data_version[:12]}")
    say(f"{plural(plan.to_train, 'config')} to train, {plan.reused} reused")
    return plan


def report_folder(settings: Settings, grid_id: str) -> Path:
    """Where a grid's report lives under these settings: one folder per grid."""
    return settings.output_dir / "reports" / grid_id


def finish_reused(plan: GridPlan, spec: GridSpec, preset: str, symbol: str,
                  settings: Settings) -> tuple[str, str]:
    """A grid with nothing to train, without Prefect: the earlier grid of these very runs and
    its report when that report is in this output folder; otherwise a new grid linking the
    reused runs (when no earlier one finished), and its report built here. Returns the grid
    and the report's absolute path."""
    if plan.reused_grid and plan.report_path and _is_within(
            plan.report_path, report_folder(settings, plan.finished_grid)):
        return plan.finished_grid, str(Path(plan.report_path).resolve())
    grid_id = plan.finished_grid or run_grid(spec, settings, symbol=symbol, preset=preset).grid_id
    built = build_report(settings.warehouse, grid_id=grid_id,
                         out_dir=report_folder(settings, grid_id),
                         timeout_s=settings.lock_timeout_s)
    return grid_id, str(Path(built.html_path).resolve())


def _is_within(path: str, folder: Path) -> bool:
    """True when ``path`` is a file inside ``folder`` (a report of a one-off ``--out`` or
    ``SEQLAB_OUTPUT_DIR`` elsewhere is not this output folder's report)."""
    target = Path(path).resolve()
    return target.is_file() and target.is_relative_to(folder.resolve())


@dataclass(frozen=True)
class TrainedJob:
    """How a trained grid ended and where its report is (absolute)."""

    grid: dict
    report_path: str | None


def train_on_local_prefect(grid: GridParams, settings: Settings, *, symbol: str, dispatch: str,
                           force: bool, pack_mode: str, pack_size: int, to_train: int,
                           say: Say) -> TrainedJob:
    """Train the grid with the ``train-grid`` flow on an ephemeral local Prefect server (ended
    with this process, however it ends), a progress bar following the configs."""
    starting = time.perf_counter()
    say("starting Prefect (an ephemeral local server)…")
    _quiet_local_prefect()
    from seqlab.flows.report import build_grid_report  # Prefect loads here, after the settings
    from seqlab.flows.train import train_grid
    from seqlab.runtime.watchdog import start_watched_server

    paths = dict(warehouse=str(settings.warehouse), output_dir=str(settings.output_dir))
    start_watched_server()
    say(f"Prefect ready ({time.perf_counter() - starting:.0f}s); training")
    with ProgressBar(to_train):
        result = train_grid(grid, dispatch=dispatch, force=force, symbol=symbol,
                            pack_mode=pack_mode, pack_size=pack_size, **paths)
    built = result.get("report") or build_grid_report(result["grid_id"], **paths)
    html = built.get("html_path")
    return TrainedJob(result, str(Path(html).resolve()) if html else None)


def _quiet_local_prefect() -> None:
    """Prefect's settings for a server that lives as long as one command (setdefault: a
    variable the user set wins)."""
    # An offline machine cannot send telemetry; Prefect's per-task log lines would bury the bar.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # A busy 2-core machine can take longer than Prefect's default to start its local server.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


class ProgressBar:
    """A terminal progress bar fed by the grid's progress listener."""

    def __init__(self, total: int | None = None) -> None:
        self.total = total

    def __enter__(self) -> ProgressBar:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        from seqlab.grid.progress import progress_listener

        self.bar = Progress("[progress.description]{task.description}", BarColumn(),
                            MofNCompleteColumn(), TimeRemainingColumn(), transient=False)
        self.task = self.bar.add_task("training configs", total=self.total)
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
