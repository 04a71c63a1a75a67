"""The import layers, read from the source with ast (lazy imports inside functions count too).

Core packages (models, features, engine, forecast, ingest, schemas, checks, report) are pure: no
Prefect, no DuckDB, no warehouse. The grid kit (grid/) is what a borrowed GPU runs: torch
and polars, never the warehouse or DuckDB. Only warehouse/ talks to DuckDB; only tasks/,
flows/ and the CLI's runtime/ touch Prefect; flows wire tasks and never open the warehouse. Each package may import only
the packages listed for it below, so no package climbs back up a layer and no two
packages import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "seqlab"
ROOT = "<seqlab>"  # `import seqlab` (its __version__)

# package (or top-level module) -> the seqlab packages it may import
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "processes": set(),
    "sample": set(),
    "schemas": set(),
    "checks": {"schemas"},
    "models": set(),
    "features": {"schemas"},
    "engine": {"models", "features"},
    "forecast": {"schemas", "engine", "features", "models"},
    "ingest": {"schemas", "checks", "config"},
    "report": {ROOT, "models"},
    "warehouse": {"schemas", "processes"},
    "grid": {ROOT, "schemas", "engine", "models", "features"},
    "runners": {ROOT, "config", "schemas", "checks", "ingest", "report", "warehouse", "grid",
                "engine", "forecast"},
    "tasks": {"config", "sample", "schemas", "checks", "ingest", "grid", "runners", "warehouse",
              "engine"},
    "flows": {"config", "processes", "schemas", "ingest", "grid", "runners", "tasks"},
    "runtime": {"config", "processes", "sample", "ingest", "grid", "runners", "warehouse",
                "flows"},
    "cli": {"config", "sample", "schemas", "ingest", "engine", "grid", "runners", "warehouse",
            "runtime"},
    "__init__": set(),
}
CORE = ("models", "features", "engine", "forecast", "ingest", "schemas", "checks", "report")
# third-party packages only some layers may import
EXTERNAL = {"duckdb": {"warehouse"}, "prefect": {"tasks", "flows", "runtime"}, "typer": {"cli"}}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            names.add(node.module)
    return names


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _edges() -> dict[str, dict[str, set[str]]]:
    """layer -> imported name (seqlab package or third-party top level) -> files importing it."""
    edges: dict[str, dict[str, set[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer(path)
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "seqlab":
                target = parts[1] if len(parts) > 1 else ROOT
            else:
                target = parts[0]
            edges.setdefault(layer, {}).setdefault(target, set()).add(
                str(path.relative_to(PACKAGE)))
    return edges


EDGES = _edges()


def test_every_package_has_a_place_in_the_layers():
    assert set(EDGES) <= set(ALLOWED), f"unplaced: {sorted(set(EDGES) - set(ALLOWED))}"


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(layer):
    seqlab_targets = {t for t in EDGES.get(layer, {}) if t in ALLOWED or t == ROOT}
    forbidden = seqlab_targets - ALLOWED[layer] - {layer}
    assert not forbidden, {t: sorted(EDGES[layer][t]) for t in forbidden}


@pytest.mark.parametrize("external", sorted(EXTERNAL))
def test_duckdb_prefect_and_typer_stay_in_their_layers(external):
    users = {layer for layer, targets in EDGES.items() if external in targets}
    outside = users - EXTERNAL[external]
    assert not outside, {layer: sorted(EDGES[layer][external]) for layer in outside}


def test_the_core_is_pure():
    for layer in CORE:
        reached = set(EDGES.get(layer, {}))
        assert not reached & {"prefect", "duckdb", "warehouse", "tasks", "flows", "runners", "grid"}


def test_the_grid_kit_needs_no_warehouse():
    """grid/ trains on a machine with torch and polars only: no DuckDB, no warehouse, no
    settings read from the environment, no Prefect, nothing of the shell above it."""
    reached = set(EDGES.get("grid", {}))
    assert not reached & {"duckdb", "warehouse", "config", "prefect", "pandera",
                          "great_expectations", "typer", "runners", "tasks", "flows", "runtime",
                          "cli"}, {t: sorted(EDGES["grid"][t]) for t in reached}


def test_no_two_packages_import_each_other():
    pairs = {(a, b) for a, targets in EDGES.items() for b in targets
             if a != b and a in EDGES.get(b, {})}
    assert not pairs


def test_the_checker_sees_lazy_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from seqlab.warehouse import query\n    import duckdb\n")
    assert _imports(module) == {"seqlab.warehouse", "duckdb"}
