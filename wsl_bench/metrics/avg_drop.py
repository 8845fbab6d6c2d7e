"""Average drop % and increase in confidence %: Chattopadhyay et al., "Grad-CAM++", WACV 2018,
Sec. 6.1.1. The explanation E = L * I (L: the map upsampled to the input and scaled to [0, 1]);
Y = confidence on I, O = confidence on E, for the predicted class. Average drop =
mean max(0, Y - O) / Y; increase in confidence = share of Y < O; win % (in paired comparisons) =
share of images where one method drops less than the other.

Unit `avg_drop`: one forward per scored map (`target`: top1, the paper's; gt; all), batched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch import nn

from ..config import setting
from ..methods.perturbation import target_scores_of
from .aggregate import MetricData, mean_over_rows, with_values
from .base import BatchColumns, ModelBatch, ModelMetric, MetricSettings, Statistic, register_metric
from .maps import scale_unit, upsample

Probabilities = Callable[[torch.Tensor], torch.Tensor]


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, dim=-1)


@dataclass(frozen=True)
class AvgDropSettings(MetricSettings):
    """space: `pixel` makes E = L * I on the [0, 1] RGB image (Grad-CAM++), renormalized for the
    model; `normalized`: E = L * x on the normalized input. normalize: how L is scaled to [0, 1].
    target: which maps are scored. chunk_size: explanation inputs per forward."""

    target: Literal["top1", "gt", "all"] = "top1"
    space: Literal["pixel", "normalized"] = "pixel"
    normalize: Literal["minmax", "max"] = "minmax"
    chunk_size: int = setting(64, ge=1)


def explanation_confidence(
    model: nn.Module,
    images: torch.Tensor,
    image_index: torch.Tensor,
    maps: torch.Tensor,
    classes: torch.Tensor,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    settings: AvgDropSettings = AvgDropSettings(),
    probabilities: Probabilities = _softmax,
) -> np.ndarray:
    """O: the probability of classes[n] on the explanation map of maps[n] (image images[image_index[n]])
    -> [N]. Y, the probability on the image, is the pipeline's own forward."""
    size = tuple(images.shape[-2:])
    m = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(3, 1, 1)
    s = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(3, 1, 1)

    def make_inputs(start: int, stop: int) -> torch.Tensor:
        weight = scale_unit(upsample(maps[start:stop], size), settings.normalize).to(images.dtype)[:, None]
        x = images[image_index[start:stop]]
        if settings.space == "pixel":
            return ((x * s + m) * weight - m) / s
        return x * weight

    n = len(classes)
    scores = target_scores_of(
        model, make_inputs, n, torch.arange(n, device=images.device), classes.view(-1, 1), settings.chunk_size, probabilities
    )
    return scores[:, 0].double().cpu().numpy()


def drops(y: np.ndarray, o: np.ndarray) -> np.ndarray:
    """Per image: the relative drop max(0, Y - O) / Y."""
    return np.maximum(0.0, y - o) / y


def average_drop(y: np.ndarray, o: np.ndarray) -> float:
    """Grad-CAM++ Average Drop %: mean of max(0, Y - O) / Y, times 100."""
    return float(100.0 * np.mean(drops(y, o)))


def increase_in_confidence(y: np.ndarray, o: np.ndarray) -> float:
    """Grad-CAM++ Increase in Confidence %: share of images with Y < O, times 100."""
    return float(100.0 * np.mean(y < o))


def _confidences(rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    picked = with_values(rows, "expl_prob")
    return picked, picked["prob"].astype(float).to_numpy(), picked["expl_prob"].astype(float).to_numpy()


def win_rate(records: pd.DataFrame, method: str, baseline: str) -> float:
    """Grad-CAM++ win %: among images where both have an explanation confidence, the share where
    `method`'s drop is strictly smaller than `baseline`'s (an image's drops averaged over its maps)."""
    scored = records[records["skip_reason"].isna()]
    return _win_pct(scored[scored["method"] == method], scored[scored["method"] == baseline])


def _win_pct(a_rows: pd.DataFrame, b_rows: pd.DataFrame) -> float:
    def per_image(rows: pd.DataFrame) -> pd.Series:
        picked, y, o = _confidences(rows)
        return pd.Series(drops(y, o), index=picked["image_id"].to_numpy()).groupby(level=0).mean()

    a, b = per_image(a_rows), per_image(b_rows)
    common = a.index.intersection(b.index)
    return float(100.0 * np.mean(a[common] < b[common])) if len(common) else float("nan")


@register_metric("avg_drop")
class AvgDrop(ModelMetric):
    Settings = AvgDropSettings
    columns = (("expl_prob", pa.float64()),)  # O: probability of the target on the explanation map L * I

    def score_batch(self, batch: ModelBatch, maps: Mapping[str, torch.Tensor]) -> BatchColumns:
        pairs = batch.pairs(self.settings.target)
        if not pairs:
            return {}
        rows, stacked, classes = self.gather(batch, maps, pairs)
        o = explanation_confidence(batch.model, batch.images, rows, stacked, classes, batch.mean, batch.std, self.settings, batch.probabilities)
        return self.spread(maps, pairs, {"expl_prob": o})

    def statistics(self) -> list[Statistic]:
        return [
            Statistic("avg_drop", self._average_drop, lower_is_better=True, paired=lambda a, b: {"win_pct": _win_pct(a, b)}),
            Statistic("increase_conf", self._increase, lower_is_better=False),
        ]

    @staticmethod
    def _average_drop(rows: pd.DataFrame, images: pd.Index) -> MetricData | None:
        picked, y, o = _confidences(rows)
        return mean_over_rows(picked, drops(y, o), images, 100.0)

    @staticmethod
    def _increase(rows: pd.DataFrame, images: pd.Index) -> MetricData | None:
        picked, y, o = _confidences(rows)
        return mean_over_rows(picked, (y < o).astype(float), images, 100.0)
