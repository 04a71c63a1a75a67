"""Where a grid's runs train: which run together as a pack, how many at once, on which device.

A pack is a list of run requests trained in lock-step by one task (see
``seqlab.engine.stream_pack`` for the ``streams`` mode, ``seqlab.engine.batched`` for
``batched``, ``seqlab.engine.fused`` for ``fused``); every member is still stored as its own run. On a CPU host packs bring
nothing, so the automatic size there is 1. Devices: GPUs round-robin with slots, else CPU.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from seqlab.engine.config import TrainConfig
from seqlab.engine.pack_plan import MAX_STREAM_PACK, choose_pack_size, pack_key, plan_packs
from seqlab.engine.recording import EVAL_CHUNK
from seqlab.grid.dispatch import check_pack_mode
from seqlab.grid.requests import RunRequest
from seqlab.models.cells import GATES

_SAFETY = 2.0  # graph pools, allocator rounding and cuDNN workspaces on top of the tensors


def group_key(config: TrainConfig, mode: str) -> tuple:
    """What members of one pack must share in ``mode``."""
    if mode == "batched":
        from seqlab.engine.batched import batchable_key

        return batchable_key(config)
    if mode == "fused":
        from seqlab.engine.fused import fusable_key

        return fusable_key(config)
    return pack_key(config)


def plan_request_packs(requests: Sequence[RunRequest], pack_size: int, mode: str = "streams",
                       ) -> list[list[RunRequest]]:
    """Requests grouped by what their mode needs shared, in packs of at most ``pack_size``.

    Members also share their prices snapshot, checkpoint folder and device. Packs keep the
    requests' first-seen order, so a grid's plan is stable from run to run.
    """
    check_pack_mode(mode)
    return plan_packs(requests, pack_size, key=lambda r: (
        group_key(r.placed_config(), mode), r.prices_path, r.checkpoint_dir, r.device))


def pack_label(pack: Sequence[RunRequest]) -> str:
    first = pack[0].run_id
    return first if len(pack) == 1 else f"{first}+{len(pack) - 1}"


# --- memory and calibration ---------------------------------------------------------------

def estimate_member_bytes(config: TrainConfig, n_features: int = 6, n_windows: int = 3600) -> int:
    """A deliberately generous estimate of one pack member's GPU memory.

    Parameters with their gradient and two Adam moments; the saved activations of a
    training step (cuDNN's reserve space plus the norms' saved inputs); one evaluation
    chunk's activations, which a captured evaluation graph keeps in its pool; all times a
    safety factor. ``benchmarks/bench_gpu.py`` prints it beside the measured peak per model.
    """
    gates, hidden, lookback = GATES[config.cell], config.hidden, config.lookback
    inputs = [n_features] + [hidden] * (config.depth - 1)
    params = sum(gates * hidden * (n_in + hidden + 2) for n_in in inputs) + hidden + 1
    per_step = config.depth * lookback * hidden * (gates + 3) * 4  # bytes per window
    train = config.batch_size * per_step
    evaluation = min(n_windows, EVAL_CHUNK) * lookback * hidden * (gates + 2) * 4
    buffers = 2 * config.batch_size * lookback * n_features * 4
    return int(_SAFETY * (params * 4 * 4 + train + evaluation + buffers))


def calibration_path(output_dir: Path, device_name: str) -> Path:
    """Where measured pack throughput for one GPU model is kept (written by bench_gpu.py)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", device_name).strip("-").lower() or "gpu"
    return Path(output_dir) / "calibration" / f"packs-{slug}.json"


def load_calibration(path: Path, mode: str = "streams") -> dict[int, float] | None:
    """Measured aggregate epochs/s per pack size for ``mode``; None when absent or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
        measured = data["modes"][mode]
        return {int(size): float(eps) for size, eps in measured.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def resolve_pack_size(
    requested: int,
    *,
    gpus: int,
    configs: Sequence[TrainConfig],
    free_bytes: int | None = None,
    slots_per_gpu: int = 1,
    measured_eps: dict[int, float] | None = None,
    mode: str = "streams",
) -> int:
    """The pack size a grid uses: ``requested`` when >= 1, else chosen automatically.

    Automatic: 1 without GPUs; on a GPU the size with the best measured throughput
    (``measured_eps``, from the calibration file) that fits the free memory shared by the
    GPU's concurrent slots, or the largest size that fits when nothing was measured;
    never so large that a GPU slot would be left without a pack.
    """
    check_pack_mode(mode)
    if requested < 0:
        raise ValueError(f"pack_size must be >= 0 (0 = automatic), got {requested}")
    if requested >= 1:
        return requested
    if gpus == 0 or not configs:
        return 1
    member = max(estimate_member_bytes(c) for c in configs)
    budget = max(1, (free_bytes or 0) // max(1, slots_per_gpu))
    cap = MAX_STREAM_PACK if mode == "streams" else max(MAX_STREAM_PACK, len(configs))
    if not free_bytes:
        return 1
    size = choose_pack_size(budget, member, measured_eps, max_pack=cap)
    # Enough packs to keep every GPU slot busy: 216 configs on 8 GPUs are 8 packs of 27,
    # not 7 packs of 32 and an idle GPU.
    return max(1, min(size, math.ceil(len(configs) / (gpus * max(1, slots_per_gpu)))))


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def measure_gpus(gpus: int, output_dir: Path, mode: str) -> tuple[int | None, dict | None]:
    """Free bytes on the fullest GPU and the calibration measured for this GPU model."""
    if not gpus:
        return None, None
    import torch

    free_bytes = min(torch.cuda.mem_get_info(i)[0] for i in range(gpus))
    name = torch.cuda.get_device_name(0)
    return free_bytes, load_calibration(calibration_path(output_dir, name), mode)


def plan_host_packs(todo: Sequence[RunRequest], pack_size: int, pack_mode: str, *, gpus: int,
                    slots_per_gpu: int, output_dir: Path) -> tuple[list[list[RunRequest]], int, bool]:
    """This host's requests in packs sized for its GPUs (pack_size 0 = automatic).

    Returns the packs, the size used and whether it came from measured throughput.
    """
    free_bytes, measured = measure_gpus(gpus, output_dir, pack_mode)
    size = resolve_pack_size(pack_size, gpus=gpus, configs=[r.placed_config() for r in todo],
                             free_bytes=free_bytes, slots_per_gpu=slots_per_gpu,
                             measured_eps=measured, mode=pack_mode)
    return plan_request_packs(todo, size, pack_mode), size, bool(measured)


# --- devices ------------------------------------------------------------------------------

@dataclass(frozen=True)
class DevicePlan:
    devices: list[str]  # one per pack, in pack order
    workers: int  # task-runner threads: all GPU slots, or the CPU worker count
    limits: dict[str, int]  # concurrency-limit name -> slots (one per GPU of this host)
    cpu_threads: int = 0  # torch threads per CPU worker; 0 leaves torch's default (GPU plans)

    def limit_names(self) -> list[str | None]:
        """The concurrency limit each pack must hold while it trains (None on CPU)."""
        return [
            gpu_limit_name(int(d.split(":")[1])) if d.startswith("cuda:") else None
            for d in self.devices
        ]

    def place(self, packs: Sequence[Sequence[RunRequest]]) -> list[list[RunRequest]]:
        """Each pack's requests moved onto the pack's device."""
        return [[r.on_device(device) for r in pack]
                for pack, device in zip(packs, self.devices, strict=True)]


def gpu_limit_name(index: int, host: str | None = None) -> str:
    """Global concurrency limit guarding one GPU of one host."""
    return f"seqlab-gpu-{host or socket.gethostname()}-{index}"


def plan_devices(
    n_requests: int, *, gpu_count: int, slots_per_gpu: int = 2, cpu_workers: int | None = None
) -> DevicePlan:
    """Spread requests over GPUs round-robin; without GPUs every request runs on the CPU.

    On CPU one worker per core, each training with one torch thread (with fewer requests
    than cores, fewer workers share the cores). These small recurrent models leave a second
    thread of one run mostly idle: on 2 cores, two one-thread runs at once trained 1.16x
    (LSTM), 1.17x (GRU) and 1.29x (RNN) the epochs per second of one run on both cores
    (depth 2, hidden 64, lookback 60). Never more threads than cores: oversubscribing
    slows every run down.
    """
    if slots_per_gpu < 1:
        raise ValueError(f"slots_per_gpu must be >= 1, got {slots_per_gpu}")
    if gpu_count > 0:
        devices = [f"cuda:{i % gpu_count}" for i in range(n_requests)]
        limits = {gpu_limit_name(i): slots_per_gpu for i in range(gpu_count)}
        return DevicePlan(devices, gpu_count * slots_per_gpu, limits)
    cores = os.cpu_count() or 1
    workers = cpu_workers or max(1, min(n_requests, cores))
    return DevicePlan(["cpu"] * n_requests, workers, {}, cpu_threads=max(1, cores // workers))
