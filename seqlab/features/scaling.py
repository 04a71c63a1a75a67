"""Per-column affine scalers fitted on the training rows only.

Both kinds reduce to ``scaled = (value - offset) / scale``: min-max uses
``offset = min, scale = max - min``; standard uses ``offset = mean, scale = std``
(population, ddof=0). Keeping only (offset, scale) makes the parameters trivially
serializable and the inverse transform exact up to float64 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCALER_KINDS: tuple[str, ...] = ("minmax", "standard")


@dataclass(frozen=True)
class ScalerParams:
    """Fitted scaler: one (offset, scale) pair per column, in feature order."""

    kind: str
    columns: tuple[str, ...]
    offset: tuple[float, ...]
    scale: tuple[float, ...]

    def to_dict(self) -> dict:
        """Plain JSON-able form (lists of floats)."""
        return {
            "kind": self.kind,
            "columns": list(self.columns),
            "offset": list(self.offset),
            "scale": list(self.scale),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ScalerParams:
        """Inverse of :meth:`to_dict`."""
        return cls(
            kind=str(data["kind"]),
            columns=tuple(data["columns"]),
            offset=tuple(float(v) for v in data["offset"]),
            scale=tuple(float(v) for v in data["scale"]),
        )

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Scale a (N, F) float array whose columns follow ``self.columns``."""
        return (values - np.asarray(self.offset)) / np.asarray(self.scale)

    def inverse_column(self, values: np.ndarray, column: str) -> np.ndarray:
        """Map scaled values of one column (e.g. model outputs for close) back to USD."""
        index = self.columns.index(column)
        return np.asarray(values, dtype=np.float64) * self.scale[index] + self.offset[index]

    def transform_column(self, values: np.ndarray, column: str) -> np.ndarray:
        """Scale raw values of one column."""
        index = self.columns.index(column)
        return (np.asarray(values, dtype=np.float64) - self.offset[index]) / self.scale[index]


def fit_scaler(train_values: np.ndarray, columns: list[str], kind: str) -> ScalerParams:
    """Fit per-column parameters on the (N, F) training matrix.

    A constant column would divide by zero; its scale falls back to 1.0 so it maps to 0.
    """
    if kind not in SCALER_KINDS:
        raise ValueError(f"unknown scaler {kind!r}; allowed: {', '.join(SCALER_KINDS)}")
    if train_values.ndim != 2 or train_values.shape[1] != len(columns):
        raise ValueError(
            f"expected a (rows, {len(columns)}) matrix for columns {columns}, "
            f"got shape {train_values.shape}"
        )
    values = train_values.astype(np.float64, copy=False)
    if kind == "minmax":
        offset = values.min(axis=0)
        scale = values.max(axis=0) - offset
    else:
        offset = values.mean(axis=0)
        scale = values.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return ScalerParams(
        kind=kind,
        columns=tuple(columns),
        offset=tuple(float(v) for v in offset),
        scale=tuple(float(v) for v in scale),
    )
