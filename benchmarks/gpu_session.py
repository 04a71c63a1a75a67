"""The study from one GPU loan: prepared here, proved and trained there, results kept pack by pack.

Driven by ``benchmarks/gpu_session.sh`` (read it first); three steps:

    prepare  (here)  the exported study (``seqlab.runners.carried.export_work``) in the prepared
                     folder, refused unless its prices are real (never the synthetic sample);
    proof    (GPU)   fused engine equal to eager at the study's shapes (hidden, lookback,
                     a part-filled block of 16 rows) in TF32 and fp32; per-step kernel
                     latency at two pack sizes; fused epochs/s per cell and for the whole
                     mix beside stream packs of the same mix; ``proof.json`` rewritten after
                     every part, so a killed call keeps what it measured;
    study    (GPU)   the exported study trained in fused packs to a deadline: no pack starts
                     that its measured epoch time says cannot finish, every finished pack's
                     Parquet is copied to the output folder at once, and run again (a second
                     call, results carried back in) it resumes.

Sizes are the study's (``FULL``), or tiny ones for the dry run on a CPU (``DRY``: Triton's
interpreter, ``SEQLAB_GPU_DRY_RUN=1``), which walks the same steps and writes the same files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

PROOF, STUDY_SUMMARY = "proof.json", "study.json"
FRAME_FILES = ("runs.parquet", "epoch_metrics.parquet", "predictions.parquet", "features.parquet")
SAFETY = 1.15  # a pack's expected seconds, over what the measured epoch time says


@dataclass(frozen=True)
class Sizes:
    """What each step runs at."""

    spec: dict  # overrides of the ``study`` preset for the exported study
    equality_days: int  # real days the equality check trains on (the last ones)
    equality_epochs: int
    kernel_packs: tuple[int, int]  # K for the kernel latency
    kernel_batch: int
    throughput_epochs: int  # per pack measured, the first one not timed
    throughput_days: int | None  # the last days measured on (None: all the study's)
    stream_pack: int  # members of the stream pack beside the fused ones
    repeats: int  # kernel timings per median


FULL = Sizes(spec={}, equality_days=400, equality_epochs=2, kernel_packs=(72, 216),
             kernel_batch=64, throughput_epochs=3, throughput_days=None, stream_pack=32,
             repeats=20)
# Two cells of 2 configs each (2 packs: the dry run stops after one and resumes), hidden 16,
# lookback 4, on 150 real days: about a second a step in Triton's interpreter.
DRY = Sizes(spec={"cells": ["rnn", "gru"], "depths": [1, 2], "norms": ["batch"],
                  "feature_sets": ["close"], "seeds": [0], "hidden": 16, "lookback": 4,
                  "epochs": 2},
            equality_days=60, equality_epochs=1, kernel_packs=(1, 2), kernel_batch=16,
            throughput_epochs=2, throughput_days=60, stream_pack=2, repeats=1)


def sizes() -> Sizes:
    return DRY if os.environ.get("SEQLAB_GPU_DRY_RUN") == "1" else FULL


def write_json(path: Path, data: dict) -> None:
    """Written under a temporary name and renamed: a copy taken at any moment is whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


# --- prepare (here) -------------------------------------------------------------------------

def prepare(args) -> dict:
    """Export the study into ``args.dir``; refuse prices that are not real."""
    import polars as pl

    from seqlab.config import Settings
    from seqlab.grid import GridParams, resolve_spec
    from seqlab.grid.carried import PRICES_FILE
    from seqlab.runners.carried import export_work
    from seqlab.sample import SYNTHETIC_SYMBOL, generate_sample_prices

    if args.symbol.upper() == SYNTHETIC_SYMBOL:
        raise SystemExit(f"refused: {args.symbol} is seqlab's synthetic sample; the study "
                         "runs on real prices (ingest them first: seqlab ingest ...)")
    settings = Settings.from_env(str(args.warehouse) if args.warehouse else None)
    spec = resolve_spec(GridParams(preset="study", **sizes().spec))
    folder = Path(args.dir) / "study"
    work = export_work(spec, settings, folder, symbol=args.symbol, preset="study")
    prices = pl.read_parquet(folder / PRICES_FILE)
    sample = generate_sample_prices()
    if prices.height == 0 or (prices.height == sample.height and prices["close"].to_list()
                              == sample["close"].to_list()):
        shutil.rmtree(folder)
        raise SystemExit(f"refused: the {args.symbol} prices in {settings.warehouse} are "
                         "seqlab's synthetic sample (or empty), not real prices")
    summary = {"warehouse": str(settings.warehouse), "symbol": args.symbol,
               "days": prices.height, "first": str(prices["date"].min()),
               "last": str(prices["date"].max()), "data_version": work["data_version"],
               "code_version": work["code_version"], "configs": work["configs"],
               "to_train": len(work["requests"]), "dry_run": sizes() is DRY}
    write_json(Path(args.dir) / "prepared.json", summary)
    return summary


# --- proof (GPU) ----------------------------------------------------------------------------

def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _study_configs(folder: Path, device, epochs: int | None = None) -> list:
    """The exported study's configs (every one, trained or not), on ``device``."""
    from seqlab.grid.carried import read_work
    from seqlab.grid.requests import build_grid
    from seqlab.grid.spec import GridSpec

    spec = read_work(folder)["spec"]
    spec = GridSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
    return [replace(c, device=str(device), **({"epochs": epochs} if epochs else {}))
            for c in build_grid(spec)]


def _max_rel(a: list[float], b: list[float]) -> float:
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if not (math.isnan(x) and math.isnan(y))]
    return max((abs(x - y) / max(abs(y), 1e-12) for x, y in pairs), default=0.0)


def proof_equality(folder: Path, prices, device) -> dict:
    """Fused against eager, every (cell, norm) of the study at depth <= 2, both precisions."""
    from seqlab.engine import train_config
    from seqlab.engine.fused import train_pack_fused

    size = sizes()
    configs = _study_configs(folder, device, size.equality_epochs)
    members, seen = [], set()
    for c in sorted(configs, key=lambda c: (-min(c.depth, 2), c.seed)):
        if (c.cell, c.norm) not in seen and c.depth <= 2:
            seen.add((c.cell, c.norm))
            members.append(c)
    days = prices.tail(size.equality_days)
    out = {}
    for precision, tf32, bound in (("fp32", "0", 1e-3), ("tf32", "1", 3e-2)):
        os.environ["SEQLAB_CUDA_TF32"] = tf32  # the kernels, torch's matmuls and cuDNN alike
        fused = train_pack_fused(members, days)
        rows = []
        for config, result in zip(members, fused, strict=True):
            eager = train_config(config, days)
            diff = max(_max_rel(getattr(result, n), getattr(eager, n))
                       for n in ("train_loss", "test_loss", "val_loss"))
            rows.append({"config": f"{config.cell} d{config.depth} {config.norm} "
                                   f"{config.feature_set}", "max_rel_diff": diff,
                         "mode": result.determinism.get("pack", {}).get("mode"),
                         "recurrence": result.determinism.get("recurrence"),
                         "precision": result.determinism.get("precision")})
        first = fused[0]
        out[precision] = {"bound": bound, "pass": all(r["max_rel_diff"] <= bound for r in rows)
                          and all(r["mode"] == "fused" for r in rows),
                          "n_train": first.n_train, "n_test": first.n_test, "n_val": first.n_val,
                          "train_remainder": first.n_train % first.config["batch_size"],
                          "last_block_rows": (first.n_test + first.n_val) % 16, "members": rows}
    os.environ["SEQLAB_CUDA_TF32"] = "1"
    out["shapes"] = {"hidden": members[0].hidden, "lookback": members[0].lookback,
                     "batch": members[0].batch_size, "days": days.height}
    return out


def proof_kernels(hidden: int, lookback: int, device) -> dict:
    """Forward (saving for backward) and backward kernel time per call and per time step."""
    import torch

    from seqlab.models import triton_rnn

    size = sizes()
    out = {}
    for k in size.kernel_packs:
        for cell in ("rnn", "gru", "lstm"):
            gates = triton_rnn.GATES[cell]
            gen = torch.Generator().manual_seed(0)
            projected = torch.randn(k, lookback, size.kernel_batch, gates * hidden, generator=gen)
            weight = torch.randn(k, gates * hidden, hidden, generator=gen) * hidden ** -0.5
            bias = torch.zeros(k, gates * hidden)
            projected, weight, bias = (t.to(device) for t in (projected, weight, bias))
            y, saved = triton_rnn.forward(cell, projected, weight, bias, save=True)
            d_y = torch.ones_like(y)
            timings = {}
            for name, call in (
                    ("forward", partial(triton_rnn.forward, cell, projected, weight, bias, save=True)),
                    ("backward", partial(triton_rnn.backward, cell, d_y, weight, y, saved))):
                median = _median_seconds(call, size.repeats, device)
                timings[f"{name}_ms"] = round(median * 1e3, 4)
                timings[f"{name}_us_per_step"] = round(median * 1e6 / lookback, 3)
            out[f"{cell} K={k}"] = {"k": k, "batch": size.kernel_batch, "lookback": lookback,
                                     "hidden": hidden, **timings}
    return out


def _median_seconds(call, repeats: int, device) -> float:
    call()  # compiled (or interpreted) once before timing
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        call()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _fused_entry(configs: list, prices, device) -> dict:
    from seqlab.engine.fused import train_pack_fused

    wall = time.perf_counter()
    results = train_pack_fused(configs, prices)
    wall = time.perf_counter() - wall
    seconds = results[0].epoch_seconds
    timed = seconds[1:] or seconds  # the first epoch warms up
    record = results[0].determinism
    return {"k": len(configs), "aggregate_eps": len(timed) * len(results) / sum(timed),
            "pack_epoch_s": sum(timed) / len(timed), "setup_s": round(wall - sum(seconds), 2),
            "mode": record.get("pack", {}).get("mode"), "graph": record.get("graph"),
            "recurrence": record.get("recurrence"), "precision": record.get("precision"),
            "refused": record.get("fused_refused")}


def _stream_entry(configs: list, prices) -> dict:
    from seqlab.engine.stream_pack import train_pack

    results = train_pack(configs, prices)
    if results[0].determinism.get("pack", {}).get("mode") == "streams":
        timed = results[0].epoch_seconds[1:] or results[0].epoch_seconds
        eps = len(timed) * len(results) / sum(timed)
    else:  # sequential (no CUDA): members one after another
        eps = sum(len(r.epoch_seconds) for r in results) / sum(sum(r.epoch_seconds) for r in results)
    return {"k": len(configs), "aggregate_eps": eps,
            "mode": results[0].determinism.get("pack", {}).get("mode")}


def proof_throughput(folder: Path, prices, device, save) -> dict:
    """Fused epochs/s for each cell's pack and for the whole mix, beside stream packs of the
    same mix, all on the study's prices; ``save`` is called after each entry."""
    import random

    size = sizes()
    configs = sorted(_study_configs(folder, device, size.throughput_epochs), key=lambda c: c.depth)
    if size.throughput_days:
        prices = prices.tail(size.throughput_days)
    out: dict = {"fused": {}, "streams": {}}
    for cell in dict.fromkeys(c.cell for c in configs):
        members = [c for c in configs if c.cell == cell]
        out["fused"][cell] = _fused_entry(members, prices, device)
        save(out)
    out["fused"]["mix"] = _fused_entry(configs, prices, device)
    save(out)
    sample = random.Random(0).sample(configs, min(size.stream_pack, len(configs)))
    out["streams"]["mix"] = _stream_entry(sample, prices)
    full = _study_configs(folder, device)  # at the study's own epochs
    study_epochs = sum(c.epochs for c in full)
    mix, streams = out["fused"]["mix"]["aggregate_eps"], out["streams"]["mix"]["aggregate_eps"]
    per_cell = sum(sum(c.epochs for c in full if c.cell == cell) / entry["aggregate_eps"]
                   for cell, entry in out["fused"].items() if cell != "mix")
    out["projection"] = {"study_model_epochs": study_epochs,
                         "minutes_one_mix_pack": study_epochs / mix / 60,
                         "minutes_pack_per_cell": per_cell / 60,
                         "minutes_stream_packs": study_epochs / streams / 60,
                         "fused_over_streams": mix / streams,
                         "targets": {"mix_eps>=720": mix >= 720,
                                     "study<10min": per_cell / 60 < 10,
                                     "fused>=3x_streams": mix / streams >= 3}}
    save(out)
    return out


def proof(args) -> dict:
    """Each part written to ``args.out/proof.json`` as soon as it is measured."""
    import polars as pl
    import torch

    from seqlab.grid.carried import PRICES_FILE
    from seqlab.models import triton_rnn

    folder, out_file = Path(args.dir) / "study", Path(args.out) / PROOF
    device = _device()
    shapes = _study_configs(folder, device)[0]
    report: dict = {"complete": False, "dry_run": sizes() is DRY, "device": str(device),
                    "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                    "torch": torch.__version__, "triton": _triton_version(),
                    "interpreter": triton_rnn.interpreter_on(), "seconds": {}}
    write_json(out_file, report)
    prices = pl.read_parquet(folder / PRICES_FILE).sort("date")
    parts = (("equality", lambda: proof_equality(folder, prices, device)),
             ("kernels", lambda: proof_kernels(shapes.hidden, shapes.lookback, device)),
             ("throughput", lambda: proof_throughput(
                 folder, prices, device, lambda part: _save_part(report, "throughput", part,
                                                                 out_file))))
    for name, run in parts:
        started = time.perf_counter()
        print(f"== proof: {name}", flush=True)
        try:
            report[name] = run()
        except Exception:  # one part failing keeps the others' numbers
            report[name] = {"error": traceback.format_exc()}
        report["seconds"][name] = round(time.perf_counter() - started, 1)
        write_json(out_file, report)
        print(json.dumps({name: report[name]}, default=str)[:4000], flush=True)
    report["complete"] = all("error" not in report[name] for name, _ in parts)
    write_json(out_file, report)
    return {"complete": report["complete"], "seconds": report["seconds"]}


def _save_part(report: dict, name: str, part: dict, path: Path) -> None:
    report[name] = part
    write_json(path, report)


def _triton_version() -> str | None:
    try:
        import triton

        return triton.__version__
    except Exception:
        return None


# --- study (GPU) ----------------------------------------------------------------------------

def pack_estimate(proof_report: dict):
    """Seconds a pack may take, from the proof's measured epoch time of its cell's pack."""
    fused = proof_report.get("throughput", {}).get("fused", {})
    cells = {cell: e for cell, e in fused.items() if cell != "mix" and "pack_epoch_s" in e}
    if not cells:
        return None

    def estimate(pack: list) -> float:
        entry = cells.get(pack[0].config.cell) or max(cells.values(),
                                                      key=lambda e: e["pack_epoch_s"])
        scale = max(1.0, len(pack) / entry["k"])  # a larger pack: at most proportionally slower
        epochs = max(r.config.epochs for r in pack)
        return SAFETY * (entry["setup_s"] + epochs * entry["pack_epoch_s"] * scale)

    return estimate


def study(args) -> dict:
    """Train the exported study until the deadline; results to ``args.out`` after each pack."""
    from seqlab.grid.carried import train_work

    out, local, carried = Path(args.out), Path(args.results), Path(args.dir) / "results"
    local.mkdir(parents=True, exist_ok=True)
    if not (local / FRAME_FILES[0]).exists() and (carried / FRAME_FILES[0]).exists():
        for name in FRAME_FILES:  # a fresh machine: resume from the results carried back in
            shutil.copyfile(carried / name, local / name)
    proof_report = _read_json(out / PROOF) or _read_json(carried / PROOF) or {}
    estimate = pack_estimate(proof_report)
    remaining = args.deadline_at - time.time() - args.copy_margin_s
    if args.budget_packs and estimate:  # the dry run: room for about this many packs
        remaining = min(remaining, args.budget_packs * estimate(_first_pack(args.dir)))
    summary: dict = {"deadline_s": round(remaining, 1), "estimate": bool(estimate)}

    def copy_out(progress: dict) -> None:
        for name in FRAME_FILES:  # whole files only: copied under a temporary name, renamed
            shutil.copyfile(local / name, out / (name + ".tmp"))
            (out / (name + ".tmp")).replace(out / name)
        write_json(out / STUDY_SUMMARY, {**summary, **progress})

    print(f"== study: {max(remaining, 0):.0f} s to train", flush=True)
    result = train_work(Path(args.dir) / "study", local, pack_mode="fused",
                        pack_size=args.pack_size, deadline_s=max(remaining, 0.0),
                        estimate_s=estimate, on_pack=copy_out)
    summary.update(result)
    if (local / FRAME_FILES[0]).exists():
        copy_out(result)
    else:
        write_json(out / STUDY_SUMMARY, summary)
    return summary


def _first_pack(folder: str) -> list:
    """The first cell's requests: the size of the first pack ``train_work`` trains."""
    from seqlab.grid.carried import read_work
    from seqlab.grid.requests import RunRequest

    requests = [RunRequest.from_dict(r) for r in read_work(Path(folder) / "study")["requests"]]
    return [r for r in requests if r.config.cell == requests[0].config.cell]


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    step = steps.add_parser("prepare", help="here: export the study into the prepared folder")
    step.add_argument("--dir", required=True)
    step.add_argument("--warehouse", help="default: seqlab's warehouse setting")
    step.add_argument("--symbol", default="ETH")
    step = steps.add_parser("proof", help="on the GPU: equality, kernel latency, throughput")
    step.add_argument("--dir", required=True)
    step.add_argument("--out", required=True)
    step = steps.add_parser("study", help="on the GPU: the study to the deadline, resumable")
    step.add_argument("--dir", required=True)
    step.add_argument("--out", required=True)
    step.add_argument("--results", required=True, help="local results folder (resumes from it)")
    step.add_argument("--deadline-at", type=float, required=True, help="epoch seconds")
    step.add_argument("--copy-margin-s", type=float, default=20.0)
    step.add_argument("--pack-size", type=int, default=0, help="0: one pack per cell")
    step.add_argument("--budget-packs", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    summary = {"prepare": prepare, "proof": proof, "study": study}[args.step](args)
    print(json.dumps(summary, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
