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


def resample_weights(n_images: int, n_resamples: int, seed: int, block: int = 200):
    """Yields blocks of bootstrap weights [<= block, n_images]: how often each image is drawn
    when n_images are drawn with replacement (one bincount for the whole block)."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_resamples:
        size = min(block, n_resamples - done)
        draws = rng.integers(0, n_images, size=(size, n_images)) + (np.arange(size) * n_images)[:, None]
        yield np.bincount(draws.ravel(), minlength=size * n_images).reshape(size, n_images).astype(np.float64)
        done += size


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    samples = samples[np.isfinite(samples)]
    if not len(samples):
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_cis(
    metrics: dict[str, MetricData], n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals over images (seeded) for metrics over the same images,
    all evaluated on the same resamples: {name: (lo, hi)}; NaN with no images."""
    if not metrics:
        return {}
    n = next(iter(metrics.values())).num.shape[0]
    if n == 0 or n_resamples <= 0:
        return {name: (float("nan"), float("nan")) for name in metrics}
    samples: dict[str, list[np.ndarray]] = {name: [] for name in metrics}
    for w in resample_weights(n, n_resamples, seed):
        for name, metric in metrics.items():
            samples[name].append(metric.values(w))
    return {name: _interval(np.concatenate(s), level) for name, s in samples.items()}


def bootstrap_ci(metric: MetricData, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval over images (seeded): (lo, hi); NaN with no images."""
    return bootstrap_cis({"m": metric}, n_resamples, seed, level)["m"]


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
