"""GPU training throughput: reference loop, eager engine, graphed engine and packed graphs.

Sections run in order, each guarded (a failure prints its traceback and the next section
runs, so one bug never loses every number):

1. correctness: graphed vs eager losses (3 epochs, 2 configs), packed vs graphed alone;
2. per config (lookback 60, hidden 64, batch 64): reference loop (DataLoader over CPU
   tensors, per-batch ``.to(device)``, ``loss.item()`` every step), engine eager
   (``train_config``), engine graphed (``train_config_graphed``): median epoch seconds;
3. packed: aggregate epochs/s over a sample of the ``study`` grid for each pack size,
   peak GPU memory, and the reference loop on part of the same sample;
4. batched: K seeds of one architecture as one model;
5. fused: a mixed pack (every cell, depths 1-4, all norms, both feature sets) against eager
   at full fp32 and with TF32, then aggregate epochs/s, setup and peak memory for single
   architectures and for the study's own mix at each K of ``--fused-sizes`` (216: the
   whole study as one pack), beside the stream packs of section 3 in the same run;
6. projection: wall time of the full ``study`` preset (216 runs x 2,000 epochs) at the
   best packed, batched and fused throughput, and the pack size ``choose_pack_size`` would pick.

The JSON is rewritten after every section, so a run stopped by a timeout keeps what it
measured.

    python benchmarks/bench_gpu.py [--device cuda] [--json PATH] [--epochs N] [--warmup N]
                                   [--sample N] [--pack-sizes 1 8 32]
    python benchmarks/bench_gpu.py --device cpu --epochs 1 --warmup 0 --sample 4 --pack-sizes 1 2 --days 400
    TRITON_INTERPRET=1 python benchmarks/bench_gpu.py --device cpu --epochs 1 --warmup 0 \
        --sample 2 --pack-sizes 2 --fused-sizes 2 --days 200 --skip correctness per_config batched
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts: deterministic cuBLAS

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench_data import load_prices  # noqa: E402
from bench_train import run_reference_epoch  # noqa: E402

from seqlab.engine import TrainConfig, train_config  # noqa: E402
from seqlab.engine.batched import batchable_key, train_pack_batched  # noqa: E402
from seqlab.engine.fused import train_pack_fused  # noqa: E402
from seqlab.engine.graphed import train_config_graphed  # noqa: E402
from seqlab.engine.pack_plan import choose_pack_size, plan_packs  # noqa: E402
from seqlab.engine.stream_pack import train_pack  # noqa: E402
from seqlab.features.windows import build_features  # noqa: E402
from seqlab.grid import PRESETS  # noqa: E402
from seqlab.grid.plan import estimate_member_bytes  # noqa: E402
from seqlab.grid.requests import build_grid  # noqa: E402
from seqlab.models.rnn import StackedRNN  # noqa: E402

BATCHED_ARCHS = [("lstm", 1, "none"), ("lstm", 4, "layer")]
CORRECTNESS = [{"cell": "lstm", "depth": 1, "norm": "none"},
               {"cell": "gru", "depth": 4, "norm": "batch", "grad_clip": 1.0}]
STUDY_RUNS, STUDY_EPOCHS = 216, 2000
FUSED_ARCHS = [("lstm", 1, "none"), ("lstm", 4, "layer"), ("gru", 2, "batch"), ("rnn", 3, "none")]
FUSED_TARGET_MIN, FUSED_TARGET_SPEEDUP = 10, 3


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_epochs(config: TrainConfig, prices: pl.DataFrame, device: torch.device,
                     warmup: int, timed: int) -> list[float]:
    """Seconds of ``timed`` epochs of the plain loop, after ``warmup`` epochs."""
    data = build_features(prices, config.feature_spec())
    torch.manual_seed(config.seed)
    model = StackedRNN(config.model_config(data.n_features)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loader = DataLoader(TensorDataset(torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)),
                        batch_size=config.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(config.seed))
    seconds = []
    for epoch in range(warmup + timed):
        sync(device)
        start = time.perf_counter()
        run_reference_epoch(model, optimizer, loader, device)
        sync(device)
        if epoch >= warmup:
            seconds.append(time.perf_counter() - start)
    return seconds


def max_rel_diff(a: list[float], b: list[float]) -> float:
    a_, b_ = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_.shape != b_.shape:
        return float("inf")
    return float(np.max(np.abs(a_ - b_) / np.maximum(np.abs(b_), 1e-12))) if a_.size else 0.0


def peak_bytes(device: torch.device) -> int | None:
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def section_correctness(args, prices, device) -> dict:
    out = {"checks": []}
    configs = [TrainConfig(**{"lookback": 60, "hidden": 64, "batch_size": 64, "epochs": 3,
                              "device": str(device), **case}) for case in CORRECTNESS]
    graphed = []
    for config in configs:
        eager = train_config(config, prices)
        result = train_config_graphed(config, prices)
        graphed.append(result)
        diff = max(max_rel_diff(result.train_loss, eager.train_loss),
                   max_rel_diff(result.test_loss, eager.test_loss))
        check = {"what": f"graphed vs eager {config.cell} d{config.depth} {config.norm}",
                 "graph": result.determinism.get("graph"), "max_rel_diff": diff,
                 "pass": diff <= 1e-3, "within_1e-4": diff <= 1e-4,
                 "eager_train": eager.train_loss, "graphed_train": result.train_loss}
        out["checks"].append(check)
        print(f"  {check['what']}: graph={check['graph']}; max rel diff {diff:.3e} -> "
              f"{'PASS' if check['pass'] else 'FAIL'} (<=1e-4: {check['within_1e-4']})", flush=True)
    packed = train_pack(configs, prices)
    for config, member, alone in zip(configs, packed, graphed, strict=True):
        diff = max(max_rel_diff(member.train_loss, alone.train_loss),
                   max_rel_diff(member.test_loss, alone.test_loss))
        check = {"what": f"packed vs graphed alone {config.cell} d{config.depth} {config.norm}",
                 "pack": member.determinism.get("pack"), "max_rel_diff": diff, "pass": diff <= 1e-4}
        out["checks"].append(check)
        print(f"  {check['what']}: pack={check['pack']}; max rel diff {diff:.3e} -> "
              f"{'PASS' if check['pass'] else 'FAIL'}", flush=True)
    seeds = [replace(configs[0], seed=seed) for seed in range(3)]
    for config, member in zip(seeds, train_pack_batched(seeds, prices), strict=True):
        eager = train_config(config, prices)
        diff = max(max_rel_diff(member.train_loss, eager.train_loss),
                   max_rel_diff(member.test_loss, eager.test_loss))
        check = {"what": f"batched (K=3) vs eager {config.cell} d{config.depth} {config.norm} seed {config.seed}",
                 "graph": member.determinism.get("graph"), "max_rel_diff": diff, "pass": diff <= 1e-3}
        out["checks"].append(check)
        print(f"  {check['what']}: graph={check['graph']}; max rel diff {diff:.3e} -> "
              f"{'PASS' if check['pass'] else 'FAIL'}", flush=True)
    out["all_pass"] = all(c["pass"] for c in out["checks"])
    return out


def timed_median(result, warmup: int) -> float:
    seconds = result.epoch_seconds[warmup:] or result.epoch_seconds
    return statistics.median(seconds)


def section_per_config(args, prices, device) -> dict:
    rows = []
    print(f"  {'cell':<5}{'depth':>6} {'norm':<6}{'ref ep/s':>10}{'eager ep/s':>11}{'graph ep/s':>11}"
          f"{'graph/ref':>10}{'eager/ref':>10}{'setup s':>8}{'peak MiB':>9}  graph", flush=True)
    for cell, depth, norm in itertools.product(args.cells, args.depths, args.norms):
        row = {"cell": cell, "depth": depth, "norm": norm}
        try:
            config = TrainConfig(cell=cell, depth=depth, norm=norm, lookback=60, hidden=64, batch_size=64,
                                 epochs=args.warmup + args.epochs, device=str(device))
            row["reference_s"] = statistics.median(
                reference_epochs(config, prices, device, args.warmup, args.epochs))
            row["eager_s"] = timed_median(train_config(config, prices), args.warmup)
            reset_peak(device)
            graphed = train_config_graphed(config, prices)
            row["graphed_s"] = timed_median(graphed, args.warmup)
            row["graph"] = graphed.determinism.get("graph")
            row["graphed_setup_s"] = graphed.seconds - sum(graphed.epoch_seconds)
            row["peak_bytes"] = peak_bytes(device)
            row["n_train"] = graphed.n_train
            row["graphed_speedup"] = row["reference_s"] / row["graphed_s"]
            row["eager_speedup"] = row["reference_s"] / row["eager_s"]
            peak = row["peak_bytes"] / 2**20 if row["peak_bytes"] else float("nan")
            print(f"  {cell:<5}{depth:>6} {norm:<6}{1 / row['reference_s']:>10.1f}{1 / row['eager_s']:>11.1f}"
                  f"{1 / row['graphed_s']:>11.1f}{row['graphed_speedup']:>9.2f}x{row['eager_speedup']:>9.2f}x"
                  f"{row['graphed_setup_s']:>8.2f}{peak:>9.1f}  {row['graph']}", flush=True)
        except Exception:  # keep the other configs' numbers
            row["error"] = traceback.format_exc()
            print(f"  {cell} d{depth} {norm}: FAILED\n{row['error']}", flush=True)
        rows.append(row)
    return {"rows": rows}


def study_sample(args, device) -> list[TrainConfig]:
    grid = build_grid(PRESETS["study"])
    rng = random.Random(0)
    picked = rng.sample(grid, min(args.sample, len(grid)))
    return [replace(c, epochs=args.warmup + args.epochs, device=str(device)) for c in picked]


def section_packed(args, prices, device) -> dict:
    sample = study_sample(args, device)
    mix = sorted({(c.cell, c.depth, c.norm) for c in sample})
    print(f"  sample: {len(sample)} study configs (lookback {sample[0].lookback}, hidden {sample[0].hidden}); "
          f"{len(mix)} distinct cell/depth/norm", flush=True)
    out: dict = {"sample": [c.to_dict() for c in sample], "sizes": {}}
    n_ref = min(args.reference_sample, len(sample))
    try:
        seconds = [s for c in sample[:n_ref] for s in reference_epochs(c, prices, device, args.warmup, args.epochs)]
        out["reference_eps"] = len(seconds) / sum(seconds)
        print(f"  reference loop over the first {n_ref} sample configs: {out['reference_eps']:.1f} epochs/s",
              flush=True)
    except Exception:
        out["reference_error"] = traceback.format_exc()
        print(f"  reference on sample FAILED\n{out['reference_error']}", flush=True)
    for size in args.pack_sizes:
        try:
            reset_peak(device)
            wall = time.perf_counter()
            model_epochs, epoch_wall, statuses = 0, 0.0, {}
            for pack in plan_packs(sample, size):
                results = train_pack(pack, prices)
                timed = results[0].epoch_seconds[args.warmup:] or results[0].epoch_seconds
                if results[0].determinism.get("pack", {}).get("mode") == "streams":
                    epoch_wall += sum(timed)  # members share the pack's epochs
                    model_epochs += len(timed) * len(results)
                else:  # members ran one after another
                    for r in results:
                        t = r.epoch_seconds[args.warmup:] or r.epoch_seconds
                        epoch_wall += sum(t)
                        model_epochs += len(t)
                for r in results:
                    mode = f"{r.determinism.get('graph')} / {r.determinism.get('pack', {}).get('mode')}"
                    statuses[mode] = statuses.get(mode, 0) + 1
            wall = time.perf_counter() - wall
            entry = {"aggregate_eps": model_epochs / epoch_wall, "wall_s": wall,
                     "setup_s_per_model": max(0.0, wall - epoch_wall) / len(sample),
                     "peak_bytes": peak_bytes(device), "statuses": statuses,
                     "estimated_bytes_per_member": max(estimate_member_bytes(c) for c in sample)}
            if entry["peak_bytes"]:
                entry["measured_bytes_per_member"] = entry["peak_bytes"] / min(size, len(sample))
            if out.get("reference_eps"):
                entry["vs_reference"] = entry["aggregate_eps"] / out["reference_eps"]
            out["sizes"][size] = entry
            peak = entry["peak_bytes"] / 2**20 if entry["peak_bytes"] else float("nan")
            print(f"  pack {size:>3}: {entry['aggregate_eps']:>8.1f} epochs/s aggregate "
                  f"({entry.get('vs_reference', float('nan')):.1f}x reference), setup "
                  f"{entry['setup_s_per_model']:.2f} s/model, peak {peak:.1f} MiB "
                  f"(per member {entry.get('measured_bytes_per_member', 0) / 2**20:.1f} MiB measured, "
                  f"{entry['estimated_bytes_per_member'] / 2**20:.1f} MiB estimated), {statuses}", flush=True)
        except Exception:
            out["sizes"][size] = {"error": traceback.format_exc()}
            print(f"  pack {size}: FAILED\n{out['sizes'][size]['error']}", flush=True)
    return out


def batched_eps(configs: list[TrainConfig], prices: pl.DataFrame, warmup: int) -> tuple[float, float, dict]:
    """Aggregate epochs/s of one batched pack, its setup seconds, and its graph status."""
    wall = time.perf_counter()
    results = train_pack_batched(configs, prices)
    wall = time.perf_counter() - wall
    timed = results[0].epoch_seconds[warmup:] or results[0].epoch_seconds
    status = {"graph": results[0].determinism.get("graph"), "pack": results[0].determinism.get("pack")}
    return len(timed) * len(results) / sum(timed), wall - sum(results[0].epoch_seconds), status


def section_batched(args, prices, device) -> dict:
    """Batched weights: K seeds of one architecture as one model (what the mode can pack)."""
    out: dict = {"archs": {}, "study_groups": {}}
    for cell, depth, norm in BATCHED_ARCHS:
        name = f"{cell} d{depth} {norm}"
        out["archs"][name] = {}
        for size in args.pack_sizes:
            try:
                reset_peak(device)
                configs = [TrainConfig(cell=cell, depth=depth, norm=norm, lookback=60, hidden=64,
                                       batch_size=64, seed=seed, epochs=args.warmup + args.epochs,
                                       device=str(device)) for seed in range(size)]
                eps, setup, status = batched_eps(configs, prices, args.warmup)
                entry = {"aggregate_eps": eps, "setup_s": setup, "peak_bytes": peak_bytes(device), **status}
                out["archs"][name][size] = entry
                peak = entry["peak_bytes"] / 2**20 if entry["peak_bytes"] else float("nan")
                print(f"  batched {name:<16} K={size:>3}: {eps:>8.1f} epochs/s aggregate, setup {setup:.2f} s, "
                      f"peak {peak:.1f} MiB, graph {status['graph']}", flush=True)
            except Exception:
                out["archs"][name][size] = {"error": traceback.format_exc()}
                print(f"  batched {name} K={size}: FAILED\n{out['archs'][name][size]['error']}", flush=True)
    # The study preset batches only its 3 seeds per (cell, depth, norm, features): K = 3.
    grid = [replace(c, epochs=args.warmup + args.epochs, device=str(device)) for c in build_grid(PRESETS["study"])]
    groups = plan_packs(grid, 3, key=batchable_key)
    picked = random.Random(0).sample(groups, min(args.batched_groups, len(groups)))
    try:
        total_epochs, total_s, setups = 0.0, 0.0, []
        for group in picked:
            eps, setup, _ = batched_eps(group, prices, args.warmup)
            total_epochs += args.epochs * len(group)
            total_s += args.epochs * len(group) / eps
            setups.append(setup / len(group))
        out["study_groups"] = {"groups": len(picked), "group_size": 3, "aggregate_eps": total_epochs / total_s,
                               "setup_s_per_model": statistics.mean(setups)}
        print(f"  batched study groups (K=3 seeds, {len(picked)} groups): "
              f"{out['study_groups']['aggregate_eps']:.1f} epochs/s aggregate", flush=True)
    except Exception:
        out["study_groups"] = {"error": traceback.format_exc()}
        print(f"  batched study groups FAILED\n{out['study_groups']['error']}", flush=True)
    return out


def fused_entry(configs: list[TrainConfig], prices: pl.DataFrame, device, warmup: int) -> dict:
    """Aggregate epochs/s of one fused pack, its setup seconds, peak memory and engine record."""
    reset_peak(device)
    wall = time.perf_counter()
    results = train_pack_fused(configs, prices)
    wall = time.perf_counter() - wall
    timed = results[0].epoch_seconds[warmup:] or results[0].epoch_seconds
    record = results[0].determinism
    fused = record.get("pack", {}).get("mode") == "fused"
    eps = (len(timed) * len(results) / sum(timed) if fused
           else sum(len(r.epoch_seconds) for r in results) / sum(sum(r.epoch_seconds) for r in results))
    return {"aggregate_eps": eps, "setup_s": wall - sum(results[0].epoch_seconds),
            "peak_bytes": peak_bytes(device), "mode": record.get("pack", {}).get("mode"),
            "graph": record.get("graph"), "recurrence": record.get("recurrence"),
            "fused_refused": record.get("fused_refused")}


def _print_fused(name: str, size: int, entry: dict) -> None:
    peak = entry["peak_bytes"] / 2**20 if entry["peak_bytes"] else float("nan")
    print(f"  fused {name:<18} K={size:>3}: {entry['aggregate_eps']:>8.1f} epochs/s aggregate, "
          f"setup {entry['setup_s']:.1f} s, peak {peak:.0f} MiB, {entry['mode']} / {entry['graph']} / "
          f"{entry['recurrence']}{'; refused: ' + entry['fused_refused'] if entry['fused_refused'] else ''}",
          flush=True)


def fused_correctness(prices, device) -> list[dict]:
    """A mixed pack (all cells, depths 1-4, all norms, both feature sets) against eager."""
    cases = [("lstm", 1, "none", "close"), ("gru", 2, "batch", "all"), ("rnn", 4, "layer", "close"),
             ("lstm", 3, "batch", "all"), ("gru", 1, "layer", "close"), ("rnn", 2, "none", "all")]
    configs = [TrainConfig(cell=cell, depth=depth, norm=norm, feature_set=features, lookback=60,
                           hidden=64, batch_size=64, epochs=3, seed=seed, device=str(device),
                           grad_clip=1.0 if seed % 2 else None)
               for seed, (cell, depth, norm, features) in enumerate(cases)]
    checks = []
    for tf32, bound in (("0", 1e-3), ("1", 3e-2)):
        os.environ["SEQLAB_CUDA_TF32"] = tf32  # the kernels' dots and cuDNN alike
        fused = train_pack_fused(configs, prices)
        for config, member in zip(configs, fused, strict=True):
            eager = train_config(config, prices)
            diff = max(max_rel_diff(member.train_loss, eager.train_loss),
                       max_rel_diff(member.test_loss, eager.test_loss))
            check = {"what": f"fused vs eager {config.cell} d{config.depth} {config.norm} "
                             f"{config.feature_set} tf32={tf32}",
                     "mode": member.determinism.get("pack", {}).get("mode"),
                     "graph": member.determinism.get("graph"), "max_rel_diff": diff,
                     "bound": bound, "pass": diff <= bound}
            checks.append(check)
            print(f"  {check['what']}: {check['mode']} / {check['graph']}; max rel diff {diff:.3e} "
                  f"-> {'PASS' if check['pass'] else 'FAIL'} (<= {bound})", flush=True)
    os.environ.pop("SEQLAB_CUDA_TF32", None)
    return checks


def section_fused(args, prices, device) -> dict:
    """Fused packs: the study mix per K first (the number the study needs), then
    correctness, then single architectures; progress saved after each step."""
    out: dict = {"archs": {}, "study_mix": {}}
    epochs = args.warmup + args.epochs
    grid = [replace(c, epochs=epochs, device=str(device)) for c in build_grid(PRESETS["study"])]
    for size in args.fused_sizes:
        try:
            picked = random.Random(size).sample(grid, min(size, len(grid)))
            out["study_mix"][size] = entry = fused_entry(picked, prices, device, args.warmup)
            entry["mix"] = sorted({f"{c.cell} d{c.depth} {c.norm} {c.feature_set}" for c in picked})
            _print_fused("study mix", size, entry)
        except Exception:
            out["study_mix"][size] = {"error": traceback.format_exc()}
            print(f"  fused study mix K={size}: FAILED\n{out['study_mix'][size]['error']}", flush=True)
        args.save_progress("fused", out)
    try:
        out["checks"] = fused_correctness(prices, device)
        out["all_pass"] = all(c["pass"] for c in out["checks"])
    except Exception:
        out["checks_error"] = traceback.format_exc()
        print(f"  fused correctness FAILED\n{out['checks_error']}", flush=True)
    args.save_progress("fused", out)
    for cell, depth, norm in FUSED_ARCHS:
        name = f"{cell} d{depth} {norm}"
        out["archs"][name] = {}
        for size in args.fused_sizes:
            try:
                configs = [TrainConfig(cell=cell, depth=depth, norm=norm, lookback=60, hidden=64,
                                       batch_size=64, seed=seed, epochs=epochs, device=str(device))
                           for seed in range(size)]
                out["archs"][name][size] = entry = fused_entry(configs, prices, device, args.warmup)
                _print_fused(name, size, entry)
            except Exception:
                out["archs"][name][size] = {"error": traceback.format_exc()}
                print(f"  fused {name} K={size}: FAILED\n{out['archs'][name][size]['error']}", flush=True)
            args.save_progress("fused", out)
    return out


def section_projection(summary: dict, device) -> dict:
    packed = summary["packed"]
    sizes = {s: e for s, e in packed["sizes"].items() if "aggregate_eps" in e}
    best = max(sizes, key=lambda s: sizes[s]["aggregate_eps"])
    eps, setup = sizes[best]["aggregate_eps"], sizes[best]["setup_s_per_model"]
    seconds = STUDY_RUNS * STUDY_EPOCHS / eps + STUDY_RUNS * setup
    out = {"best_pack_size": best, "best_aggregate_eps": eps, "projected_study_s": seconds,
           "projected_study_min": seconds / 60, "target_min": 45, "pass": seconds / 60 < 45}
    largest = max(sizes)
    if device.type == "cuda" and sizes[largest]["peak_bytes"]:
        free, _ = torch.cuda.mem_get_info(device)
        per_model = sizes[largest]["peak_bytes"] / largest
        measured = {s: e["aggregate_eps"] for s, e in sizes.items()}
        out["bytes_per_model"] = per_model
        out["chosen_pack_size"] = choose_pack_size(free, int(per_model), measured)
    print(f"  streams, best pack size {best}: {eps:.1f} epochs/s -> study ({STUDY_RUNS} runs x {STUDY_EPOCHS} "
          f"epochs) projected {out['projected_study_min']:.1f} min (incl. {setup:.2f} s setup/run) -> "
          f"{'PASS' if out['pass'] else 'FAIL'} (< 45 min); choose_pack_size -> {out.get('chosen_pack_size')}",
          flush=True)
    groups = summary.get("batched", {}).get("study_groups", {})
    if "aggregate_eps" in groups:
        batched_s = (STUDY_RUNS * STUDY_EPOCHS / groups["aggregate_eps"]
                     + STUDY_RUNS * groups["setup_s_per_model"])
        out["batched_projected_study_min"] = batched_s / 60
        print(f"  batched (K=3 seed groups, one after another): study projected {batched_s / 60:.1f} min",
              flush=True)
    mix = {k: e for k, e in summary.get("fused", {}).get("study_mix", {}).items()
           if "aggregate_eps" in e and e.get("mode") == "fused"}
    if mix:
        size = max(mix, key=lambda k: mix[k]["aggregate_eps"])
        entry = mix[size]
        packs = -(-STUDY_RUNS // size)  # packs run one after another, each with its own setup
        fused_s = STUDY_RUNS * STUDY_EPOCHS / entry["aggregate_eps"] + packs * entry["setup_s"]
        out.update({"fused_best_size": size, "fused_aggregate_eps": entry["aggregate_eps"],
                    "fused_projected_study_min": fused_s / 60,
                    "fused_speedup_over_streams": entry["aggregate_eps"] / eps})
        print(f"  fused study mix, best K={size}: {entry['aggregate_eps']:.1f} epochs/s "
              f"({out['fused_speedup_over_streams']:.1f}x the best stream pack) -> study projected "
              f"{fused_s / 60:.1f} min ({packs} pack(s), {entry['setup_s']:.1f} s setup each)", flush=True)
    return out


def write_calibration(summary: dict, path: Path) -> None:
    """Measured aggregate epochs/s per pack size and mode, read by the grid's pack planner."""
    streams = {str(s): e["aggregate_eps"] for s, e in summary.get("packed", {}).get("sizes", {}).items()
               if "aggregate_eps" in e}
    batched: dict[str, float] = {}
    for per_size in summary.get("batched", {}).get("archs", {}).values():
        for size, entry in per_size.items():
            if "aggregate_eps" in entry:  # the slower architecture decides
                batched[str(size)] = min(batched.get(str(size), float("inf")), entry["aggregate_eps"])
    fused = {str(k): e["aggregate_eps"] for k, e in summary.get("fused", {}).get("study_mix", {}).items()
             if "aggregate_eps" in e and e.get("mode") == "fused"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"device_name": summary["device_name"], "torch": summary["torch"],
                                "modes": {"streams": streams, "batched": batched, "fused": fused}},
                               indent=2))
    print(f"calibration written to {path}", flush=True)


def targets(summary: dict) -> dict:
    rows = {(r["cell"], r["depth"], r["norm"]): r for r in summary.get("per_config", {}).get("rows", [])}
    checks = {}
    lstm1, lstm4 = rows.get(("lstm", 1, "none"), {}), rows.get(("lstm", 4, "layer"), {})
    if "graphed_speedup" in lstm1:
        checks["lstm d1 graphed >= 8x reference"] = lstm1["graphed_speedup"] >= 8
    if "graphed_speedup" in lstm4:
        checks["lstm d4 layer graphed >= 5x reference"] = lstm4["graphed_speedup"] >= 5
    packed = summary.get("packed", {})
    ratios = [e["vs_reference"] for e in packed.get("sizes", {}).values() if "vs_reference" in e]
    groups = summary.get("batched", {}).get("study_groups", {})
    if packed.get("reference_eps") and "aggregate_eps" in groups:
        ratios.append(groups["aggregate_eps"] / packed["reference_eps"])
    if ratios:
        checks["packed aggregate >= 20x reference (best mode)"] = max(ratios) >= 20
    projection = summary.get("projection", {})
    minutes = [m for m in (projection.get("projected_study_min"),
                           projection.get("batched_projected_study_min")) if m is not None]
    if minutes:
        checks["study projected < 45 min (best mode)"] = min(minutes) < 45
    if projection.get("fused_projected_study_min") is not None:
        checks[f"fused study projected < {FUSED_TARGET_MIN} min"] = (
            projection["fused_projected_study_min"] < FUSED_TARGET_MIN)
        checks[f"fused >= {FUSED_TARGET_SPEEDUP}x stream packs"] = (
            projection["fused_speedup_over_streams"] >= FUSED_TARGET_SPEEDUP)
    if "all_pass" in summary.get("fused", {}):
        checks["fused equals eager (fp32 1e-3, tf32 3e-2)"] = summary["fused"]["all_pass"]
    for name, ok in checks.items():
        print(f"  {name}: {'PASS' if ok else 'FAIL'}", flush=True)
    return checks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu (smoke test)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed epochs before them")
    parser.add_argument("--sample", type=int, default=32, help="study configs in the packed sample")
    parser.add_argument("--reference-sample", type=int, default=4,
                        help="sample configs the reference loop is timed on")
    parser.add_argument("--pack-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"], help="per-config section")
    parser.add_argument("--depths", nargs="+", type=int, default=[1, 4], help="per-config section")
    parser.add_argument("--norms", nargs="+", default=["none", "batch", "layer"], help="per-config section")
    parser.add_argument("--batched-groups", type=int, default=4,
                        help="study seed-groups (K=3) timed in batched mode")
    parser.add_argument("--calibration", type=Path,
                        help="write measured pack throughput here (seqlab.grid.plan.calibration_path)")
    parser.add_argument("--days", type=int, default=None,
                        help="use only the last N days (quick CPU smoke tests)")
    parser.add_argument("--fused-sizes", type=int, nargs="+", default=[8, 32, 72, 216],
                        help="fused pack sizes K (single architectures and the study mix)")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["correctness", "per_config", "packed", "batched", "fused"])
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    prices, source = load_prices()
    if args.days:
        prices, source = prices.tail(args.days), f"{source} (last {args.days} days)"
    summary: dict = {"device": str(device), "torch": str(torch.__version__), "data": source,
                     "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                     "epochs_timed": args.epochs, "warmup": args.warmup, "errors": {}}
    print(f"device {summary['device_name']} ({device}); torch {torch.__version__}; data {source}; "
          f"{args.warmup} warm-up + {args.epochs} timed epochs", flush=True)
    sections = [("correctness", section_correctness), ("per_config", section_per_config),
                ("packed", section_packed), ("batched", section_batched), ("fused", section_fused)]
    started = time.perf_counter()

    def save_progress(name: str, part: dict) -> None:  # a section's numbers so far, kept
        summary[name] = part
        write_json(summary, args.json)

    args.save_progress = save_progress
    for name, run in sections:
        if name in args.skip:
            continue
        print(f"== {name}", flush=True)
        try:
            summary[name] = run(args, prices, device)
        except Exception:  # print and go on: later sections still report
            summary["errors"][name] = traceback.format_exc()
            print(f"  section {name} FAILED\n{summary['errors'][name]}", flush=True)
        print(f"  ({time.perf_counter() - started:.0f} s so far)", flush=True)
        write_json(summary, args.json)
    print("== projection", flush=True)
    try:
        summary["projection"] = section_projection(summary, device)
    except Exception:
        summary["errors"]["projection"] = traceback.format_exc()
        print(f"  section projection FAILED\n{summary['errors']['projection']}", flush=True)
    print("== targets", flush=True)
    summary["targets"] = targets(summary)
    summary["total_s"] = time.perf_counter() - started
    print(f"total {summary['total_s']:.0f} s", flush=True)
    if args.calibration:
        write_calibration(summary, args.calibration)
    write_json(summary, args.json)


def write_json(summary: dict, path: Path | None) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
