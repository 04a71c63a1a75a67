"""Which runs of a grid train together on one GPU, and how many at once.

A pack is a list of run requests trained in lock-step by one task (see
``seqlab.engine.packing`` for the ``streams`` mode, ``seqlab.engine.batched`` for
``batched``); every member is still stored as its own run. On a CPU host packs bring
nothing, so the automatic size there is 1.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

from seqlab.engine.config import TrainConfig
from seqlab.engine.packing import MAX_STREAM_PACK, choose_pack_size, pack_key
from seqlab.runs import RunOutcome, RunRequest, read_prices, train_request

PACK_MODES = ("streams", "batched")
_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
_EVAL_CHUNK = 8192  # as seqlab.engine.recording.EVAL_CHUNK
_SAFETY = 2.0  # graph pools, allocator rounding and cuDNN workspaces on top of the tensors


def check_pack_mode(mode: str) -> None:
    if mode not in PACK_MODES:
        raise ValueError(f"unknown pack_mode {mode!r}; allowed: {', '.join(PACK_MODES)}")


def group_key(config: TrainConfig, mode: str) -> tuple:
    """What members of one pack must share in ``mode``."""
    if mode == "batched":
        from seqlab.engine.batched import batchable_key

        return batchable_key(config)
    return pack_key(config)


def plan_request_packs(requests: Sequence[RunRequest], pack_size: int, mode: str = "streams",
                       ) -> list[list[RunRequest]]:
    """Requests grouped by what their mode needs shared, in packs of at most ``pack_size``.

    Members also share their prices snapshot, checkpoint folder and device. Packs keep the
    requests' first-seen order, so a grid's plan is stable from run to run.
    """
    check_pack_mode(mode)
    if pack_size < 1:
        raise ValueError(f"pack_size must be >= 1, got {pack_size}")
    groups: dict[tuple, list[RunRequest]] = {}
    for request in requests:
        key = (group_key(request.train_config(), mode), request.prices_path,
               request.checkpoint_dir, request.device)
        groups.setdefault(key, []).append(request)
    return [group[i : i + pack_size] for group in groups.values()
            for i in range(0, len(group), pack_size)]


def estimate_member_bytes(config: TrainConfig, n_features: int = 6, n_windows: int = 3600) -> int:
    """A deliberately generous estimate of one pack member's GPU memory.

    Parameters with their gradient and two Adam moments; the saved activations of a
    training step (cuDNN's reserve space plus the norms' saved inputs); one evaluation
    chunk's activations, which a captured evaluation graph keeps in its pool; all times a
    safety factor. ``benchmarks/bench_gpu.py`` prints it beside the measured peak per model.
    """
    gates, hidden, lookback = _GATES[config.cell], config.hidden, config.lookback
    inputs = [n_features] + [hidden] * (config.depth - 1)
    params = sum(gates * hidden * (n_in + hidden + 2) for n_in in inputs) + hidden + 1
    per_step = config.depth * lookback * hidden * (gates + 3) * 4  # bytes per window
    train = config.batch_size * per_step
    evaluation = min(n_windows, _EVAL_CHUNK) * lookback * hidden * (gates + 2) * 4
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


def pack_label(pack: Sequence[RunRequest]) -> str:
    first = pack[0].run_id
    return first if len(pack) == 1 else f"{first}+{len(pack) - 1}"


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
        configs = [r.train_config() for r in pack]
        if mode == "batched":
            from seqlab.engine.batched import train_pack_batched as trainer
        else:
            from seqlab.engine.packing import train_pack as trainer
        results = trainer(configs, prices, checkpoint_dir=Path(pack[0].checkpoint_dir))
        return [RunOutcome(r, result.to_dict(), None, worker)
                for r, result in zip(pack, results, strict=True)]
    except Exception as exc:  # recorded on each member; the members still train
        reason = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
    outcomes = []
    for request in pack:
        outcome = train_request(request, worker)
        if outcome.result is not None:
            outcome.result.setdefault("determinism", {})["pack"] = {
                "size": 1, "index": 0, "mode": f"alone after the pack of {len(pack)} failed: {reason}"}
        outcomes.append(outcome)
    return outcomes
