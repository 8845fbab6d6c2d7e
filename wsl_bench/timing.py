"""Where a run spends its time: busy seconds per stage, summed over batches and over the
processes that did the work (loader and scoring workers report theirs with their results).
On a GPU, stage boundaries only see when work was queued unless `sync` waits for the device
(the benchmark sets it; a normal run does not pay for the waits)."""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping


class StageClock:
    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._sync = sync

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        if self._sync is not None:
            self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self._sync is not None:
                self._sync()
            self.seconds[stage] += time.perf_counter() - start

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] += seconds

    def merge(self, seconds: Mapping[str, float]) -> None:
        for stage, value in seconds.items():
            self.seconds[stage] += value

    def as_dict(self) -> dict[str, float]:
        return dict(self.seconds)


class NoClock(StageClock):
    """A clock that records nothing (scoring called from Python)."""

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        yield

    def add(self, stage: str, seconds: float) -> None:
        pass
