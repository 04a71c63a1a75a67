"""Pack planning, shared by every pack mode: which configs may train in one pack, how many.

A pack is a group of configs trained together by one task: on CUDA streams
(``seqlab.engine.stream_pack``), as one batched model (``seqlab.engine.batched``) or by the
fused kernels (``seqlab.engine.fused``). Every member is still its own run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from seqlab.engine.config import TrainConfig
from seqlab.engine.result import EpochRecord

T = TypeVar("T")
PackEpochCallback = Callable[[int, EpochRecord], None]  # (index in the pack's configs, record)
# torch.cuda.Stream() hands out streams from a pool of 32 per device; each member captures on
# its own stream (cuBLAS keys its workspace by stream) and concurrent replays must not share a
# workspace, so one stream pack holds at most this many members (larger packs are split).
MAX_STREAM_PACK = 32


def pack_key(config: TrainConfig) -> tuple:
    """What must match for configs to run in lock-step: batches per epoch and epochs."""
    return (config.batch_size, config.lookback, config.horizon, config.test_fraction,
            config.val_fraction, config.epochs, config.device)


def plan_packs(items: Sequence[T], pack_size: int, key: Callable[[T], Hashable] = pack_key,
               ) -> list[list[T]]:
    """Group items by ``key`` (first-seen order) into packs of at most ``pack_size``.

    The one pack grouping of seqlab: configs by :func:`pack_key` here, by
    :func:`seqlab.engine.batched.batchable_key` for batched packs, and a grid's run requests
    by their mode's key plus what they share on disk (``seqlab.grid.plan``).
    """
    if pack_size < 1:
        raise ValueError(f"pack_size must be >= 1, got {pack_size}")
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return [group[i : i + pack_size] for group in groups.values()
            for i in range(0, len(group), pack_size)]


def choose_pack_size(
    free_bytes: int,
    bytes_per_model: int,
    measured_eps: dict[int, float] | None = None,
    *,
    max_pack: int = MAX_STREAM_PACK,
    headroom: float = 0.8,
) -> int:
    """Pack size: the measured size with the best aggregate epochs/s that fits in memory.

    Memory allows ``floor(free_bytes * headroom / bytes_per_model)`` models (at least 1,
    at most ``max_pack``). Without measurements the largest size that fits is returned;
    with them, the fitting size of highest throughput (the smaller one on a tie). When no
    measured size fits, the memory limit wins.
    """
    if free_bytes <= 0 or bytes_per_model <= 0:
        raise ValueError(f"free_bytes and bytes_per_model must be > 0, got {free_bytes}, {bytes_per_model}")
    if not 0 < headroom <= 1:
        raise ValueError(f"headroom must be in (0, 1], got {headroom}")
    fits = max(1, min(max_pack, math.floor(free_bytes * headroom / bytes_per_model)))
    if not measured_eps:
        return fits
    bad = {size: eps for size, eps in measured_eps.items() if size < 1 or not eps > 0}
    if bad:
        raise ValueError(f"measured_eps needs sizes >= 1 and epochs/s > 0, got {bad}")
    candidates = [size for size in measured_eps if size <= fits]
    if not candidates:
        return fits
    return max(sorted(candidates), key=lambda size: measured_eps[size])
