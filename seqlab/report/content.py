"""Everything a grid report says, computed once from the warehouse frames (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from seqlab.report.claims import Claim, assess_claims
from seqlab.report.context import (
    DataSummary,
    Reproducibility,
    summarize_data,
    summarize_reproducibility,
)
from seqlab.report.dynamics import run_dynamics_frame
from seqlab.report.stats import Verdict
from seqlab.report.tables import best_per_cell, best_run_of, config_dynamics, run_dynamics
from seqlab.report.track_record import TrackRecord, cumulative_errors, track_records

REQUIRED_FRAMES = (
    "runs", "leaderboard", "convergence", "stability", "epochs", "predictions", "features",
    "ingestions", "quarantine", "validations", "datasets",
)  # fmt: skip


@dataclass(frozen=True)
class ReportContent:
    grid: dict
    data: DataSummary
    reproducibility: Reproducibility
    runs: pl.DataFrame
    leaderboard: pl.DataFrame
    run_dynamics: pl.DataFrame
    config_dynamics: pl.DataFrame
    epochs: pl.DataFrame
    forecasts: list[tuple[dict, pl.DataFrame]]  # (best run of a cell, its predictions)
    claims: list[Claim]
    built_at: datetime
    claims_left_out: int = 0  # runs selected on the test loss: they decide no claim
    divergence: tuple[dict, ...] = ()  # per norm and per cell: diverged runs of all
    # The symbol's forecast ledger (optional frames "forecast_scores", "latest_forecasts").
    track_records: list[TrackRecord] = field(default_factory=list)
    track_running: pl.DataFrame = field(default_factory=pl.DataFrame)
    latest_forecasts: pl.DataFrame = field(default_factory=pl.DataFrame)

    @property
    def grid_id(self) -> str:
        return self.grid["grid_id"]

    @property
    def best(self) -> dict | None:
        """The top-ranked config: lowest mean validation loss (None without a validation split)."""
        ranked = self.leaderboard.filter(pl.col("val_loss").is_not_null(),
                                         pl.col("test_rmse_usd").is_not_null()).sort("rank")
        return ranked.row(0, named=True) if ranked.height else None

    @property
    def beating_baseline(self) -> tuple[int, int]:
        """(configs whose mean RMSE beats persistence, configs with metrics)."""
        scored = self.leaderboard.filter(pl.col("rmse_ratio").is_not_null())
        return int(scored["beats_baseline"].sum()), scored.height

    def verdict_counts(self) -> dict[str, int]:
        counts = {v.value: 0 for v in Verdict}
        for claim in self.claims:
            counts[claim.verdict.value] += 1
        return counts


def assemble_content(grid: dict, frames: dict[str, pl.DataFrame], built_at: datetime) -> ReportContent:
    """Tables, forecasts and claim verdicts for one grid; raises ValueError on missing frames."""
    missing = [name for name in REQUIRED_FRAMES if name not in frames]
    if missing:
        raise ValueError(f"report of grid {grid.get('grid_id')} lacks frames {missing}")
    runs, leaderboard = frames["runs"], frames["leaderboard"]
    dynamics = run_dynamics(runs, run_dynamics_frame(frames["epochs"]), frames["stability"])
    forecasts = []
    for config in best_per_cell(leaderboard).iter_rows(named=True):
        run = best_run_of(runs, config)
        if run is None:
            continue
        predictions = frames["predictions"].filter(pl.col("run_id") == run["run_id"]).sort("date")
        if predictions.height:
            forecasts.append((run, predictions))
    assessment = assess_claims(runs, frames["epochs"], frames["predictions"])
    scores = frames.get("forecast_scores", pl.DataFrame())
    return ReportContent(
        grid=grid,
        data=summarize_data(grid, frames),
        reproducibility=summarize_reproducibility(grid, runs),
        runs=runs,
        leaderboard=leaderboard,
        run_dynamics=dynamics,
        config_dynamics=config_dynamics(dynamics),
        epochs=frames["epochs"],
        forecasts=forecasts,
        claims=assessment.claims,
        built_at=built_at,
        claims_left_out=assessment.left_out,
        divergence=assessment.divergence,
        track_records=track_records(scores),
        track_running=cumulative_errors(scores),
        latest_forecasts=frames.get("latest_forecasts", pl.DataFrame()),
    )
