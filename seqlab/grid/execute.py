"""Train a request or a pack: the only caller of the engine's trainers (every runtime, the
plain runners, the Prefect tasks and carried work, trains through these functions).

Every function returns outcomes, never raises for a failed run: a crash is recorded on the
run's row and the rest of the grid goes on.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl
import torch

from seqlab.engine.result import EpochRecord, TrainResult
from seqlab.engine.runtime import tune_malloc, use_cpu_threads
from seqlab.grid.requests import RunOutcome, RunRequest


def read_prices(location: str) -> pl.DataFrame:
    """A prices snapshot (local path or fsspec URL) written by the grid's parent."""
    import fsspec

    with fsspec.open(location, "rb") as handle:
        return pl.read_parquet(handle)


def train_request(request: RunRequest, worker: str = "", *,
                  on_epoch: Callable[[EpochRecord], None] | None = None) -> RunOutcome:
    """Train one request on its device; a crash is an outcome, not an exception.

    ``on_epoch`` hears each epoch's record as it ends (``seqlab train`` prints them).

    On CUDA the step is replayed as a CUDA graph (``seqlab.engine.graphed``), which falls
    back to the eager engine, and says so on the result, where capture is impossible.
    """
    from seqlab.engine.graphed import train_on_device

    try:
        result: TrainResult = train_on_device(
            request.placed_config(), read_prices(request.prices_path),
            checkpoint_dir=Path(request.checkpoint_dir), on_epoch=on_epoch,
        )
        return RunOutcome(request, result, None, worker)
    except Exception as exc:  # recorded on the run's row; the rest of the grid goes on
        if isinstance(exc, torch.OutOfMemoryError) and torch.cuda.is_available():
            torch.cuda.empty_cache()  # hand the failed run's cached blocks back to the GPU
        return RunOutcome(request, None, f"{type(exc).__name__}: {exc}", worker)


def train_pack_requests(pack: Sequence[RunRequest], worker: str = "", mode: str = "streams",
                        ) -> list[RunOutcome]:
    """Train one pack; one outcome per request, in order, and never an exception.

    A pack that fails as a whole (out of memory, a capture error that escaped the
    engine's own fallback) is retrained member by member, each on its own, so one bad
    member costs the others nothing; the reason is kept on every member's result.
    """
    pack = list(pack)
    if len(pack) == 1:
        return [train_request(pack[0], worker)]
    try:
        prices = read_prices(pack[0].prices_path)
        configs = [r.placed_config() for r in pack]
        if mode == "batched":
            from seqlab.engine.batched import train_pack_batched as trainer
        elif mode == "fused":
            from seqlab.engine.fused import train_pack_fused as trainer
        else:
            from seqlab.engine.stream_pack import train_pack as trainer
        results = trainer(configs, prices, checkpoint_dir=Path(pack[0].checkpoint_dir))
        return [RunOutcome(r, result, None, worker)
                for r, result in zip(pack, results, strict=True)]
    except Exception as exc:  # recorded on each member; the members still train
        reason = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
    outcomes = []
    for request in pack:
        outcome = train_request(request, worker)
        if outcome.result is not None:
            outcome.result.determinism["pack"] = {
                "size": 1, "index": 0, "mode": f"alone after the pack of {len(pack)} failed: {reason}"}
        outcomes.append(outcome)
    return outcomes


def train_placed_pack(pack: Sequence[RunRequest], pack_mode: str = "streams",
                      cpu_threads: int = 0) -> list[RunOutcome]:
    """A pack placed by the device plan, trained in this worker thread.

    ``cpu_threads`` is the plan's share of the cores per CPU worker (0 on GPUs).
    """
    tune_malloc()  # glibc's fault-heavy mode costs CPU epochs 10-25% (seqlab.engine.runtime)
    if cpu_threads:
        use_cpu_threads(cpu_threads)
    return train_pack_requests(pack, socket.gethostname(), pack_mode)
