"""The summary as printed at the end of a run: one row per metric and one column per method, so
that many metrics and several methods stay readable in a terminal (summary.md keeps one row per
method)."""

from __future__ import annotations

import pandas as pd

from .summary import COUNT_COLUMNS, comparisons_text, format_value, metric_names


def format_for_terminal(summary: pd.DataFrame) -> str:
    """Markdown table: counts, then each metric any method has (`value [95% CI]`), then the
    paired comparisons when several methods ran."""
    methods, digits = summary["method"].tolist(), summary.attrs.get("digits", {})
    lines = ["| metric | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for column in COUNT_COLUMNS[1:]:
        lines.append(f"| {column} | " + " | ".join(str(int(v)) for v in summary[column]) + " |")
    for metric in metric_names(summary):
        lines.append(f"| {metric} | " + " | ".join(format_value(row, metric, digits.get(metric, 2)) for _, row in summary.iterrows()) + " |")
    return "\n".join(lines) + comparisons_text(summary)
