"""Carried work, the warehouse's side: export a grid as a folder, import its results.

The far side, training the folder on a borrowed machine, is ``seqlab.grid.carried``. Both
ends here go through the grid ledger (``seqlab.runners.grid``): export prepares the grid
and leaves out what is already trained; import opens a grid, delivers the results brought
back (requests without one are stored as failed, so the next grid trains them) and closes it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import polars as pl

from seqlab.config import Settings
from seqlab.grid.carried import (
    CHECKPOINTS,
    PRICES_FILE,
    WORK_FILE,
    CarriedWorkError,
    read_results,
    read_work,
)
from seqlab.grid.requests import RunOutcome, code_version
from seqlab.grid.results import RunFrames, outcome_frames
from seqlab.grid.spec import GridSpec
from seqlab.runners.grid import ClosedGrid, GridLedger, already_trained, prepare_grid


def export_work(spec: GridSpec, settings: Settings, folder: Path, *, symbol: str,
                preset: str | None = None, force: bool = False) -> dict:
    """Write the folder another machine trains from; returns what ``work.json`` holds."""
    prepared = prepare_grid(spec, settings, symbol)
    done = already_trained(settings.warehouse, prepared.requests, force=force)
    todo = [replace(r, prices_path=PRICES_FILE, checkpoint_dir=CHECKPOINTS)
            for r in prepared.requests if r.run_id not in done]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(prepared.prices_path, folder / PRICES_FILE)
    work = {"spec": spec.to_dict(), "preset": preset, "symbol": symbol,
            "data_version": prepared.data_version, "code_version": code_version(),
            "configs": len(prepared.requests), "already_trained": len(done),
            "requests": [r.to_dict() for r in todo]}
    (folder / WORK_FILE).write_text(json.dumps(work, indent=1))
    return work


def import_results(settings: Settings, folder: Path, results: Path) -> ClosedGrid:
    """Store carried results as a grid of this warehouse; returns how the grid closed."""
    work = read_work(folder)
    if work["code_version"] != code_version():
        raise CarriedWorkError(f"{folder}: trained by code {work['code_version']}, this checkout "
                               f"is {code_version()}: check out that code to import it")
    spec = GridSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in work["spec"].items()})
    prepared = prepare_grid(spec, settings, work["symbol"])
    if prepared.data_version != work["data_version"]:
        raise CarriedWorkError(f"{folder}: trained on {work['symbol']} data "
                               f"{work['data_version'][:16]}, the validated data here is "
                               f"{prepared.data_version[:16]}")
    ledger = GridLedger.open(settings.warehouse, spec, prepared, preset=work["preset"],
                             dispatch="carried")
    wanted = {r.run_id: r for r in ledger.todo}
    frames = read_results(Path(results))
    if frames is None:
        frames = outcome_frames([], ledger.grid_id)
    frames = _keep(frames, set(wanted), ledger.grid_id, Path(results),
                   settings.output_dir / CHECKPOINTS)
    missing = [RunOutcome(r, None, f"no result in the carried results {results}")
               for run_id, r in wanted.items() if run_id not in set(frames.runs["run_id"])]
    if missing:
        frames = RunFrames.concat([frames, outcome_frames(missing, ledger.grid_id)])
    return ledger.close(failed=ledger.deliver_frames(frames))


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
