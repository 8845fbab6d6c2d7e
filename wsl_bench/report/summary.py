"""Per-method summary of the records, each metric with a 95% bootstrap interval over images,
and paired comparisons between methods. Errors, accuracies and drops are percentages.

top1_loc_err / top5_loc_err: ILSVRC localization error (Grad-CAM paper, Table 1): an image is
correct when the top-1 prediction (any of the top-5) is a ground-truth class and its map's box has
IoU >= 0.5 with a box of that class. gtk_loc_err: the same with the ground-truth class's map, over
(image, class) pairs. top1_cls_err / top5_cls_err: classification errors.
pointing_acc / pointing_acc_difficult: pointing game, mean over classes of per-class hit rates
(Zhang et al. 2016), all scored (image, class) pairs / the "difficult" subset.
energy_pointing: mean share of map energy inside the class's boxes (Score-CAM), in %.
maxboxacc / maxboxacc_v2 (+ per IoU): Choe et al. 2020, best threshold over the whole dataset.
occlusion_corr: mean Spearman correlation with occlusion maps (Grad-CAM paper, Sec. 5.2).
avg_drop / increase_conf: Grad-CAM++ (predicted class). insertion_auc / deletion_auc: RISE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from .stats import MetricData, bootstrap_cis, class_mean, curve_max, curve_max_mean, paired_bootstrap, pooled_mean

COUNT_COLUMNS = ["method", "n_images", "n_skipped", "n_repaired", "n_degenerate_maps"]


@dataclass(frozen=True)
class MetricDef:
    name: str
    build: Callable[[pd.DataFrame, pd.Index, "SummarySettings"], MetricData | None]
    lower_is_better: bool


@dataclass(frozen=True)
class SummarySettings:
    topk: int = 5
    iou_thresholds: tuple[float, ...] = (0.3, 0.5, 0.7)
    n_bootstrap: int = 1000
    seed: int = 0
    level: float = 0.95


def _column(values: np.ndarray, positions: np.ndarray, n: int, columns: np.ndarray | None = None, width: int = 1) -> sparse.csr_matrix:
    cols = np.zeros(len(positions), dtype=np.int64) if columns is None else columns
    return sparse.csr_matrix((np.asarray(values, dtype=np.float64), (positions, cols)), shape=(n, width))


def _mean_of(rows: pd.DataFrame, values: pd.Series | np.ndarray, images: pd.Index, scale: float = 100.0, offset: float = 0.0) -> MetricData | None:
    if not len(rows):
        return None
    pos = images.get_indexer(rows["image_id"])
    n = len(images)
    return MetricData(_column(np.asarray(values, dtype=np.float64), pos, n), _column(np.ones(len(rows)), pos, n), pooled_mean, scale, offset)


def _per_image_any(rows: pd.DataFrame, flags: pd.Series) -> pd.DataFrame:
    grouped = flags.astype(bool).groupby(rows["image_id"]).any()
    return pd.DataFrame({"image_id": grouped.index, "flag": grouped.to_numpy()})


def _predicted(rows: pd.DataFrame, rank: int) -> pd.DataFrame:
    return rows[(rows["pred_rank"] >= 1) & (rows["pred_rank"] <= rank)]


def _loc_err(rank: int) -> Callable:
    def build(rows: pd.DataFrame, images: pd.Index, s: SummarySettings) -> MetricData | None:
        if s.topk < rank:
            return None
        pred = _predicted(rows, rank)
        per = _per_image_any(pred, pred["class_in_gt"].astype(bool) & pred["loc_correct"].astype(bool))
        return _mean_of(per, per["flag"], images, -100.0, 100.0)

    return build


def _cls_err(rank: int) -> Callable:
    def build(rows: pd.DataFrame, images: pd.Index, s: SummarySettings) -> MetricData | None:
        if s.topk < rank:
            return None
        pred = _predicted(rows, rank)
        per = _per_image_any(pred, pred["class_in_gt"])
        return _mean_of(per, per["flag"], images, -100.0, 100.0)

    return build


def _gt(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["target_source"] == "gt"]


def _gtk_loc_err(rows: pd.DataFrame, images: pd.Index, s: SummarySettings) -> MetricData | None:
    gt = _gt(rows)
    return _mean_of(gt, gt["loc_correct"].astype(float), images, -100.0, 100.0)


def _pointing(difficult_only: bool) -> Callable:
    def build(rows: pd.DataFrame, images: pd.Index, s: SummarySettings) -> MetricData | None:
        gt = _gt(rows)
        gt = gt[gt["point_hit"].notna()]
        if difficult_only:
            gt = gt[gt["pointing_difficult"].fillna(False).astype(bool)]
        if not len(gt):
            return None
        classes, col = np.unique(gt["target"].to_numpy(), return_inverse=True)
        pos, n = images.get_indexer(gt["image_id"]), len(images)
        num = _column(gt["point_hit"].astype(float).to_numpy(), pos, n, col, len(classes))
        den = _column(np.ones(len(gt)), pos, n, col, len(classes))
        return MetricData(num, den, class_mean, 100.0)

    return build


def _present(column: str, rows_of: Callable = _gt) -> Callable:
    def select(rows: pd.DataFrame) -> pd.DataFrame:
        picked = rows_of(rows) if rows_of is not None else rows
        return picked[picked[column].notna()] if column in picked else picked.iloc[0:0]

    return select


def _mean_column(column: str, scale: float, rows_of: Callable | None = _gt) -> Callable:
    def build(rows: pd.DataFrame, images: pd.Index, s: SummarySettings) -> MetricData | None:
        picked = _present(column, rows_of)(rows)
        return _mean_of(picked, picked[column].astype(float), images, scale)

    return build


def _hit_matrix(rows: pd.DataFrame, column: str) -> np.ndarray:
    return np.stack([np.asarray(v, dtype=bool) for v in rows[column]]).astype(np.float64)


def _boxacc(column: str, iou_index: int | None = None) -> Callable:
    def build(rows: pd.DataFrame, images: pd.Index, s: SummarySettings) -> MetricData | None:
        picked = _present(column)(rows)
        if not len(picked):
            return None
        hits = _hit_matrix(picked, column)
        groups = 1
        if column == "boxacc_v2_hits":
            groups = len(s.iou_thresholds)
            if iou_index is not None:
                hits = hits.reshape(len(hits), groups, -1)[:, iou_index]
                groups = 1
        pos, n, width = images.get_indexer(picked["image_id"]), len(images), hits.shape[1]
        rr, cc = np.repeat(pos, width), np.tile(np.arange(width), len(pos))
        num = sparse.csr_matrix((hits.ravel(), (rr, cc)), shape=(n, width))
        den = sparse.csr_matrix((np.ones(len(rr)), (rr, cc)), shape=(n, width))
        return MetricData(num, den, curve_max if groups == 1 else curve_max_mean(groups), 100.0)

    return build


def _confidence(kind: str) -> Callable:
    def build(rows: pd.DataFrame, images: pd.Index, s: SummarySettings) -> MetricData | None:
        picked = _present("expl_prob", None)(rows)
        if not len(picked):
            return None
        y, o = picked["prob"].astype(float).to_numpy(), picked["expl_prob"].astype(float).to_numpy()
        values = np.maximum(0.0, y - o) / y if kind == "drop" else (y < o).astype(float)
        return _mean_of(picked, values, images, 100.0)

    return build


def metric_defs(settings: SummarySettings) -> list[MetricDef]:
    defs = [
        MetricDef("top1_loc_err", _loc_err(1), True),
        MetricDef("top5_loc_err", _loc_err(5), True),
        MetricDef("gtk_loc_err", _gtk_loc_err, True),
        MetricDef("top1_cls_err", _cls_err(1), True),
        MetricDef("top5_cls_err", _cls_err(5), True),
        MetricDef("pointing_acc", _pointing(False), False),
        MetricDef("pointing_acc_difficult", _pointing(True), False),
        MetricDef("energy_pointing", _mean_column("energy", 100.0), False),
        MetricDef("maxboxacc", _boxacc("boxacc_v1_hits"), False),
        MetricDef("maxboxacc_v2", _boxacc("boxacc_v2_hits"), False),
    ]
    for j, iou in enumerate(settings.iou_thresholds):
        defs.append(MetricDef(f"maxboxacc_v2_iou{round(100 * iou)}", _boxacc("boxacc_v2_hits", j), False))
    defs += [
        MetricDef("occlusion_corr", _mean_column("occlusion_corr", 1.0, None), False),
        MetricDef("avg_drop", _confidence("drop"), True),
        MetricDef("increase_conf", _confidence("increase"), False),
        MetricDef("insertion_auc", _mean_column("insertion_auc", 1.0, None), False),
        MetricDef("deletion_auc", _mean_column("deletion_auc", 1.0, None), True),
    ]
    return defs


def summary_columns(settings: SummarySettings = SummarySettings()) -> list[str]:
    cols = list(COUNT_COLUMNS)
    for d in metric_defs(settings):
        cols += [d.name, f"{d.name}_lo", f"{d.name}_hi"]
    return cols


SUMMARY_COLUMNS = summary_columns()


def _scored(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["skip_reason"].isna()]


def summarize_method(rows: pd.DataFrame, settings: SummarySettings) -> dict[str, float]:
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
    for d in metric_defs(settings):
        data = d.build(scored, images, settings) if len(images) else None
        if data is None:
            out[d.name] = out[f"{d.name}_lo"] = out[f"{d.name}_hi"] = np.nan
        else:
            built[d.name] = data
            out[d.name] = data.value()
    for name, (lo, hi) in bootstrap_cis(built, settings.n_bootstrap, settings.seed, settings.level).items():
        out[f"{name}_lo"], out[f"{name}_hi"] = lo, hi
    return out


def summarize(records: pd.DataFrame, topk: int = 5, settings: SummarySettings | None = None) -> pd.DataFrame:
    """One row per method: counts, and every metric with its bootstrap interval (_lo, _hi).
    With more than one method, summary.attrs["comparisons"] holds compare_all()."""
    settings = settings or SummarySettings(topk=topk)
    rows = [{"method": m, **summarize_method(g, settings)} for m, g in records.groupby("method", sort=False)]
    summary = pd.DataFrame(rows, columns=summary_columns(settings))
    if len(summary) > 1:
        summary.attrs["comparisons"] = compare_all(records, settings=settings)
    return summary


def compare(
    records: pd.DataFrame, method: str, baseline: str, metric: str, settings: SummarySettings | None = None
) -> dict[str, float | str | bool]:
    """Paired bootstrap of `metric` for `method` minus `baseline` over the images both scored:
    diff, 95% interval, p_better (share of resamples where `method` is better, by the metric's
    direction) and whether the interval excludes 0 in `method`'s favour. For avg_drop, also the
    Grad-CAM++ win %: share of images where `method` drops less than `baseline`."""
    settings = settings or SummarySettings()
    defs = {d.name: d for d in metric_defs(settings)}
    if metric not in defs:
        raise ValueError(f"unknown metric {metric!r}; one of {', '.join(defs)}")
    d = defs[metric]
    a, b = _scored(records[records["method"] == method]), _scored(records[records["method"] == baseline])
    images = pd.Index(sorted(set(a["image_id"]) & set(b["image_id"])))
    a, b = a[a["image_id"].isin(images)], b[b["image_id"].isin(images)]
    out: dict[str, float | str | bool] = {"method": method, "baseline": baseline, "metric": metric}
    da, db = (d.build(a, images, settings), d.build(b, images, settings)) if len(images) else (None, None)
    if da is None or db is None:
        return {**out, "diff": np.nan, "lo": np.nan, "hi": np.nan, "p_better": np.nan, "significant": False, "n_images": len(images)}
    res = paired_bootstrap(da, db, settings.n_bootstrap, settings.seed, settings.level)
    p_better = res["p_less"] if d.lower_is_better else res["p_greater"]
    better_side = res["hi"] < 0 if d.lower_is_better else res["lo"] > 0
    out.update(diff=res["diff"], lo=res["lo"], hi=res["hi"], p_better=p_better, significant=bool(better_side), n_images=res["n_images"])
    if metric == "avg_drop":
        out["win_pct"] = win_rate(records, method, baseline)
    return out


def win_rate(records: pd.DataFrame, method: str, baseline: str) -> float:
    """Grad-CAM++ win %: among images where both have a predicted-class explanation confidence,
    the share where `method`'s drop max(0, Y - O) / Y is strictly smaller than `baseline`'s."""

    def drops(m: str) -> pd.Series:
        rows = _scored(records[records["method"] == m])
        rows = rows[rows["expl_prob"].notna()] if "expl_prob" in rows else rows.iloc[0:0]
        y, o = rows["prob"].astype(float), rows["expl_prob"].astype(float)
        return pd.Series((np.maximum(0.0, y - o) / y).to_numpy(), index=rows["image_id"]).groupby(level=0).mean()

    a, b = drops(method), drops(baseline)
    common = a.index.intersection(b.index)
    return float(100.0 * np.mean(a[common] < b[common])) if len(common) else float("nan")


def compare_all(records: pd.DataFrame, baseline: str | None = None, settings: SummarySettings | None = None) -> pd.DataFrame:
    """Every other method against `baseline` (gradcam if it ran, else the first method), for
    every metric both have."""
    settings = settings or SummarySettings()
    methods = list(pd.unique(records["method"]))
    baseline = baseline or ("gradcam" if "gradcam" in methods else methods[0])
    rows = []
    for method in methods:
        if method == baseline:
            continue
        for d in metric_defs(settings):
            res = compare(records, method, baseline, d.name, settings)
            if np.isfinite(res["diff"]):
                rows.append(res)
    return pd.DataFrame(rows, columns=["method", "baseline", "metric", "diff", "lo", "hi", "p_better", "significant", "n_images", "win_pct"])


def _cell(value: object, digits: int = 2) -> str:
    if isinstance(value, (float, np.floating)):
        return "-" if not np.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def format_summary(summary: pd.DataFrame) -> str:
    """Markdown: one row per method, each computed metric as `value [lo, hi]` (metrics no method
    has are left out), then the paired comparisons when several methods ran."""
    metrics = [c for c in summary.columns if c not in COUNT_COLUMNS and not c.endswith(("_lo", "_hi"))]
    shown = [m for m in metrics if summary[m].notna().any()]
    header = "| " + " | ".join([*COUNT_COLUMNS, *shown]) + " |"
    rule = "|" + "|".join("---" for _ in range(len(COUNT_COLUMNS) + len(shown))) + "|"
    body = []
    for _, row in summary.iterrows():
        cells = [_cell(row[c]) for c in COUNT_COLUMNS]
        for m in shown:
            digits = 3 if m in ("occlusion_corr", "insertion_auc", "deletion_auc") else 2
            v = row[m]
            cells.append("-" if not np.isfinite(v) else f"{_cell(v, digits)} [{_cell(row[m + '_lo'], digits)}, {_cell(row[m + '_hi'], digits)}]")
        body.append("| " + " | ".join(cells) + " |")
    text = "\n".join([header, rule, *body])
    comparisons = summary.attrs.get("comparisons")
    if comparisons is not None and len(comparisons):
        text += "\n\n" + format_comparisons(comparisons)
    return text


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


def boxacc_curves(records: pd.DataFrame, thresholds: Sequence[float], iou_thresholds: Sequence[float], v1_iou: float = 0.5) -> pd.DataFrame:
    """The per-threshold accuracy curves behind MaxBoxAcc (V1, at v1_iou) and V2 (per IoU), per
    method: columns method, version, iou, tau, acc (%). Saved as boxacc_curves.csv."""
    out = []
    for method, rows in records.groupby("method", sort=False):
        gt = _scored(rows)
        for column, version in (("boxacc_v1_hits", "v1"), ("boxacc_v2_hits", "v2")):
            if column not in gt:
                continue
            picked = gt[gt[column].notna()]
            if not len(picked):
                continue
            curve = 100.0 * _hit_matrix(picked, column).mean(axis=0)
            per = curve.reshape(-1, len(thresholds)) if version == "v2" else curve[None]
            ious = list(iou_thresholds) if version == "v2" else [v1_iou]
            for iou, acc in zip(ious, per):
                out.append(pd.DataFrame({"method": method, "version": version, "iou": iou, "tau": np.asarray(thresholds), "acc": acc}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=["method", "version", "iou", "tau", "acc"])
