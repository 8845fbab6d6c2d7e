"""Stopping a run cleanly: Ctrl-C (SIGINT), SIGTERM and SIGUSR1 (a cluster's preemption notice)
ask the run to stop after the batch in hand; it saves every finished batch and raises
RunInterrupted, which says how to resume. A second Ctrl-C stops at once (what is finished is
still saved). A handler that was there before (e.g. submitit's requeue on SIGUSR1) is given the
signal once the records are safe."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGUSR1", None)) if s is not None)


class RunInterrupted(Exception):
    def __init__(self, out_dir: Path, signum: int, done: int, total: int, previous: Callable[..., Any] | int | None) -> None:
        self.out_dir, self.signum, self.done, self.total, self.previous = out_dir, signum, done, total, previous
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} with {done} of {total} images scored; their records are saved in {out_dir}")

    def forward_signal(self) -> None:
        """Hand the signal to the handler that was installed before the run's (if it is Python's own)."""
        if callable(self.previous) and self.previous not in (signal.default_int_handler,):
            self.previous(self.signum, None)


class StopRequest:
    """While active (main thread only), records the first stop signal instead of acting on it."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now
        self.signum = signum
        again = " (Ctrl-C again to stop now)" if signum == signal.SIGINT else ""
        print(f"\n{signal.Signals(signum).name}: stopping after the current batch{again}", file=sys.stderr, flush=True)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
