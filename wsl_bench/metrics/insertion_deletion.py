"""Insertion and deletion AUC: Petsiuk et al., "RISE", BMVC 2018, Sec. 4.1. Pixels are taken in
descending saliency, `step` per step; deletion sets them to 0 (in normalized input space),
insertion puts them back into a blurred copy (Gaussian kernel 11, sigma 5); the AUC of the target
probability curve by the trapezoid rule over [0, 1].

Unit `insertion_deletion`: (pixels / step + 1) forwards per map and mode, batched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from ..config import setting
from ..errors import ConfigError
from ..methods.perturbation import target_scores_of
from .aggregate import MetricData, mean_over_rows, with_values
from .base import BatchColumns, ModelBatch, ModelMetric, MetricSettings, Statistic, register_metric
from .maps import finite_maps, upsample

Probabilities = Callable[[torch.Tensor], torch.Tensor]


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, dim=-1)


@dataclass(frozen=True)
class InsertionDeletionSettings(MetricSettings):
    """RISE: `step` pixels per step (a whole number, or a fraction of the image in (0, 1));
    deletion substrate 0 in normalized space; insertion from a Gaussian blur (kernel 11, sigma 5).
    target: which maps are scored. chunk_size: perturbed inputs per forward."""

    target: Literal["top1", "gt", "all"] = "top1"
    step: float = setting(224.0, gt=0)
    blur_kernel: int = setting(11, ge=1)
    blur_sigma: float = setting(5.0, gt=0)
    chunk_size: int = setting(64, ge=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.step >= 1 and self.step != int(self.step):
            raise ConfigError(f"{self.config_path}.step={self.step} must be a whole number of pixels or a fraction in (0, 1)")


def gaussian_kernel(size: int = 11, sigma: float = 5.0) -> np.ndarray:
    """RISE's gkern: a unit impulse filtered by scipy's gaussian_filter (sum 1)."""
    impulse = np.zeros((size, size))
    impulse[size // 2, size // 2] = 1.0
    return ndimage.gaussian_filter(impulse, sigma)


def blur(images: torch.Tensor, size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """Per-channel Gaussian blur with zero padding (RISE's conv2d substrate)."""
    kernel = torch.as_tensor(gaussian_kernel(size, sigma), dtype=images.dtype, device=images.device)
    weight = kernel.expand(images.shape[1], 1, size, size).contiguous()
    return F.conv2d(images, weight, padding=size // 2, groups=images.shape[1])


def trapezoid_auc(curve: np.ndarray) -> np.ndarray:
    """Area under curves [..., S + 1] sampled at 0, 1/S, ..., 1 (RISE's auc)."""
    return (curve.sum(axis=-1) - curve[..., 0] / 2 - curve[..., -1] / 2) / (curve.shape[-1] - 1)


def insertion_deletion(
    model: nn.Module,
    images: torch.Tensor,
    image_index: torch.Tensor,
    maps: torch.Tensor,
    classes: torch.Tensor,
    settings: InsertionDeletionSettings = InsertionDeletionSettings(),
    probabilities: Probabilities = _softmax,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(insertion AUC [N], deletion AUC [N], insertion curves [N, S+1], deletion curves [N, S+1])
    for maps [N, h, w] of classes [N] on images[image_index]. Pixels are taken in descending map
    value (upsampled to the input; ties in raster order). A map that cannot be scored (non-finite,
    constant) gets NaN AUCs: its pixel order would be raster order, a number computed from no
    explanation; its record's map_status says why and the summary counts it."""
    n = len(classes)
    height, width = images.shape[-2:]
    n_pixels = height * width
    step = int(round(settings.step * n_pixels)) if 0 < settings.step < 1 else int(settings.step)
    if step < 1:
        raise ValueError(f"insertion/deletion step must be >= 1 pixel, got {settings.step}")
    n_steps = -(-n_pixels // step)
    safe, ok = finite_maps(upsample(maps, (height, width)))
    values = torch.where(ok[:, None], safe.flatten(1), torch.zeros_like(safe.flatten(1)))
    order = torch.argsort(values, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n_pixels, device=order.device).expand(n, -1).contiguous())
    blurred = blur(images, settings.blur_kernel, settings.blur_sigma)
    curves = {}
    for mode in ("insertion", "deletion"):
        per_pair = n_steps + 1

        def make_inputs(start: int, stop: int, mode: str = mode) -> torch.Tensor:
            index = torch.arange(start, stop, device=images.device)
            pair, k = index // per_pair, index % per_pair
            shown = (rank[pair] < (k * step)[:, None]).view(-1, 1, height, width)  # top k * step pixels
            x = images[image_index[pair]]
            if mode == "deletion":
                return torch.where(shown, torch.zeros_like(x), x)
            return torch.where(shown, x, blurred[image_index[pair]])

        pair_of = torch.arange(n * per_pair, device=images.device) // per_pair
        scores = target_scores_of(model, make_inputs, n * per_pair, pair_of, classes.view(-1, 1), settings.chunk_size, probabilities)
        curves[mode] = scores[:, 0].double().cpu().numpy().reshape(n, per_pair)
    unusable = ~ok.cpu().numpy()
    insertion_auc, deletion_auc = trapezoid_auc(curves["insertion"]), trapezoid_auc(curves["deletion"])
    insertion_auc[unusable] = np.nan
    deletion_auc[unusable] = np.nan
    return insertion_auc, deletion_auc, curves["insertion"], curves["deletion"]


def mean_curve(curves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(fraction, mean) of curves sampled at k / S, k = 0..S: stacked when all share S, else each
    interpolated linearly onto 101 points first."""
    lengths = {len(c) for c in curves}
    if len(lengths) == 1:
        return np.linspace(0.0, 1.0, lengths.pop()), np.stack(curves).mean(axis=0)
    grid = np.linspace(0.0, 1.0, 101)
    return grid, np.stack([np.interp(grid, np.linspace(0.0, 1.0, len(c)), c) for c in curves]).mean(axis=0)


@register_metric("insertion_deletion")
class InsertionDeletion(ModelMetric):
    Settings = InsertionDeletionSettings
    columns = (
        ("insertion_auc", pa.float64()),  # RISE insertion AUC; null for a map that cannot be scored
        ("deletion_auc", pa.float64()),  # RISE deletion AUC; null likewise
        ("insertion_curve", pa.list_(pa.float32())),  # probability after 0, 1, ..., S steps; null with the AUC
        ("deletion_curve", pa.list_(pa.float32())),
    )

    def score_batch(self, batch: ModelBatch, maps: Mapping[str, torch.Tensor]) -> BatchColumns:
        pairs = batch.pairs(self.settings.target)
        if not pairs:
            return {}
        rows, stacked, classes = self.gather(batch, maps, pairs)
        ins, dele, ins_curves, del_curves = insertion_deletion(batch.model, batch.images, rows, stacked, classes, self.settings, batch.probabilities)
        columns = self.spread(maps, pairs, {"insertion_auc": ins, "deletion_auc": dele})
        for k, values in enumerate(columns.values()):  # spread keeps gather's order
            usable = values["insertion_auc"] is not None
            values["insertion_curve"] = ins_curves[k].astype(np.float32).tolist() if usable else None
            values["deletion_curve"] = del_curves[k].astype(np.float32).tolist() if usable else None
        return columns

    def statistics(self) -> list[Statistic]:
        return [
            Statistic("insertion_auc", self._mean("insertion_auc"), lower_is_better=False, digits=3),
            Statistic("deletion_auc", self._mean("deletion_auc"), lower_is_better=True, digits=3),
        ]

    def tables(self, records: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """insertion_deletion_curves: the mean curve per method and mode (columns method, mode,
        fraction, prob, n_maps). Curve points sit at k / S of the pixels, as the AUC takes them; runs
        whose images give different step counts are put on a common grid of 101 points first."""
        if "insertion_curve" not in records.columns:
            return {}
        out = []
        for method, rows in records.groupby("method", sort=False):
            for mode in ("insertion", "deletion"):
                curves = [np.asarray(c, dtype=np.float64) for c in rows[f"{mode}_curve"] if c is not None and len(c) > 1]
                if not curves:
                    continue
                fraction, mean = mean_curve(curves)
                out.append(pd.DataFrame({"method": method, "mode": mode, "fraction": fraction, "prob": mean, "n_maps": len(curves)}))
        return {"insertion_deletion_curves": pd.concat(out, ignore_index=True)} if out else {}

    @staticmethod
    def _mean(column: str):
        def build(rows: pd.DataFrame, images: pd.Index) -> MetricData | None:
            picked = with_values(rows, column)
            return mean_over_rows(picked, picked[column].astype(float), images, 1.0)

        return build
