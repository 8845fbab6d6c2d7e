"""Per-method summary of the records, each metric unit's statistics with a 95% bootstrap interval
over images, and paired comparisons between methods. What each statistic means and how it is
computed is its metric unit's (wsl_bench/metrics/<name>.py); errors, accuracies and drops are %."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..config import ReportSettings
from ..metrics.base import MetricSuite, Statistic, default_metrics
from .stats import bootstrap_cis, paired_bootstrap

COUNT_COLUMNS = ["method", "n_images", "n_skipped", "n_repaired", "n_degenerate_maps"]
COMPARISON_COLUMNS = ["method", "baseline", "metric", "diff", "lo", "hi", "p_better", "significant", "n_images", "win_pct"]


def summary_columns(metrics: MetricSuite | None = None) -> list[str]:
    """The columns of summary.csv: counts, then each statistic with its interval bounds."""
    metrics = metrics or default_metrics()
    return COUNT_COLUMNS + [c for s, _ in metrics.statistics() for c in (s.name, f"{s.name}_lo", f"{s.name}_hi")]


def _scored(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["skip_reason"].isna()]


def summarize_method(rows: pd.DataFrame, metrics: MetricSuite, settings: ReportSettings) -> dict[str, float]:
    """Counts and every statistic (NaN when its unit is disabled or scored nothing) of one method."""
    scored = _scored(rows)
    images = pd.Index(pd.unique(scored["image_id"]))
    out: dict[str, float] = {
        "n_images": len(images),
        "n_skipped": int(rows.loc[rows["skip_reason"].notna(), "image_id"].nunique()),
        # scored images whose input was repaired (converted, boxes clipped); the notes column says how
        "n_repaired": int(scored.loc[scored["notes"].notna(), "image_id"].nunique()),
        "n_degenerate_maps": int((scored["map_status"] != "ok").sum()),
    }
    built = {}
    for stat, enabled in metrics.statistics():
        data = stat.build(scored, images) if enabled and len(images) else None
        if data is None:
            out[stat.name] = out[f"{stat.name}_lo"] = out[f"{stat.name}_hi"] = np.nan
        else:
            built[stat.name] = data
            out[stat.name] = data.value()
    for name, (lo, hi) in bootstrap_cis(built, settings.bootstrap, settings.seed, settings.ci).items():
        out[f"{name}_lo"], out[f"{name}_hi"] = lo, hi
    return out


def summarize(records: pd.DataFrame, metrics: MetricSuite | None = None, settings: ReportSettings | None = None) -> pd.DataFrame:
    """One row per method: counts, and every statistic with its bootstrap interval (_lo, _hi).
    With more than one method, summary.attrs["comparisons"] holds compare_all(); attrs["digits"]
    the decimals each statistic is shown with."""
    metrics, settings = metrics or default_metrics(), settings or ReportSettings()
    rows = [{"method": m, **summarize_method(g, metrics, settings)} for m, g in records.groupby("method", sort=False)]
    summary = pd.DataFrame(rows, columns=summary_columns(metrics))
    summary.attrs["digits"] = {s.name: s.digits for s, _ in metrics.statistics()}
    if len(summary) > 1:
        summary.attrs["comparisons"] = compare_all(records, metrics=metrics, settings=settings)
    return summary


def _statistic(metrics: MetricSuite, name: str) -> Statistic:
    found = {s.name: s for s, _ in metrics.statistics()}
    if name not in found:
        raise ValueError(f"unknown metric {name!r}; one of {', '.join(found)}")
    return found[name]


def compare(
    records: pd.DataFrame, method: str, baseline: str, metric: str, metrics: MetricSuite | None = None, settings: ReportSettings | None = None
) -> dict[str, Any]:
    """Paired bootstrap of `metric` for `method` minus `baseline` over the images both scored:
    diff, 95% interval, p_better (share of resamples where `method` is better, by the metric's
    direction) and whether the interval excludes 0 in `method`'s favour, plus the statistic's own
    paired columns (for avg_drop, the Grad-CAM++ win %)."""
    metrics, settings = metrics or default_metrics(), settings or ReportSettings()
    stat = _statistic(metrics, metric)
    a, b = _scored(records[records["method"] == method]), _scored(records[records["method"] == baseline])
    images = pd.Index(sorted(set(a["image_id"]) & set(b["image_id"])))
    a, b = a[a["image_id"].isin(images)], b[b["image_id"].isin(images)]
    out: dict[str, Any] = {"method": method, "baseline": baseline, "metric": metric}
    da, db = (stat.build(a, images), stat.build(b, images)) if len(images) else (None, None)
    if da is None or db is None:
        return {**out, "diff": np.nan, "lo": np.nan, "hi": np.nan, "p_better": np.nan, "significant": False, "n_images": len(images)}
    res = paired_bootstrap(da, db, settings.bootstrap, settings.seed, settings.ci)
    p_better = res["p_less"] if stat.lower_is_better else res["p_greater"]
    better_side = res["hi"] < 0 if stat.lower_is_better else res["lo"] > 0
    out.update(diff=res["diff"], lo=res["lo"], hi=res["hi"], p_better=p_better, significant=bool(better_side), n_images=res["n_images"])
    if stat.paired is not None:
        out.update(stat.paired(a, b))
    return out


def compare_all(
    records: pd.DataFrame, baseline: str | None = None, metrics: MetricSuite | None = None, settings: ReportSettings | None = None
) -> pd.DataFrame:
    """Every other method against `baseline` (gradcam if it ran, else the first method), for
    every computed statistic both have."""
    metrics = metrics or default_metrics()
    methods = list(pd.unique(records["method"]))
    baseline = baseline or ("gradcam" if "gradcam" in methods else methods[0])
    rows = []
    for method in methods:
        if method == baseline:
            continue
        for stat, enabled in metrics.statistics():
            if enabled and np.isfinite((res := compare(records, method, baseline, stat.name, metrics, settings))["diff"]):
                rows.append(res)
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def metric_names(summary: pd.DataFrame) -> list[str]:
    """The statistics in a summary any method has a value for."""
    metrics = [c for c in summary.columns if c not in COUNT_COLUMNS and not c.endswith(("_lo", "_hi"))]
    return [m for m in metrics if summary[m].notna().any()]


def format_value(row: pd.Series, metric: str, digits: int) -> str:
    """`value [lo, hi]` of one statistic, or "-"."""
    v = row[metric]
    if not np.isfinite(v):
        return "-"
    return f"{_cell(v, digits)} [{_cell(row[metric + '_lo'], digits)}, {_cell(row[metric + '_hi'], digits)}]"


def _cell(value: object, digits: int = 2) -> str:
    if isinstance(value, (float, np.floating)):
        return "-" if not np.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def format_summary(summary: pd.DataFrame) -> str:
    """Markdown: one row per method, each computed metric as `value [lo, hi]` (metrics no method
    has are left out), then the paired comparisons when several methods ran."""
    shown, digits = metric_names(summary), summary.attrs.get("digits", {})
    header = "| " + " | ".join([*COUNT_COLUMNS, *shown]) + " |"
    rule = "|" + "|".join("---" for _ in range(len(COUNT_COLUMNS) + len(shown))) + "|"
    body = [
        "| " + " | ".join([_cell(row[c]) for c in COUNT_COLUMNS] + [format_value(row, m, digits.get(m, 2)) for m in shown]) + " |"
        for _, row in summary.iterrows()
    ]
    return "\n".join([header, rule, *body]) + comparisons_text(summary)


def comparisons_text(summary: pd.DataFrame) -> str:
    comparisons = summary.attrs.get("comparisons")
    return "\n\n" + format_comparisons(comparisons) if comparisons is not None and len(comparisons) else ""


def format_comparisons(comparisons: pd.DataFrame) -> str:
    """Markdown table of paired comparisons (method - baseline, 95% paired bootstrap interval)."""
    lines = [
        "Paired comparison over the same images (method - baseline, 95% bootstrap interval; * = interval excludes 0 in the method's favour):",
        "",
        "| method | baseline | metric | diff | 95% CI | P(better) | win % |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in comparisons.iterrows():
        star = " *" if r["significant"] else ""
        lines.append(
            f"| {r['method']} | {r['baseline']} | {r['metric']} | {_cell(r['diff'], 3)}{star} | [{_cell(r['lo'], 3)}, {_cell(r['hi'], 3)}] | {_cell(r['p_better'], 3)} | {_cell(r.get('win_pct', np.nan))} |"
        )
    return "\n".join(lines)
