#!/usr/bin/env bash
# One-shot GPU check, in two calls that each fit the device tool's 10-minute limit.
#
#   OUT=dir benchmarks/gpu_check.sh            # phase 1 (<= 9.5 min): CUDA tests (graphed, batched,
#                                              # fused natively), then bench_gpu.py: stream packs
#                                              # and fused packs in the same run, projection
#   PHASE=study OUT=dir benchmarks/gpu_check.sh  # phase 2: the exported study (.study/, see
#                                              # benchmarks/gpu_study.py) trained in fused packs
#                                              # until DEADLINE_S; results to $OUT/results
#
# Prepare here, before the GPU call (phase 2 also needs .study from `gpu_study.py export`):
#   benchmarks/gpu_wheels.sh                   # .whl/: polars, pydantic for Python 3.12
#   python benchmarks/bench_data.py .bench/prices.parquet
# and carry .whl, .bench (and .study). Each step has its own timeout, so a hang in one still
# leaves the others' output in $OUT; bench_gpu.py rewrites its JSON after every section.
set -u
OUT=${OUT:-/tmp/seqlab_gpu_check}
mkdir -p "$OUT"
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if ! $PY -c "import polars, pydantic" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}
export PYTHONUNBUFFERED=1
unset TRITON_INTERPRET  # natively compiled kernels here
if [ -f .bench/prices.parquet ]; then export SEQLAB_BENCH_PRICES=${SEQLAB_BENCH_PRICES:-$PWD/.bench/prices.parquet}; fi
if [ -d .bench/real ]; then export SEQLAB_REAL_DATA=${SEQLAB_REAL_DATA:-$PWD/.bench/real}; fi

if [ "${PHASE:-check}" = study ]; then
  echo "== gpu_study.py train (deadline ${DEADLINE_S:-500} s)"
  timeout ${STUDY_TIMEOUT:-560} $PY benchmarks/gpu_study.py train --dir .study --results /tmp/study-results \
    --pack-mode fused --deadline-s ${DEADLINE_S:-500} --json "$OUT/study_train.json" 2>&1 | tee "$OUT/study_train.txt"
  echo "train exit: ${PIPESTATUS[0]}"
  mkdir -p "$OUT/results" && cp /tmp/study-results/*.parquet "$OUT/results/" 2>/dev/null
  ls -la "$OUT/results"
  exit 0
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
$PY -c "import torch, triton, polars; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), 'triton', triton.__version__, 'polars', polars.__version__)" 2>&1 | tee -a "$OUT/gpu.txt"
echo "== pytest: fused kernels and engine natively, then the CUDA tests of the other engines"
timeout ${FUSED_TEST_TIMEOUT:-110} $PY -m pytest -q -rs -p no:cacheprovider \
  tests/models/test_triton_rnn.py tests/models/test_fused.py tests/engine/test_fused.py 2>&1 | tee "$OUT/pytest_cuda.txt"
echo "pytest (fused) exit: ${PIPESTATUS[0]}"
timeout ${CUDA_TEST_TIMEOUT:-80} $PY -m pytest -q -rs -p no:cacheprovider \
  tests/engine/test_graphed.py tests/engine/test_batched.py -k cuda 2>&1 | tee -a "$OUT/pytest_cuda.txt"
echo "pytest (cuda) exit: ${PIPESTATUS[0]}"
echo "== bench_gpu.py: stream packs and fused packs in one run"
timeout ${BENCH_TIMEOUT:-380} $PY benchmarks/bench_gpu.py --device cuda --json "$OUT/bench_gpu.json" \
  --calibration "$OUT/calibration.json" ${BENCH_ARGS:---skip correctness per_config batched --pack-sizes 8 32 --fused-sizes 8 72 216} \
  2>&1 | tee "$OUT/bench_gpu.txt"
echo "bench exit: ${PIPESTATUS[0]}"
