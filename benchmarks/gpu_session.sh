#!/usr/bin/env bash
# The study from one GPU loan (15 minutes of device time, machine start included, at most
# 10 minutes a call): a proof of the fused engine, then the study itself, in at most two calls.
#
# Here, once (the prepared folder .gpu/ and the wheels .whl/ are git-ignored; both travel):
#   benchmarks/gpu_session.sh prepare [--warehouse W.duckdb] [--symbol ETH]
#       wheels (benchmarks/gpu_wheels.sh), the study exported from the warehouse into .gpu/study
#       (seqlab.grid.carried: validated prices snapshot + work.json), refused on synthetic prices
#
# On the GPU, call 1 (carry .whl and .gpu; timeout_s 600):
#   benchmarks/gpu_session.sh
#       proof (~4 min, $OUT/proof.json rewritten after every part), then the study in fused
#       packs until SESSION_DEADLINE_S (default 570 s after the start) less a copy margin: no
#       pack starts that its cell's measured epoch time says cannot finish, and each finished
#       pack's four Parquet files and study.json are copied to $OUT at once.
# On the GPU, call 2 at once while the machine is warm (a fresh start costs minutes, and none
# starts with under 4 minutes left), the same command with what is left of the loan:
#   SESSION_DEADLINE_S=<budget_left_s - 40> benchmarks/gpu_session.sh
#       the proof is skipped once done (found in /tmp on a warm machine or in .gpu/results),
#       the study resumes from the results kept on the machine or carried back in.
# Here, after each call, with the files that came back (a later loan resumes from them):
#   benchmarks/gpu_session.sh bring-back FILES_AT     # into .gpu/results (carried next time)
# Here, after the last call: bring-back, then
#   python benchmarks/gpu_study.py import --warehouse W --dir .gpu/study --results .gpu/results
#
# Dry run on a CPU (Triton's interpreter, tiny sizes, a scratch warehouse of real prices):
#   SEQLAB_GPU_DRY_RUN=1 benchmarks/gpu_session.sh
#       prepare, call 1 (proof, then a study stopped by its deadline after one pack),
#       bring-back, call 2 on a "fresh machine" (proof skipped, study resumed and finished),
#       every file checked. SEQLAB_GPU_DRY_DIR keeps its folder (default: a temporary one).
set -u
cd "$(dirname "$0")/.."
START=$(date +%s)
PREPARED=${SEQLAB_GPU_DIR:-.gpu}
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 TRITON_DEFAULT_FP_FUSION=${TRITON_DEFAULT_FP_FUSION:-1}
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}
FRAMES="runs.parquet epoch_metrics.parquet predictions.parquet features.parquet"

bring_back() {  # the files a call returned, into the prepared folder that the next call carries
  mkdir -p "$PREPARED/results"
  for name in proof.json $FRAMES; do
    if [ -f "$1/$name" ]; then cp "$1/$name" "$PREPARED/results/$name"; fi
  done
  ls -la "$PREPARED/results"
}

proof_done() {  # a complete proof.json at $1
  [ -f "$1" ] && $PY -c "import json,sys; sys.exit(0 if json.load(open('$1')).get('complete') else 1)"
}

session() {  # one GPU call: proof unless done, then the study to the deadline
  local deadline_at=$((START + ${SESSION_DEADLINE_S:-570}))
  local STATE=${SEQLAB_GPU_STATE:-/tmp/seqlab-gpu}  # on the GPU machine: kept while it is warm
  mkdir -p "$OUT" "$STATE"
  exec > >(tee -a "$OUT/session.log") 2>&1
  if [ -d "$STATE/site" ]; then export PYTHONPATH=$PYTHONPATH:$STATE/site; fi  # a warm machine
  if ! $PY -c "import polars, pydantic" 2>/dev/null; then
    ls .whl/*.whl >/dev/null 2>&1 || { echo "no polars/pydantic and no .whl/ wheels"; exit 2; }
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$STATE/site" .whl/*.whl || exit 2
    export PYTHONPATH=$PYTHONPATH:$STATE/site
  fi
  [ -f "$PREPARED/study/work.json" ] || { echo "no $PREPARED/study: run 'prepare' here first"; exit 2; }
  echo "== session $(date -u +%FT%TZ): deadline in $((deadline_at - $(date +%s))) s, out $OUT"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  if proof_done "$STATE/proof.json"; then
    cp "$STATE/proof.json" "$OUT/proof.json"; echo "== proof: done earlier on this machine"
  elif proof_done "$PREPARED/results/proof.json"; then
    cp "$PREPARED/results/proof.json" "$OUT/proof.json"; echo "== proof: done in an earlier call"
  else
    local limit=$(( ${PROOF_TIMEOUT_S:-300} < deadline_at - $(date +%s) - 60 ? ${PROOF_TIMEOUT_S:-300} : deadline_at - $(date +%s) - 60 ))
    timeout "$limit" $PY benchmarks/gpu_session.py proof --dir "$PREPARED" --out "$OUT"
    echo "proof exit: $? (limit ${limit} s)"
    cp "$OUT/proof.json" "$STATE/proof.json" 2>/dev/null
  fi
  local left=$((deadline_at - $(date +%s)))
  timeout "$((left > 5 ? left : 5))" $PY benchmarks/gpu_session.py study --dir "$PREPARED" --out "$OUT" \
    --results "$STATE/results" --deadline-at "$deadline_at" --copy-margin-s "${COPY_MARGIN_S:-20}" \
    --pack-size "${SESSION_PACK_SIZE:-0}" ${STUDY_ARGS:-}
  echo "study exit: $? at $(( $(date +%s) - START )) s"
  ls -la "$OUT"
}

dry_run() {  # both calls on this CPU, tiny sizes, every file checked
  local root=${SEQLAB_GPU_DRY_DIR:-$(mktemp -d)}
  # A program per member and 64 rows: the interpreter's cost is per program.
  export TRITON_INTERPRET=1 SEQLAB_GPU_DRY_RUN=1 SEQLAB_GPU_DIR=$root/prepared SEQLAB_FUSED_BLOCK_B=64
  PREPARED=$root/prepared
  local warehouse=$root/warehouse.duckdb
  if [ -n "${SEQLAB_GPU_DRY_WAREHOUSE:-}" ]; then
    cp "$SEQLAB_GPU_DRY_WAREHOUSE" "$warehouse"
  elif [ ! -f "$warehouse" ]; then  # real prices, few of them: the newest 150 CoinMarketCap days
    head -n 151 "${SEQLAB_REAL_DATA:-../shared/data/real}/eth_daily_coinmarketcap_2024-11-03_2025-12-06.csv" \
      > "$root/eth_daily_coinmarketcap_newest150.csv"
    $PY -c "
import sys; from pathlib import Path
from seqlab.runners.ingest import IngestOptions, ingest_source
ingest_source(sys.argv[1], IngestOptions(symbol='ETH', warehouse=Path(sys.argv[2])))" \
      "$root/eth_daily_coinmarketcap_newest150.csv" "$warehouse" >/dev/null \
      || { echo "dry run: ingest failed"; exit 1; }
  fi
  rm -rf "$PREPARED" "$root/out1" "$root/out2" "$root/machine1" "$root/machine2"
  SEQLAB_OUTPUT_DIR=$root/output $PY benchmarks/gpu_session.py prepare --dir "$PREPARED" \
    --warehouse "$warehouse" || exit 1
  # Call 1: the study's budget leaves room for 1.5 packs, so the deadline stops it after one.
  ( OUT=$root/out1 SEQLAB_GPU_STATE=$root/machine1 STUDY_ARGS="--budget-packs 1.5" session ) || exit 1
  bring_back "$root/out1" >/dev/null
  # Call 2 on a fresh machine: nothing in its /tmp, the results carried back in.
  ( START=$(date +%s) OUT=$root/out2 SEQLAB_GPU_STATE=$root/machine2 session ) || exit 1
  $PY - "$root" <<'EOF' || exit 1
import json, sys
from pathlib import Path
import polars as pl
root = Path(sys.argv[1])
work = json.loads((root / "prepared/study/work.json").read_text())
first, second = (json.loads((root / f"out{i}/study.json").read_text()) for i in (1, 2))
proof = json.loads((root / "out1/proof.json").read_text())
assert proof["complete"], proof
assert first["trained"] >= 1 and first["left"] >= 1 and "would end after" in first["stopped"], first
assert second["earlier"] == first["trained"] and second["left"] == 0, second
runs = pl.read_parquet(root / "out2/runs.parquet")
assert runs.height == len(work["requests"]) and set(runs["status"]) == {"ok"}, runs
for out in ("out1", "out2"):
    names = sorted(p.name for p in (root / out).iterdir())
    assert len(names) <= 8 and not any(n.endswith(".tmp") for n in names), names
print(f"dry run ok: call 1 trained {first['trained']} and stopped ({first['stopped']}), "
      f"call 2 resumed and trained {second['trained']}; proof parts "
      f"{proof['seconds']}; files {names}")
EOF
  echo "dry run folder: $root ($(( $(date +%s) - START )) s)"
}

case "${1:-session}" in
  prepare)
    shift
    if [ "${SEQLAB_GPU_DRY_RUN:-0}" != 1 ]; then PY=$PY benchmarks/gpu_wheels.sh || exit 1; fi
    $PY benchmarks/gpu_session.py prepare --dir "$PREPARED" "$@" || exit 1
    du -sh .whl "$PREPARED" 2>/dev/null  # the device tool carries at most 64 MiB in all
    ;;
  bring-back) bring_back "$2" ;;
  session|"")
    if [ "${SEQLAB_GPU_DRY_RUN:-0}" = 1 ]; then dry_run; else OUT=${OUT:?set OUT} session; fi ;;
  *) echo "usage: $0 [prepare [--warehouse W] [--symbol S] | bring-back FILES_AT]"; exit 2 ;;
esac
