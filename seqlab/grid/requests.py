"""Run identity and run requests: a spec's configs, one typed TrainConfig per request.

A run is keyed by (config, data_version, code_version, symbol): the same config trained on
the same prices by the same code is the same run, and its stored result is reused.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, replace
from pathlib import Path

import seqlab
from seqlab.engine.config import TrainConfig
from seqlab.engine.result import TrainResult
from seqlab.grid.spec import GridSpec, validate_spec

# The code whose change changes what a run computes.
_CODE_PACKAGES = ("engine", "models", "features")


def code_version() -> str:
    """Hash of the training code (engine, models, features) plus the package version."""
    root = Path(seqlab.__file__).parent
    digest = hashlib.sha256(seqlab.__version__.encode())
    for package in _CODE_PACKAGES:
        for path in sorted((root / package).glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build_grid(spec: GridSpec) -> list[TrainConfig]:
    """Expand a spec into one TrainConfig per combination, in a stable order."""
    validate_spec(spec)
    return [
        TrainConfig(
            cell=cell, depth=depth, norm=norm, feature_set=feature_set, seed=seed,
            epochs=spec.epochs, lookback=spec.lookback, hidden=spec.hidden,
            batch_size=spec.batch_size, lr=spec.lr, val_fraction=spec.val_fraction,
        )
        for cell, depth, norm, feature_set, seed in itertools.product(
            spec.cells, spec.depths, spec.norms, spec.feature_sets, spec.seeds
        )
    ]


def run_id(config: TrainConfig, *, data_version: str, code: str, symbol: str) -> str:
    text = json.dumps([config.run_key(), data_version, code, symbol])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class RunRequest:
    """Everything a worker needs to train one config; plain data, so it hashes and pickles.

    ``config`` is the run's identity (its device left ``auto``); ``device`` is where the
    device plan placed it, which changes where it trains, never what run it is.
    """

    run_id: str
    config: TrainConfig
    symbol: str
    data_version: str
    code_version: str
    prices_path: str  # Parquet snapshot of the prices (workers never open the warehouse)
    checkpoint_dir: str
    device: str = "auto"

    def placed_config(self) -> TrainConfig:
        """The config as the engine trains it: on this request's device."""
        return replace(self.config, device=self.device)

    def on_device(self, device: str) -> RunRequest:
        return replace(self, device=device)

    def to_dict(self) -> dict:
        """JSON-able (a shard flow run's parameters); inverse of :meth:`from_dict`."""
        return {**self.__dict__, "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> RunRequest:
        return cls(**{**data, "config": TrainConfig.from_dict(data["config"])})


def plan_requests(
    configs: list[TrainConfig], *, symbol: str, data_version: str, code: str, prices_path: str,
    checkpoint_dir: str,
) -> list[RunRequest]:
    """One request per config, identified by (config, data, code, symbol).

    Checkpoints go to ``checkpoint_dir/<symbol>-<data>-<code>/<run_key>.pt``: the engine
    names a file by its config, so the folder carries the rest of the run's identity (the
    same config trained on ETH and on BTC, or on new prices, were one file before).
    """
    checkpoint_dir = str(Path(checkpoint_dir) / f"{symbol}-{data_version[:16]}-{code[:16]}")
    return [
        RunRequest(
            run_id=run_id(c, data_version=data_version, code=code, symbol=symbol),
            config=c, symbol=symbol, data_version=data_version, code_version=code,
            prices_path=prices_path, checkpoint_dir=checkpoint_dir, device=c.device,
        )
        for c in configs
    ]


@dataclass(frozen=True)
class RunOutcome:
    """A finished request: the engine's result, or the error that stopped it."""

    request: RunRequest
    result: TrainResult | None
    error: str | None = None
    worker: str = ""


def describe(outcome: RunOutcome) -> str:
    """One log line's worth: the config and how it ended."""
    c = outcome.request.config
    what = f"{c.cell} depth {c.depth} norm {c.norm} {c.feature_set} seed {c.seed}"
    if outcome.error:
        return f"{what}: FAILED {outcome.error}"
    r = outcome.result
    if r.status == "diverged":
        return f"{what}: diverged at epoch {r.diverged_epoch}"
    chosen = "validation" if r.selected_on == "validation" else "last epoch"
    return (f"{what}: epoch {r.best_epoch} ({chosen}), test loss "
            f"{r.best_test_loss:.3g}, RMSE ${r.test_rmse_usd:,.2f}"
            f" vs persistence ${r.baseline_rmse_usd:,.2f} on {r.device}")
