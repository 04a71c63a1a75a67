"""The real CoinCodex file cut to a range of days (its own layout, newest first), for replays."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import COINCODEX


def write_days(path: Path, first: str, last: str, *, close_of: dict[str, float] | None = None,
               ) -> Path:
    """Write the CoinCodex rows whose day lies in [first, last] (ISO dates) to ``path``;
    ``close_of`` replaces the close of the given days (a revised price)."""
    header, *rows = COINCODEX.read_text(encoding="utf-8-sig").splitlines()
    kept = []
    for row in rows:
        day = row[:10]
        if first <= day <= last:
            if close_of and day in close_of:
                cells = row.split(",")
                cells[5] = repr(close_of[day])  # Start,End,Open,High,Low,Close,...
                row = ",".join(cells)
            kept.append(row)
    path.write_text("\n".join([header, *kept]) + "\n", encoding="utf-8")
    return path
