"""A Prefect task is named for its function, so the UI and the code say the same thing."""

from __future__ import annotations

import importlib

import pytest
from prefect import Task

TASK_MODULES = ("seqlab.tasks.grid", "seqlab.tasks.train", "seqlab.tasks.ingest",
                "seqlab.tasks.report")


@pytest.mark.parametrize("module", TASK_MODULES)
def test_every_task_is_named_for_its_function(module):
    tasks = {name: obj for name, obj in vars(importlib.import_module(module)).items()
             if isinstance(obj, Task) and obj.fn.__module__ == module}
    assert tasks
    assert {name: task.name for name, task in tasks.items()} == {
        name: name.replace("_", "-") for name in tasks}
