"""The files a run leaves beside its records: summary.csv / summary.md, comparisons.csv (several
methods), each metric's tables (e.g. boxacc_curves.csv), provenance.json and, for a paper preset
(a `paper_table:` node), the paper's table beside ours (table.csv / table.md, report.paper_tables)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..metrics.base import MetricSuite
from .paper_tables import check_paper_table, run_paper_table, write_paper_table
from .summary import format_summary


def check_outputs(cfg: Any, metrics: MetricSuite) -> None:
    """What the report stage will need, checked before any compute: a paper preset's mapping."""
    if cfg.get("paper_table"):
        check_paper_table(cfg.get("paper_table"), [s.name for s, _ in metrics.statistics()])


def metric_settings(metrics: MetricSuite, provenance: dict[str, Any]) -> dict[str, Any]:
    """Every metric choice of the run as scored, and the bootstrap's (provenance.json "metric_settings")."""
    return {**metrics.provenance(), "bootstrap": provenance.get("bootstrap", {})}


def write_outputs(out_dir: Path, records: pd.DataFrame, summary: pd.DataFrame, metrics: MetricSuite, provenance: dict[str, Any]) -> None:
    summary.to_csv(out_dir / "summary.csv", index=False)
    comparisons = summary.attrs.get("comparisons")
    if comparisons is not None:
        comparisons.to_csv(out_dir / "comparisons.csv", index=False)
    for unit in metrics.active:
        for name, table in unit.tables(records).items():
            table.to_csv(out_dir / f"{name}.csv", index=False)
    settings = metric_settings(metrics, provenance)
    (out_dir / "summary.md").write_text(format_summary(summary) + "\n\nMetric settings: `" + json.dumps(settings, default=str) + "`\n")
    (out_dir / "provenance.json").write_text(json.dumps({**provenance, "metric_settings": settings}, indent=2, default=str) + "\n")
    paper = run_paper_table(provenance.get("config", {}), summary, records, metrics)
    if paper is not None:
        write_paper_table(out_dir, paper)
