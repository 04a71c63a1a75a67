"""Grid progress: counts, ETA and a line per finished config; listeners see every update."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class GridProgress:
    total: int
    done: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)

    def advance(self, *, failed: bool = False) -> None:
        self.done += 1
        self.failed += int(failed)

    @property
    def fraction(self) -> float:
        return 1.0 if self.total == 0 else self.done / self.total

    def eta_s(self) -> float | None:
        if self.done == 0:
            return None
        elapsed = time.monotonic() - self.started
        return elapsed / self.done * (self.total - self.done)

    def line(self, what: str) -> str:
        eta = self.eta_s()
        eta_text = "?" if eta is None else _duration(eta)
        return f"[{self.done}/{self.total}] {what} (ETA {eta_text})"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


# Set by a caller in the same process (e.g. the CLI's progress bar) around a flow call.
progress_listener: ContextVar[Callable[[GridProgress, str], None] | None] = ContextVar(
    "seqlab_progress_listener", default=None
)


def notify(progress: GridProgress, line: str) -> None:
    listener = progress_listener.get()
    if listener is not None:
        listener(progress, line)
