# The two commands a fresh clone needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.seqlab-installed

.PHONY: setup run shell ui test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first: the pinned CPU wheel; the project's range then installs nothing more.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/seqlab run
	@echo "next: $(BIN)/seqlab --help (or 'source $(BIN)/activate', or 'make shell', then plain 'seqlab ...')"

# A shell with .venv/bin first on PATH: `seqlab` and `prefect` as the README types them.
shell: setup
	@echo "seqlab's environment ($(VENV)) is active in this shell; 'exit' leaves it"
	@. $(BIN)/activate && exec $${SHELL:-/bin/sh} -i

# The Prefect UI at http://127.0.0.1:4200 (keep it in its own terminal; Ctrl-C stops it).
ui: setup
	$(BIN)/prefect server start --host 127.0.0.1

test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_train.py

clean:
	rm -rf $(VENV) data .pytest_cache
