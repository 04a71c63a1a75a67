"""Seconds per epoch: the seqlab engine against Darts and NeuralForecast on the same network.

Network for everyone: 2-layer LSTM, hidden 64, lookback 60, batch 64, Adam 1e-3, MSE,
no validation, no logging, no checkpoints. The engine, a plain torch loop, Darts
``BlockRNNModel`` and NeuralForecast ``LSTM`` are run round-robin (``--rounds`` rounds
of ``--epochs`` epochs each) so drifting machine load hits all alike. Library epochs
are timed with a Lightning callback (setup and data preparation excluded);
NeuralForecast trains by steps, so its epoch is ``steps_per_epoch`` consecutive steps.

Needs the optional extra ``peers`` (darts, neuralforecast), installed with torch kept at
the project's version; without them the script says so and exits 0.

    python benchmarks/bench_peers.py [--device cpu|cuda] [--epochs N] [--rounds R] [--json PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_train import load_prices, run_reference_epoch  # noqa: E402

from seqlab.engine import make_optimizer, resolve_device, train_one_epoch  # noqa: E402
from seqlab.engine.config import TrainConfig  # noqa: E402
from seqlab.features import FeatureSpec, build_features  # noqa: E402
from seqlab.models import StackedRNN  # noqa: E402

PEERS = ("darts", "neuralforecast")
LOOKBACK, HIDDEN, LAYERS, BATCH, LR = 60, 64, 2, 64, 1e-3


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per contender per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    missing = missing_peers()
    if missing:
        print(f"bench_peers: {', '.join(missing)} not installed; install the optional extra "
              "'peers' (keeping torch at the installed version) to run this benchmark.")
        return

    device = resolve_device(args.device)
    prices, source = load_prices()
    data = build_features(prices, FeatureSpec(feature_set="close", lookback=LOOKBACK))
    n_train_rows = data.X_train.shape[0] + LOOKBACK
    train_close = data.scaler.transform_column(prices.get_column("close").to_numpy()[:n_train_rows], "close")
    steps_per_epoch = math.ceil(data.X_train.shape[0] / BATCH)

    config = TrainConfig(cell="lstm", depth=LAYERS, hidden=HIDDEN, batch_size=BATCH, lr=LR)
    X, y = torch.from_numpy(data.X_train).to(device), torch.from_numpy(data.y_train).to(device)

    def fresh_model():
        torch.manual_seed(0)
        return StackedRNN(config.model_config(n_features=1)).to(device)

    def time_engine(epochs: int) -> list[float]:
        model = fresh_model()
        optimizer, generator = make_optimizer(model, config, device), torch.Generator(device=device)
        generator.manual_seed(0)
        times = []
        for _ in range(epochs):
            start = time.perf_counter()
            train_one_epoch(model, optimizer, X, y, batch_size=BATCH, generator=generator).item()
            times.append(time.perf_counter() - start)
        return times

    def time_plain(epochs: int) -> list[float]:
        model = fresh_model()
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)),
            batch_size=BATCH, shuffle=True,
        )
        times = []
        for _ in range(epochs):
            start = time.perf_counter()
            run_reference_epoch(model, optimizer, loader, device)
            times.append(time.perf_counter() - start)
        return times

    contenders = {
        "engine": time_engine,
        "plain torch": time_plain,
        "darts": lambda n: time_darts(train_close, n, device),
        "neuralforecast": lambda n: time_neuralforecast(train_close, n, steps_per_epoch, device),
    }
    print(f"data: {source}; {data.X_train.shape[0]} windows; device {device}; "
          f"{args.rounds} rounds x {args.epochs} epochs", flush=True)
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for round_no in range(args.rounds):
        for name, run in contenders.items():
            epochs = run(args.epochs + (1 if round_no == 0 else 0))  # first round: one warm-up epoch
            seconds[name].extend(epochs[1:] if round_no == 0 else epochs)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"{'contender':<15} {'s/epoch':>8} {'vs engine':>10}")
    for name, value in medians.items():
        print(f"{name:<15} {value:>8.3f} {value / medians['engine']:>9.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"device": str(device), "s_per_epoch": medians,
                                         "ratio_to_engine": {k: v / medians["engine"] for k, v in medians.items()}}, indent=2))


if __name__ == "__main__":
    main()
