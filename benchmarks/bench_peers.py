"""Seconds per epoch: the seqlab engine against Darts and NeuralForecast on the same network.

Network for everyone: 2-layer LSTM, hidden 64, lookback 60, batch 64, Adam 1e-3, MSE,
no validation, no logging, no checkpoints. The engine, a plain torch loop, Darts
``BlockRNNModel`` and NeuralForecast ``LSTM`` each run in a fresh process, round-robin
(``--rounds`` rounds of ``--epochs`` timed epochs after one warm-up epoch), so drifting
machine load hits all alike and no contender inherits another's heap. Library epochs are
timed with a Lightning callback (setup and data preparation excluded); NeuralForecast
trains by steps, so its epoch is ``steps_per_epoch`` consecutive steps.

glibc's allocator can fall into a page-fault-heavy mode that slows every torch loop on
this CPU (``seqlab.engine.runtime.tune_malloc``), so each contender is timed under three
allocator settings (``--modes``), and minor faults per epoch are recorded:

* ``shared-default``: every process on glibc's defaults;
* ``shared-tuned``: every process with ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``
  set, the peers included, so the engine gets no allocator advantage;
* ``as-shipped``: the engine's process calls ``tune_malloc()`` at start-up as
  ``seqlab train`` and the grid workers do; the others run on glibc's defaults, as their
  users would.

Needs the optional extra ``peers`` (darts, neuralforecast), installed with torch kept at
the project's version; without them the script says so and exits 0.

    python benchmarks/bench_peers.py [--device cpu|cuda] [--epochs N] [--rounds R]
        [--modes shared-default shared-tuned as-shipped] [--json PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_train import MALLOC_ENV, load_prices, run_reference_epoch  # noqa: E402

from seqlab.engine import make_optimizer, resolve_device, train_one_epoch, tune_malloc  # noqa: E402
from seqlab.engine.config import TrainConfig  # noqa: E402
from seqlab.features.windows import FeatureSpec, build_features  # noqa: E402
from seqlab.models.rnn import StackedRNN  # noqa: E402

PEERS = ("darts", "neuralforecast")
CONTENDERS = ("engine", "plain torch", "darts", "neuralforecast")
LOOKBACK, HIDDEN, LAYERS, BATCH, LR = 60, 64, 2, 64, 1e-3
NETWORK = {"cell": "lstm", "layers": LAYERS, "hidden": HIDDEN, "lookback": LOOKBACK, "batch": BATCH, "lr": LR}


def missing_peers() -> list[str]:
    return [name for name in PEERS if importlib.util.find_spec(name) is None]


def _lightning_callback_base():
    try:
        from pytorch_lightning import Callback
    except ImportError:
        from lightning.pytorch import Callback
    return Callback


def _make_timer():
    """A Lightning callback recording the wall time at every train-batch and epoch end.

    The times live in lists the class closes over, not on the instance: NeuralForecast
    deep-copies its models' trainer arguments, callbacks included, and a copy's own lists
    would never be seen here.
    """
    batch_ends: list[float] = []
    epoch_ends: list[float] = []

    class StepTimer(_lightning_callback_base()):
        @property
        def batch_ends(self) -> list[float]:
            return batch_ends

        @property
        def epoch_ends(self) -> list[float]:
            return epoch_ends

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            epoch_ends.append(time.perf_counter())

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            batch_ends.append(time.perf_counter())

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            epoch_ends.append(time.perf_counter())

    return StepTimer()


def _trainer_kwargs(device: torch.device, timer) -> dict:
    return {
        "accelerator": "gpu" if device.type == "cuda" else "cpu",
        "devices": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "logger": False,
        "callbacks": [timer],
    }


def _accepted(factory, kwargs: dict) -> dict:
    """Keep only the keyword arguments this library version accepts."""
    parameters = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in parameters}


def time_darts(train_close: np.ndarray, epochs: int, device: torch.device) -> list[float]:
    from darts import TimeSeries
    from darts.models import BlockRNNModel

    timer = _make_timer()
    kwargs = {
        "input_chunk_length": LOOKBACK, "output_chunk_length": 1, "model": "LSTM",
        "hidden_dim": HIDDEN, "n_rnn_layers": LAYERS, "batch_size": BATCH, "n_epochs": epochs,
        "optimizer_kwargs": {"lr": LR}, "random_state": 0, "save_checkpoints": False,
        "pl_trainer_kwargs": _trainer_kwargs(device, timer),
    }
    model = BlockRNNModel(**_accepted(BlockRNNModel, kwargs))
    model.fit(TimeSeries.from_values(train_close.astype(np.float32)), verbose=False)
    ends = timer.epoch_ends  # start, end, start, end, ...
    return [ends[i + 1] - ends[i] for i in range(0, len(ends) - 1, 2)]


def time_neuralforecast(train_close: np.ndarray, epochs: int, steps_per_epoch: int, device) -> list[float]:
    import pandas as pd
    from neuralforecast import NeuralForecast
    from neuralforecast.models import LSTM

    timer = _make_timer()
    kwargs = {
        "h": 1, "input_size": LOOKBACK, "encoder_n_layers": LAYERS, "encoder_hidden_size": HIDDEN,
        "decoder_hidden_size": HIDDEN, "decoder_layers": 1, "batch_size": 1,
        "windows_batch_size": BATCH, "learning_rate": LR, "max_steps": epochs * steps_per_epoch,
        "val_check_steps": 10**9, "scaler_type": None, "random_seed": 0,
        **_trainer_kwargs(device, timer),
    }
    frame = pd.DataFrame({
        "unique_id": "ETH",
        "ds": pd.date_range("2015-08-08", periods=len(train_close), freq="D"),
        "y": train_close.astype(np.float32),
    })
    NeuralForecast(models=[LSTM(**_accepted(LSTM, kwargs))], freq="D").fit(df=frame, val_size=0)
    steps = np.diff(timer.batch_ends)
    return [float(np.median(steps)) * steps_per_epoch] * max(1, len(steps) // steps_per_epoch)


MODES = {
    # name: (allocator for the engine's process, allocator for every other process)
    "shared-default": ("default", "default"),
    "shared-tuned": ("env", "env"),
    "as-shipped": ("mallopt", "default"),
}


def time_contender(name: str, epochs: int, device: torch.device) -> dict:
    """Seconds of each of ``epochs`` epochs (after one warm-up) and minor faults per epoch."""
    prices, _ = load_prices()
    data = build_features(prices, FeatureSpec(feature_set="close", lookback=LOOKBACK))
    n_train_rows = data.X_train.shape[0] + LOOKBACK
    train_close = data.scaler.transform_column(prices.get_column("close").to_numpy()[:n_train_rows], "close")
    steps_per_epoch = math.ceil(data.X_train.shape[0] / BATCH)
    config = TrainConfig(cell="lstm", depth=LAYERS, hidden=HIDDEN, batch_size=BATCH, lr=LR)
    X, y = torch.from_numpy(data.X_train).to(device), torch.from_numpy(data.y_train).to(device)

    def fresh_model():
        torch.manual_seed(0)
        return StackedRNN(config.model_config(n_features=1)).to(device)

    def time_engine(n: int) -> list[float]:
        model = fresh_model()
        optimizer = make_optimizer(model, config, device)
        times = []
        for epoch in range(n):
            start = time.perf_counter()
            train_one_epoch(model, optimizer, X, y, batch_size=BATCH, seed=0, epoch=epoch).item()
            times.append(time.perf_counter() - start)
        return times

    def time_plain(n: int) -> list[float]:
        model = fresh_model()
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)),
            batch_size=BATCH, shuffle=True,
        )
        times = []
        for _ in range(n):
            start = time.perf_counter()
            run_reference_epoch(model, optimizer, loader, device)
            times.append(time.perf_counter() - start)
        return times

    runners = {
        "engine": time_engine,
        "plain torch": time_plain,
        "darts": lambda n: time_darts(train_close, n, device),
        "neuralforecast": lambda n: time_neuralforecast(train_close, n, steps_per_epoch, device),
    }
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    seconds = runners[name](epochs + 1)[1:]  # the first epoch warms up
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {"contender": name, "s_per_epoch": seconds, "n_windows": int(data.X_train.shape[0]),
            "minor_faults_per_epoch": round(faults / (epochs + 1))}


def _child(name: str, allocator: str, args) -> dict:
    """One contender in a fresh process with the given allocator setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    if allocator == "env":
        env |= MALLOC_ENV
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        subprocess.run([sys.executable, __file__, "--child", name, "--malloc", allocator,
                        "--device", args.device, "--epochs", str(args.epochs), "--json", str(out)],
                       env=env, check=True)
        return json.loads(out.read_text())


def run_modes(args) -> dict:
    """Every contender in its own process, round-robin over modes and contenders.

    The mode order rotates from round to round so a slow drift in machine speed does not
    always land on the same mode.
    """
    seconds = {mode: {name: [] for name in CONTENDERS} for mode in args.modes}
    faults = {mode: {name: [] for name in CONTENDERS} for mode in args.modes}
    for round_no in range(args.rounds):
        shift = round_no % len(args.modes)  # each round starts with the next mode
        for mode in args.modes[shift:] + args.modes[:shift]:
            engine_allocator, other_allocator = MODES[mode]
            for name in CONTENDERS:
                allocator = engine_allocator if name == "engine" else other_allocator
                print(f"== round {round_no + 1}/{args.rounds}, {mode}: {name} (allocator {allocator})", flush=True)
                result = _child(name, allocator, args)
                seconds[mode][name].extend(result["s_per_epoch"])
                faults[mode][name].append(result["minor_faults_per_epoch"])
    summary: dict = {"device": args.device, "network": NETWORK, "rounds": args.rounds,
                     "epochs_per_round": args.epochs, "modes": {}}
    print(f"{'mode':<15} {'contender':<15} {'s/epoch':>8} {'vs engine':>10} {'faults/epoch':>13}")
    for mode in args.modes:
        medians = {name: statistics.median(values) for name, values in seconds[mode].items()}
        summary["modes"][mode] = {
            "allocators": dict(zip(("engine", "others"), MODES[mode], strict=True)),
            "s_per_epoch": medians,
            "ratio_to_engine": {name: value / medians["engine"] for name, value in medians.items()},
            "minor_faults_per_epoch": {name: statistics.median(v) for name, v in faults[mode].items()},
            "all_epochs_s": seconds[mode],
        }
        for name, value in medians.items():
            print(f"{mode:<15} {name:<15} {value:>8.3f} {value / medians['engine']:>9.2f}x "
                  f"{summary['modes'][mode]['minor_faults_per_epoch'][name]:>13.0f}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per contender per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--malloc", choices=["default", "env", "mallopt"], default="default",
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    missing = missing_peers()
    if missing:
        print(f"bench_peers: {', '.join(missing)} not installed; install the optional extra "
              "'peers' (keeping torch at the installed version) to run this benchmark.")
        return
    if args.child:
        if args.malloc == "mallopt":
            tune_malloc()  # what `seqlab train` and grid workers do at start-up
        result = time_contender(args.child, args.epochs, resolve_device(args.device))
        args.json.write_text(json.dumps(result))
        return
    summary = run_modes(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
