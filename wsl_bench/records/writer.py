"""Parquet record shards: rows are flushed every `shard_images` images so memory stays flat and
a crash loses at most one shard; `close()` merges the shards into records.parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

class RecordWriter:
    def __init__(self, out_dir: Path, schema: pa.Schema, shard_images: int = 2000) -> None:
        self.out_dir = Path(out_dir)
        self.schema = schema
        self.shard_dir = self.out_dir / "records"
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        self.shard_images = shard_images
        self._rows: list[dict[str, Any]] = []
        self._images: set[str] = set()
        self._shards: list[Path] = []

    def add(self, rows: list[dict[str, Any]]) -> None:
        self._rows.extend(rows)
        self._images.update(r["image_id"] for r in rows)
        if len(self._images) >= self.shard_images:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        path = self.shard_dir / f"part-{len(self._shards):05d}.parquet"
        table = pa.Table.from_pylist(self._rows, schema=self.schema)
        pq.write_table(table, path)
        self._shards.append(path)
        self._rows, self._images = [], set()

    def close(self) -> Path:
        """Flush, merge shards into records.parquet (one shard in memory at a time), remove them."""
        self.flush()
        merged = self.out_dir / "records.parquet"
        with pq.ParquetWriter(merged, self.schema) as writer:
            for shard in self._shards:
                writer.write_table(pq.read_table(shard, schema=self.schema))
        for shard in self._shards:
            shard.unlink()
        self.shard_dir.rmdir()
        return merged


def read_records(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)
