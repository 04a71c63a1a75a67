"""Which model forecasts which day in a walk-forward backtest.

A refit on date R sees the prices through R (its validation tail inside them, as in
training) and forecasts from every origin day R, R+1, ... before the next refit; a forecast
from origin d targets d + horizon. So no model sees its target day or anything after its
origin: the refit's data end at R <= d < d + horizon.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RefitBlock:
    """One refit date and the origin days its models forecast from (ascending)."""

    refit_date: dt.date
    origins: tuple[dt.date, ...]


def walk_forward_schedule(dates: Sequence[dt.date], *, start: dt.date, end: dt.date | None,
                          refit_every: int, horizon: int = 1) -> list[RefitBlock]:
    """Refit blocks over the stored ``dates``: origins are the stored days from ``start`` on
    whose target (origin + horizon) is a stored day no later than ``end`` (the last stored
    day when None); a refit every ``refit_every`` days from the first origin on.

    ValueError with the stored range when no origin qualifies.
    """
    if refit_every < 1:
        raise ValueError(f"refit_every must be >= 1 day, got {refit_every}")
    if not dates:
        raise ValueError("no stored prices to backtest on")
    stored = set(dates)
    last = end or max(dates)
    step = dt.timedelta(days=horizon)
    origins = sorted(d for d in stored if start <= d and d + step <= last and d + step in stored)
    if not origins:
        raise ValueError(f"no forecast day between {start} and {last}: the stored prices run "
                         f"{min(dates)}..{max(dates)} (a forecast needs its target day stored)")
    first = origins[0]
    blocks: dict[int, list[dt.date]] = {}
    for origin in origins:  # block k refits on first + k * refit_every (its data end there)
        blocks.setdefault((origin - first).days // refit_every, []).append(origin)
    return [RefitBlock(first + dt.timedelta(days=k * refit_every), tuple(days))
            for k, days in sorted(blocks.items())]
