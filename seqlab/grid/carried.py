"""Carried work: a grid's runs trained on a machine with neither the warehouse nor Prefect.

A borrowed GPU may have torch and triton but nothing else, and no way to reach this
warehouse. So the grid travels as a folder and its results come back as Parquet, the way
pool shards already work (workers never open the warehouse):

1. :func:`export_work` (here, the warehouse's machine): the gate passes, the spec fits,
   the validated prices are snapshotted into the folder with ``work.json``: the spec,
   symbol, data and code versions and one request per config not trained yet.
2. :func:`train_work` (there): packs of those requests train on the local device, and
   after each pack the results so far are rewritten as Parquet (runs, epoch metrics,
   predictions, features); run again on the same results folder, it resumes. A deadline
   keeps a slice from starting when it would not finish in time.
3. :func:`import_results` (here): the same code and the same validated data are
   required, a grid is opened, the results stored in one transaction by the one writer,
   requests without results stored as failed (the next grid trains them), and the grid
   closed. Configs trained earlier are reused, as in any grid.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import polars as pl

from seqlab.config import Settings
from seqlab.grid.execute import train_placed_pack
from seqlab.grid.plan import check_pack_mode, gpu_count, plan_request_packs
from seqlab.grid.requests import RunOutcome, RunRequest, code_version
from seqlab.grid.results import RunFrames, outcome_frames, read_frames, write_frames
from seqlab.grid.spec import GridSpec, validate_spec

WORK_FILE, PRICES_FILE, CHECKPOINTS = "work.json", "prices.parquet", "checkpoints"
CARRIED_GRID = "carried"  # grid_id on the frames until a grid stores them


class CarriedWorkError(ValueError):
    """Carried work or its results cannot be used here; the message says why."""


def export_work(spec: GridSpec, settings: Settings, folder: Path, *, symbol: str,
                preset: str | None = None, force: bool = False) -> dict:
    """Write the folder another machine trains from; returns what ``work.json`` holds."""
    # Imported here, not above: grid.run needs DuckDB, and train_work's machine has none.
    from seqlab.grid.run import gated_prices, grid_requests
    from seqlab.warehouse.runs import completed_run_ids

    data_version, _, snapshot = gated_prices(spec, settings, symbol)
    requests = grid_requests(spec, symbol=symbol, data_version=data_version,
                             prices_path=PRICES_FILE, output_dir=Path("."))
    done = set() if force else completed_run_ids(settings.warehouse, [r.run_id for r in requests])
    todo = [replace(r, checkpoint_dir=CHECKPOINTS) for r in requests if r.run_id not in done]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(snapshot, folder / PRICES_FILE)
    work = {"spec": spec.to_dict(), "preset": preset, "symbol": symbol,
            "data_version": data_version, "code_version": code_version(),
            "configs": len(requests), "already_trained": len(done),
            "requests": [r.to_dict() for r in todo]}
    (folder / WORK_FILE).write_text(json.dumps(work, indent=1))
    return work


def read_work(folder: Path) -> dict:
    path = Path(folder) / WORK_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CarriedWorkError(f"{path}: not carried work ({error})") from error


def train_work(folder: Path, results: Path, *, pack_mode: str = "fused", pack_size: int = 0,
               deadline_s: float | None = None, log: Callable[[str], None] = print,
               estimate_s: Callable[[list[RunRequest]], float] | None = None,
               on_pack: Callable[[dict], None] | None = None) -> dict:
    """Train the folder's requests not yet in ``results``, pack by pack, on this machine.

    ``pack_size`` 0 trains one pack per cell. With ``deadline_s`` no pack starts that would
    end after it: by ``estimate_s(pack)`` (seconds, e.g. from measured epoch times) when
    given, else by the slowest pack so far per config (the first pack then always starts).
    ``on_pack`` gets the summary after each pack's results are written (to copy them away).
    Returns counts and the stop reason, if any.
    """
    check_pack_mode(pack_mode)
    started = time.perf_counter()
    folder, results = Path(folder).resolve(), Path(results).resolve()
    work = read_work(folder)
    if work["code_version"] != code_version():
        raise CarriedWorkError(f"{folder}: exported by code {work['code_version']}, this is "
                               f"{code_version()}: its runs would not be the ones asked for")
    device = "cuda:0" if gpu_count() else "cpu"
    todo = [replace(RunRequest.from_dict(r), prices_path=str(folder / PRICES_FILE),
                    checkpoint_dir=str(results / CHECKPOINTS), device=device)
            for r in work["requests"]]
    earlier = _read_results(results)
    done = set(earlier.runs["run_id"].to_list()) if earlier else set()
    todo = [r for r in todo if r.run_id not in done]
    packs = (plan_request_packs(todo, pack_size, pack_mode) if pack_size
             else [p for cell in dict.fromkeys(r.config.cell for r in todo)
                   for p in plan_request_packs([r for r in todo if r.config.cell == cell],
                                               len(todo), pack_mode)])
    summary = {"device": device, "pack_mode": pack_mode, "earlier": len(done), "trained": 0,
               "failed": 0, "left": len(todo), "stopped": None}
    per_config = None
    for pack in packs:
        elapsed = time.perf_counter() - started
        expected = max(estimate_s(pack) if estimate_s else 0.0, (per_config or 0.0) * len(pack))
        if deadline_s is not None and (estimate_s or per_config) and elapsed + expected > deadline_s:
            summary["stopped"] = (f"the next pack of {len(pack)} would end after {deadline_s:.0f} s "
                                  f"(at {elapsed:.0f} s, expected to take {expected:.0f} s)")
            break
        begun = time.perf_counter()
        outcomes = train_placed_pack(pack, pack_mode)
        per_config = max(per_config or 0.0, (time.perf_counter() - begun) / len(pack))
        frames = outcome_frames(outcomes, CARRIED_GRID)
        earlier = RunFrames.concat([earlier, frames]) if earlier else frames
        write_frames(earlier, str(results))  # each file renamed into place: never half written
        failed = sum(o.error is not None for o in outcomes)
        summary["trained"] += len(pack) - failed
        summary["failed"] += failed
        summary["left"] -= len(pack)
        log(f"pack of {len(pack)} ({pack[0].config.cell}…): {len(pack) - failed} trained, "
            f"{failed} failed, {time.perf_counter() - begun:.1f}s")
        if on_pack is not None:
            on_pack({**summary, "seconds": round(time.perf_counter() - started, 1)})
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary


def _read_results(results: Path) -> RunFrames | None:
    try:
        return read_frames(str(results))
    except FileNotFoundError:
        return None


def import_results(settings: Settings, folder: Path, results: Path):
    """Store carried results as a grid of this warehouse; returns its ``GridRun``."""
    from seqlab.grid.run import (
        close_grid,
        gate_prices,
        grid_requests,
        open_grid,
        snapshot_prices,
        split_reused,
    )
    from seqlab.warehouse.runs import store_run_results

    started = time.perf_counter()
    work = read_work(folder)
    if work["code_version"] != code_version():
        raise CarriedWorkError(f"{folder}: trained by code {work['code_version']}, this checkout "
                               f"is {code_version()}: check out that code to import it")
    symbol = work["symbol"]
    data_version, _ = gate_prices(settings.warehouse, symbol)
    if data_version != work["data_version"]:
        raise CarriedWorkError(f"{folder}: trained on {symbol} data {work['data_version'][:16]}, "
                               f"the validated data here is {data_version[:16]}")
    spec = GridSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in work["spec"].items()})
    validate_spec(spec)
    snapshot = snapshot_prices(settings.warehouse, symbol, data_version,
                               settings.output_dir / "snapshots")
    requests = grid_requests(spec, symbol=symbol, data_version=data_version, prices_path=snapshot,
                             output_dir=settings.output_dir)
    grid_id, _ = open_grid(settings.warehouse, spec, work["preset"], symbol, data_version,
                           requests, "carried")
    todo, reused = split_reused(settings.warehouse, grid_id, requests, force=False)
    wanted = {r.run_id: r for r in todo}
    frames = _read_results(Path(results))
    if frames is None:
        frames = outcome_frames([], grid_id)
    frames = _keep(frames, set(wanted), grid_id, Path(results), settings.output_dir / CHECKPOINTS)
    missing = [RunOutcome(r, None, f"no result in the carried results {results}")
               for run_id, r in wanted.items() if run_id not in set(frames.runs["run_id"])]
    if missing:
        frames = RunFrames.concat([frames, outcome_frames(missing, grid_id)])
    store_run_results(settings.warehouse, grid_id, frames.as_dict())
    failed = int((frames.runs["status"] == "failed").sum())
    return close_grid(settings.warehouse, grid_id, trained=len(todo) - failed,
                      reused=len(reused), failed=failed, seconds=time.perf_counter() - started)


def _keep(frames: RunFrames, run_ids: set[str], grid_id: str, results: Path,
          checkpoints: Path) -> RunFrames:
    """The wanted runs' rows under this grid; checkpoints brought back are copied in, the
    others are not here to load (NULL)."""
    def wanted(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(pl.col("run_id").is_in(sorted(run_ids)))

    runs = wanted(frames.runs).with_columns(grid_id=pl.lit(grid_id))
    paths = []
    for run, path in zip(runs["run_id"], runs["checkpoint_path"], strict=True):
        brought = results / CHECKPOINTS / Path(path).name if path else None
        if brought is not None and brought.is_file():
            checkpoints.mkdir(parents=True, exist_ok=True)
            kept = checkpoints / f"{run}.pt"  # by the run: the config alone is not a run
            shutil.copyfile(brought, kept)
            paths.append(str(kept))
        else:
            paths.append(None)
    runs = runs.with_columns(checkpoint_path=pl.Series(paths, dtype=pl.String))
    return RunFrames(runs=runs, epoch_metrics=wanted(frames.epoch_metrics),
                     predictions=wanted(frames.predictions), features=frames.features)
