"""Train a study grid on a borrowed GPU that has torch and triton but no Prefect or DuckDB.

Three steps around ``seqlab.runners.carried`` (here) and ``seqlab.grid.carried`` (there):
the grid travels as a folder, results come back as Parquet, the warehouse's machine stays
the one writer:

    # here: gate, snapshot the validated prices, list the configs not trained yet
    python benchmarks/gpu_study.py export --warehouse W.duckdb --dir .study --preset study
    # on the GPU (PYTHONPATH=repo; needs polars and pydantic besides torch/triton):
    python benchmarks/gpu_study.py train --dir .study --results $OUT/results --deadline-s 480
    # here, with the results brought back: one grid, then report / publish as usual
    python benchmarks/gpu_study.py import --warehouse W.duckdb --dir .study --results R
    seqlab publish --warehouse W.duckdb --out docs/study

``train`` packs one cell's configs per fused pack (``--pack-size`` to change), rewrites the
four Parquet files after every pack and resumes from them when run again, and starts no
pack that would end after ``--deadline-s``. ``import`` stores what came back; configs
without results are stored as failed, and the next export lists them again. CPU smoke test:

    TRITON_INTERPRET=1 python benchmarks/gpu_study.py export --warehouse W --dir /tmp/s \\
        --symbol ETH-SYNTHETIC --preset tiny --depths 1,2 --norms none,batch --hidden 16
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from seqlab.config import Settings  # noqa: E402
from seqlab.grid.carried import train_work  # noqa: E402
from seqlab.runners.carried import export_work, import_results  # noqa: E402


def _spec(args):
    from seqlab.grid import GridParams, resolve_spec

    overrides = {k: v for k, v in (("epochs", args.epochs), ("hidden", args.hidden)) if v}
    if args.depths:
        overrides["depths"] = [int(d) for d in args.depths.split(",")]
    if args.norms:
        overrides["norms"] = args.norms.split(",")
    return resolve_spec(GridParams(preset=args.preset, **overrides))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    export = steps.add_parser("export", help="write the folder the GPU trains from")
    export.add_argument("--warehouse", type=Path, required=True)
    export.add_argument("--dir", type=Path, required=True)
    export.add_argument("--symbol", default="ETH")
    export.add_argument("--preset", default="study")
    export.add_argument("--epochs", type=int)
    export.add_argument("--hidden", type=int)
    export.add_argument("--depths", help="e.g. 1,2 (default: the preset's)")
    export.add_argument("--norms", help="e.g. none,batch (default: the preset's)")
    train = steps.add_parser("train", help="train the folder's configs on this machine")
    train.add_argument("--dir", type=Path, required=True)
    train.add_argument("--results", type=Path, required=True)
    train.add_argument("--pack-mode", default="fused", choices=["streams", "batched", "fused"])
    train.add_argument("--pack-size", type=int, default=0, help="0: one pack per cell")
    train.add_argument("--deadline-s", type=float)
    train.add_argument("--json", type=Path, help="write the summary here too")
    store = steps.add_parser("import", help="store the results as a grid of the warehouse")
    store.add_argument("--warehouse", type=Path, required=True)
    store.add_argument("--dir", type=Path, required=True)
    store.add_argument("--results", type=Path, required=True)
    store.add_argument("--output-dir", type=Path, help="checkpoints and snapshots (default: "
                                                       "seqlab's output folder setting)")
    args = parser.parse_args(argv)
    if args.step == "export":
        settings = Settings.from_env(str(args.warehouse))
        work = export_work(_spec(args), settings, args.dir, symbol=args.symbol, preset=args.preset)
        summary = {k: v for k, v in work.items() if k != "requests"}
        summary["to_train"] = len(work["requests"])
    elif args.step == "train":
        summary = train_work(args.dir, args.results, pack_mode=args.pack_mode,
                             pack_size=args.pack_size, deadline_s=args.deadline_s)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(summary, indent=2))
    else:
        settings = Settings.from_env(str(args.warehouse),
                                     str(args.output_dir) if args.output_dir else None)
        summary = import_results(settings, args.dir, args.results).to_dict()
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
