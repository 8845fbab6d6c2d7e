"""The summary as printed at the end of a run: one row per metric and one column per method, so
that many metrics and several methods stay readable in a terminal (summary.md keeps one row per
method)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .summary import COUNT_COLUMNS, format_comparisons

# Metrics whose values are fractions in [0, 1] or correlations: three decimals.
_THREE_DIGITS = ("occlusion_corr", "insertion_auc", "deletion_auc")


def _value(row: pd.Series, metric: str) -> str:
    value = row[metric]
    if not np.isfinite(value):
        return "-"
    digits = 3 if metric in _THREE_DIGITS else 2
    return f"{value:.{digits}f} [{row[metric + '_lo']:.{digits}f}, {row[metric + '_hi']:.{digits}f}]"


def format_for_terminal(summary: pd.DataFrame) -> str:
    """Markdown table: counts, then each metric any method has (`value [95% CI]`), then the
    paired comparisons when several methods ran."""
    metrics = [c for c in summary.columns if c not in COUNT_COLUMNS and not c.endswith(("_lo", "_hi"))]
    shown = [m for m in metrics if summary[m].notna().any()]
    methods = summary["method"].tolist()
    lines = ["| metric | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for column in COUNT_COLUMNS[1:]:
        lines.append(f"| {column} | " + " | ".join(str(int(v)) for v in summary[column]) + " |")
    for metric in shown:
        lines.append(f"| {metric} | " + " | ".join(_value(row, metric) for _, row in summary.iterrows()) + " |")
    text = "\n".join(lines)
    comparisons = summary.attrs.get("comparisons")
    if comparisons is not None and len(comparisons):
        text += "\n\n" + format_comparisons(comparisons)
    return text
