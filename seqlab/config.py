"""Typed settings, resolved once from flags and ``SEQLAB_*`` environment variables.

Every ``SEQLAB_*`` variable seqlab reads is a field of :class:`EnvironmentSettings`, parsed
and checked there in one place: a bad value (``SEQLAB_LOCK_TIMEOUT_S=abc``, ``-5``, ``nan``)
is refused with one line naming the variable, before any command does anything. Plain
pydantic (already a dependency) rather than pydantic-settings: the borrowed GPU machine of
carried work imports this module with torch, polars and pydantic only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_DATA_DIR = Path("data")
PREFIX = "SEQLAB_"

PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
PositiveLimit = Annotated[float, Field(gt=0, allow_inf_nan=False)]
PositiveCount = Annotated[int, Field(gt=0)]


class SettingsError(ValueError):
    """A ``SEQLAB_*`` variable with a value seqlab cannot use; one line naming it."""


class EnvironmentSettings(BaseModel):
    """Every ``SEQLAB_*`` variable, typed and checked (the field is the name without
    ``SEQLAB_``, lower case). Unset or empty variables take the default."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    data_dir: Path = DEFAULT_DATA_DIR  # where the warehouse and outputs go by default
    warehouse: Path | None = None  # the DuckDB file (default: data_dir/seqlab.duckdb)
    output_dir: Path | None = None  # reports, data docs, samples (default: data_dir/output)
    lock_timeout_s: PositiveSeconds = 10.0  # longest wait for another process's lock
    # Ingest: what reading one source may cost, and which hosts a URL may reach.
    source_max_bytes: PositiveCount = 512 * 2**20
    url_deadline_s: PositiveSeconds = 300.0
    allow_private_urls: bool = False
    # Values beyond these are a unit or typing error, not a market price (exclusive).
    max_price: PositiveLimit = 1e9
    max_amount: PositiveLimit = 1e15
    # `seqlab query`: DuckDB's memory_limit for a user's SQL (e.g. "2GiB", "512MB").
    query_memory_limit: str = "2GiB"
    report_url: str | None = None  # where the flows' artifacts link the report
    # GPU knobs read where the kernels run; checked here so a typo fails at once.
    cuda_tf32: bool = True
    fused_block_b: PositiveCount | None = None
    fused_warps: PositiveCount | None = None
    fused_stages: PositiveCount | None = None

    @field_validator("query_memory_limit")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        parse_memory_limit(value)
        return value.strip()

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> EnvironmentSettings:
        """The settings from ``environ`` (default: the process environment); raises
        SettingsError naming each bad variable."""
        environ = os.environ if environ is None else environ
        values = {name: environ[PREFIX + name.upper()] for name in cls.model_fields
                  if environ.get(PREFIX + name.upper(), "").strip()}
        try:
            return cls(**{k: v.strip() for k, v in values.items()})
        except ValidationError as exc:
            raise SettingsError("; ".join(_one_line(e) for e in exc.errors())) from None


def _one_line(error: dict) -> str:
    variable = PREFIX + str(error["loc"][0]).upper()
    message = error["msg"].removeprefix("Value error, ")
    return f"{variable}={error['input']!r} is refused: {message}"


_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_memory_limit(text: str) -> int:
    """Bytes in a DuckDB memory size such as ``2GiB``, ``512MB`` or ``1.5GB``; refuses
    anything else, zero, and non-finite numbers."""
    cleaned = text.strip().lower().replace(" ", "")
    number = cleaned.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = cleaned[len(number):] or "b"
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if unit not in _UNITS or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{text!r} is not a memory size above 0 (e.g. 2GiB, 512MB)")
    return int(value * _UNITS[unit])


@dataclass(frozen=True)
class Settings:
    """Where seqlab keeps its warehouse and outputs.

    Defaults live under a project-local ``data/`` directory that git ignores.
    """

    warehouse: Path
    output_dir: Path
    lock_timeout_s: float = 10.0

    @classmethod
    def from_env(
        cls,
        warehouse: str | os.PathLike | None = None,
        output_dir: str | os.PathLike | None = None,
    ) -> Settings:
        """Flags win over ``SEQLAB_*`` variables, which win over the defaults; raises
        SettingsError for a bad variable."""
        env = EnvironmentSettings.load()
        warehouse = warehouse or env.warehouse or env.data_dir / "seqlab.duckdb"
        output_dir = output_dir or env.output_dir or env.data_dir / "output"
        return cls(Path(warehouse), Path(output_dir), env.lock_timeout_s)
