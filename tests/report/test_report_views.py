"""The report views (migrations 3-4) on constructed runs whose numbers are worked out by hand."""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from seqlab.report.dynamics import late_wobble
from seqlab.schemas.run_tables import (
    EPOCH_COLUMNS,
    FEATURE_COLUMNS,
    PREDICTION_COLUMNS,
    RUN_COLUMNS,
)
from seqlab.warehouse import WarehouseQueryError, WarehouseStoreError, connect, query
from seqlab.warehouse.reports import ReportRecord, latest_grid_id, record_report
from seqlab.warehouse.runs import link_runs, start_grid, store_run_results
from tests.conftest import recorded_reports

# A smooth curve: minimum 0.1, first within 10% (<= 0.11) at epoch 7.
SMOOTH = [1.0, 0.5, 0.3, 0.2, 0.15, 0.12, 0.11, 0.105, 0.1, 0.1]
# Spikes at epoch 5 (2.0 > 2 × median(1, .5, .4, .35) = 0.9) and epoch 9
# (0.9 > 2 × median of the 8 before = 2 × 0.375); epoch 2 (0.5 < 2 × 1.0) is not one.
SPIKY = [1.0, 0.5, 0.4, 0.35, 2.0, 0.3, 0.3, 0.3, 0.9, 0.3]


def run_row(run_id: str, grid_id: str, **values) -> dict:
    row = {name: None for name in RUN_COLUMNS}
    row.update(
        run_id=run_id, grid_id=grid_id, run_key=run_id, symbol="ETH", data_version="v1",
        code_version="c1", cell="gru", depth=1, norm="none", feature_set="close", seed=0,
        epochs=10, lookback=30, hidden=8, batch_size=64, lr=1e-3, config="{}", status="ok",
        best_test_loss=0.1, final_test_loss=0.1, test_rmse_usd=90.0, test_mae_usd=60.0,
        baseline_rmse_usd=100.0, baseline_mae_usd=50.0, test_directional_accuracy=0.5,
        baseline_directional_accuracy=0.4, feature_key="fk", best_val_loss=0.2,
        selected_on="validation",
    )  # fmt: skip
    row.update(values)
    return row


def frames_for(runs: list[dict], curves: dict[str, list[float | None]]) -> dict[str, pl.DataFrame]:
    epochs = [
        {"run_id": rid, "epoch": i + 1, "train_loss": loss, "test_loss": loss, "seconds": 0.1}
        for rid, curve in curves.items() for i, loss in enumerate(curve)
    ]  # fmt: skip
    predictions = [{"run_id": r["run_id"], "date": date(2025, 1, 1), "actual_usd": 1.0,
                    "predicted_usd": 1.0, "baseline_usd": 1.0} for r in runs]
    feature = {"feature_key": "fk", "symbol": "ETH", "data_version": "v1", "feature_set": "close",
               "fingerprint": json.dumps({"split": {}}), "scaler": "{}"}
    return {
        "runs": pl.DataFrame(runs, schema=RUN_COLUMNS),
        "epoch_metrics": pl.DataFrame(epochs, schema=EPOCH_COLUMNS),
        "predictions": pl.DataFrame(predictions, schema=PREDICTION_COLUMNS),
        "features": pl.DataFrame([feature], schema=FEATURE_COLUMNS),
    }


@pytest.fixture()
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "wh.duckdb"
    start_grid(path, grid_id="g1", symbol="ETH", preset=None, spec={}, spec_key="k",
               data_version="v1", code_version="c1", dispatch="local", n_configs=4)
    runs = [
        run_row("smooth", "g1"),
        run_row("spiky", "g1", seed=1, test_rmse_usd=110.0, test_mae_usd=40.0),
        run_row("layer", "g1", norm="layer", test_rmse_usd=80.0, best_val_loss=0.1),
        run_row("diverged", "g1", norm="batch", status="diverged", test_rmse_usd=None,
                test_mae_usd=None, best_test_loss=0.5, best_val_loss=0.6),
        run_row("failed", "g1", norm="batch", seed=1, status="failed",
                test_rmse_usd=None, test_mae_usd=None, best_test_loss=None, final_test_loss=None,
                baseline_rmse_usd=None, baseline_mae_usd=None, best_val_loss=None),
    ]  # fmt: skip
    curves = {"smooth": SMOOTH, "spiky": SPIKY, "layer": SMOOTH, "diverged": [0.9, 0.5, None]}
    store_run_results(path, "g1", frames_for(runs, curves))
    return path


def by_run(path: Path, view: str) -> dict[str, dict]:
    frame = query(path, f"SELECT * FROM {view} WHERE grid_id = 'g1'")
    return {row["run_id"]: row for row in frame.iter_rows(named=True)}


def test_convergence_losses_at_fixed_epochs(warehouse: Path) -> None:
    rows = by_run(warehouse, "convergence")
    smooth = rows["smooth"]
    assert smooth["epochs_recorded"] == 10
    assert smooth["train_loss_at_10"] == pytest.approx(0.1) == smooth["test_loss_at_10"]
    assert smooth["train_loss_at_50"] is None  # a 10-epoch run has no epoch 50
    assert smooth["min_test_loss"] == pytest.approx(0.1)
    # The diverged run's missing last epoch is left out: 2 finite epochs.
    diverged = rows["diverged"]
    assert diverged["epochs_recorded"] == 2 and diverged["test_loss_at_10"] is None
    assert "failed" not in rows  # no curve, no convergence


def test_stability_late_wobble_and_spikes(warehouse: Path) -> None:
    rows = by_run(warehouse, "stability")
    spiky, smooth = rows["spiky"], rows["smooth"]
    assert spiky["late_epochs"] == 5  # min(50, 10 // 2)
    for name, curve in (("spiky", SPIKY), ("smooth", SMOOTH)):
        expected = late_wobble(np.asarray(curve))
        assert rows[name]["late_test_wobble"] == pytest.approx(expected, rel=1e-9), name
        # by hand: std of the 4 epoch-to-epoch steps of log(loss) over the last 5 epochs
        steps = np.diff(np.log(curve[-5:]))
        assert expected == pytest.approx(steps.std(ddof=1) / math.sqrt(2))
    assert spiky["spike_count"] == 2 and list(spiky["spike_epochs"]) == [5, 9]
    assert smooth["spike_count"] == 0 and list(smooth["spike_epochs"]) == []
    assert rows["diverged"]["late_test_wobble"] is None  # 2 epochs are too few to judge


def test_leaderboard_means_over_seeds_and_ratio_to_persistence(warehouse: Path) -> None:
    board = query(warehouse, "SELECT * FROM leaderboard WHERE grid_id = 'g1' ORDER BY rank")
    rows = {row["norm"]: row for row in board.iter_rows(named=True)}
    none = rows["none"]
    assert none["n_runs"] == 2 and none["n_ok"] == 2
    assert none["test_rmse_usd"] == pytest.approx(100.0)  # (90 + 110) / 2
    assert none["rmse_ratio"] == pytest.approx(1.0) and none["beats_baseline"] is False
    assert none["mae_ratio"] == pytest.approx(50.0 / 50.0)
    layer = rows["layer"]  # ranked first on validation loss (0.1), not on its test RMSE
    assert layer["rank"] == 1 and layer["rmse_ratio"] == pytest.approx(0.8)
    assert layer["beats_baseline"] is True and layer["val_loss"] == pytest.approx(0.1)
    batch = rows["batch"]  # one diverged without metrics, one failed: counted, not scored
    assert (batch["n_runs"], batch["n_diverged"], batch["n_failed"]) == (2, 1, 1)
    assert batch["rmse_ratio"] is None and batch["rank"] == 3 and none["rank"] == 2
    assert batch["best_test_loss"] == pytest.approx(0.5)


def test_reused_runs_count_for_every_grid_that_links_them(warehouse: Path) -> None:
    start_grid(warehouse, grid_id="g2", symbol="ETH", preset=None, spec={}, spec_key="k",
               data_version="v1", code_version="c1", dispatch="local", n_configs=1)
    link_runs(warehouse, "g2", ["layer"], reused=True)
    board = query(warehouse, "SELECT * FROM leaderboard WHERE grid_id = 'g2'")
    assert board.height == 1 and board["rmse_ratio"][0] == pytest.approx(0.8)
    runs = query(warehouse, "SELECT * FROM report_runs WHERE grid_id = 'g2'")
    assert runs["reused"].to_list() == [True] and runs["trained_in_grid"].to_list() == ["g1"]
    assert latest_grid_id(warehouse) == "g2"


def test_claims_view_shows_the_latest_report_only(warehouse: Path) -> None:
    def claims(verdict: str) -> pl.DataFrame:
        return pl.DataFrame({
            "claim_no": [6], "claim": ["beats persistence"], "claim_verdict": [verdict],
            "comparison": ["model vs persistence"], "verdict": [verdict], "effect": [0.9],
            "ci_low": [0.8], "ci_high": [1.0], "effect_unit": ["ratio"], "n_pairs": [4],
            "method": ["bootstrap"], "note": [""],
        }, schema_overrides={"claim_no": pl.Int32})  # fmt: skip

    for i, verdict in enumerate(("inconclusive", "supported")):
        record = ReportRecord(
            report_id=f"rep{i}", grid_id="g1", out_dir="/x", html_path="/x/index.html",
            markdown_path="/x/report.md", figures=[], n_runs=5, claims_summary={"6": verdict},
            html_bytes=1, seconds=0.1, seqlab_version="0",
            built_at=datetime(2026, 1, 1, 0, i),
        )  # fmt: skip
        record_report(warehouse, record, claims(verdict))
    view = query(warehouse, "SELECT * FROM claims")
    assert view["report_id"].to_list() == ["rep1"] and view["verdict"].to_list() == ["supported"]
    assert recorded_reports(warehouse, "g1")["report_id"].to_list() == ["rep0", "rep1"]


def test_report_record_is_all_or_nothing(warehouse: Path) -> None:
    bad = pl.DataFrame({"claim_no": [1], "claim": [None]})  # claim is NOT NULL
    record = ReportRecord("r", "g1", "/x", "/x/i.html", "/x/r.md", [], 0, {}, 0, 0.0, "0")
    with pytest.raises(WarehouseStoreError, match="recording report r of grid g1"):
        record_report(warehouse, record, bad)
    assert recorded_reports(warehouse).is_empty()


def test_latest_grid_id_of_an_empty_warehouse_says_so(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    with connect(path):
        pass
    with pytest.raises(WarehouseQueryError, match="no grids yet"):
        latest_grid_id(path)
