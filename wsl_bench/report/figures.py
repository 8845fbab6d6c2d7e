"""The report's plots as PNG bytes, drawn with matplotlib's Agg canvas (no pyplot, no global
backend switch): MaxBoxAcc accuracy against threshold, the IoU histogram, per-class pointing
accuracy, and insertion / deletion curves (or their per-image AUCs when only those were saved)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

# Colour of each method, in run order, shared by every plot and the gallery (matplotlib tab10).
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
MAX_CLASSES = 30  # per-class pointing plot: at most this many classes


@dataclass
class Figure:
    name: str  # file stem under figures/
    title: str
    caption: str
    png: bytes


def method_colors(methods: Sequence[str]) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style(ax) -> None:
    ax.grid(True, color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#9ca3af")
    ax.tick_params(colors="#374151", labelsize=8)


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, facecolor="white")
    return buffer.getvalue()


def boxacc_figure(curves: pd.DataFrame, colors: dict[str, str]) -> Figure | None:
    """One panel per curve (V1 at its IoU, V2 at each IoU level): accuracy (%) against the
    threshold per method, the best threshold (the one MaxBoxAcc reports) marked."""
    if curves is None or not len(curves):
        return None
    panels = list(dict.fromkeys(zip(curves["version"], curves["iou"])))
    fig = _new_figure(min(3.3 * len(panels), 13.5), 3.1)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (version, iou) in zip(axes, panels):
        part = curves[(curves["version"] == version) & (curves["iou"] == iou)]
        for method, rows in part.groupby("method", sort=False):
            tau, acc = rows["tau"].to_numpy(float), rows["acc"].to_numpy(float)
            best = int(np.nanargmax(acc))
            color = colors.get(str(method), "#333333")
            ax.plot(tau, acc, color=color, linewidth=1.6, label=f"{method}: {acc[best]:.1f}% at τ={tau[best]:.2f}")
            ax.axvline(tau[best], color=color, linestyle=":", linewidth=1)
            ax.plot([tau[best]], [acc[best]], "o", color=color, markersize=5, markeredgecolor="white")
        name = "MaxBoxAcc" if version == "v1" else "MaxBoxAccV2"
        ax.set_title(f"{name}, IoU ≥ {iou:g}", fontsize=9.5, color="#111827")
        ax.set_xlabel("threshold τ (min-max normalized map)", fontsize=8)
        ax.set_xlim(0, 1)
        _style(ax)
        ax.legend(fontsize=7, frameon=False, loc="lower left" if version == "v1" else "best")
    axes[0].set_ylabel("box accuracy (%)", fontsize=8.5)
    return Figure("maxboxacc_curves", "MaxBoxAcc: accuracy against threshold",
                  "The curves behind MaxBoxAcc (Choe et al. 2020): share of ground-truth-class maps whose box hits, at each "
                  "threshold; the dot and dotted line mark the best threshold, which the metric reports.", _png(fig))


def iou_histogram(records: pd.DataFrame, methods: Sequence[str], colors: dict[str, str], iou_threshold: float = 0.5) -> Figure | None:
    """Histogram of the IoU of each ground-truth-class map's box with the class's boxes."""
    gt = records[(records["target_source"] == "gt") & records["iou"].notna()] if "iou" in records else records.iloc[0:0]
    if not len(gt):
        return None
    per_method = {m: gt.loc[gt["method"] == m, "iou"].to_numpy(float) for m in methods}
    per_method = {m: v for m, v in per_method.items() if len(v)}
    few = max(len(v) for v in per_method.values()) < 60  # a histogram of a handful says little: one dot each
    fig = _new_figure(6.4, 1.2 + 0.45 * len(per_method) if few else 3.1)
    ax = fig.subplots()
    bins = np.linspace(0, 1, 21)
    rng = np.random.default_rng(0)
    for j, (method, iou) in enumerate(per_method.items()):
        correct = 100.0 * np.mean(iou >= iou_threshold)
        label = f"{method} ({correct:.1f}% ≥ {iou_threshold:g})"
        if few:
            ax.plot(iou, j + rng.uniform(-0.15, 0.15, len(iou)), "o", color=colors.get(method), alpha=0.8, markersize=6, label=label)
        else:
            weights = np.full(len(iou), 100.0 / len(iou))
            ax.hist(iou, bins=bins, weights=weights, color=colors.get(method), alpha=0.22)
            ax.hist(iou, bins=bins, weights=weights, histtype="step", linewidth=1.8, color=colors.get(method), label=label)
    ax.axvline(iou_threshold, color="#6b7280", linestyle="--", linewidth=1)
    ax.set_xlabel("IoU of the map's box with the class's best-matching box", fontsize=8)
    ax.set_xlim(0, 1)
    _style(ax)
    if few:  # the methods label the rows: no legend over the dots
        shares = [f"{m}\n{100.0 * np.mean(v >= iou_threshold):.1f}% ≥ {iou_threshold:g}" for m, v in per_method.items()]
        ax.set_yticks(range(len(per_method)), shares, fontsize=7.5)
        ax.set_ylim(-0.6, len(per_method) - 0.4)
    else:
        ax.set_ylabel("share of (image, class) pairs (%)", fontsize=8)
        ax.legend(fontsize=7.5, frameon=False)
    return Figure("iou_histogram", "IoU per method",
                  f"Ground-truth-class maps: IoU of the box (largest segment of the thresholded map) with the class's boxes; "
                  f"the dashed line is the localization cut (IoU ≥ {iou_threshold:g}). {len(gt) // max(1, len(methods)):,} pairs per method.",
                  _png(fig))


def pointing_accuracy_by_class(records: pd.DataFrame, methods: Sequence[str], colors: dict[str, str]) -> tuple[Figure | None, pd.DataFrame]:
    """Per-class pointing accuracy (%) per method, as a dot plot; with many classes, the
    MAX_CLASSES with the largest spread between methods (one method: the lowest accuracy).
    Returns the figure and the full per-class table."""
    gt = records[(records["target_source"] == "gt") & records["point_hit"].notna()] if "point_hit" in records else records.iloc[0:0]
    if not len(gt):
        return None, pd.DataFrame()
    gt = gt.assign(point_hit=gt["point_hit"].astype(float), target_name=gt["target_name"].fillna(gt["target"].astype(str)))
    table = gt.pivot_table(index="target_name", columns="method", values="point_hit", aggfunc="mean") * 100
    counts = gt[gt["method"] == methods[0]].groupby("target_name").size()
    table = table.reindex(columns=[m for m in methods if m in table.columns])
    table["n"] = counts.reindex(table.index).fillna(0).astype(int)
    values = table[[m for m in methods if m in table.columns]]
    if len(table) > MAX_CLASSES:
        key = (values.max(axis=1) - values.min(axis=1)) if values.shape[1] > 1 else -values.iloc[:, 0]
        # ties (common with few images per class) go to the classes with the most images
        order = pd.DataFrame({"key": key, "n": table["n"]}).sort_values(["key", "n"], ascending=False, kind="stable")
        chosen = order.index[:MAX_CLASSES]
        subset = "the {} classes with the largest spread between methods".format(MAX_CLASSES) if values.shape[1] > 1 else f"the {MAX_CLASSES} hardest classes"
        values = values.loc[chosen]
    else:
        subset = "all classes"
    values = values.loc[values.mean(axis=1).sort_values(kind="stable").index]
    fig = _new_figure(6.4, 1.0 + 0.24 * len(values))
    ax = fig.subplots()
    y = np.arange(len(values))
    lo, hi = values.min(axis=1).to_numpy(), values.max(axis=1).to_numpy()
    ax.hlines(y, lo, hi, color="#d1d5db", linewidth=2)
    for method in values.columns:
        ax.plot(values[method].to_numpy(), y, "o", color=colors.get(method), markersize=5, label=method, alpha=0.9)
    labels = [f"{name} (n={table.loc[name, 'n']})" for name in values.index]
    ax.set_yticks(y, labels, fontsize=7.5)
    ax.set_xlim(-3, 103)
    ax.set_xlabel("pointing accuracy (%)", fontsize=8)
    _style(ax)
    ax.legend(fontsize=7.5, frameon=False, loc="lower right")
    fig_out = Figure("pointing_per_class", "Pointing game per class",
                     f"Hit rate of each class's map in the pointing game (Zhang et al. 2016), {subset}; n = scored (image, class) pairs. "
                     "The pointing accuracy in the summary is the mean of these rates.", _png(fig))
    return fig_out, table.reset_index().rename(columns={"target_name": "class"})


def insertion_deletion_figure(curves: pd.DataFrame | None, records: pd.DataFrame | None, methods: Sequence[str],
                              colors: dict[str, str]) -> Figure | None:
    """Mean insertion and deletion curves when the run saved them (insertion_deletion_curves.csv:
    method, mode, fraction, prob); otherwise the per-image AUCs as box plots, when computed."""
    if curves is not None and len(curves):
        fig = _new_figure(8.0, 3.0)
        axes = fig.subplots(1, 2, sharey=True)
        for ax, mode in zip(axes, ("insertion", "deletion")):
            for method, rows in curves[curves["mode"] == mode].groupby("method", sort=False):
                x, p = rows["fraction"].to_numpy(float), rows["prob"].to_numpy(float)
                auc = float(np.sum((p[1:] + p[:-1]) / 2 * np.diff(x)))
                ax.plot(x, p, color=colors.get(str(method)), linewidth=1.6, label=f"{method} (AUC {auc:.3f})")
            ax.set_title(mode, fontsize=9.5)
            ax.set_xlabel("fraction of pixels " + ("inserted" if mode == "insertion" else "deleted"), fontsize=8)
            _style(ax)
            ax.legend(fontsize=7.5, frameon=False)
        axes[0].set_ylabel("probability of the class", fontsize=8)
        return Figure("insertion_deletion", "Insertion and deletion curves",
                      "RISE (Petsiuk et al. 2018): mean probability of the explained class as the most salient pixels are "
                      "inserted into a blurred copy / deleted; higher insertion and lower deletion are better.", _png(fig))
    if records is None or not {"insertion_auc", "deletion_auc"} <= set(records.columns):
        return None
    scored = records[records["insertion_auc"].notna() | records["deletion_auc"].notna()]
    if not len(scored):
        return None
    fig = _new_figure(8.0, 2.2 + 0.25 * len(methods))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, column in zip(axes, ("insertion_auc", "deletion_auc")):
        data = [scored.loc[(scored["method"] == m) & scored[column].notna(), column].to_numpy(float) for m in methods]
        parts = ax.boxplot(data, orientation="horizontal", widths=0.6, patch_artist=True, showfliers=False,
                           medianprops={"color": "#111827"})
        for patch, method in zip(parts["boxes"], methods):
            patch.set_facecolor(colors.get(method))
            patch.set_alpha(0.45)
        ax.set_yticks(np.arange(1, len(methods) + 1), list(methods), fontsize=8)
        ax.set_title(column.replace("_auc", " AUC") + (" (higher is better)" if column == "insertion_auc" else " (lower is better)"), fontsize=9.5)
        ax.set_xlim(0, 1)
        _style(ax)
    return Figure("insertion_deletion", "Insertion and deletion AUC per image",
                  "RISE (Petsiuk et al. 2018) AUC of each explained map (this run saved the AUCs, not the curves): box = "
                  "quartiles, whiskers = 1.5 IQR.", _png(fig))
