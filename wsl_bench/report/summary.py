"""Per-method summary of the records. Errors and accuracies are percentages.

top1_loc_err / top5_loc_err: ILSVRC localization error (Grad-CAM paper, Table 1): an image is
correct when the top-1 prediction (any of the top-5) is a ground-truth class and its map's box
has IoU >= 0.5 with a box of that class. gtk_loc_err: the same with the ground-truth class's map,
over (image, class) pairs. top1_cls_err / top5_cls_err: classification errors.
pointing_acc: pointing game, mean over classes of per-class hit rates (Zhang et al. 2016).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SUMMARY_COLUMNS = [
    "method", "n_images", "n_skipped", "n_repaired", "top1_loc_err", "top5_loc_err", "gtk_loc_err",
    "top1_cls_err", "top5_cls_err", "pointing_acc", "n_degenerate_maps",
]


def _pct(values: pd.Series) -> float:
    return float(100.0 * values.mean()) if len(values) else float("nan")


def _per_image_any(rows: pd.DataFrame, column: pd.Series) -> pd.Series:
    return column.groupby(rows["image_id"]).any()


def summarize_method(rows: pd.DataFrame, topk: int) -> dict[str, float]:
    scored = rows[rows["skip_reason"].isna()]
    predicted = scored[scored["pred_rank"] >= 1]
    gt = scored[scored["target_source"] == "gt"]
    correct = predicted["class_in_gt"] & predicted["loc_correct"]
    top1 = predicted["pred_rank"] == 1
    top5 = predicted["pred_rank"] <= 5
    out = {
        "n_images": int(scored["image_id"].nunique()),
        "n_skipped": int(rows.loc[rows["skip_reason"].notna(), "image_id"].nunique()),
        # scored images whose input was repaired (converted, boxes clipped); the notes column says how
        "n_repaired": int(scored.loc[scored["notes"].notna(), "image_id"].nunique()),
        "top1_loc_err": 100 - _pct(_per_image_any(predicted[top1], correct[top1])) if topk >= 1 else np.nan,
        "top5_loc_err": 100 - _pct(_per_image_any(predicted[top5], correct[top5])) if topk >= 5 else np.nan,
        "gtk_loc_err": 100 - _pct(gt["loc_correct"].astype(bool)),
        "top1_cls_err": 100 - _pct(_per_image_any(predicted[top1], predicted.loc[top1, "class_in_gt"])) if topk >= 1 else np.nan,
        "top5_cls_err": 100 - _pct(_per_image_any(predicted[top5], predicted.loc[top5, "class_in_gt"])) if topk >= 5 else np.nan,
        "pointing_acc": np.nan,
        "n_degenerate_maps": int((scored["map_status"] != "ok").sum()),
    }
    pointed = gt[gt["point_hit"].notna()]
    if len(pointed):
        per_class = pointed["point_hit"].astype(float).groupby(pointed["target"]).mean()
        out["pointing_acc"] = float(100.0 * per_class.mean())
    return out


def summarize(records: pd.DataFrame, topk: int = 5) -> pd.DataFrame:
    """One row per method (columns SUMMARY_COLUMNS)."""
    rows = [{"method": method, **summarize_method(group, topk)} for method, group in records.groupby("method", sort=False)]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def format_summary(summary: pd.DataFrame) -> str:
    """Markdown table; floats with two decimals, NaN as '-'."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "-" if np.isnan(value) else f"{value:.2f}"
        return str(value)

    header = "| " + " | ".join(summary.columns) + " |"
    rule = "|" + "|".join("---" for _ in summary.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in summary.itertuples(index=False)]
    return "\n".join([header, rule, *body])
