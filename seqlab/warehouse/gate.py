"""The one gate every trainer passes: `seqlab train`, `seqlab run` and the train-grid flow.

Training may use a symbol's prices only when the latest validation of exactly those prices
passed every critical expectation. "Exactly those" is checked by hashing the prices read
here, not by trusting the ``datasets`` row: prices stored without a validation of their
content (an ingest killed between its store and its dataset checks, a hand edit) are
refused like prices that failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from seqlab.warehouse.connection import connect
from seqlab.warehouse.readers import read_prices
from seqlab.warehouse.validations import GateStatus, gate_of_version
from seqlab.warehouse.versioning import frame_data_version


class GateClosed(RuntimeError):
    """Training refused: the prices' latest validation failed, or they were never validated."""


@dataclass(frozen=True)
class ValidatedPrices:
    """Prices a trainer may use, and the validation that let them through."""

    prices: pl.DataFrame
    gate: GateStatus

    @property
    def data_version(self) -> str:
        return self.gate.data_version or ""


def require_validated(path: Path, symbol: str, *, timeout_s: float = 10.0) -> ValidatedPrices:
    """The symbol's prices, or GateClosed saying in one line why training may not use them."""
    path = Path(path)
    if not path.exists():
        raise GateClosed(_refusal(symbol, path, "the warehouse does not exist yet; ingest first"))
    with connect(path, read_only=True, timeout_s=timeout_s) as con:
        prices = read_prices(con, symbol)
        if prices.is_empty():
            raise GateClosed(_refusal(symbol, path, f"no prices are stored for {symbol}; ingest first"))
        gate = gate_of_version(con, symbol, frame_data_version(prices))
    if gate.passed:
        return ValidatedPrices(prices, gate)
    if gate.validation_id is None:  # never validated at this content
        hint = ("they were stored without a recorded validation (an ingest stopped midway?); "
                "ingest the source again to validate them")
    else:
        hint = "fix the data and ingest it again (the checks run on every ingest)"
    raise GateClosed(_refusal(symbol, path, f"{gate.reason}; {hint}"))


def check_unchanged(prices: pl.DataFrame, validated_version: str, symbol: str) -> None:
    """Refuse prices read after the gate whose content is no longer what the gate passed."""
    version = frame_data_version(prices)
    if version != validated_version:
        raise GateClosed(
            f"refusing to train on {symbol}: its prices changed (data_version "
            f"{validated_version[:12]} -> {version[:12]}) after the gate passed them; run again"
        )


def _refusal(symbol: str, path: Path, why: str) -> str:
    return f"refusing to train on {symbol} in {path}: {why}."
