"""A grid trained with pack_mode="fused" stores what the per-config engine stores.

Generated prices (200 days) keep the interpreted kernels quick; the engine's equality on
real prices is tests/engine/test_fused.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import torch

from seqlab.config import Settings
from seqlab.grid import GridParams, resolve_spec
from seqlab.models import triton_rnn
from seqlab.runners.grid import run_grid
from seqlab.runners.ingest import IngestOptions, ingest_source
from seqlab.sample import SYNTHETIC_SYMBOL, SampleSpec, write_sample_csv
from seqlab.warehouse import query

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
GRID = {"cells": ["rnn", "gru", "lstm"], "depths": [1, 2], "norms": ["batch"],
        "feature_sets": ["close", "all"], "seeds": [0], "epochs": 2, "hidden": 16,
        "lookback": 5}
COMPARED = ["train_loss", "test_loss", "val_loss"]

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(triton_rnn.device_unsupported(DEVICE) is not None,
                       reason=str(triton_rnn.device_unsupported(DEVICE))),
]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fused-grid")
    csv = write_sample_csv(folder / "prices.csv", SampleSpec(days=200, gaps=0))
    warehouse = folder / "w.duckdb"
    ingest_source(str(csv), IngestOptions(symbol=SYNTHETIC_SYMBOL, warehouse=warehouse,
                                          docs_dir=folder / "docs"))
    return warehouse


def _grid(ingested: Path, folder: Path, **packing) -> pl.DataFrame:
    folder.mkdir()
    shutil.copyfile(ingested, folder / "w.duckdb")
    settings = Settings(folder / "w.duckdb", folder / "out")
    done = run_grid(resolve_spec(GridParams(**GRID)), settings, symbol=SYNTHETIC_SYMBOL,
                    log=lambda line: None, **packing)
    assert (done.trained, done.failed) == (12, 0)
    runs = query(settings.warehouse, "SELECT run_id, determinism, best_epoch, test_rmse_usd "
                                     "FROM runs ORDER BY run_id")
    epochs = query(settings.warehouse, "SELECT run_id, epoch, train_loss, test_loss, val_loss "
                                       "FROM epoch_metrics ORDER BY run_id, epoch")
    return runs, epochs


def test_a_fused_grid_stores_what_the_per_config_engine_stores(ingested, tmp_path):
    fused_runs, fused_epochs = _grid(ingested, tmp_path / "fused", pack_mode="fused", pack_size=12)
    plain_runs, plain_epochs = _grid(ingested, tmp_path / "plain", pack_size=1)
    modes = {json.loads(d)["pack"]["mode"] for d in fused_runs["determinism"]}
    assert modes == {"fused"}
    sizes = {json.loads(d)["pack"]["size"] for d in fused_runs["determinism"]}
    assert sizes == {12}
    assert fused_runs["run_id"].to_list() == plain_runs["run_id"].to_list()
    assert fused_runs["best_epoch"].to_list() == plain_runs["best_epoch"].to_list()
    assert fused_epochs.select("run_id", "epoch").equals(plain_epochs.select("run_id", "epoch"))
    for column in COMPARED:
        ours, theirs = fused_epochs[column].to_numpy(), plain_epochs[column].to_numpy()
        assert ours == pytest.approx(theirs, rel=1e-4), column
    assert fused_runs["test_rmse_usd"].to_numpy() == pytest.approx(
        plain_runs["test_rmse_usd"].to_numpy(), rel=1e-4)
