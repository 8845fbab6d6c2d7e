"""Stage 6, report: summary tables computed from the records with each metric unit's statistics."""

from typing import Any

from .summary import (
    COMPARISON_COLUMNS, COUNT_COLUMNS, compare, compare_all, format_comparisons, format_summary, summarize, summary_columns,
)

__all__ = [
    "COMPARISON_COLUMNS", "COUNT_COLUMNS", "SUMMARY_COLUMNS", "compare", "compare_all", "format_comparisons", "format_summary",
    "summarize", "summary_columns",
]


def __getattr__(name: str) -> Any:
    if name == "SUMMARY_COLUMNS":  # the default run's summary columns, built on first use
        return summary_columns()
    raise AttributeError(name)
