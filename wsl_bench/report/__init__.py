"""Stage 6, report: summary tables computed from the records."""

from .summary import SUMMARY_COLUMNS, format_summary, summarize

__all__ = ["SUMMARY_COLUMNS", "format_summary", "summarize"]
