"""Stage 6, report: summary tables computed from the records."""

from .summary import (
    SUMMARY_COLUMNS, SummarySettings, boxacc_curves, compare, compare_all, format_comparisons, format_summary,
    summarize, summary_columns, win_rate,
)

__all__ = [
    "SUMMARY_COLUMNS", "SummarySettings", "boxacc_curves", "compare", "compare_all", "format_comparisons",
    "format_summary", "summarize", "summary_columns", "win_rate",
]
