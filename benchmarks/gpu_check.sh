#!/usr/bin/env bash
# One-shot GPU check for the graphed/packed/batched engine (issue 7): CUDA tests, then bench_gpu.py.
# Usage (repo root): OUT=/some/dir benchmarks/gpu_check.sh   -- about 6 minutes on an H100/H200.
# Each step has its own timeout so a hang in one still leaves the others' output in $OUT.
# A machine without polars gets it from wheels in .whl/ (see the device notes); a machine
# without ../shared gets the real files from $SEQLAB_REAL_DATA (tests) and $SEQLAB_BENCH_PRICES.
set -u
OUT=${OUT:-/tmp/seqlab_gpu_check}
mkdir -p "$OUT"
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if ! $PY -c "import polars" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
$PY -c "import torch, polars; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), 'polars', polars.__version__)" 2>&1 | tee -a "$OUT/gpu.txt"
echo "== pytest (CUDA tests of test_graphed, test_batched, test_packs)"
timeout ${TEST_TIMEOUT:-150} $PY -m pytest -q -rs -p no:cacheprovider tests/engine/test_graphed.py tests/engine/test_batched.py tests/grid/test_plan.py -k cuda 2>&1 | tee "$OUT/pytest_cuda.txt"
echo "pytest exit: ${PIPESTATUS[0]}"
echo "== bench_gpu.py"
timeout ${BENCH_TIMEOUT:-330} $PY benchmarks/bench_gpu.py --device cuda --json "$OUT/bench_gpu.json" \
  --calibration "$OUT/calibration.json" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench_gpu.txt"
echo "bench exit: ${PIPESTATUS[0]}"
if [ "${SKIP_BENCH_TRAIN:-0}" != 1 ]; then
  echo "== bench_train.py --device cuda (delegates to bench_gpu.py; one per-config row)"
  timeout ${TRAIN_TIMEOUT:-120} $PY benchmarks/bench_train.py --device cuda --cells lstm --depths 1 --norms none \
    --json "$OUT/bench_train_cuda.json" 2>&1 | tail -n 25 | tee "$OUT/bench_train_cuda.txt"
  echo "bench_train exit: ${PIPESTATUS[0]}"
fi
