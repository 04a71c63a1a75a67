"""Seconds per training epoch: the seqlab engine against a plain reference loop.

Both sides train the same ``StackedRNN`` (same seed, data and batch size) with Adam:

* engine: ``seqlab.engine.train_one_epoch`` (device-resident data, index batches,
  loss read once per epoch);
* reference: ``DataLoader(TensorDataset(cpu tensors), shuffle=True)``, per-batch
  ``.to(device)``, ``loss.item()`` every step.

Epochs of the two alternate so drifting machine load hits both alike; each figure is the
median of ``--repeats`` epochs after one warm-up epoch. Minor page faults per epoch are
recorded because glibc's allocator can fall into a fault-heavy mode (see
``seqlab.engine.runtime.tune_malloc``). ``--compare-malloc`` reruns the grid in child
processes: default allocator, the ``MALLOC_*`` environment variables, and ``mallopt``
at start-up.

    python benchmarks/bench_train.py [--device cpu|cuda] [--json PATH] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench_data import load_prices  # noqa: E402

from seqlab.engine import make_optimizer, resolve_device, train_one_epoch, tune_malloc  # noqa: E402
from seqlab.engine.config import TrainConfig  # noqa: E402
from seqlab.features.windows import FeatureSpec, build_features  # noqa: E402
from seqlab.models.rnn import ModelConfig, StackedRNN  # noqa: E402

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "1073741824"}


def run_reference_epoch(model, optimizer, loader, device) -> float:
    """The plain loop the engine is measured against."""
    model.train()
    total, count = 0.0, 0
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        loss = F.mse_loss(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(xb)
        count += len(xb)
    return total / count


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, device) -> tuple[float, int]:
    _sync(device)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    step()
    _sync(device)
    return time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def bench_config(cell, depth, norm, data, device, repeats, side="both", batch_size=64, hidden=64) -> dict:
    """Median epoch seconds and minor faults of engine and/or reference for one configuration."""
    model_config = ModelConfig(cell=cell, depth=depth, hidden=hidden, norm=norm, n_features=data.n_features)
    train_config = TrainConfig(cell=cell, depth=depth, hidden=hidden, norm=norm, batch_size=batch_size)
    epochs = {}

    if side in ("both", "engine"):
        torch.manual_seed(0)
        engine_model = StackedRNN(model_config).to(device)
        engine_opt = make_optimizer(engine_model, train_config, device)
        epoch_index = iter(range(10**9))
        X = torch.from_numpy(data.X_train).to(device)
        y = torch.from_numpy(data.y_train).to(device)

        def engine_epoch() -> None:
            loss = train_one_epoch(engine_model, engine_opt, X, y, batch_size=batch_size, seed=0,
                                   epoch=next(epoch_index))
            loss.item()  # the engine's one read per epoch

        epochs["engine"] = engine_epoch

    if side in ("both", "reference"):
        torch.manual_seed(0)
        reference_model = StackedRNN(model_config).to(device)
        reference_opt = torch.optim.Adam(reference_model.parameters(), lr=1e-3)
        loader = DataLoader(
            TensorDataset(torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)),
            batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0),
        )

        def reference_epoch() -> None:
            run_reference_epoch(reference_model, reference_opt, loader, device)

        epochs["reference"] = reference_epoch

    for epoch in epochs.values():
        epoch()  # warm-up: allocator, kernels, caches
    timings: dict[str, list[tuple[float, int]]] = {name: [] for name in epochs}
    for _ in range(repeats):
        for name, epoch in epochs.items():  # alternate, so load drift hits both sides
            timings[name].append(_timed(epoch, device))
    row = {"cell": cell, "depth": depth, "norm": norm}
    for name, values in timings.items():
        row[f"{name}_s_per_epoch"] = round(statistics.median(s for s, _ in values), 4)
        prefix = "" if name == "engine" else "reference_"
        row[f"{prefix}minor_faults_per_epoch"] = round(statistics.median(f for _, f in values))
    if len(timings) == 2:
        row["speedup"] = round(row["reference_s_per_epoch"] / row["engine_s_per_epoch"], 3)
    return row


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _print_row(row: dict) -> None:
    engine = row.get("engine_s_per_epoch", float("nan"))
    reference = row.get("reference_s_per_epoch", float("nan"))
    faults = row.get("minor_faults_per_epoch", row.get("reference_minor_faults_per_epoch"))
    print(f"{row['cell']:<5} {row['depth']:>5} {row['norm']:<6} {engine:>9.4f} {reference:>9.4f} "
          f"{row.get('speedup', float('nan')):>7.2f}x {faults:>10}", flush=True)


def _summarise(configs: list[dict], device: torch.device, extra: dict) -> dict:
    summary = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "torch": str(torch.__version__),
        "threads": torch.get_num_threads(),
        **extra,
        "configs": configs,
    }
    speedups = [c["speedup"] for c in configs if "speedup" in c]
    if speedups:
        summary["median_speedup"] = round(statistics.median(speedups), 3)
        summary["min_speedup"] = round(min(speedups), 3)
        print(f"median speedup {summary['median_speedup']}x, min {summary['min_speedup']}x", flush=True)
    return summary


def run_grid(args) -> dict:
    if args.malloc == "mallopt":
        tune_malloc()
    device = resolve_device(args.device)
    prices, source = load_prices()
    data = build_features(prices, FeatureSpec(feature_set="close", lookback=60))
    print(f"data: {source}; {data.X_train.shape[0]} train windows of {data.X_train.shape[1:]}; "
          f"device {device}; threads {torch.get_num_threads()}; malloc {args.malloc}; side {args.side}",
          flush=True)
    print(f"{'cell':<5} {'depth':>5} {'norm':<6} {'engine s':>9} {'ref s':>9} {'speedup':>8} {'faults/ep':>10}",
          flush=True)
    configs = []
    for cell in args.cells:
        for depth in args.depths:
            for norm in args.norms:
                row = bench_config(cell, depth, norm, data, device, args.epochs, side=args.side)
                configs.append(row)
                _print_row(row)
    extra = {"malloc": args.malloc, "side": args.side, "data": source,
             "n_windows": int(data.X_train.shape[0]), "epochs_timed": args.epochs}
    return _summarise(configs, device, extra)


def _child(args, *, side: str, malloc: str, env: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, __file__, "--device", args.device, "--epochs", str(args.epochs),
                   "--malloc", malloc, "--side", side, "--json", str(out), "--cells", *args.cells,
                   "--depths", *map(str, args.depths), "--norms", *args.norms]
        subprocess.run(command, env=env, check=True)
        return json.loads(out.read_text())


def compare_as_shipped(args) -> dict:
    """Engine as the CLI runs it (``tune_malloc()`` at start-up) against a plain process.

    Each side runs in its own child process (engine: mallopt; reference: glibc defaults),
    alternating round by round; per configuration the medians over rounds are compared.
    """
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    rounds = []
    for round_no in range(args.malloc_rounds):
        print(f"== round {round_no + 1}: engine process (mallopt), then plain reference process", flush=True)
        engine = _child(args, side="engine", malloc="mallopt", env=base_env)
        reference = _child(args, side="reference", malloc="default", env=base_env)
        rounds.append((engine["configs"], reference["configs"]))
    configs = []
    print("== as shipped: medians over rounds")
    for i, first in enumerate(rounds[0][0]):
        engine_s = statistics.median(r[0][i]["engine_s_per_epoch"] for r in rounds)
        reference_s = statistics.median(r[1][i]["reference_s_per_epoch"] for r in rounds)
        row = {
            "cell": first["cell"], "depth": first["depth"], "norm": first["norm"],
            "engine_s_per_epoch": engine_s, "reference_s_per_epoch": reference_s,
            "speedup": round(reference_s / engine_s, 3),
            "minor_faults_per_epoch": statistics.median(r[0][i]["minor_faults_per_epoch"] for r in rounds),
            "reference_minor_faults_per_epoch": statistics.median(
                r[1][i]["reference_minor_faults_per_epoch"] for r in rounds),
        }
        configs.append(row)
        _print_row(row)
    return _summarise(configs, resolve_device(args.device),
                      {"mode": "as-shipped", "rounds": args.malloc_rounds, "epochs_timed": args.epochs})


def compare_malloc(args) -> dict:
    """The grid in child processes, alternating allocator settings round by round.

    Modes: glibc defaults, the ``MALLOC_*`` environment variables, and ``tune_malloc()``
    (mallopt) at start-up. Alternating keeps slow drifts in machine load from favouring
    one mode; the summary gives each mode's median over rounds and configurations.
    """
    modes = {"default": ({}, "default"), "env": (MALLOC_ENV, "default"), "mallopt": ({}, "mallopt")}
    runs: dict[str, list[dict]] = {name: [] for name in modes}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    for round_no in range(args.malloc_rounds):
        for name, (extra_env, malloc) in modes.items():
            print(f"== round {round_no + 1}, allocator: {name}", flush=True)
            runs[name].append(_child(args, side=args.side, malloc=malloc, env=base_env | extra_env))
    # Per configuration: each mode's median engine epoch and faults over the rounds.
    names = list(modes)
    print(f"{'cell':<5} {'depth':>5} {'norm':<6} " + " ".join(f"{n + ' s':>11} {'faults':>8}" for n in names))
    table = []
    for i, first in enumerate(runs[names[0]][0]["configs"]):
        row = {"cell": first["cell"], "depth": first["depth"], "norm": first["norm"]}
        for name in names:
            row[f"{name}_engine_s_per_epoch"] = statistics.median(
                r["configs"][i]["engine_s_per_epoch"] for r in runs[name])
            row[f"{name}_minor_faults_per_epoch"] = statistics.median(
                r["configs"][i]["minor_faults_per_epoch"] for r in runs[name])
        table.append(row)
        print(f"{row['cell']:<5} {row['depth']:>5} {row['norm']:<6} " + " ".join(
            f"{row[n + '_engine_s_per_epoch']:>11.4f} {row[n + '_minor_faults_per_epoch']:>8.0f}" for n in names))
    return {"malloc_table": table, "malloc_runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per side (median)")
    parser.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"])
    parser.add_argument("--depths", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--norms", nargs="+", default=["none", "batch", "layer"])
    parser.add_argument("--malloc", choices=["default", "mallopt"], default="default",
                        help="mallopt: call seqlab.engine.tune_malloc() before anything else")
    parser.add_argument("--compare-malloc", action="store_true",
                        help="run the grid with default allocator, MALLOC_* env vars and mallopt")
    parser.add_argument("--malloc-rounds", type=int, default=2,
                        help="rounds for --compare-malloc / --as-shipped")
    parser.add_argument("--side", choices=["both", "engine", "reference"], default="both",
                        help="time only one side (used by the child processes)")
    parser.add_argument("--as-shipped", action="store_true",
                        help="engine process with tune_malloc() vs plain reference process")
    args = parser.parse_args()
    if args.device.startswith("cuda"):
        # On a GPU the report the issue asks for (reference, eager, graphed, packs, peak
        # memory, projected study time) is bench_gpu.py's; same flags where they overlap.
        import bench_gpu

        bench_gpu.main(["--device", args.device, "--cells", *args.cells,
                        "--depths", *map(str, args.depths), "--norms", *args.norms,
                        *(["--json", str(args.json)] if args.json else [])])
        return
    if args.compare_malloc:
        summary = compare_malloc(args)
    elif args.as_shipped:
        summary = compare_as_shipped(args)
    else:
        summary = run_grid(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
