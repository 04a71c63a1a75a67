"""The run's identity: every knob that changes a training run, hashed into ``run_key``."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, fields

from seqlab.features.windows import FeatureSpec
from seqlab.models.rnn import ModelConfig

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
_INT_FIELDS = ("depth", "hidden", "lookback", "horizon", "seed", "epochs", "batch_size")
_FLOAT_FIELDS = ("dropout", "test_fraction", "val_fraction", "lr", "weight_decay")


@dataclass(frozen=True)
class TrainConfig:
    # model
    cell: str = "lstm"  # rnn | lstm | gru
    depth: int = 1  # stacked recurrent layers
    hidden: int = 64  # units per layer
    norm: str = "none"  # none | batch | layer
    dropout: float = 0.0  # between recurrent layers
    # features
    feature_set: str = "close"  # close | all
    lookback: int = 30  # days per input window
    horizon: int = 1  # days ahead of the window's last day
    test_fraction: float = 0.2  # last share of days used as test targets
    val_fraction: float = 0.1  # validation tail before the test period: picks the epoch
    scaler: str = "minmax"  # minmax | standard, fitted on train rows only
    # optimisation
    seed: int = 0  # model init, dropout and batch order
    epochs: int = 2000  # the study's length
    batch_size: int = 64
    lr: float = 1e-3  # Adam
    weight_decay: float = 0.0  # Adam's L2 term
    grad_clip: float | None = None  # max global grad norm, None = no clipping
    early_stopping_patience: int | None = None  # epochs without improvement, None = off
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    def __post_init__(self) -> None:
        # Normalise numeric types so 0 and 0.0 hash alike.
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value:
                raise ValueError(f"{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in _FLOAT_FIELDS:
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.grad_clip is not None:
            object.__setattr__(self, "grad_clip", float(self.grad_clip))
            if not self.grad_clip > 0:
                raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip}")
        if self.early_stopping_patience is not None:
            object.__setattr__(self, "early_stopping_patience", int(self.early_stopping_patience))
            if self.early_stopping_patience < 1:
                raise ValueError(
                    f"early_stopping_patience must be >= 1 or None, got {self.early_stopping_patience}"
                )
            if self.val_fraction == 0:
                # Without a validation split the only loss left to stop on is the test loss.
                raise ValueError("early_stopping_patience needs val_fraction > 0: stopping "
                                 "on the test loss would select on the test set")
        self.model_config(n_features=1)  # validates cell, depth, hidden, norm, dropout
        self.feature_spec()  # validates lookback, horizon, fractions, scaler
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not _DEVICE_PATTERN.match(self.device):
            raise ValueError(f"unknown device {self.device!r}; allowed: auto, cpu, cuda, cuda:N")

    def model_config(self, n_features: int) -> ModelConfig:
        """The model part, for data with ``n_features`` input channels."""
        return ModelConfig(
            cell=self.cell, depth=self.depth, hidden=self.hidden, norm=self.norm,
            dropout=self.dropout, n_features=n_features,
        )

    def feature_spec(self) -> FeatureSpec:
        """The feature part."""
        return FeatureSpec(
            feature_set=self.feature_set, lookback=self.lookback, horizon=self.horizon,
            test_fraction=self.test_fraction, val_fraction=self.val_fraction, scaler=self.scaler,
        )

    def to_dict(self) -> dict:
        """Plain JSON-able dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing keys take defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)

    def run_key(self) -> str:
        """Stable 16-hex-digit identity: sha256 of the sorted JSON of all fields."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
