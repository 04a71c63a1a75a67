"""Process-level settings a training run depends on: device, determinism, allocator."""

from __future__ import annotations

import ctypes
import os
import sys
import threading

import torch

from seqlab.models.recurrence import tf32_enabled
from seqlab.models.rnn import ModelConfig, StackedRNN

# glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD_BYTES = 2**30
_CUBLAS_WORKSPACE = ":4096:8"


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; an explicit CUDA device that is absent is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    return device


def configure_determinism(device: torch.device) -> dict:
    """Switch on the deterministic settings that exist for ``device`` and return what was set.

    On CPU the kernels used here are deterministic for a given thread count, so nothing
    needs switching. On CUDA cuDNN is forced to deterministic algorithms, torch warns on
    ops without a deterministic implementation, and cuBLAS gets a fixed workspace
    (``CUBLAS_WORKSPACE_CONFIG``) when CUDA has not been initialised yet; otherwise the
    record says it could not be set.
    """
    settings: dict = {"device_type": device.type, "num_threads": torch.get_num_threads()}
    if device.type != "cuda":
        settings["precision"] = "fp32"  # no TF32 on a CPU
        settings["note"] = "CPU: deterministic for a fixed thread count; no switches needed"
        return settings
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    # cuDNN's RNN kernels use TF32 tensor cores unless told not to: measured on an H200,
    # packs of 32 train 2x faster with it (196 vs 100 epochs/s), a lone graphed run ~5%.
    # Results then differ from full-fp32 ones around 1e-4..1e-3 relative;
    # SEQLAB_CUDA_TF32=0 trades that speed for full fp32. The same switch covers torch's
    # float32 matmuls: about two thirds of a fused pack's FLOPs are its input projections,
    # their gradients and W_hh's, batched matmuls outside the kernels. Recorded per run.
    tf32 = tf32_enabled()
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    settings["cudnn.allow_tf32"] = tf32
    settings["matmul.allow_tf32"] = tf32
    settings["precision"] = "tf32" if tf32 else "fp32"
    torch.use_deterministic_algorithms(True, warn_only=True)
    settings["cudnn.deterministic"] = True
    settings["cudnn.benchmark"] = False
    settings["use_deterministic_algorithms"] = "warn_only"
    current = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if current is not None:
        settings["CUBLAS_WORKSPACE_CONFIG"] = current
    elif not torch.cuda.is_initialized():
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = _CUBLAS_WORKSPACE
        settings["CUBLAS_WORKSPACE_CONFIG"] = _CUBLAS_WORKSPACE
    else:
        settings["CUBLAS_WORKSPACE_CONFIG"] = (
            "unset: CUDA was initialised before the run; set it in the environment"
        )
    return settings


def tune_malloc(
    mmap_threshold: int = MMAP_THRESHOLD_BYTES, trim_threshold: int = TRIM_THRESHOLD_BYTES
) -> bool:
    """Pin glibc's mmap/trim thresholds (like ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``).

    glibc raises its mmap threshold dynamically and trims the heap eagerly; with torch's
    many short-lived mid-sized buffers this can flip a process into a mode where every
    step maps and unmaps fresh pages (minor faults), slowing CPU training loops. Fixed
    thresholds keep those buffers on the heap. Call once at start-up; returns True when
    applied, False off Linux/glibc (a no-op there).

    Measured (2 threads, benchmarks/bench_train.py): LSTM epochs went from 200k-500k
    minor faults to ~0 and got 10-25% faster; RNN/GRU epochs, which fault little, were
    unchanged to a few percent slower. So entry points opt in; the engine does not.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (e.g. musl)
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    )


def use_cpu_threads(threads: int) -> None:
    """Set torch's intra-op threads (process-wide) when ``threads`` > 0; 0 leaves them."""
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


# torch's default generator is process-wide: grid workers are threads of one process, and
# two of them seeding and initialising models at once would draw each other's numbers.
_MODEL_INIT = threading.Lock()


def seeded_model(config: ModelConfig, seed: int, device: torch.device) -> StackedRNN:
    """``StackedRNN(config)`` initialised right after ``torch.manual_seed(seed)``, the same
    weights in whichever thread builds it (callers take turns). Afterwards the default
    generator continues from the seed, as before, for dropout."""
    with _MODEL_INIT:
        torch.manual_seed(seed)
        return StackedRNN(config).to(device)
