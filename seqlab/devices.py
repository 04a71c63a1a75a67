"""Which device each mapped training task gets: GPUs round-robin with slots, else CPU."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class DevicePlan:
    devices: list[str]  # one per request, in request order
    workers: int  # task-runner threads: all GPU slots, or the CPU worker count
    limits: dict[str, int]  # concurrency-limit name -> slots (one per GPU of this host)

    def limit_names(self) -> list[str | None]:
        """The concurrency limit each request must hold while it trains (None on CPU)."""
        return [
            gpu_limit_name(int(d.split(":")[1])) if d.startswith("cuda:") else None
            for d in self.devices
        ]


def gpu_limit_name(index: int, host: str | None = None) -> str:
    """Global concurrency limit guarding one GPU of one host."""
    return f"seqlab-gpu-{host or socket.gethostname()}-{index}"


def plan_devices(
    n_requests: int, *, gpu_count: int, slots_per_gpu: int = 2, cpu_workers: int | None = None
) -> DevicePlan:
    """Spread requests over GPUs round-robin; without GPUs every request runs on the CPU.

    On CPU one worker per two cores: small recurrent models are bound by per-op overhead,
    and oversubscribing cores slows every run down.
    """
    if slots_per_gpu < 1:
        raise ValueError(f"slots_per_gpu must be >= 1, got {slots_per_gpu}")
    if gpu_count > 0:
        devices = [f"cuda:{i % gpu_count}" for i in range(n_requests)]
        limits = {gpu_limit_name(i): slots_per_gpu for i in range(gpu_count)}
        return DevicePlan(devices, gpu_count * slots_per_gpu, limits)
    workers = cpu_workers or max(1, (os.cpu_count() or 2) // 2)
    return DevicePlan(["cpu"] * n_requests, workers, {})
