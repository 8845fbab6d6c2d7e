"""Parquet record shards: rows are flushed every `shard_images` images so memory stays flat and
a crash loses at most one shard; `close()` merges the shards into records.parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# The record schema. Boxes are inclusive pixel corners in original image coordinates. Metric
# choices (thresholds, comparisons, tolerance, occlusion patch/stride/fill, ...) are in
# provenance.json under "metric_settings". Hit vectors are booleans, bit-packed by parquet.
RECORD_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("dataset", pa.string()),
        ("model", pa.string()),
        ("method", pa.string()),
        ("target", pa.int64()),              # class index the map explains
        ("target_name", pa.string()),
        ("target_source", pa.string()),      # gt / top1 / top5
        ("pred_rank", pa.int64()),           # 1..k for predicted targets, 0 for gt targets
        ("class_in_gt", pa.bool_()),         # the target class is among the image's labels
        ("prob", pa.float64()),              # softmax (or sigmoid) probability of the target
        ("pointing_difficult", pa.bool_()),  # the (image, class) belongs to the "difficult" subset
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("map_status", pa.string()),         # ok / all_zero / constant / nonfinite / non_positive
        ("pred_box", pa.list_(pa.int64())),  # [x0, y0, x1, y1] or null
        ("gt_boxes", pa.list_(pa.list_(pa.int64()))),  # boxes of the target class
        ("iou", pa.float64()),               # best IoU with gt_boxes; null when the class has none
        ("loc_correct", pa.bool_()),
        ("point_x", pa.int64()),
        ("point_y", pa.int64()),
        ("point_hit", pa.bool_()),           # null when the class is not scored (not in the image, all boxes difficult, no region)
        ("energy", pa.float64()),            # share of map energy inside the class's boxes (gt rows)
        ("boxacc_v1_hits", pa.list_(pa.bool_())),  # per threshold: largest component's box hits (gt rows)
        ("boxacc_v2_hits", pa.list_(pa.bool_())),  # per IoU level, per threshold (row-major): best box hits
        ("occlusion_corr", pa.float64()),    # Spearman correlation with the occlusion map (when enabled)
        ("expl_prob", pa.float64()),         # probability of the target on the explanation map L * I (when enabled)
        ("insertion_auc", pa.float64()),     # RISE insertion AUC (when enabled)
        ("deletion_auc", pa.float64()),      # RISE deletion AUC (when enabled)
        ("notes", pa.string()),              # repairs made to the input (conversions, clipped boxes)
        ("skip_reason", pa.string()),        # set on rows of images that could not be scored
    ]
)
RECORD_COLUMNS = RECORD_SCHEMA.names


class RecordWriter:
    def __init__(self, out_dir: Path, shard_images: int = 2000) -> None:
        self.out_dir = Path(out_dir)
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
        table = pa.Table.from_pylist(self._rows, schema=RECORD_SCHEMA)
        pq.write_table(table, path)
        self._shards.append(path)
        self._rows, self._images = [], set()

    def close(self) -> Path:
        """Flush, merge shards into records.parquet (one shard in memory at a time), remove them."""
        self.flush()
        merged = self.out_dir / "records.parquet"
        with pq.ParquetWriter(merged, RECORD_SCHEMA) as writer:
            for shard in self._shards:
                writer.write_table(pq.read_table(shard, schema=RECORD_SCHEMA))
        for shard in self._shards:
            shard.unlink()
        self.shard_dir.rmdir()
        return merged


def read_records(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)
