"""A host's share of a grid as Prefect tasks: the flows' ``HostSteps`` for
``seqlab.runners.host.train_on_host``, which plans, trains and delivers the same way in a
flow as in plain ``run_grid``.

Packs are mapped ``train-pack`` tasks, as many at once as the device plan has workers, each
GPU pack holding its GPU's concurrency limit; a progress artifact follows the grid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from prefect import get_run_logger, unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from seqlab.grid.plan import DevicePlan
from seqlab.grid.requests import RunOutcome, RunRequest
from seqlab.runners.host import HostSteps, train_on_host
from seqlab.tasks.grid import place_packs_here, plan_packs_here
from seqlab.tasks.train import train_pack


def train_packs_as_tasks(packs: list[list[RunRequest]], plan: DevicePlan,
                         pack_mode: str) -> Iterator[list[RunOutcome]]:
    """One mapped train-pack task per pack; each pack's outcomes as it finishes."""
    parameters = {"pack": plan.place(packs), "gpu_limit": plan.limit_names(),
                  "pack_mode": unmapped(pack_mode), "cpu_threads": unmapped(plan.cpu_threads)}
    # The runner used directly (not the flow's): the plan decides how many packs train at once.
    with ThreadPoolTaskRunner(max_workers=plan.workers) as runner:
        for future in as_completed(runner.map(train_pack, parameters)):
            yield future.result()


TASK_STEPS = HostSteps(plan_packs=plan_packs_here, place_packs=place_packs_here,
                       train_packs=train_packs_as_tasks)


def train_host_share(todo: list[RunRequest], grid_id: str,
                     deliver: Callable[[list[RunOutcome]], object], *, slots_per_gpu: int,
                     pack_size: int, pack_mode: str, output_dir: Path) -> int:
    """Train this host's requests as tasks, delivering each pack's outcomes as it finishes
    (stored by the grid's own process, or Parquet from a shard); returns the failed runs."""
    artifact_id = create_progress_artifact(
        progress=0.0, key="grid-progress", description=f"grid {grid_id}: configs done")
    return train_on_host(
        todo, deliver, pack_size=pack_size, pack_mode=pack_mode, slots_per_gpu=slots_per_gpu,
        output_dir=output_dir, steps=TASK_STEPS, log=get_run_logger().info,
        on_fraction=lambda fraction: update_progress_artifact(artifact_id,
                                                              progress=100.0 * fraction))
