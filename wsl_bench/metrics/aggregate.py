"""How a metric's records become a dataset-level value that can be bootstrapped exactly: every
metric is written as sums over images (a numerator S [n_images, G] and a denominator N
[n_images, G]) and a reducer f, so the value under any image weighting W (a bootstrap resample)
is f(W @ S, W @ N). Per-class means (pointing game) and threshold maxima (MaxBoxAcc) are reducers
like the plain mean, so resampling images recomputes each metric exactly as defined."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy import sparse

Reducer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def pooled_mean(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """sum S / sum N (G = 1): a mean over the scored units of the resampled images."""
    return _ratio(num[:, 0], den[:, 0])


def class_mean(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Mean over classes (columns) of each class's hit rate; classes absent from a resample
    are left out of its mean (pointing game, Zhang et al. 2016)."""
    rates = _ratio(num, den)
    counted = np.isfinite(rates)
    with np.errstate(invalid="ignore"):
        return np.where(counted.any(axis=1), np.nansum(rates, axis=1) / np.maximum(counted.sum(axis=1), 1), np.nan)


def class_mean_over(n_classes: int) -> Reducer:
    """Mean over all `n_classes` classes (columns) of each class's hit rate, a class with no
    scored pair counting as 0 (TorchRay's PointingGame: hits / max(hits + misses, 1))."""

    def reduce(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return (num / np.maximum(den, 1)).sum(axis=1) / n_classes

    return reduce


def curve_max(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Max over thresholds (columns) of the accuracy per threshold (MaxBoxAcc)."""
    return np.nanmax(_ratio(num, den), axis=1) if num.shape[1] else np.full(len(num), np.nan)


def curve_max_mean(groups: int) -> Reducer:
    """Columns are `groups` blocks of thresholds: max over each block, then their mean (MaxBoxAccV2)."""

    def reduce(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        rates = _ratio(num, den).reshape(len(num), groups, -1)
        return np.nanmax(rates, axis=2).mean(axis=1)

    return reduce


@dataclass
class MetricData:
    """One metric of one method over a fixed list of images: per-image sums (sparse [n, G])
    and how they combine; value = scale * reduce(...) + offset (e.g. error = 100 - 100 * acc)."""

    num: sparse.csr_matrix | np.ndarray
    den: sparse.csr_matrix | np.ndarray
    reduce: Reducer
    scale: float = 100.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        # Dense sums (e.g. MaxBoxAcc hit counts per threshold) multiply faster through BLAS.
        for name in ("num", "den"):
            m = getattr(self, name)
            if sparse.issparse(m) and m.nnz > 0.2 * m.shape[0] * m.shape[1]:
                setattr(self, name, m.toarray())

    def values(self, weights: np.ndarray) -> np.ndarray:
        """weights [R, n_images] (image multiplicities) -> the metric under each weighting [R]."""
        num = np.asarray(weights @ self.num if not sparse.issparse(self.num) else (self.num.T @ weights.T).T)
        den = np.asarray(weights @ self.den if not sparse.issparse(self.den) else (self.den.T @ weights.T).T)
        return self.offset + self.scale * self.reduce(num, den)

    def value(self) -> float:
        return float(self.values(np.ones((1, self.num.shape[0])))[0])


# ---------------------------------------------------------------- from records to per-image sums


def _sums(values: np.ndarray, positions: np.ndarray, n: int, columns: np.ndarray | None = None, width: int = 1) -> sparse.csr_matrix:
    cols = np.zeros(len(positions), dtype=np.int64) if columns is None else columns
    return sparse.csr_matrix((np.asarray(values, dtype=np.float64), (positions, cols)), shape=(n, width))


def mean_over_rows(rows: pd.DataFrame, values: pd.Series | np.ndarray, images: pd.Index, scale: float = 100.0, offset: float = 0.0) -> MetricData | None:
    """offset + scale * the mean of `values` over `rows` (one value per row); None without rows."""
    if not len(rows):
        return None
    pos = images.get_indexer(rows["image_id"])
    n = len(images)
    return MetricData(_sums(np.asarray(values, dtype=np.float64), pos, n), _sums(np.ones(len(rows)), pos, n), pooled_mean, scale, offset)


def mean_over_classes(
    rows: pd.DataFrame, hits: pd.Series | np.ndarray, classes: pd.Series | np.ndarray, images: pd.Index, n_classes: int | None = None
) -> MetricData | None:
    """100 * the mean over classes of each class's hit rate over `rows`; None without rows. With
    n_classes, over every class 0..n_classes-1 (a class with no row counts as 0)."""
    if not len(rows):
        return None
    if n_classes is None:
        labels, col = np.unique(np.asarray(classes), return_inverse=True)
        width, reduce = len(labels), class_mean
    else:
        col, width, reduce = np.asarray(classes, dtype=np.int64), n_classes, class_mean_over(n_classes)
    pos, n = images.get_indexer(rows["image_id"]), len(images)
    num = _sums(np.asarray(hits, dtype=np.float64), pos, n, col, width)
    den = _sums(np.ones(len(rows)), pos, n, col, width)
    return MetricData(num, den, reduce, 100.0)


def best_of_curves(rows: pd.DataFrame, hits: np.ndarray, images: pd.Index, groups: int = 1) -> MetricData | None:
    """100 * the best accuracy over thresholds of per-row hit vectors hits [rows, groups * K]
    (accuracy per threshold over all rows); with groups > 1, the mean of each block's best."""
    if not len(rows):
        return None
    pos, n, width = images.get_indexer(rows["image_id"]), len(images), hits.shape[1]
    rr, cc = np.repeat(pos, width), np.tile(np.arange(width), len(pos))
    num = sparse.csr_matrix((hits.ravel().astype(np.float64), (rr, cc)), shape=(n, width))
    den = sparse.csr_matrix((np.ones(len(rr)), (rr, cc)), shape=(n, width))
    return MetricData(num, den, curve_max if groups == 1 else curve_max_mean(groups), 100.0)


def per_image_any(rows: pd.DataFrame, flags: pd.Series) -> pd.DataFrame:
    """One row per image: whether any of its rows has the flag (image_id, flag)."""
    grouped = flags.astype(bool).groupby(rows["image_id"]).any()
    return pd.DataFrame({"image_id": grouped.index, "flag": grouped.to_numpy()})


def gt_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of maps explaining a ground-truth class."""
    return rows[rows["target_source"] == "gt"]


def with_values(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    """Rows where `column` was scored (not null); none when the column is absent."""
    return rows[rows[column].notna()] if column in rows else rows.iloc[0:0]


def hit_matrix(rows: pd.DataFrame, column: str) -> np.ndarray:
    """A column of per-row boolean vectors (e.g. hits per threshold) as a float matrix [rows, K]."""
    return np.stack([np.asarray(v, dtype=bool) for v in rows[column]]).astype(np.float64)
