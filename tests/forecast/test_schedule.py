"""The walk-forward schedule: which refit forecasts which day, and never its own target."""

import datetime as dt

import pytest

from seqlab.forecast.schedule import walk_forward_schedule

DAYS = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(60)]


def test_refits_every_n_days_and_every_origin_after_its_refit():
    blocks = walk_forward_schedule(DAYS, start=dt.date(2025, 1, 10), end=dt.date(2025, 1, 31),
                                   refit_every=7)
    assert [b.refit_date for b in blocks] == [dt.date(2025, 1, 10), dt.date(2025, 1, 17),
                                             dt.date(2025, 1, 24)]
    origins = [d for b in blocks for d in b.origins]
    # every day from the start whose next day is at most the end, once, in order
    assert origins == [dt.date(2025, 1, 10) + dt.timedelta(days=i) for i in range(21)]
    for block in blocks:
        assert all(block.refit_date <= o < block.refit_date + dt.timedelta(days=7)
                   for o in block.origins)


def test_a_target_that_is_not_stored_is_not_forecast():
    gap = [d for d in DAYS if d != dt.date(2025, 1, 15)]
    blocks = walk_forward_schedule(gap, start=dt.date(2025, 1, 10), end=dt.date(2025, 1, 20),
                                   refit_every=30)
    origins = blocks[0].origins
    assert dt.date(2025, 1, 14) not in origins  # its target, the 15th, is missing
    assert dt.date(2025, 1, 15) not in origins and dt.date(2025, 1, 19) in origins


def test_no_forecast_day_is_a_clear_error():
    with pytest.raises(ValueError, match="no forecast day between 2026-01-01"):
        walk_forward_schedule(DAYS, start=dt.date(2026, 1, 1), end=None, refit_every=7)
    with pytest.raises(ValueError, match="refit_every must be >= 1"):
        walk_forward_schedule(DAYS, start=DAYS[0], end=None, refit_every=0)
