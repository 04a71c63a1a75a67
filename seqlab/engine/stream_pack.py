"""Several configs trained in lock-step on one GPU, each run still recorded on its own.

A pack is a group of configs whose epochs have the same number of batches (same batch
size, lookback, horizon, split fractions and epoch count, so the same training windows
count). Each member gets its own model, optimizer, seeded batch order and captured step
graph (:class:`seqlab.engine.graphed.GraphedRun`); per batch index the members' graphs
are replayed on separate CUDA streams, so the kernels of different models overlap and
the GPU is no longer idle between one tiny model's launches. One host read per epoch
serves the whole pack. Off CUDA (or when a capture fails) the members train one after
another through :func:`train_config_graphed`, which records why no graph was used.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import torch

from seqlab.engine.captured import CaptureError, DeviceData, capture_blocker
from seqlab.engine.config import TrainConfig
from seqlab.engine.graphed import GraphedRun, train_config_graphed
from seqlab.engine.pack_plan import MAX_STREAM_PACK, PackEpochCallback, plan_packs
from seqlab.engine.recording import RunHistory, assemble_result
from seqlab.engine.result import TrainResult
from seqlab.engine.runtime import configure_determinism, resolve_device
from seqlab.features.windows import build_features


def train_pack(
    configs: Sequence[TrainConfig],
    prices: pl.DataFrame,
    *,
    checkpoint_dir: Path | None = None,
    on_epoch: PackEpochCallback | None = None,
) -> list[TrainResult]:
    """Train compatible configs together; one :class:`TrainResult` per config, in order.

    ``determinism["pack"]`` records the pack size, mode and member index; in a CUDA pack
    ``epoch_seconds`` is the pack's epoch wall time (shared by its members).
    """
    configs = list(configs)
    if not configs:
        return []
    if len(plan_packs(configs, len(configs))) != 1:
        raise ValueError("configs in one pack need equal batch_size, lookback, horizon, "
                         "test_fraction, val_fraction, epochs and device; use plan_packs first")
    device = resolve_device(configs[0].device)
    results: list[TrainResult | None] = [None] * len(configs)
    packable = [i for i, c in enumerate(configs) if capture_blocker(c, device) is None]
    reason = "sequential: no CUDA" if device.type != "cuda" else None
    chunks = [packable[i : i + MAX_STREAM_PACK] for i in range(0, len(packable), MAX_STREAM_PACK)]
    for chunk in (c for c in chunks if len(c) > 1):
        try:
            packed = _train_on_streams([configs[i] for i in chunk], prices, device,
                                       checkpoint_dir, on_epoch, chunk)
            for i, result in zip(chunk, packed, strict=True):
                results[i] = result
        except CaptureError as error:
            reason = f"sequential: pack capture failed: {error}"
    for i, config in enumerate(configs):
        if results[i] is None:
            callback = None if on_epoch is None else (lambda record, i=i: on_epoch(i, record))
            results[i] = train_config_graphed(config, prices, checkpoint_dir=checkpoint_dir,
                                              on_epoch=callback)
            results[i].determinism["pack"] = {
                "size": 1, "index": 0, "mode": reason or "sequential: alone in its pack"}
    return results


def _train_on_streams(configs: list[TrainConfig], prices: pl.DataFrame, device: torch.device,
                      checkpoint_dir: Path | None, on_epoch: PackEpochCallback | None,
                      indices: list[int]) -> list[TrainResult]:
    """Capture every member, then replay all members batch by batch on their own streams."""
    started = time.perf_counter()
    determinism = configure_determinism(device)
    features, tensors, runs = {}, {}, []
    for config in configs:
        spec = config.feature_spec()
        if spec not in features:  # members with the same features share the device copy
            features[spec] = build_features(prices, spec)
            tensors[spec] = DeviceData.from_features(features[spec], device)
        run = GraphedRun(config, features[spec].n_features, tensors[spec], device)
        run.capture()  # CaptureError: the caller trains the pack sequentially
        runs.append(run)
    has_val = runs[0].tensors.X_val.shape[0] > 0
    histories = [RunHistory(c, has_val=has_val) for c in configs]
    streams = [torch.cuda.Stream(device) for _ in runs]
    main = torch.cuda.current_stream(device)
    active = list(range(len(runs)))
    while active:
        epoch_start = time.perf_counter()
        for k in active:
            streams[k].wait_stream(main)
            with torch.cuda.stream(streams[k]):
                runs[k].begin_epoch()
        for _ in range(runs[0].n_full):  # interleaved so every stream always has work queued
            for k in active:
                with torch.cuda.stream(streams[k]):
                    runs[k].replay_full()
        outputs = []
        for k in active:
            with torch.cuda.stream(streams[k]):
                outputs.append(runs[k].finish_epoch())
            main.wait_stream(streams[k])
        values = torch.stack(outputs).tolist()  # the pack's single host sync per epoch
        seconds = time.perf_counter() - epoch_start
        still = []
        for k, row in zip(active, values, strict=True):
            callback = None if on_epoch is None else (lambda r, i=indices[k]: on_epoch(i, r))
            if histories[k].record(row, seconds, runs[k].model, callback):
                still.append(k)
        active = still
    results = []
    for k, (config, run) in enumerate(zip(configs, runs, strict=True)):
        member = {**determinism, "seed": config.seed, "graph": "captured",
                  "optimizer": run.optimizer_kind,
                  "pack": {"size": len(runs), "index": k, "mode": "streams"}}
        data = features[config.feature_spec()]
        results.append(assemble_result(config, data, run.model, histories[k], run.tensors.X_test,
                                       device=device, determinism=member, started=started,
                                       checkpoint_dir=checkpoint_dir))
    return results
