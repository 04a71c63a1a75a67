"""Feature sets, train-only scaling and sliding windows (pure polars/numpy)."""

from __future__ import annotations

from seqlab.features.scaling import SCALER_KINDS, ScalerParams, fit_scaler
from seqlab.features.sets import FEATURE_SETS, TARGET_COLUMN, select_feature_columns
from seqlab.features.windows import FeatureData, FeatureSpec, build_features, build_latest_window

__all__ = [
    "FEATURE_SETS",
    "SCALER_KINDS",
    "TARGET_COLUMN",
    "FeatureData",
    "FeatureSpec",
    "ScalerParams",
    "build_features",
    "build_latest_window",
    "fit_scaler",
    "select_feature_columns",
]
