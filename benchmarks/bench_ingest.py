"""Rows/s and peak memory of the ingest path: read -> parse -> validate -> store (+ GX gate).

    python benchmarks/bench_ingest.py [--json PATH] [--sizes 10000,100000,1000000,5000000]

What is generated. The canonical key is (symbol, date) with a *daily* date, so N rows of
one symbol need N distinct days; minute candles would collapse onto a few days and all but
one candle per day would be quarantined as ``duplicate_date``, which measures the reject
path, not ingest. ISO dates have 4-digit years, so one symbol holds at most 2,932,896 days
(0001-01-01 .. 9999-12-31). Each generated file therefore holds one symbol's daily candles
from 0001-01-01 on (a random walk with consistent OHLC, volume and market cap, full float64
precision like yfinance/CoinCodex exports), written in seqlab's own canonical CSV layout
``date,open,high,low,close,volume,market_cap`` (the generic layout). The pipeline's
``today`` is set to 9999-12-31 so the ``future_date`` rule, still evaluated on every row,
passes; the dataset gate's freshness warning then fires, which is only a warning. Sizes
above ``--file-rows`` (default 2,500,000) are split into equal files with one symbol each
(``BENCH-1``, ``BENCH-2``, ...), ingested one after another in the same process:
5M rows = 2 files of 2.5M. About 1 row in 10,000 is bad
(text in a number, high < low, a blank line), so the quarantine path runs as well.

How it is measured. Each size runs in a fresh subprocess against a fresh warehouse. The
child calls ``seqlab.runners.ingest.ingest_source`` once per file, with its stages
(``iter_sources``, ``parse_source``, ``validate_rows``, ``store_parsed``, ``gate_dataset``)
wrapped to record wall and CPU seconds (CPU = all threads of the process).
``seconds``/``rows_per_s`` cover ingest+validate+store (read, parse, validate, store);
the Great Expectations gate is reported on its own (``gate_s``), and the one-off import of
great_expectations, paid once per process, separately again (``gx_import_s``).
``peak_rss_mb`` is the child's peak RSS (VmHWM) while reading, parsing, validating and
storing, imports included; the peak is restarted after each gate so that a gate's peak is
not charged to the next file. ``peak_rss_gate_mb`` is the peak including the gates. The
machine may be shared: CPU seconds and the load average before and after each size are
reported next to wall time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

DEFAULT_SIZES = (10_000, 100_000, 1_000_000, 5_000_000)
FIRST_DAY = dt.date(1, 1, 1)
LAST_DAY = dt.date(9999, 12, 31)
MAX_FILE_ROWS = (LAST_DAY - FIRST_DAY).days + 1
BAD_ROW_EVERY = 10_000
STAGES = ("read", "parse", "validate", "store", "gate")
INGEST_STAGES = ("read", "parse", "validate", "store")


# --- generated files ------------------------------------------------------------------------


def split_rows(rows: int, file_rows: int) -> list[int]:
    """Rows per file: as few files as ``file_rows`` allows, sizes as equal as possible."""
    files = -(-rows // file_rows)
    base, extra = divmod(rows, files)
    return [base + (1 if index < extra else 0) for index in range(files)]


def generate_candles(rows: int, seed: int) -> pl.DataFrame:
    """Daily candles from 0001-01-01: a log-normal random walk with consistent OHLC.

    The walk reflects between 1 and 100,000 USD: a free walk leaves ingest's price limit
    (1e9 USD) after a few million days, and those rows would be quarantined, not timed.
    """
    rng = np.random.default_rng(seed)
    walk, span = np.cumsum(rng.normal(0.0, 0.02, rows)) + math.log(100.0), math.log(1e5)
    close = np.exp(span - np.abs(np.mod(walk, 2 * span) - span))  # triangle-wave reflection
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0.0, 0.002, rows))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.01, rows)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.01, rows)))
    volume = close * rng.lognormal(13.0, 0.5, rows)
    dates = pl.date_range(FIRST_DAY, FIRST_DAY + dt.timedelta(days=rows - 1), "1d", eager=True)
    return pl.DataFrame(
        {
            "date": dates,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "market_cap": close * 1.2e8,
        }
    )


def write_with_bad_rows(frame: pl.DataFrame, path: Path, seed: int) -> int:
    """Write ``frame`` as CSV with ~1 in BAD_ROW_EVERY lines spoiled; return lines spoiled.

    Spoiled lines cycle through three kinds: junk in a number field (a parse reject), high
    below low (a validation reject) and a blank line (a parse reject, the line stays a line).
    """
    rng = np.random.default_rng(seed + 1)
    bad = max(1, frame.height // BAD_ROW_EVERY)
    positions = np.sort(rng.choice(frame.height, size=bad, replace=False))
    text = frame.with_columns(pl.col(pl.Float64).cast(pl.String)).with_columns(
        pl.col("date").cast(pl.String)
    )
    kind = np.arange(bad) % 3
    spoiled = pl.Series(positions[kind == 0])
    flipped = pl.Series(positions[kind == 1])
    blank = pl.Series(positions[kind == 2])
    index = pl.int_range(pl.len())
    text = text.with_columns(
        pl.when(index.is_in(spoiled.implode())).then(pl.lit("n/a?")).otherwise("volume")
        .alias("volume"),
        # high < low: swap the two on these rows.
        pl.when(index.is_in(flipped.implode())).then("low").otherwise("high").alias("high"),
        pl.when(index.is_in(flipped.implode())).then("high").otherwise("low").alias("low"),
    )
    lines = text.select(
        pl.when(index.is_in(blank.implode()))
        .then(pl.lit(""))
        .otherwise(pl.concat_str(pl.all(), separator=","))
    ).to_series()
    with path.open("w") as handle:
        handle.write(",".join(frame.columns) + "\n")
        handle.write(lines.str.join("\n").item())
        handle.write("\n")
    return bad


@dataclass
class GeneratedSize:
    rows: int
    files: list[Path]
    bad_lines: int
    bytes: int = field(default=0)


def generate_size(rows: int, file_rows: int, folder: Path) -> GeneratedSize:
    files, bad = [], 0
    for index, count in enumerate(split_rows(rows, file_rows), start=1):
        path = folder / f"bench_{rows}_{index}.csv"
        bad += write_with_bad_rows(generate_candles(count, seed=index), path, seed=index)
        files.append(path)
    return GeneratedSize(rows, files, bad, sum(p.stat().st_size for p in files))


# --- child: one size, timed stage by stage ----------------------------------------------------


def _peak_rss_mb() -> float:
    """This process's peak RSS so far (VmHWM). Not ru_maxrss: Linux carries that over from
    the parent across fork+exec, so the generator's memory would show up here."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def _reset_peak_rss() -> None:
    """Restart VmHWM from the current RSS (Linux >= 4.0), so a gate's peak is not counted
    against the next file's ingest; harmless where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass


def run_child(files: list[str], warehouse: str) -> dict:
    """Ingest ``files`` (one symbol each) through ``ingest_source``, every stage timed."""
    began = time.perf_counter()
    from seqlab.runners import ingest as pipeline

    import_s = time.perf_counter() - began
    timings = {stage: {"wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": 0.0} for stage in STAGES}

    def record(stage: str, wall: float, cpu: float, *, peak: bool = True) -> None:
        timings[stage]["wall_s"] += time.perf_counter() - wall
        timings[stage]["cpu_s"] += time.process_time() - cpu
        if peak:
            timings[stage]["peak_rss_mb"] = max(timings[stage]["peak_rss_mb"], _peak_rss_mb())

    def timed(stage: str, function):
        def wrapper(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                record(stage, wall, cpu)

        return wrapper

    def timed_reads(function):
        def wrapper(*args, **kwargs):
            files = function(*args, **kwargs)
            while True:  # a file is read when the next one is asked for
                wall, cpu = time.perf_counter(), time.process_time()
                raw = next(files, None)
                record("read", wall, cpu, peak=raw is not None)
                if raw is None:
                    return
                yield raw

        return wrapper

    # The pipeline looks these names up in its module at call time, so the path timed here
    # is exactly the one ``ingest_source`` runs.
    for stage, name in (
        ("parse", "parse_source"),
        ("validate", "validate_rows"),
        ("store", "store_parsed"),
        ("gate", "gate_dataset"),
    ):
        setattr(pipeline, name, timed(stage, getattr(pipeline, name)))
    pipeline.iter_sources = timed_reads(pipeline.iter_sources)

    summaries, ingest_peak, gate_peak, gx_import_s = [], 0.0, 0.0, 0.0
    gate = pipeline.gate_dataset

    def gate_after_rss(*args, **kwargs):
        nonlocal ingest_peak, gate_peak, gx_import_s
        ingest_peak = max(ingest_peak, _peak_rss_mb())
        if not gx_import_s:
            # The CLI imports great_expectations at its first gate too; a fixed per-process
            # cost, kept out of gate_s.
            began = time.perf_counter()
            import great_expectations  # noqa: F401

            gx_import_s = time.perf_counter() - began
        try:
            return gate(*args, **kwargs)
        finally:
            gate_peak = max(gate_peak, _peak_rss_mb())
            _reset_peak_rss()

    pipeline.gate_dataset = gate_after_rss
    for index, path in enumerate(files, start=1):
        options = pipeline.IngestOptions(
            symbol=f"BENCH-{index}", warehouse=Path(warehouse), today=LAST_DAY
        )
        summaries.extend(s.to_dict() for s in pipeline.ingest_source(path, options))
    return {
        "import_s": round(import_s, 3),
        "gx_import_s": round(gx_import_s, 3),
        "stages": {s: {k: round(v, 3) for k, v in t.items()} for s, t in timings.items()},
        "peak_rss_mb": round(ingest_peak, 1),
        "peak_rss_gate_mb": round(max(gate_peak, ingest_peak), 1),
        "summaries": summaries,
    }


# --- parent: generate, run each size in a fresh process, report -------------------------------


def measure_size(generated: GeneratedSize, folder: Path) -> dict:
    warehouse = folder / f"bench_{generated.rows}.duckdb"
    load_before = os.getloadavg()[0]
    command = [
        sys.executable, __file__, "--child", "--warehouse", str(warehouse),
        *[str(p) for p in generated.files],
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child for {generated.rows} rows failed:\n{done.stderr[-4000:]}")
    child = json.loads(done.stdout.strip().splitlines()[-1])
    stages = child["stages"]
    ingest_wall = sum(stages[s]["wall_s"] for s in INGEST_STAGES)
    ingest_cpu = sum(stages[s]["cpu_s"] for s in INGEST_STAGES)
    summaries = child["summaries"]
    totals = {
        key: sum(s[key] for s in summaries)
        for key in ("rows_read", "rows_valid", "rows_quarantined", "rows_inserted")
    }
    expected = (generated.rows, generated.bad_lines)
    if (totals["rows_read"], totals["rows_quarantined"]) != expected:
        raise RuntimeError(f"read/quarantined {totals}, generated rows/bad lines {expected}")
    warehouse.unlink(missing_ok=True)
    return {
        "rows": generated.rows,
        "files": len(generated.files),
        "file_mb": round(generated.bytes / 2**20, 1),
        "seconds": round(ingest_wall, 3),
        "cpu_seconds": round(ingest_cpu, 3),
        "rows_per_s": round(generated.rows / ingest_wall),
        "rows_per_cpu_s": round(generated.rows / ingest_cpu),
        "peak_rss_mb": child["peak_rss_mb"],
        "gate_s": stages["gate"]["wall_s"],
        "gate_cpu_s": stages["gate"]["cpu_s"],
        "seconds_with_gate": round(ingest_wall + stages["gate"]["wall_s"], 3),
        "peak_rss_gate_mb": child["peak_rss_gate_mb"],
        "stages": stages,
        "gx_import_s": child["gx_import_s"],
        **totals,
        "bad_lines_generated": generated.bad_lines,
        "gate_passed": all(s["gate_passed"] for s in summaries),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def print_table(results: list[dict]) -> None:
    header = (
        f"{'rows':>9} {'files':>5} {'MB':>6} | {'wall s':>7} {'cpu s':>7} {'rows/s':>9} "
        f"{'rows/cpu-s':>10} {'RSS MB':>7} | {'parse':>6} {'valid':>6} {'store':>6} | "
        f"{'gate s':>6} {'gate cpu':>8} {'RSS+gate':>8} | {'load':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        s = r["stages"]
        print(
            f"{r['rows']:>9,} {r['files']:>5} {r['file_mb']:>6.0f} | {r['seconds']:>7.2f} "
            f"{r['cpu_seconds']:>7.2f} {r['rows_per_s']:>9,} {r['rows_per_cpu_s']:>10,} "
            f"{r['peak_rss_mb']:>7.0f} | {s['parse']['wall_s']:>6.2f} "
            f"{s['validate']['wall_s']:>6.2f} {s['store']['wall_s']:>6.2f} | "
            f"{r['gate_s']:>6.2f} {r['gate_cpu_s']:>8.2f} {r['peak_rss_gate_mb']:>8.0f} | "
            f"{r['load_before']:>4.1f}>{r['load_after']:<4.1f}"
        )
    print(
        "wall/cpu s and rows/s: read+parse+validate+store; gate: the GX dataset suite incl. "
        "loading the stored prices; stage columns are wall seconds; load: 1-min load average."
    )
    per_row = ", ".join(
        f"{r['rows']:,}: {1e6 * r['seconds'] / r['rows']:.2f} wall / "
        f"{1e6 * r['cpu_seconds'] / r['rows']:.2f} cpu"
        for r in results
    )
    print(f"microseconds per row (fixed start-up costs dominate small sizes): {per_row}")
    if len(results) > 1:
        # Linear growth means the per-row cost stops falling once fixed costs are amortised:
        # compare the two largest sizes.
        small, large = sorted(results, key=lambda r: r["rows"])[-2:]
        ratio = (large["cpu_seconds"] / large["rows"]) / (small["cpu_seconds"] / small["rows"])
        print(
            f"CPU per row at {large['rows']:,} vs {small['rows']:,} rows: x{ratio:.2f} "
            "(1.00 = linear, above 1 = superlinear)"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in DEFAULT_SIZES),
        help="comma-separated row counts (default %(default)s)",
    )
    parser.add_argument(
        "--file-rows", type=int, default=2_500_000, help="most rows per generated file"
    )
    parser.add_argument("--workdir", type=Path, help="where files go (default: a temp folder)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warehouse", help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.file_rows <= MAX_FILE_ROWS:
        parser.error(f"--file-rows must be 1..{MAX_FILE_ROWS} (distinct days per symbol)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args.files, args.warehouse)))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results = []
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench_ingest_") as tmp:
        folder = Path(tmp)
        for rows in sizes:
            generated = generate_size(rows, args.file_rows, folder)
            results.append(measure_size(generated, folder))
            for path in generated.files:
                path.unlink()
            print(f"... {rows:,} rows done", file=sys.stderr, flush=True)
    print_table(results)
    if args.json:
        payload = {
            "sizes": results,
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "file_rows": args.file_rows,
        }
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
