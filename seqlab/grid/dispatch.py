"""How a grid's runs are handed out: the pack modes and the shards of a worker pool.

Torch-free, so the command line checks ``--pack-mode`` before anything heavy loads.
"""

from __future__ import annotations

from seqlab.grid.spec import GridError

PACK_MODES = ("streams", "batched", "fused")


def check_pack_mode(mode: str) -> None:
    if mode not in PACK_MODES:
        raise ValueError(f"unknown pack_mode {mode!r}; allowed: {', '.join(PACK_MODES)}")


def split_shards(items: list, shard_count: int) -> list[list]:
    """Deal items round-robin into at most ``shard_count`` non-empty shards."""
    if shard_count < 1:
        raise GridError(f"shard count must be >= 1, got {shard_count}")
    shards = [items[i::shard_count] for i in range(min(shard_count, len(items)))]
    return [s for s in shards if s]
