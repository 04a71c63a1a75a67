"""Grid specs: presets, overrides, refusal of bad parameters before anything runs."""

from __future__ import annotations

import pytest

from seqlab.grid.dispatch import split_shards
from seqlab.grid.requests import build_grid
from seqlab.grid.spec import PRESETS, GridError, GridParams, check_spec_fits_data, resolve_spec


def test_study_preset_is_the_reference_study():
    configs = build_grid(PRESETS["study"])
    assert len(configs) == PRESETS["study"].n_configs == 3 * 4 * 3 * 2 * 3 == 216
    assert {c.cell for c in configs} == {"rnn", "lstm", "gru"}
    assert {c.depth for c in configs} == {1, 2, 3, 4}
    assert {c.norm for c in configs} == {"none", "batch", "layer"}
    assert {c.feature_set for c in configs} == {"close", "all"}
    assert {c.seed for c in configs} == {0, 1, 2}
    assert {c.epochs for c in configs} == {2000}
    assert len({c.run_key() for c in configs}) == 216


def test_overrides_replace_only_what_they_name():
    spec = resolve_spec(GridParams(preset="quick", cells=["gru"], depths=[3], epochs=5))
    assert spec.cells == ("gru",) and spec.depths == (3,) and spec.epochs == 5
    assert spec.norms == PRESETS["quick"].norms
    assert len(build_grid(spec)) == len(spec.norms) * len(spec.feature_sets) * len(spec.seeds)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (GridParams(depths=[0]), "allowed: 1, 2, 3"),
        (GridParams(cells=["tcn"]), "allowed: rnn, lstm, gru"),
        (GridParams(norms=["group"]), "allowed: none, batch, layer"),
        (GridParams(feature_sets=["sentiment"]), "allowed: close, all"),
        (GridParams(epochs=-3), "epochs must be > 0"),
        (GridParams(lookback=0), "lookback must be > 0"),
        (GridParams(seeds=[-1]), "seeds must be non-negative"),
        (GridParams(lr=5.0), "lr must be > 0 and <= 1.0"),
        (GridParams(cells=["gru", "gru"]), "duplicates"),
        (GridParams(cells=[]), "cells is empty"),
    ],
)
def test_bad_parameters_are_refused_with_the_allowed_values(overrides, needle):
    with pytest.raises(GridError, match=needle):
        resolve_spec(overrides)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(GridError, match="allowed: quick, study, tiny"):
        resolve_spec(GridParams(preset="huge"))


def test_lookback_longer_than_the_data_is_refused():
    spec = resolve_spec(GridParams(preset="tiny", lookback=400))
    check_spec_fits_data(spec, 3654)  # fits
    with pytest.raises(GridError, match=r"lookback 400 is too long for 300 days"):
        check_spec_fits_data(spec, 300)


def test_shards_cover_every_item_once():
    items = list(range(11))
    shards = split_shards(items, 4)
    assert len(shards) == 4
    assert sorted(x for s in shards for x in s) == items
    assert split_shards(items[:2], 5) == [[0], [1]]
    with pytest.raises(GridError):
        split_shards(items, 0)


def test_checking_a_grid_loads_neither_torch_nor_polars():
    """A refused setting answers before anything heavy loads (the CLI checks with this module)."""
    import subprocess
    import sys

    program = ("import sys\n"
               "from seqlab.grid.dispatch import PACK_MODES\n"
               "from seqlab.grid.spec import GridParams, resolve_spec\n"
               "resolve_spec(GridParams(preset='study'))\n"
               "print(sorted({'torch', 'polars', 'numpy', 'duckdb'} & set(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
