"""Stage 5, records: one row per (image, target, method), written to parquet parts as the run goes
(records.store) and joined into records.parquet at the end."""

from typing import Any

from .rows import RowLabels, error_reason, scored_rows, skipped_rows
from .schema import CORE_COLUMNS, TRAILING_COLUMNS, default_schema, record_schema
from .store import RecordStore, merge_parts, read_records

__all__ = [
    "CORE_COLUMNS", "RECORD_COLUMNS", "RECORD_SCHEMA", "RecordStore", "RowLabels", "TRAILING_COLUMNS", "default_schema",
    "error_reason", "merge_parts", "read_records", "record_schema", "scored_rows", "skipped_rows",
]


def __getattr__(name: str) -> Any:
    # The default run's schema, built on first use (it asks the metric registry for columns).
    if name == "RECORD_SCHEMA":
        return default_schema()
    if name == "RECORD_COLUMNS":
        return default_schema().names
    raise AttributeError(name)
