"""Bootstrap statistics over images, vectorized: every metric is written as sums over images
(a numerator S [n_images, G] and a denominator N [n_images, G]), so a bootstrap resample is a
row of multinomial image counts W and the resampled metric is f(W @ S, W @ N) for a whole block
of resamples at once. Resampling images and recomputing the metric exactly as defined covers
per-class means (pointing game) and threshold maxima (MaxBoxAcc) alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
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


def curve_max(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Max over thresholds (columns) of the accuracy per threshold (MaxBoxAcc)."""
    return np.nanmax(_ratio(num, den), axis=1) if num.shape[1] else np.full(len(num), np.nan)


def curve_max_mean(groups: int) -> Reducer:
    """Columns are `groups` blocks of thresholds: max over each block, then their mean (V2)."""

    def reduce(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        rates = _ratio(num, den).reshape(len(num), groups, -1)
        return np.nanmax(rates, axis=2).mean(axis=1)

    return reduce


@dataclass
class MetricData:
    """One metric of one method over a fixed list of images: per-image sums (sparse [n, G])
    and how they combine; value = scale * reduce(...) + offset (e.g. error = 100 - 100 * acc)."""

    num: sparse.csr_matrix
    den: sparse.csr_matrix
    reduce: Reducer
    scale: float = 100.0
    offset: float = 0.0

    def values(self, weights: np.ndarray) -> np.ndarray:
        """weights [R, n_images] (image multiplicities) -> the metric under each weighting [R]."""
        num = np.asarray((self.num.T @ weights.T).T)
        den = np.asarray((self.den.T @ weights.T).T)
        return self.offset + self.scale * self.reduce(num, den)

    def value(self) -> float:
        return float(self.values(np.ones((1, self.num.shape[0])))[0])


def resample_weights(n_images: int, n_resamples: int, seed: int, block: int = 200):
    """Yields blocks of bootstrap weights [<= block, n_images]: multinomial image counts."""
    rng = np.random.default_rng(seed)
    done = 0
    p = np.full(n_images, 1.0 / n_images)
    while done < n_resamples:
        size = min(block, n_resamples - done)
        yield rng.multinomial(n_images, p, size=size).astype(np.float64)
        done += size


def bootstrap_ci(metric: MetricData, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval over images (seeded): (lo, hi); NaN with no images."""
    n = metric.num.shape[0]
    if n == 0 or n_resamples <= 0:
        return float("nan"), float("nan")
    samples = np.concatenate([metric.values(w) for w in resample_weights(n, n_resamples, seed)])
    samples = samples[np.isfinite(samples)]
    if not len(samples):
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return float(lo), float(hi)


def paired_bootstrap(
    a: MetricData, b: MetricData, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """a and b over the same images (same row order): the difference a - b, its percentile
    interval from resampling images jointly, and the share of resamples with a > b / a < b."""
    n = a.num.shape[0]
    out = {"diff": a.value() - b.value(), "lo": float("nan"), "hi": float("nan"), "p_greater": float("nan"), "p_less": float("nan"), "n_images": n}
    if n == 0 or n_resamples <= 0:
        return out
    diffs = np.concatenate([a.values(w) - b.values(w) for w in resample_weights(n, n_resamples, seed)])
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs):
        tail = 100 * (1 - level) / 2
        out["lo"], out["hi"] = (float(v) for v in np.percentile(diffs, [tail, 100 - tail]))
        out["p_greater"], out["p_less"] = float(np.mean(diffs > 0)), float(np.mean(diffs < 0))
    return out
