"""One file's ingest is written once (runners.ingest.ingest_raw): the CLI runs it with plain
steps, the ingest flow with their tasks; both let the parsed rows go before the store."""

from __future__ import annotations

from dataclasses import replace

from seqlab.ingest.sources import RawSource
from seqlab.runners import ingest as runner
from seqlab.runners.ingest import IngestOptions, ingest_raw, plain_steps
from seqlab.tasks.ingest import TASK_STEPS


def test_the_parsed_rows_are_released_before_the_store(tmp_path):
    seen = {}
    steps = plain_steps()

    def store(parsed, validation, options, started_at):
        seen["rows_at_store"] = parsed.rows.height
        seen["valid"] = validation.valid.height
        return steps.store(parsed, validation, options, started_at)

    options = IngestOptions(symbol="ETH", warehouse=tmp_path / "w.duckdb", docs_dir=tmp_path / "d")
    csv = b"date,open,high,low,close,volume\n" + b"".join(
        f"2024-01-{d:02d},1,2,0.5,1.5,10\n".encode() for d in range(1, 29))
    summary = ingest_raw(RawSource.from_bytes("eth.csv", csv), options, replace(steps, store=store))
    assert seen == {"rows_at_store": 0, "valid": 28}
    assert summary.rows_valid == 28


def test_the_flow_runs_the_same_steps_as_tasks():
    assert [task.fn.__module__ for task in (TASK_STEPS.parse, TASK_STEPS.validate,
                                            TASK_STEPS.store, TASK_STEPS.gate)] == [
        "seqlab.tasks.ingest"] * 4
    wrapped = {TASK_STEPS.parse.fn.__code__.co_names, TASK_STEPS.validate.fn.__code__.co_names,
               TASK_STEPS.store.fn.__code__.co_names, TASK_STEPS.gate.fn.__code__.co_names}
    assert {name for names in wrapped for name in names} >= {
        "parse_raw", "validate_parsed", "store_parsed", "gate_dataset"}
    assert runner.IngestSteps is type(TASK_STEPS)
