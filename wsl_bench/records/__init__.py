"""Stage 5, records: one row per (image, target, method), written to parquet shards as the run goes."""

from .writer import RECORD_COLUMNS, RecordWriter, read_records

__all__ = ["RECORD_COLUMNS", "RecordWriter", "read_records"]
