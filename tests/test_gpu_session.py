"""The GPU session's dry run: prepare, a proof, a study stopped by its deadline, resumed on a
"fresh machine" from the results brought back, every file checked (benchmarks/gpu_session.sh)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.slow
def test_dry_run_walks_both_calls_stops_at_its_deadline_and_resumes(tmp_path, real_data_dir):
    env = {**os.environ, "SEQLAB_GPU_DRY_RUN": "1", "SEQLAB_GPU_DRY_DIR": str(tmp_path),
           "SEQLAB_REAL_DATA": str(real_data_dir), "PY": sys.executable}
    done = subprocess.run(["bash", str(REPO_ROOT / "benchmarks" / "gpu_session.sh")], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "dry run ok" in done.stdout
    proof = json.loads((tmp_path / "out1" / "proof.json").read_text())
    assert proof["complete"] and proof["interpreter"]
    for precision in ("fp32", "tf32"):
        assert proof["equality"][precision]["pass"], proof["equality"][precision]
    assert {"rnn", "gru", "mix"} <= set(proof["throughput"]["fused"])
    assert proof["throughput"]["projection"]["study_model_epochs"] > 0
    first = json.loads((tmp_path / "out1" / "study.json").read_text())
    second = json.loads((tmp_path / "out2" / "study.json").read_text())
    assert first["estimate"] and "would end after" in first["stopped"]
    assert second["left"] == 0 and second["stopped"] is None
    # Call 2 skipped the proof: the one carried back in was complete.
    assert "proof: done in an earlier call" in (tmp_path / "out2" / "session.log").read_text()


def test_prepare_refuses_the_synthetic_sample(tmp_path):
    from seqlab.sample import SYNTHETIC_SYMBOL

    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "gpu_session.py"),
                           "prepare", "--dir", str(tmp_path / "prepared"), "--symbol",
                           SYNTHETIC_SYMBOL, "--warehouse", str(tmp_path / "w.duckdb")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode != 0 and "refused" in done.stderr and "synthetic" in done.stderr
    assert not (tmp_path / "prepared").exists()
