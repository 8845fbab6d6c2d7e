"""Records as a run makes them, safe to kill at any moment.

Rows come in whole batches (the loader batch: `loader.batch_size` consecutive images of the
dataset, numbered from 0; the annotation rejects are batch -1). The store keeps them in memory and
flushes them to a part file every `records.flush_images` images or `records.flush_seconds`
seconds, whichever comes first. A part is written under a temporary name and renamed: it is
there complete or not at all, so a run killed by SIGKILL loses at most the rows since the last
flush, and a full disk never leaves a broken file in place of a good one. Each part names its
batches in a `_batch` column; on a restart they say which batches are done, and `merge_parts`
joins the parts of every process (torchrun ranks, data shards) in batch order into one
records.parquet that equals an uninterrupted single-process run's."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import UserError

BATCH_COLUMN = "_batch"  # parts only: the batch a row comes from
PART_DIR = "records"
RECORDS_FILE = "records.parquet"


class DiskFullError(UserError):
    """Writing run outputs failed for lack of space (or another OS error); nothing good was replaced."""


def part_schema(schema: pa.Schema) -> pa.Schema:
    return schema.append(pa.field(BATCH_COLUMN, pa.int64()))


def write_atomic(table: pa.Table, path: Path, what: str) -> None:
    """A parquet file, written atomically (replace_atomically)."""
    replace_atomically(path, lambda tmp: pq.write_table(table, tmp), what, table.nbytes)


def replace_atomically(path: Path, write: Callable[[Path], object], what: str, nbytes: int) -> None:
    """`write(tmp)` a file under a temporary name in the same folder, flush it to disk, then
    rename it over `path` and flush the folder: after a crash, even of the machine, `path` is the
    old file or the new one, whole. On failure the temporary file is removed, `path` is
    untouched and the error names the folder and about how much to free (DiskFullError)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise disk_error(exc, path.parent, what, nbytes) from None


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to the disk (a rename is durable only once
    its folder is flushed). Folders cannot be opened on Windows: skipped there."""
    if os.name == "nt" and Path(path).is_dir():
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_error(exc: OSError, folder: Path, what: str, nbytes: int) -> DiskFullError:
    full = getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in str(exc)
    reason = "no space left on device" if full else f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    need = f"; free about {max(1, nbytes // 2**20)} MB there" if full else ""
    return DiskFullError(
        f"could not write {what} in {folder} ({reason}){need} and run the same command again: finished batches are kept and the run resumes"
    )


def list_parts(run_dir: Path) -> list[Path]:
    return sorted((Path(run_dir) / PART_DIR).glob("part-*.parquet"))


def done_batches(parts: Iterable[Path]) -> set[int]:
    """The batches the parts hold (read from their `_batch` column only)."""
    done: set[int] = set()
    for part in parts:
        done.update(pq.read_table(part, columns=[BATCH_COLUMN]).column(0).unique().to_pylist())
    return done


class RecordStore:
    """Buffers scored batches and flushes them as part files of this process (`tag`: r<rank>)."""

    def __init__(
        self, run_dir: Path, schema: pa.Schema, tag: str = "r0", flush_images: int = 256, flush_seconds: float = 30.0,
        before_write: Callable[[], None] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.part_dir = self.run_dir / PART_DIR
        self.part_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.part_dir.glob(f".part-{tag}-*.tmp-*"):  # a killed run's unfinished write
            stale.unlink(missing_ok=True)
        self.schema = part_schema(schema)
        self.tag = tag
        self.flush_images, self.flush_seconds = flush_images, flush_seconds
        self.done = done_batches(list_parts(self.run_dir))
        self._next = 1 + max((int(p.stem.rsplit("-", 1)[1]) for p in self.part_dir.glob(f"part-{tag}-*.parquet")), default=-1)
        self._pending: list[pa.RecordBatch] = []
        self._pending_images = 0
        self._last_flush = time.monotonic()
        # called before each part is written: state that must cover every stored batch (the gallery's)
        self.before_write = before_write

    def add(self, batch: int, rows: pa.RecordBatch, n_images: int) -> None:
        """A batch's rows (schema + `_batch`); flushed when enough images or time have passed."""
        self._pending.append(rows)
        self._pending_images += n_images
        self.done.add(batch)
        if self._pending_images >= self.flush_images or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        if self.before_write is not None:
            self.before_write()
        write_atomic(table, self.part_dir / f"part-{self.tag}-{self._next:06d}.parquet", "a records part")
        self._next += 1
        self._pending, self._pending_images = [], 0


def merge_parts(parts: Sequence[Path], schema: pa.Schema, out: Path) -> Path:
    """Join part files (of one run, or of the shards of one configuration) into `out` in batch
    order, rows of a batch in the order they were made; the `_batch` column is dropped. A batch
    found in two parts (two shards that overlap) is kept once. Written atomically."""
    tables, seen = [], set()
    for part in parts:
        table = pq.read_table(part, schema=part_schema(schema))
        batches = table.column(BATCH_COLUMN)
        if seen:
            table = table.filter(pc.invert(pc.is_in(batches, pa.array(sorted(seen), pa.int64()))))
        seen.update(batches.unique().to_pylist())
        tables.append(table)
    table = pa.concat_tables(tables) if tables else part_schema(schema).empty_table()
    # a stable sort by batch keeps each batch's rows in the order they were made
    table = table.take(pc.sort_indices(table, sort_keys=[(BATCH_COLUMN, "ascending")]))
    write_atomic(table.drop_columns([BATCH_COLUMN]), Path(out), "records.parquet")
    return Path(out)


def read_records(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)
