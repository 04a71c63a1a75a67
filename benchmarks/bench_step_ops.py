"""Small ops per training step, counted with torch's profiler on CPU: a fused pack's step and
a stream pack member's step (one ``GraphedRun``: a stream pack of K replays K such steps).

On a GPU each op is a kernel launch or more inside the step's CUDA graph; tiny models are
launch-bound, so this count is what the graph replays besides the real work. The fused
kernels are replaced by no-ops here (a launch each on a GPU, zero aten ops), so the count
is exactly what torch does around them, and no Triton interpreter is needed.

    python benchmarks/bench_step_ops.py [--json PATH]

``kernels`` counts the innermost aten ops that do work (no views, no metadata, no
allocations), a multi-tensor op (Adam's) once: about one GPU kernel each, what a step's CUDA
graph replays besides the recurrence kernels; ``cpu_leaf_ops`` counts the multi-tensor ops'
per-tensor loops on a CPU too. ``top_level`` counts aten ops called from Python, ``all`` every aten op.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from seqlab.engine.fused import FusedRun, PackData  # noqa: E402
from seqlab.engine.graphed import DeviceData, GraphedRun  # noqa: E402
from seqlab.features import build_features  # noqa: E402
from seqlab.grid import PRESETS, build_grid  # noqa: E402
from seqlab.models import triton_rnn  # noqa: E402
from seqlab.sample import generate_sample_prices  # noqa: E402

# Ops that only make a new view or read metadata: no kernel on a GPU (free in a graph).
METADATA_OPS = {"view", "reshape", "_reshape_alias", "unsqueeze", "squeeze", "transpose", "t",
                "permute", "expand", "as_strided", "select", "slice", "detach", "alias",
                "_unsafe_view", "split", "chunk", "unbind", "narrow", "to", "lift_fresh",
                "empty", "empty_strided", "empty_like", "resolve_conj", "resolve_neg",
                "is_nonzero", "result_type", "view_as", "expand_as", "contiguous", "split_with_sizes"}


MULTI_TENSOR = ("aten::_foreach_", "aten::_fused_")


def _top(event):
    while event.cpu_parent is not None and event.cpu_parent.name.startswith("aten::"):
        event = event.cpu_parent
    return event


class _NoKernel:
    """Stands for a compiled kernel: ``kernel[grid](...)`` does nothing."""

    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


def count_ops(run) -> dict:
    """aten ops of one full-batch step of ``run`` (after two warm-up steps)."""
    for _ in range(2):
        run.step_counter.zero_()
        run.replay_full()
    run.step_counter.zero_()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run.replay_full()
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    top = [e for e in events if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    leaves = [e for e in events if not any(c.name.startswith("aten::") for c in e.cpu_children)
              and e.name.removeprefix("aten::") not in METADATA_OPS]
    # On a GPU a multi-tensor op (_foreach_*, _fused_adam_) is one launch per chunk of
    # tensors; on a CPU it loops over them, one op each: counted once here.
    multi = {id(e) for e in top if e.name.startswith(MULTI_TENSOR)}
    single = [e for e in leaves if id(_top(e)) not in multi]
    return {"kernels": len(single) + len(multi), "cpu_leaf_ops": len(leaves),
            "top_level": len(top), "all": len(events),
            "most_common": Counter(e.name for e in single).most_common(8)}


def study_configs(prices_days: int) -> list:
    """The study's mix (every cell, depth, norm and feature set), seed 0, on the CPU."""
    return [replace(c, device="cpu", epochs=1) for c in build_grid(PRESETS["study"]) if c.seed == 0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--days", type=int, default=260)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    prices = generate_sample_prices().tail(args.days)
    configs = study_configs(args.days)
    summary: dict = {}
    device = torch.device("cpu")

    triton_rnn.kernels.cache_clear()
    original = triton_rnn.kernels
    triton_rnn.kernels = lambda: (_NoKernel(), _NoKernel())
    try:
        for name, members in (("fused: one cell (lstm, 24 configs)", [c for c in configs if c.cell == "lstm"]),
                              ("fused: study mix (72 configs)", configs)):
            members = sorted(members, key=lambda c: c.depth)
            run = FusedRun(members, PackData(members, prices, device), device,
                           triton_rnn.recurrence_triton)
            run.prepare(use_graphs=False)
            summary[name] = {"k": run.k, **count_ops(run)}
    finally:
        triton_rnn.kernels = original
    for cell, depth, norm in (("lstm", 1, "none"), ("lstm", 4, "layer"), ("gru", 2, "batch")):
        config = next(c for c in configs if (c.cell, c.depth, c.norm) == (cell, depth, norm))
        config = replace(config, grad_clip=1.0)
        data = build_features(prices, config.feature_spec())
        run = GraphedRun(config, data.n_features, DeviceData.from_features(data, device), device)
        run.prepare(use_graphs=False)
        summary[f"stream member: {cell} depth {depth} {norm} (clip 1.0)"] = count_ops(run)
    for name, entry in summary.items():
        print(f"{name:<48} {entry['kernels']:>5} kernel ops, {entry['top_level']:>5} top-level, "
              f"{entry['all']:>5} aten ops in all; "
              f"{entry['most_common'][:5]}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
