"""Packs in the grid scheduler: grouping, automatic size, and outcomes per member."""

from __future__ import annotations

import json

import pytest
import torch

from seqlab.engine.config import TrainConfig
from seqlab.grid.execute import train_pack_requests, train_request
from seqlab.grid.plan import (
    calibration_path,
    estimate_member_bytes,
    load_calibration,
    pack_label,
    plan_request_packs,
    resolve_pack_size,
)
from seqlab.grid.requests import plan_requests

SMALL = {"hidden": 4, "epochs": 2, "lookback": 10}
GIB = 2**30


def requests_for(configs, folder="/tmp/p", prices="/tmp/p/prices.parquet"):
    return plan_requests(configs, symbol="ETH", data_version="dv", code="c", prices_path=prices,
                         checkpoint_dir=f"{folder}/ckpt")


@pytest.fixture(scope="module")
def prices_file(tmp_path_factory, coincodex_prices):
    folder = tmp_path_factory.mktemp("packs")
    path = folder / "prices.parquet"
    coincodex_prices.tail(500).write_parquet(path)
    return folder, path


def test_packs_group_by_what_lockstep_needs_and_keep_order():
    configs = [TrainConfig(cell=c, seed=s, lookback=lb, **{k: v for k, v in SMALL.items() if k != "lookback"})
               for lb in (10, 20) for c in ("rnn", "gru", "lstm") for s in (0, 1)]
    requests = requests_for(configs)
    packs = plan_request_packs(requests, 4)
    assert [len(p) for p in packs] == [4, 2, 4, 2]
    for pack in packs:  # one lookback per pack: same batches per epoch
        assert len({r.config.lookback for r in pack}) == 1
    assert [r.run_id for p in packs for r in p] == [r.run_id for r in requests]
    assert plan_request_packs(requests, 1) == [[r] for r in requests]
    other_prices = requests_for(configs[:2], prices="/tmp/other.parquet")
    assert len(plan_request_packs([*requests[:2], *other_prices], 8)) == 2
    with pytest.raises(ValueError, match="pack_size"):
        plan_request_packs(requests, 0)
    with pytest.raises(ValueError, match="allowed: streams, batched"):
        plan_request_packs(requests, 2, "threads")


def test_pack_label_names_first_run_and_count():
    requests = requests_for([TrainConfig(seed=s, **SMALL) for s in range(3)])
    assert pack_label(requests[:1]) == requests[0].run_id
    assert pack_label(requests) == f"{requests[0].run_id}+2"


def test_member_estimate_grows_with_the_network():
    base = estimate_member_bytes(TrainConfig(cell="rnn", depth=1))
    assert base < estimate_member_bytes(TrainConfig(cell="lstm", depth=1))
    assert estimate_member_bytes(TrainConfig(cell="lstm", depth=1)) < estimate_member_bytes(
        TrainConfig(cell="lstm", depth=4))
    assert estimate_member_bytes(TrainConfig(hidden=64)) < estimate_member_bytes(TrainConfig(hidden=128))
    assert 1e6 < estimate_member_bytes(TrainConfig(cell="lstm", depth=4, lookback=60)) < 1e9


def test_automatic_pack_size():
    configs = [TrainConfig(cell="lstm", depth=4, lookback=60, seed=s) for s in range(216)]
    member = estimate_member_bytes(configs[0])
    assert resolve_pack_size(0, gpus=0, configs=configs) == 1  # CPU: nothing to gain
    assert resolve_pack_size(5, gpus=0, configs=configs) == 5  # asked for explicitly
    assert resolve_pack_size(0, gpus=1, configs=configs, free_bytes=80 * GIB) == 32  # stream cap
    # memory decides: room for 3 members (80% headroom)
    assert resolve_pack_size(0, gpus=1, configs=configs, free_bytes=int(member * 3.9)) == 3
    # two slots share the GPU's memory
    assert resolve_pack_size(0, gpus=1, configs=configs, free_bytes=int(member * 7.9),
                             slots_per_gpu=2) == 3
    measured = {1: 100.0, 8: 700.0, 16: 900.0, 32: 850.0}
    assert resolve_pack_size(0, gpus=1, configs=configs, free_bytes=80 * GIB,
                             measured_eps=measured) == 16
    # every GPU slot gets a pack: 216 configs over 8 GPUs are packs of 27
    assert resolve_pack_size(0, gpus=8, configs=configs, free_bytes=80 * GIB) == 27
    assert resolve_pack_size(0, gpus=1, configs=configs[:5], free_bytes=80 * GIB) == 5
    with pytest.raises(ValueError, match=">= 0"):
        resolve_pack_size(-1, gpus=1, configs=configs)


def test_calibration_file_round_trip(tmp_path):
    path = calibration_path(tmp_path, "NVIDIA H200 (SXM) 141GB")
    assert path.name == "packs-nvidia-h200-sxm-141gb.json"
    assert load_calibration(path) is None  # absent
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert load_calibration(path) is None  # unreadable: ignored, memory decides
    path.write_text(json.dumps({"device_name": "NVIDIA H200",
                                "modes": {"streams": {"1": 90.5, "8": 610.0}}}))
    assert load_calibration(path) == {1: 90.5, 8: 610.0}
    assert load_calibration(path, "batched") is None


def test_pack_outcomes_equal_runs_alone_on_cpu(prices_file):
    folder, path = prices_file
    configs = [TrainConfig(cell="gru", seed=0, device="cpu", **SMALL),
               TrainConfig(cell="rnn", seed=1, norm="layer", depth=2, device="cpu", **SMALL),
               TrainConfig(cell="lstm", seed=2, norm="batch", device="cpu", **SMALL)]
    (pack,) = plan_request_packs(requests_for(configs, str(folder), str(path)), 8)
    outcomes = train_pack_requests(pack, "host")
    assert [o.request for o in outcomes] == pack
    for outcome in outcomes:
        alone = train_request(outcome.request, "host")
        assert outcome.error is None and outcome.worker == "host"
        assert outcome.result.train_loss == alone.result.train_loss
        assert outcome.result.test_loss == alone.result.test_loss
        assert outcome.result.determinism["pack"]["mode"] == "sequential: no CUDA"


def test_failed_pack_trains_each_member_alone(prices_file, monkeypatch):
    import seqlab.engine.stream_pack as stream_pack

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(stream_pack, "train_pack", out_of_memory)
    folder, path = prices_file
    configs = [TrainConfig(cell="gru", seed=s, device="cpu", **SMALL) for s in (0, 1)]
    (pack,) = plan_request_packs(requests_for(configs, str(folder), str(path)), 8)
    outcomes = train_pack_requests(pack, "host")
    assert [o.error for o in outcomes] == [None, None]
    for outcome in outcomes:
        assert outcome.result.status == "ok" and len(outcome.result.train_loss) == 2
        mode = outcome.result.determinism["pack"]["mode"]
        assert mode.startswith("alone after the pack of 2 failed: OutOfMemoryError: CUDA out of memory")


def test_failed_member_alone_is_an_outcome_not_an_exception(prices_file):
    folder, path = prices_file
    configs = [TrainConfig(cell="gru", seed=s, device="cpu", **SMALL) for s in (0, 1)]
    pack = requests_for(configs, str(folder), str(folder / "missing.parquet"))
    outcomes = train_pack_requests(pack, "host")
    assert all(o.result is None and "missing.parquet" in o.error for o in outcomes)


def test_batched_mode_packs_seeds_of_one_architecture(prices_file):
    folder, path = prices_file
    configs = [TrainConfig(cell=c, seed=s, device="cpu", **SMALL) for c in ("gru", "lstm") for s in (0, 1, 2)]
    requests = requests_for(configs, str(folder), str(path))
    packs = plan_request_packs(requests, 8, "batched")
    assert [[r.config.cell for r in p] for p in packs] == [["gru"] * 3, ["lstm"] * 3]
    outcomes = train_pack_requests(packs[0], "host", "batched")
    for outcome in outcomes:
        alone = train_request(outcome.request, "host")
        assert outcome.result.determinism["pack"]["mode"] == "batched"
        assert outcome.result.test_loss == pytest.approx(alone.result.test_loss, rel=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("mode", ["streams", "batched"])
def test_pack_requests_capture_graphs_on_cuda(prices_file, mode):
    folder, path = prices_file
    configs = [TrainConfig(cell="lstm", seed=s, device="cuda", **SMALL) for s in range(3)]
    (pack,) = plan_request_packs(requests_for(configs, str(folder), str(path)), 8, mode)
    outcomes = train_pack_requests(pack, "host", mode)
    for outcome in outcomes:
        alone = train_request(outcome.request, "host")  # the graphed engine on its own
        assert outcome.result.determinism["graph"] == "captured"
        assert outcome.result.determinism["pack"] == {"size": 3, "index": pack.index(outcome.request),
                                                         "mode": mode}
        assert alone.result.determinism["graph"] == "captured"
        assert outcome.result.test_loss == pytest.approx(alone.result.test_loss, rel=1e-4)


def test_packs_spread_over_every_visible_gpu(prefect_harness, tmp_path, monkeypatch):
    """A 2-GPU host (simulated): packs alternate cuda:0 / cuda:1 under each GPU's own limit."""
    from prefect import flow, task
    from prefect.client.orchestration import get_client

    import seqlab.flows.host as host
    import seqlab.runners.host as host_share
    from seqlab.grid.plan import gpu_limit_name
    from seqlab.grid.requests import RunOutcome
    from seqlab.grid.results import read_frames

    monkeypatch.setattr(host_share, "gpu_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=0: (80 * GIB, 80 * GIB))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Simulated GPU")

    @task(name="train-pack")
    def placed(pack, gpu_limit=None, pack_mode="streams", cpu_threads=0):  # where would each pack train?
        return [RunOutcome(r, None, f"placed {r.device} {gpu_limit} pack {len(pack)}", "host")
                for r in pack]

    monkeypatch.setattr(host, "train_pack", placed)
    configs = [TrainConfig(cell=c, seed=s, **SMALL) for c in ("rnn", "gru", "lstm") for s in range(4)]
    requests = requests_for(configs, str(tmp_path))

    @flow(name="grid-here")
    def grid_here(requests):  # as train-shard calls it
        from seqlab.tasks.train import deliver_outcome

        def deliver(outcomes):
            for outcome in outcomes:
                deliver_outcome(outcome, "g", str(tmp_path / "out"))

        return host.train_host_share(requests, "g", deliver, slots_per_gpu=1, pack_size=0,
                                     pack_mode="streams", output_dir=tmp_path)

    failed = grid_here(requests)
    assert failed == 12
    errors = [read_frames(str(tmp_path / "out" / r.run_id)).runs["error"][0] for r in requests]
    # automatic size: 12 configs over 2 GPUs x 1 slot -> packs of 6, one per GPU
    assert sorted(errors) == sorted(
        [f"placed cuda:0 {gpu_limit_name(0)} pack 6"] * 6 + [f"placed cuda:1 {gpu_limit_name(1)} pack 6"] * 6)
    with get_client(sync_client=True) as client:
        for index in (0, 1):
            assert client.read_global_concurrency_limit_by_name(gpu_limit_name(index)).limit == 1
