"""Pool dispatch refuses, in one line, a shard deployment that does not take its parameters.

No server: the Prefect client and ``run_deployment`` are replaced by a fake that holds one
registered deployment (its parameter schema made by Prefect from a flow's signature, as
``prefect deploy`` does) and ends a flow run as a real Prefect 3.9.1 server and process worker
end one with a parameter the flow does not take: accepted by the server, then CRASHED with
"Process exited with status code: 1" (the parameter is named only in the worker's log).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from prefect import flow
from prefect.exceptions import ObjectNotFound, SignatureMismatchError
from prefect.states import Completed, Crashed
from prefect.utilities.callables import parameter_schema

import seqlab.tasks.grid as grid_tasks
from seqlab.engine.config import TrainConfig
from seqlab.flows.train import train_shard
from seqlab.grid.requests import plan_requests

DEPLOYMENT = "train-shard/train-shard"


@flow(name="train-shard")
def train_shard_before_pack_mode(requests: list[dict], grid_id: str, results: str,
                                 slots_per_gpu: int = 2, pack_size: int = 0) -> int:
    """The train-shard flow's signature before it took ``pack_mode``."""
    return len(requests)


class FakePrefect:
    """A server with one deployment of ``deployed`` and a worker that runs its flow runs'
    parameter validation (the step that fails on unknown parameters)."""

    def __init__(self, deployed) -> None:
        self.deployed = deployed
        self.schema = parameter_schema(deployed.fn).model_dump_for_openapi()
        self.runs: dict[str, SimpleNamespace] = {}

    def read_deployment_by_name(self, name: str) -> SimpleNamespace:
        if name != DEPLOYMENT:
            raise ObjectNotFound(http_exc=Exception(name))
        return SimpleNamespace(name=name, parameter_openapi_schema=self.schema)

    def run_deployment(self, name: str, parameters: dict, **_: object) -> SimpleNamespace:
        self.read_deployment_by_name(name)
        try:  # the server takes any parameters; the worker's engine binds them to the flow
            self.deployed.validate_parameters(parameters)
            state = Completed()
        except SignatureMismatchError:  # Prefect 3.9: logged on the worker, the run crashes
            state = Crashed(message="Process exited with status code: 1. "
                                    "Process exited with a general error.")
        run = SimpleNamespace(id=f"run-{len(self.runs)}", state=state)
        self.runs[run.id] = run
        return run

    def read_flow_run(self, flow_run_id: str) -> SimpleNamespace:
        return self.runs[flow_run_id]

    def __call__(self, sync_client: bool = True) -> FakePrefect:  # get_client(...)
        return self

    def __enter__(self) -> FakePrefect:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture
def requests(tmp_path):
    configs = [TrainConfig(cell="rnn", seed=seed, epochs=1, hidden=4, lookback=10)
               for seed in (0, 1)]
    return plan_requests(configs, symbol="ETH", data_version="dv", code="c",
                         prices_path=str(tmp_path / "prices.parquet"),
                         checkpoint_dir=str(tmp_path / "ckpt"))


def _dispatch(fake: FakePrefect, monkeypatch, requests, tmp_path,
              deployment: str = DEPLOYMENT) -> list[dict]:
    monkeypatch.setattr(grid_tasks, "get_client", fake)
    monkeypatch.setattr(grid_tasks, "run_deployment", fake.run_deployment)
    return grid_tasks.dispatch_shards.fn(requests, "g-1", 2, str(tmp_path / "results"),
                                         deployment, 1, timeout_s=5, poll_s=0.01,
                                         pack_mode="fused")


def test_a_shard_deployment_from_an_older_seqlab_is_refused_in_one_line_before_any_shard(
    tmp_path, monkeypatch, requests
):
    fake = FakePrefect(train_shard_before_pack_mode)
    with pytest.raises(ValueError) as refused:
        _dispatch(fake, monkeypatch, requests, tmp_path)
    message = str(refused.value)
    assert "\n" not in message
    assert f"deployment {DEPLOYMENT!r} does not take parameter(s) pack_mode " in message
    assert "prefect deploy --all" in message
    assert fake.runs == {}  # refused before starting a flow run that can only fail


def test_a_shard_deployment_of_this_seqlab_starts_every_shard_with_its_parameters(
    tmp_path, monkeypatch, requests
):
    fake = FakePrefect(train_shard)
    shards = _dispatch(fake, monkeypatch, requests, tmp_path)
    assert [s["state"] for s in shards] == ["COMPLETED", "COMPLETED"]
    assert len(fake.runs) == 2


def test_a_shard_deployment_not_registered_is_named_with_the_fix(tmp_path, monkeypatch, requests):
    with pytest.raises(ValueError, match=r"deployment 'train-shard/old' is not registered.*"
                                         r"prefect deploy --all"):
        _dispatch(FakePrefect(train_shard), monkeypatch, requests, tmp_path,
                  deployment="train-shard/old")
