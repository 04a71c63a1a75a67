"""Carried work, the far side: a grid's runs trained on a machine with neither the warehouse
nor Prefect (torch and polars only: this module imports nothing else of seqlab's shell).

A borrowed GPU may have torch and triton but nothing else, and no way to reach this
warehouse. So the grid travels as a folder and its results come back as Parquet, the way
pool shards already work (workers never open the warehouse):

1. ``seqlab.runners.carried.export_work`` (the warehouse's machine): the gate passes, the spec fits,
   the validated prices are snapshotted into the folder with ``work.json``: the spec,
   symbol, data and code versions and one request per config not trained yet.
2. :func:`train_work` (here, the borrowed machine): packs of those requests train on the local device, and
   after each pack the results so far are rewritten as Parquet (runs, epoch metrics,
   predictions, features); run again on the same results folder, it resumes. A deadline
   keeps a slice from starting when it would not finish in time.
3. ``seqlab.runners.carried.import_results`` (the warehouse's machine): the same code and the same validated data are
   required, a grid is opened, the results stored in one transaction by the one writer,
   requests without results stored as failed (the next grid trains them), and the grid
   closed. Configs trained earlier are reused, as in any grid.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from seqlab.grid.dispatch import check_pack_mode
from seqlab.grid.execute import train_placed_pack
from seqlab.grid.plan import gpu_count, plan_request_packs
from seqlab.grid.requests import RunRequest, code_version
from seqlab.grid.results import RunFrames, outcome_frames, read_frames, write_frames

WORK_FILE, PRICES_FILE, CHECKPOINTS = "work.json", "prices.parquet", "checkpoints"
CARRIED_GRID = "carried"  # grid_id on the frames until a grid stores them


class CarriedWorkError(ValueError):
    """Carried work or its results cannot be used here; the message says why."""


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
    earlier = read_results(results)
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


def read_results(results: Path) -> RunFrames | None:
    try:
        return read_frames(str(results))
    except FileNotFoundError:
        return None
