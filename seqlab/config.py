"""Typed settings, resolved once from flags and ``SEQLAB_*`` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = Path("data")


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
        data_dir = Path(os.environ.get("SEQLAB_DATA_DIR", DEFAULT_DATA_DIR))
        warehouse = warehouse or os.environ.get("SEQLAB_WAREHOUSE") or data_dir / "seqlab.duckdb"
        output_dir = output_dir or os.environ.get("SEQLAB_OUTPUT_DIR") or data_dir / "output"
        lock_timeout = float(os.environ.get("SEQLAB_LOCK_TIMEOUT_S", "10"))
        return cls(Path(warehouse), Path(output_dir), lock_timeout)
