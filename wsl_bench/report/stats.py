"""Bootstrap statistics over images, vectorized: every metric comes as per-image sums
(metrics.aggregate.MetricData), so a bootstrap resample is a row of multinomial image counts W and
the resampled metric is f(W @ S, W @ N) for a whole block of resamples at once."""

from __future__ import annotations

import numpy as np

from ..metrics.aggregate import MetricData


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
