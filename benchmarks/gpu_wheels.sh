#!/usr/bin/env bash
# Wheels the device machine lacks (it has torch, triton, numpy, pyarrow, fsspec, pytest): the
# versions installed here, built for its Python 3.12 on x86-64, into .whl/ (git-ignored).
# The device tool carries at most 64 MiB with the working tree: this prints the total.
set -eu
PY=${PY:-.venv/bin/python}
mkdir -p .whl
for name in polars polars-runtime-32 pydantic pydantic-core annotated-types typing-inspection; do
  version=$($PY -m pip show "$name" 2>/dev/null | awk '/^Version/{print $2}')
  [ -n "$version" ] || continue
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "$name==$version" 2>&1 | grep -v "^WARNING" || true
done
du -ch .whl/*.whl | tail -1
