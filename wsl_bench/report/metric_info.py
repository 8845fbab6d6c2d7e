"""How the report shows each summary metric: label, unit and the words of a paired comparison
(this module's table), with the direction and digits each metric unit declares (its
`Statistic`s in the metric registry, wsl_bench.metrics); the table's own direction and digits
only cover a metric the registry does not know (an out-of-tree unit not imported here)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache


@dataclass(frozen=True)
class MetricInfo:
    name: str
    label: str
    lower_is_better: bool = False
    digits: int = 2
    unit: str = "%"  # "%": values in percent, differences in points; "": plain numbers
    # a paired comparison in words: "<method> <better> [lo, hi] than <baseline> ...", {x} the
    # amount ("3.1 points"), {label} the label; `worse` when the method is behind
    better: str = "scores {x} higher on {label}"
    worse: str = "scores {x} lower on {label}"


_LOC = ("localizes {x} better", "localizes {x} worse")

METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in [
        MetricInfo("top1_loc_err", "Top-1 loc. error", True, 2, "%", *_LOC),
        MetricInfo("top5_loc_err", "Top-5 loc. error", True, 2, "%", *_LOC),
        MetricInfo("gtk_loc_err", "GT-known loc. error", True, 2, "%", *_LOC),
        MetricInfo("top1_cls_err", "Top-1 cls. error", True, 2, "%", "classifies {x} better (top-1)", "classifies {x} worse (top-1)"),
        MetricInfo("top5_cls_err", "Top-5 cls. error", True, 2, "%", "classifies {x} better (top-5)", "classifies {x} worse (top-5)"),
        MetricInfo("pointing_acc", "Pointing game", False, 2, "%", "hits the pointing game {x} more often", "hits the pointing game {x} less often"),
        MetricInfo("pointing_acc_difficult", "Pointing game (difficult)", False, 2, "%",
                   "hits the difficult pointing game {x} more often", "hits the difficult pointing game {x} less often"),
        MetricInfo("energy_pointing", "Energy pointing", False, 2, "%",
                   "puts {x} more of its energy inside the boxes", "puts {x} less of its energy inside the boxes"),
        MetricInfo("maxboxacc", "MaxBoxAcc"),
        MetricInfo("maxboxacc_v2", "MaxBoxAccV2"),
        MetricInfo("occlusion_corr", "Occlusion correlation", False, 3, "", "correlates {x} better with occlusion", "correlates {x} worse with occlusion"),
        MetricInfo("avg_drop", "Average drop", True, 2, "%", "drops the model's confidence {x} less", "drops the model's confidence {x} more"),
        MetricInfo("increase_conf", "Increase in confidence", False, 2, "%",
                   "raises the model's confidence on {x} more of the images", "raises the model's confidence on {x} fewer of the images"),
        MetricInfo("insertion_auc", "Insertion AUC", False, 3, ""),
        MetricInfo("deletion_auc", "Deletion AUC", True, 3, "", "scores {x} lower (better) on {label}", "scores {x} higher (worse) on {label}"),
    ]
}

COUNT_LABELS = {"n_images": "Images", "n_skipped": "Skipped", "n_repaired": "Repaired", "n_degenerate_maps": "Degenerate maps"}


@lru_cache(maxsize=1)
def registry_directions() -> dict[str, tuple[bool, int]]:
    """{statistic: (lower_is_better, digits)} of every registered metric unit, default settings."""
    from ..metrics.base import METRICS as UNITS

    out: dict[str, tuple[bool, int]] = {}
    for unit in UNITS.names():
        for stat in UNITS.get(unit)().statistics():
            out[stat.name] = (stat.lower_is_better, stat.digits)
    return out


def info(name: str) -> MetricInfo:
    """The metric's display info; MaxBoxAccV2 at any IoU level; unknown metrics: higher is better."""
    if name in METRICS:
        m = METRICS[name]
    elif match := re.fullmatch(r"maxboxacc_v2_iou(\d+)", name):
        m = MetricInfo(name, f"MaxBoxAccV2 @ IoU {int(match.group(1)) / 100:g}")
    else:
        m = MetricInfo(name, name, unit="")
    declared = registry_directions().get(name)
    return m if declared is None else replace(m, lower_is_better=declared[0], digits=declared[1])


def label_with_direction(name: str) -> str:
    """"Top-1 loc. error (%) ↓": ↓ lower is better, ↑ higher is better."""
    m = info(name)
    return f"{m.label}{' (%)' if m.unit == '%' else ''} {'↓' if m.lower_is_better else '↑'}"


def fmt(value: float | None, digits: int) -> str:
    if value is None or value != value:  # None or NaN
        return "–"
    text = f"{value:.{digits}f}"
    return text.lstrip("-") if float(text) == 0 else text  # no "-0.00"
