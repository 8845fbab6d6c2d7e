"""The record schema: one row per (image, target, method). The columns every run writes, then
each metric unit's own columns (in the configured order), then the notes and skip reason. Boxes
are inclusive pixel corners in the evaluation grid (the original image unless
transform.evaluate_at=input). Metric choices are in provenance.json under "metric_settings"."""

from __future__ import annotations

from typing import Sequence

import pyarrow as pa

# (name, type) of the columns the records stage itself fills.
CORE_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("image_id", pa.string()),
    ("dataset", pa.string()),
    ("model", pa.string()),
    ("method", pa.string()),
    ("target", pa.int64()),  # class index the map explains
    ("target_name", pa.string()),
    ("target_source", pa.string()),  # gt, or top1 ... topk: the prediction's rank
    ("pred_rank", pa.int64()),  # 1..k for predicted targets, 0 for gt targets
    ("class_in_gt", pa.bool_()),  # the target class is among the image's labels
    ("prob", pa.float64()),  # softmax (or sigmoid) probability of the target
    ("width", pa.int64()),
    ("height", pa.int64()),
    ("map_status", pa.string()),  # ok / all_zero / constant / nonfinite / non_positive
    ("gt_boxes", pa.list_(pa.list_(pa.int64()))),  # boxes of the target class
)
TRAILING_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("notes", pa.string()),  # repairs made to the input (conversions, clipped boxes)
    ("skip_reason", pa.string()),  # set on rows of images that could not be scored
)


def record_schema(metric_columns: Sequence[tuple[str, pa.DataType]]) -> pa.Schema:
    """The schema of a run's records given its metrics' columns (MetricSuite.columns())."""
    return pa.schema([*CORE_COLUMNS, *metric_columns, *TRAILING_COLUMNS])


def default_schema() -> pa.Schema:
    """The schema of a run with the default metrics."""
    from ..metrics import default_metrics

    return record_schema(default_metrics().columns())
