"""A host's share of a grid, trained and delivered: packs planned for its devices, trained,
each pack's outcomes delivered as it finishes (stored by the grid's ledger, or Parquet from a
shard). Written once for every runtime: :data:`HostSteps` are plain threads here
(``run_grid``) and Prefect tasks in a flow (``seqlab.flows.host``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from seqlab.grid.execute import train_placed_pack
from seqlab.grid.plan import DevicePlan, gpu_count, plan_devices, plan_host_packs
from seqlab.grid.progress import GridProgress, notify
from seqlab.grid.requests import RunOutcome, RunRequest, describe


def follow_outcomes(packs: Iterable[list[RunOutcome]], total: int,
                    deliver: Callable[[list[RunOutcome]], object],
                    log: Callable[[str], None] = print,
                    on_fraction: Callable[[float], None] | None = None) -> int:
    """Deliver each finished pack's outcomes, log a line per run; returns the failed runs."""
    progress = GridProgress(total=total)
    for outcomes in packs:
        deliver(outcomes)
        for outcome in outcomes:
            progress.advance(failed=outcome.error is not None)
            line = progress.line(describe(outcome))
            log(line)
            notify(progress, line)
        if on_fraction is not None:
            on_fraction(progress.fraction)
    return progress.failed


def plan_packs(todo: list[RunRequest], pack_size: int, pack_mode: str, gpus: int,
               slots_per_gpu: int, output_dir: Path) -> list[list[RunRequest]]:
    """This host's requests in packs sized for its GPUs (pack_size 0 = automatic)."""
    return plan_host_packs(todo, pack_size, pack_mode, gpus=gpus, slots_per_gpu=slots_per_gpu,
                           output_dir=output_dir)[0]


def place_packs(n_packs: int, gpus: int, slots_per_gpu: int) -> DevicePlan:
    """Packs placed on this host's devices."""
    return plan_devices(n_packs, gpu_count=gpus, slots_per_gpu=slots_per_gpu)


def train_packs_in_threads(packs: list[list[RunRequest]], plan: DevicePlan,
                           pack_mode: str) -> Iterator[list[RunOutcome]]:
    """Each pack's outcomes as it finishes, as many packs at once as the plan has workers."""
    with ThreadPoolExecutor(max_workers=plan.workers) as pool:
        futures = [pool.submit(train_placed_pack, pack, pack_mode, plan.cpu_threads)
                   for pack in plan.place(packs)]
        for future in as_completed(futures):
            yield future.result()


@dataclass(frozen=True)
class HostSteps:
    """The three steps of training a host's share, swappable as one: plain functions here,
    their Prefect tasks in a flow (``seqlab.flows.host``)."""

    plan_packs: Callable[..., list[list[RunRequest]]] = plan_packs
    place_packs: Callable[..., DevicePlan] = place_packs
    train_packs: Callable[..., Iterable[list[RunOutcome]]] = train_packs_in_threads


def train_on_host(todo: list[RunRequest], deliver: Callable[[list[RunOutcome]], object], *,
                  pack_size: int, pack_mode: str, slots_per_gpu: int, output_dir: Path,
                  steps: HostSteps = HostSteps(), log: Callable[[str], None] = print,
                  on_fraction: Callable[[float], None] | None = None) -> int:
    """Plan packs for this host's devices, train them, deliver each pack's outcomes as it
    finishes; returns the failed runs."""
    gpus = gpu_count()
    packs = steps.plan_packs(todo, pack_size, pack_mode, gpus, slots_per_gpu, output_dir)
    plan = steps.place_packs(len(packs), gpus, slots_per_gpu)
    return follow_outcomes(steps.train_packs(packs, plan, pack_mode), len(todo), deliver, log,
                           on_fraction)
