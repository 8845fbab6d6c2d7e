"""Scoring the maps of a batch off the critical path: while the model runs batch k + 1, worker
processes score batch k's maps (upsampling, every map metric unit, the record rows) and hand
back Arrow rows. What a job carries is small: the maps at the methods' grid (or, on a GPU,
what the units' `measure` made there), the targets, the probabilities and the model metrics'
columns. Scoring is single-threaded wherever it runs (wsl_bench.threads: the per-image work is
small, intra-op threads would only wait on each other and on the network's, and the values
then do not depend on the thread count).

Workers are forked from the run (so metrics and methods registered from Python are there too),
ignore the stop signals (the run stops them after saving what is finished) and die with it."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import signal
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import torch

from .data.sample import Sample
from .errors import UserError
from .methods.core import ImageSizeSteps
from .metrics.base import MeasuredChunk, MetricSuite
from .records import RowLabels, error_reason, scored_rows, skipped_rows
from .records.store import BATCH_COLUMN
from .stopping import STOP_SIGNALS
from .threads import torch_threads
from .timing import StageClock

log = logging.getLogger("wsl_bench")


@dataclass
class ImageMaps:
    """One scored image of a batch: its sample (without the network input), targets [n] with
    their (source, rank), probabilities, the model metrics' columns per (method, target column),
    and either its maps {method: [n, h, w]} (scored in the worker) or its measured chunks (the
    device part done where the maps were)."""

    sample: Sample
    classes: list[int]
    sources: list[tuple[str, int]]
    probs: list[float]
    model_columns: dict[tuple[str, int], dict[str, Any]]
    maps: dict[str, np.ndarray] | None = None
    measured: list[MeasuredChunk] | None = None
    held: Any = None  # the gallery's copy (map_feed.HeldImage), taken off before the job leaves the run's process


@dataclass
class SkippedImage:
    image_id: str
    reason: str


@dataclass
class BatchJob:
    """Everything one loader batch's rows need, in row order (skipped images first, then the
    images of each input shape, as the loader grouped them)."""

    batch: int
    items: list[ImageMaps | SkippedImage]
    raise_all: bool = False  # the run's first batch: if every image fails, the error is the setup's


@dataclass
class ScoredBatch:
    batch: int
    rows: pa.RecordBatch
    n_images: int
    seconds: dict[str, float]
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ScoringContext:
    """What every job of a run shares (given to the workers once, when they are forked)."""

    metrics: MetricSuite
    methods: tuple[str, ...]
    labels: RowLabels
    schema: pa.Schema  # the part schema: records + _batch
    upsample: str = "bilinear"  # transform.upsample
    at_image_size: ImageSizeSteps | None = None  # Explainer.image_size_steps, for methods with steps at image size


def light(sample: Sample) -> Sample:
    """The sample without its network input (the rest is what scoring reads)."""
    return replace(sample, image=None)


def to_numpy(maps: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Maps for a worker: float32 and float64 stay as they are, other dtypes become float32
    (exact; to_original_size takes float32 anyway)."""
    return {m: (v if v.dtype in (torch.float32, torch.float64) else v.float()).cpu().numpy() for m, v in maps.items()}


def chunks_to_numpy(chunks: Sequence[MeasuredChunk]) -> list[MeasuredChunk]:
    return [replace(c, measured={u: {k: v.numpy() for k, v in m.items()} for u, m in c.measured.items()}) for c in chunks]


def chunks_from_numpy(chunks: Sequence[MeasuredChunk]) -> list[MeasuredChunk]:
    return [replace(c, measured={u: {k: torch.from_numpy(v) for k, v in m.items()} for u, m in c.measured.items()}) for c in chunks]


def score_job(job: BatchJob, context: ScoringContext) -> ScoredBatch:
    """The record rows of one batch (runs in a worker, or inline with one torch thread)."""
    clock = StageClock()
    rows: list[dict[str, Any]] = []
    warnings, failures = [], []
    n_scored = 0
    for item in job.items:
        if isinstance(item, SkippedImage):
            rows.extend(skipped_rows(item.image_id, item.reason, context.methods, context.labels))
            continue
        try:
            if item.measured is not None:
                columns = context.metrics.finish_image(item.sample, chunks_from_numpy(item.measured), clock)
            else:
                maps = {m: torch.from_numpy(v) for m, v in (item.maps or {}).items()}
                columns = context.metrics.score_image(item.sample, maps, item.classes, item.sources, context.upsample, context.at_image_size, clock)
            for key, values in columns.items():
                values.update(item.model_columns.get(key, {}))
            with clock.time("rows"):
                rows.extend(scored_rows(item.sample, context.methods, item.classes, item.sources, item.probs, columns, context.labels))
            n_scored += 1
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad image must not end a long run
            failures.append(exc)
            image_id = item.sample.entry.image_id
            reason = error_reason(exc)
            warnings.append(f"image {image_id} skipped: {reason}")
            rows.extend(skipped_rows(image_id, reason, context.methods, context.labels))
    if job.raise_all and failures and not n_scored:
        raise failures[0]
    with clock.time("rows"):
        for row in rows:
            row[BATCH_COLUMN] = job.batch
        table = pa.RecordBatch.from_pylist(rows, schema=context.schema)
    images = len({r["image_id"] for r in rows})
    return ScoredBatch(job.batch, table, images, clock.as_dict(), warnings)


_CONTEXT: ScoringContext | None = None


def quiet_worker() -> None:
    """In a worker process: one torch thread, the stop signals (Ctrl-C, SIGTERM, SIGUSR1: sent to
    the whole process group by a terminal or a cluster) left to the run, which stops its
    workers once the finished batches are saved, and (Linux) killed when the run dies, so a
    SIGKILLed run leaves no process behind."""
    torch.set_num_threads(1)
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _init_worker(context: ScoringContext) -> None:
    global _CONTEXT
    quiet_worker()
    _CONTEXT = context


def _score_in_worker(job: BatchJob) -> ScoredBatch:
    assert _CONTEXT is not None
    return score_job(job, _CONTEXT)


def _no_op() -> None:
    return None


class ScoringPool:
    """Scores jobs in `workers` processes (0: inline, in this process), at most `max_pending`
    at a time: beyond that `submit` waits for the oldest (the time the network waits for scoring,
    clocked as "wait for scoring")."""

    def __init__(self, context: ScoringContext, workers: int, clock: StageClock, max_pending: int | None = None) -> None:
        self.context, self.clock = context, clock
        self.max_pending = max_pending or 2 * max(1, workers)
        self._executor = (
            ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_init_worker, initargs=(context,))
            if workers > 0 else None
        )
        self._pending: deque[Future] = deque()
        self._ready: list[ScoredBatch] = []
        if self._executor is not None:  # fork every worker now, before the loader's threads and workers start
            self._executor.submit(_no_op).result()

    def submit(self, job: BatchJob) -> None:
        if self._executor is None:
            with torch_threads(1):
                self._ready.append(score_job(job, self.context))
            return
        self._pending.append(self._executor.submit(_score_in_worker, job))
        if len(self._pending) > self.max_pending:
            start = time.perf_counter()
            self._ready.append(self._pending.popleft().result())
            self.clock.add("wait for scoring", time.perf_counter() - start)

    def collect(self) -> list[ScoredBatch]:
        """The jobs finished so far (in any order)."""
        done = [f for f in self._pending if f.done()]
        for future in done:
            self._pending.remove(future)
            self._ready.append(future.result())
        out, self._ready = self._ready, []
        return out

    def drain(self) -> list[ScoredBatch]:
        """Wait for every job and return them all."""
        start = time.perf_counter()
        while self._pending:
            finished, _ = wait(list(self._pending), return_when=FIRST_COMPLETED)
            for future in finished:
                self._pending.remove(future)
                self._ready.append(future.result())
        self.clock.add("wait for scoring", time.perf_counter() - start)
        return self.collect()

    def close(self) -> None:
        if self._executor is not None:
            for future in self._pending:
                future.cancel()
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> "ScoringPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
