"""Grid specs: the one definition of every grid setting and the presets.

Checked before anything runs: every refusal is a GridError naming the allowed values. This
module loads neither torch nor polars, so a refused setting answers in a fraction of a
second; the configs a spec expands to are built in ``seqlab.grid.requests``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from typing import get_type_hints

from pydantic import ConfigDict, create_model

from seqlab.features.sets import FEATURE_SETS
from seqlab.models.cells import CELL_NAMES, NORMS

MAX_DEPTH = 8
MAX_VAL_FRACTION = 0.5


class GridError(ValueError):
    """A grid parameter out of range; the message lists the allowed values."""


@dataclass(frozen=True)
class GridSpec:
    """Every combination of cells × depths × norms × feature sets × seeds, with shared settings."""

    cells: tuple[str, ...] = ("rnn", "lstm", "gru")
    depths: tuple[int, ...] = (1, 2)
    norms: tuple[str, ...] = ("none", "batch", "layer")
    feature_sets: tuple[str, ...] = ("close", "all")
    seeds: tuple[int, ...] = (0,)
    epochs: int = 12
    lookback: int = 30
    hidden: int = 32
    batch_size: int = 64
    lr: float = 1e-3
    # Share of days before the test period that picks each run's epoch (0: the last epoch).
    val_fraction: float = 0.1

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def n_configs(self) -> int:
        """How many configs the grid expands to (one per combination)."""
        return math.prod(len(getattr(self, name)) for name in _AXES)

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


# The settings a grid takes every combination of.
_AXES = ("cells", "depths", "norms", "feature_sets", "seeds")

PRESETS: dict[str, GridSpec] = {
    # Small enough for 2 CPU cores in a few minutes: the `make run` default.
    "quick": GridSpec(),
    # The reference study: 3 cells × 4 depths × 3 norms × 2 feature sets × 3 seeds = 216 runs.
    "study": GridSpec(
        cells=("rnn", "lstm", "gru"), depths=(1, 2, 3, 4), norms=("none", "batch", "layer"),
        feature_sets=("close", "all"), seeds=(0, 1, 2), epochs=2000, lookback=30, hidden=64,
    ),
    # A smoke grid for tests and demos: one config per cell, a couple of epochs.
    "tiny": GridSpec(
        cells=("rnn", "lstm", "gru"), depths=(1,), norms=("none",), feature_sets=("close",),
        seeds=(0,), epochs=2, hidden=8,
    ),
}


def _override_type(spec_type):
    """A GridSpec field's type as an optional flow/CLI parameter: tuples arrive as lists."""
    if getattr(spec_type, "__origin__", None) is tuple:
        return list[spec_type.__args__[0]] | None
    return spec_type | None


# The flows' and the CLI's one grid parameter: a preset and any GridSpec setting replacing the
# preset's value (None keeps it). Its fields are generated from GridSpec, so a grid setting is
# declared once; Prefect renders it as a form and checks the types before a run starts, and
# resolve_spec checks the values (GridError names the allowed ones).
GridParams = create_model(
    "GridParams",
    __config__=ConfigDict(extra="forbid", frozen=True),
    __doc__="A grid preset and the settings that replace its values (None keeps the preset's).",
    preset=(str, "quick"),
    **{name: (_override_type(kind), None) for name, kind in get_type_hints(GridSpec).items()},
)


def resolve_spec(params: GridParams | None = None) -> GridSpec:
    """The preset with ``params``' settings applied, validated."""
    params = params if params is not None else GridParams()
    if params.preset not in PRESETS:
        raise GridError(f"unknown preset {params.preset!r}; allowed: {', '.join(PRESETS)}")
    changes = {
        name: tuple(value) if isinstance(value, list) else value
        for name, value in params.model_dump(exclude={"preset"}).items()
        if value is not None
    }
    spec = replace(PRESETS[params.preset], **changes)
    validate_spec(spec)
    return spec


def _check_members(name: str, values: tuple, allowed) -> None:
    if not values:
        raise GridError(f"{name} is empty; allowed: {', '.join(map(str, allowed))}")
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise GridError(f"unknown {name} {unknown}; allowed: {', '.join(map(str, allowed))}")


def _check_positive(name: str, value, upper=None) -> None:
    if isinstance(value, bool) or not value > 0 or (upper is not None and value > upper):
        bound = f" and <= {upper}" if upper is not None else ""
        raise GridError(f"{name} must be > 0{bound}, got {value!r}")


def validate_spec(spec: GridSpec) -> None:
    """Refuse a grid before anything runs; every message names the allowed values."""
    _check_members("cells", spec.cells, CELL_NAMES)
    _check_members("norms", spec.norms, NORMS)
    _check_members("feature_sets", spec.feature_sets, tuple(FEATURE_SETS))
    _check_members("depths", spec.depths, range(1, MAX_DEPTH + 1))
    if not spec.seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in spec.seeds):
        raise GridError(f"seeds must be non-negative integers, got {list(spec.seeds)}")
    for name in ("epochs", "lookback", "hidden", "batch_size"):
        _check_positive(name, getattr(spec, name))
    _check_positive("lr", spec.lr, upper=1.0)
    if isinstance(spec.val_fraction, bool) or not 0.0 <= spec.val_fraction <= MAX_VAL_FRACTION:
        raise GridError(f"val_fraction must be in [0, {MAX_VAL_FRACTION}], got {spec.val_fraction!r}")
    for name in _AXES:
        values = getattr(spec, name)
        if len(set(values)) != len(values):
            raise GridError(f"{name} has duplicates: {list(values)}")


def check_spec_fits_data(spec: GridSpec, n_days: int, test_fraction: float = 0.2) -> None:
    """Refuse a lookback the stored prices cannot fill (train, validation and test all need
    windows)."""
    test_days = int(n_days * test_fraction)
    val_days = round(n_days * spec.val_fraction)
    train_days = n_days - test_days - val_days
    if spec.lookback + 1 >= train_days or test_days < 2 or (spec.val_fraction > 0 and val_days < 1):
        longest = max(train_days - 2, 0)
        raise GridError(
            f"lookback {spec.lookback} is too long for {n_days} days of prices "
            f"({train_days} train days); allowed: lookback <= {longest}"
        )
