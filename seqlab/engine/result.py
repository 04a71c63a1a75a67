"""What a training run returns: plain data, convertible to JSON-able dicts."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class EpochRecord:
    """One epoch's losses (MSE on the scaled target) and wall time, as passed to ``on_epoch``."""

    epoch: int  # 1-based
    train_loss: float  # mean over training samples of the per-batch losses
    test_loss: float
    val_loss: float | None
    seconds: float


@dataclass
class TrainResult:
    """A finished (or diverged) run. Loss lists hold one value per epoch run.

    ``best_epoch`` minimises the validation loss when a validation split exists, else it
    is the last finite epoch (``selected_on``: "validation" | "last_epoch"); the test loss
    never chooses. ``best_test_loss`` is the test loss at that epoch, and the USD metrics and predictions come from the model of that epoch. The
    ``baseline_*`` metrics score the persistence forecast (tomorrow = today) on the same
    test days. Model metrics are None when no epoch finished with a finite loss.
    """

    run_key: str
    config: dict
    status: str  # "ok" | "diverged"
    diverged_epoch: int | None
    epochs_run: int
    stopped_early: bool
    train_loss: list[float]
    test_loss: list[float]
    val_loss: list[float]
    epoch_seconds: list[float]
    final_test_loss: float | None
    best_test_loss: float | None
    best_epoch: int | None
    selected_on: str  # "validation" | "last_epoch"
    test_rmse_usd: float | None
    test_mae_usd: float | None
    test_mape_pct: float | None
    test_directional_accuracy: float | None
    baseline_rmse_usd: float
    baseline_mae_usd: float
    baseline_mape_pct: float
    baseline_directional_accuracy: float
    predictions: dict[str, list] = field(repr=False)  # date, actual_usd, predicted_usd, baseline_usd
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    n_parameters: int = 0
    best_val_loss: float | None = None
    feature_names: list[str] = field(default_factory=list)
    feature_key: str = ""
    feature_fingerprint: dict = field(default_factory=dict, repr=False)
    scaler: dict = field(default_factory=dict, repr=False)
    device: str = "cpu"
    determinism: dict = field(default_factory=dict)
    torch_version: str = ""
    seconds: float = 0.0
    checkpoint_path: str | None = None

    def to_dict(self) -> dict:
        """JSON-able dict; NaN/inf (e.g. the diverged epoch's loss) become None."""
        return _finite_or_none(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> TrainResult:
        """Rebuild from :meth:`to_dict` output; None losses stay None, unknown keys are ignored
        (results stored by a newer version still load)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _finite_or_none(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return value
