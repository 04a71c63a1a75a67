"""Security rules checked on the code itself: no shell strings, local-only server examples."""

from __future__ import annotations

import ast
import re

from tests.conftest import REPO_ROOT

SHELL_CALLS = {"system", "popen", "getoutput", "getstatusoutput"}  # os.*, subprocess.*


def python_files():
    for folder in ("seqlab", "benchmarks"):
        yield from sorted((REPO_ROOT / folder).rglob("*.py"))


def test_no_shell_strings_or_eval_in_seqlab_and_benchmarks():
    """User input (paths, URLs, SQL, grid params) never reaches a shell or an interpreter."""
    offences = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in {"eval", "exec"}:  # not model.eval()
                offences.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {func.id}()")
            if (isinstance(func, ast.Attribute) and func.attr in SHELL_CALLS
                    and isinstance(func.value, ast.Name) and func.value.id in {"os", "subprocess"}):
                offences.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {func.attr}()")
            for keyword in node.keywords:
                if keyword.arg == "shell" and not (
                        isinstance(keyword.value, ast.Constant) and keyword.value.value is False):
                    offences.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} shell=")
    assert offences == []


def test_prefect_server_examples_bind_to_loopback():
    for name in ("README.md", "prefect.yaml", "Makefile"):
        text = (REPO_ROOT / name).read_text()
        for line in text.splitlines():
            if re.search(r"prefect server start", line):
                assert "--host 127.0.0.1" in line, f"{name}: {line.strip()}"
            assert "0.0.0.0" not in line, f"{name}: {line.strip()}"
