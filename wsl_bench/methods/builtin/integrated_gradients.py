"""Integrated Gradients: Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks",
ICML 2017 (arXiv 1703.01365), Sec. 3 (Eq. 1) and Sec. 5 (Eq. 3, the Riemann approximation)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ...errors import ConfigError
from ..core import Pass, reduce_channels, register_method
from ..perturbation import input_grads_of, score_reader

RULES = ("riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid", "gausslegendre")


def path_points(rule: str, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(alphas, weights) with sum_k weights_k g(alphas_k) ~ integral_0^1 g(alpha) d alpha.
    riemann_right: alpha = k/m, k = 1..m, weight 1/m (the paper's Eq. 3); riemann_left
    k = 0..m-1; riemann_middle (k + 1/2)/m; riemann_trapezoid: the m + 1 points k/m, k = 0..m,
    with weight 1/(2m) at both ends (the authors' released code, integrated_gradients.py);
    gausslegendre: m-point Gauss-Legendre nodes and weights on [0, 1] (captum's default)."""
    if steps < 1:
        raise ConfigError("integrated_gradients: steps must be >= 1")
    k = np.arange(steps, dtype=np.float64)
    if rule == "riemann_right":
        alphas, weights = (k + 1) / steps, np.full(steps, 1 / steps)
    elif rule == "riemann_left":
        alphas, weights = k / steps, np.full(steps, 1 / steps)
    elif rule == "riemann_middle":
        alphas, weights = (k + 0.5) / steps, np.full(steps, 1 / steps)
    elif rule == "riemann_trapezoid":
        alphas, weights = np.arange(steps + 1) / steps, np.full(steps + 1, 1 / steps)
        weights[[0, -1]] /= 2
    elif rule == "gausslegendre":
        nodes, node_weights = np.polynomial.legendre.leggauss(steps)
        alphas, weights = (nodes + 1) / 2, node_weights / 2
    else:
        raise ConfigError(f"integrated_gradients: rule must be one of {', '.join(RULES)}, got {rule!r}")
    return torch.from_numpy(alphas), torch.from_numpy(weights)


@register_method("integrated_gradients")
def integrated_gradients(
    p: Pass,
    steps: int = 50,
    baseline: float | Sequence[float] = 0.0,
    rule: str = "riemann_right",
    score: str = "probability",
    channel_reduce: str = "abs_sum",
    batch_size: int = 32,
) -> torch.Tensor:
    """IG_i(x) = (x_i - x'_i) * integral_0^1 dF(x' + alpha (x - x')) / dx_i d alpha (Eq. 1),
    approximated by sum_k w_k dF(x' + alpha_k (x - x'))/dx_i (Eq. 3 with rule=riemann_right,
    the default; see path_points for the others). F is the target's class probability
    (score=probability: p.probabilities; the paper's F maps into [0, 1] and the authors' code
    differentiates the softmax output) or its logit. Completeness: the attributions of an
    image sum to F(x) - F(x') up to the quadrature error (the paper: 20 to 300 steps bring it
    within 5%; the authors' code uses 50).

    baseline: x' in the normalized input space, a number or one value per colour channel;
    0.0 is the dataset-mean image. The paper's black image is (0 - mean) / std per channel,
    e.g. [-2.118, -2.036, -1.804] for ImageNet mean/std, -1.0 for EfficientNet-Lite0's inputs.
    The map sums |attribution| over colour channels (channel_reduce=abs_sum; sum keeps the sign,
    for which completeness holds per pixel sum). The path points of all images run batched,
    batch_size inputs per forward and one backward per chunk for all targets. Returns
    [B, T, H, W]."""
    read = score_reader(score, p.probabilities, "integrated_gradients")
    alphas, weights = (t.to(p.images.device, p.images.dtype) for t in path_points(rule, steps))
    images = p.images
    start_point = torch.as_tensor(baseline, dtype=images.dtype, device=images.device)
    if start_point.numel() not in (1, images.shape[1]):
        raise ConfigError(f"integrated_gradients: baseline must be a number or {images.shape[1]} values (one per channel), got {baseline!r}")
    start_point = start_point.reshape(1, -1, 1, 1).expand_as(images[:1])
    delta = images - start_point
    batch, n_points = len(images), len(alphas)
    total = torch.zeros(batch, p.targets.shape[1], *images.shape[1:], device=images.device, dtype=images.dtype)
    for start in range(0, batch * n_points, batch_size):  # chunks of (image, path point) pairs
        pair = torch.arange(start, min(start + batch_size, batch * n_points), device=images.device)
        image, point = pair // n_points, pair % n_points
        inputs = start_point + alphas[point].view(-1, 1, 1, 1) * delta[image]
        grads = input_grads_of(p.model, inputs, p.targets[image], read)
        total.index_add_(0, image, weights[point].view(-1, 1, 1, 1, 1) * grads)
    return reduce_channels(delta[:, None] * total, channel_reduce)
