#!/usr/bin/env bash
# One-shot GPU check for the graphed/packed engine (issue 7): CUDA tests, then bench_gpu.py.
# Usage (repo root): OUT=/some/dir benchmarks/gpu_check.sh   -- about 6-8 minutes on an H100/H200.
# Each step has its own timeout so a hang in one still leaves the other's output in $OUT.
set -u
OUT=${OUT:-/tmp/seqlab_gpu_check}
mkdir -p "$OUT"
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" 2>&1 | tee -a "$OUT/gpu.txt"
echo "== pytest (CUDA tests of tests/test_graphed.py)"
timeout 180 $PY -m pytest -q -rs -p no:cacheprovider tests/test_graphed.py -k cuda 2>&1 | tee "$OUT/pytest_graphed.txt"
echo "pytest exit: ${PIPESTATUS[0]}"
echo "== bench_gpu.py"
timeout 420 $PY benchmarks/bench_gpu.py --device cuda --json "$OUT/bench_gpu.json" 2>&1 | tee "$OUT/bench_gpu.txt"
echo "bench exit: ${PIPESTATUS[0]}"
