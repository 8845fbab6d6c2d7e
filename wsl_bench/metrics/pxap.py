"""PxAP: pixel average precision, Choe et al., "Evaluating Weakly Supervised Object Localization
Methods Right", CVPR 2020, Sec. 4.2 (mask datasets: OpenImages30k), as wsolevaluation's
MaskEvaluator computes it.

For the GT class's map, normalized as wsolevaluation normalizes it (min-max, all zero when it
cannot be), the pixels of the class's mask (positives) and the other pixels (negatives; ignore
regions and pixels outside a center crop are neither) are counted in the bins [0, step),
[step, 2 step), ..., [1 - step, 1), [1, 2), [2, 3] (np.histogram's bins). Summed over the
dataset, the counts at or above each bin's left edge give TP and FP at threshold tau, hence
precision P(tau) = TP / (TP + FP) and recall R(tau) = TP / (all positives); PxAP =
sum_tau P(tau) (R(tau) - R(tau_next)) over thresholds with a prediction (TP + FP > 0), in %.

Each map's histograms are record columns; the dataset value is computed from their sums, so a
bootstrap resample of images recomputes PxAP exactly (metrics.aggregate)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from ..config import setting
from .aggregate import MetricData, gt_rows, with_values
from .base import ImageTruth, MapChunk, MapMetric, MetricSettings, Statistic, register_metric
from .maxboxacc import sweep_thresholds
from .wsol_contours import normalize_scoremaps


def bin_edges(step: float = 0.01) -> np.ndarray:
    """wsolevaluation's histogram edges: the thresholds 0, step, ..., < 1, then 1, 2, 3."""
    return np.append(sweep_thresholds(step), [1.0, 2.0, 3.0])


def score_histograms(maps: torch.Tensor, positive: torch.Tensor, counted: torch.Tensor, step: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """Per map [N, H, W] (normalized, in [0, 1]): counts per bin of its positive pixels and of its
    negative ones [N, B], over the pixels `counted` [N or 1, H, W] (ignore regions left out);
    positive [N, H, W] bool. One bincount for all maps."""
    edges = torch.as_tensor(bin_edges(step), dtype=torch.float64, device=maps.device)
    n_bins = len(edges) - 1
    bins = torch.searchsorted(edges, maps.double().contiguous(), right=True) - 1  # e_i <= s < e_(i+1)
    index = torch.arange(len(maps), device=maps.device)[:, None, None]
    code = (index * 2 + (~positive).long()) * n_bins + bins
    counts = torch.bincount(code[counted.expand_as(code)], minlength=len(maps) * 2 * n_bins).view(len(maps), 2, n_bins)
    return counts[:, 0], counts[:, 1]


def average_precision(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """PxAP (as a fraction) from summed bin counts [R, B] of positive and negative pixels, per row:
    MaskEvaluator.compute. NaN where a row has no positive pixel."""
    tp = np.cumsum(positives[:, ::-1], axis=1)  # pixels at or above each bin's left edge, from the top
    fp = np.cumsum(negatives[:, ::-1], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
        recall = tp / tp[:, -1:]
    predicted = (tp + fp)[:, 1:] != 0
    ap = np.where(predicted, precision[:, 1:] * np.diff(recall, axis=1), 0.0).sum(axis=1)
    return np.where(tp[:, -1] > 0, ap, np.nan)


@dataclass(frozen=True)
class PxAPSettings(MetricSettings):
    """step: the threshold spacing of the bins (wsolevaluation's cam_curve_interval: 0.01 in its
    evaluation.py, 0.001 in its training config)."""

    step: float = setting(0.01, gt=0, lt=1)


@register_metric("pxap")
class PxAP(MapMetric):
    """PxAP over the maps of ground-truth targets whose class has a mask (OpenImages, COCO)."""

    Settings = PxAPSettings
    columns = (
        ("pxap_pos_hist", pa.list_(pa.int64())),  # per bin: the class mask's pixels (gt rows with a mask)
        ("pxap_neg_hist", pa.list_(pa.int64())),  # per bin: the other pixels, ignore regions left out
    )

    def score(self, chunk: MapChunk, truth: ImageTruth) -> dict[str, Sequence[Any]]:
        pos: list[list[int] | None] = [None] * len(chunk)
        neg: list[list[int] | None] = [None] * len(chunk)
        masks = truth.masks or {}
        picked = [i for i, cls in enumerate(chunk.classes) if chunk.is_gt[i] and int(cls) in masks]
        if picked:
            device = chunk.maps.device
            valid = truth.valid
            maps = normalize_scoremaps(chunk.maps[picked], valid)
            positive = torch.stack([torch.as_tensor(masks[int(chunk.classes[i])], dtype=torch.bool, device=device) for i in picked])
            counted = torch.ones(1, *maps.shape[-2:], dtype=torch.bool, device=device)
            if truth.ignore is not None:
                counted &= ~torch.as_tensor(truth.ignore, dtype=torch.bool, device=device)
            if valid is not None:
                counted &= valid.to(device)
            hist_pos, hist_neg = score_histograms(maps, positive, counted, self.settings.step)
            for j, i in enumerate(picked):
                pos[i], neg[i] = hist_pos[j].tolist(), hist_neg[j].tolist()
        return {"pxap_pos_hist": pos, "pxap_neg_hist": neg}

    def statistics(self) -> list[Statistic]:
        def build(rows: pd.DataFrame, images: pd.Index) -> MetricData | None:
            picked = with_values(gt_rows(rows), "pxap_pos_hist")
            if not len(picked):
                return None
            position, n = images.get_indexer(picked["image_id"]), len(images)
            sums = []
            for column in ("pxap_pos_hist", "pxap_neg_hist"):
                per_image = np.zeros((n, len(picked[column].iloc[0])))
                np.add.at(per_image, position, np.stack([np.asarray(v, dtype=np.float64) for v in picked[column]]))
                sums.append(per_image)
            return MetricData(sums[0], sums[1], average_precision, 100.0)

        return [Statistic("pxap", build, lower_is_better=False)]
