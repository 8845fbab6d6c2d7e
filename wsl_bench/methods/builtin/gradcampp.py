"""Grad-CAM++: Chattopadhyay et al., "Grad-CAM++: Generalized Gradient-based Visual Explanations
for Deep Convolutional Networks", WACV 2018 (arXiv 1710.11063), Sec. 3; and
Smooth Grad-CAM++: Omeiza et al., "Smooth Grad-CAM++: An Enhanced Inference Level Visualization
Technique for Deep Convolutional Neural Network Models", arXiv 1908.01224 (2019), Sec. 3."""

from __future__ import annotations

import torch

from ..core import Pass, layer_grads_of, register_method, weighted_channels


def gradcampp_map(
    activations: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor, d3: torch.Tensor, scale: torch.Tensor | None
) -> torch.Tensor:
    """ReLU(sum_k w_k^c A^k) with alpha = d2 / (2 d2 + sum_ab A_ab d3) (0 where the
    denominator is 0, as in the authors. code) and w_k^c = sum_ij alpha_ij ReLU(d1_ij).

    d1, d2, d3 [B, T, C, h, w]: first, second and third derivatives of Y^c = exp(S^c) w.r.t. A,
    each divided by exp(S^c) (so exp never overflows); `scale` [B, T] multiplies the weights
    back by exp(S^c) when the exact magnitude is wanted (alpha does not depend on it)."""
    acts = activations.unsqueeze(1)  # [B, 1, C, h, w]
    denominator = 2 * d2 + acts.sum(dim=(-2, -1), keepdim=True) * d3
    nonzero = denominator != 0
    alpha = torch.where(nonzero, d2 / torch.where(nonzero, denominator, torch.ones_like(denominator)), torch.zeros_like(d2))
    weights = (alpha * torch.relu(d1)).sum(dim=(-2, -1))  # [B, T, C]
    if scale is not None:
        weights = weights * scale[..., None]
    return torch.relu(weighted_channels(weights, activations))


@register_method("gradcampp", layer_grads=True)
def gradcampp(p: Pass, scale_by_exp_score: bool = False) -> torch.Tensor:
    """Grad-CAM++ in the paper's closed form: with Y^c = exp(S^c) and a piecewise-linear network
    (ReLU), d^2Y/dA^2 = exp(S) g^2 and d^3Y/dA^3 = exp(S) g^3 with g = dS/dA, so
    alpha_ij^kc = g_ij^2 / (2 g_ij^2 + sum_ab A^k_ab g_ij^3), w_k^c = sum_ij alpha_ij^kc
    ReLU(dY/dA^k_ij) and L^c = ReLU(sum_k w_k^c A^k).

    The factor exp(S^c) in dY/dA is one positive number per map (it changes no localization
    metric and overflows float32 for S > 88); it is left out unless scale_by_exp_score=true.
    Returns [B, T, h, w]."""
    g = p.layer_grads
    scale = torch.exp(p.target_scores) if scale_by_exp_score else None
    return gradcampp_map(p.activations, g, g * g, g * g * g, scale)


@register_method("smoothgradcampp", layer_grads=True)
def smoothgradcampp(
    p: Pass, samples: int = 25, noise_level: float = 0.15, seed: int = 0, scale_by_exp_score: bool = False
) -> torch.Tensor:
    """Smooth Grad-CAM++: the derivatives of Grad-CAM++ averaged over `samples` noisy copies of
    the input, x + N(0, sigma^2) with sigma = noise_level * (max(x) - min(x)) per image
    (SmoothGrad's noise level, Smilkov et al. 2017): D^n = (1/samples) sum_i d^nY^c/dA^n at
    x_i (Y = exp(S), so d^nY/dA^n = exp(S_i) g_i^n), then alpha = D^2 / (2 D^2 + sum_ab A_ab D^3),
    w_k = sum_ij alpha_ij ReLU(D^1_ij), L = ReLU(sum_k w_k A^k) with A the clean image's
    activations. exp(S_i) is taken relative to the clean image's exp(S) (a common positive
    factor per map; see scale_by_exp_score). Noise is drawn from a generator seeded with `seed`,
    one [3, H, W] draw per sample shared by the images of the batch, so an image's map does not
    depend on the batch it comes in. Each sample is one more forward/backward of the batch."""
    if samples < 1:
        raise ValueError("smoothgradcampp needs samples >= 1")
    generator = torch.Generator(device=p.images.device).manual_seed(seed)
    flat = p.images.flatten(1)
    sigma = (noise_level * (flat.amax(dim=1) - flat.amin(dim=1))).view(-1, 1, 1, 1)
    reference = p.target_scores  # [B, T]
    d1 = d2 = d3 = None
    for _ in range(samples):  # running sums: memory of one sample, not `samples`
        noise = torch.randn((1, *p.images.shape[1:]), generator=generator, device=p.images.device, dtype=p.images.dtype)
        logits, _, g = layer_grads_of(p.model, p.layer, p.images + sigma * noise, p.targets)
        weight = torch.exp(logits.gather(1, p.targets) - reference)[..., None, None, None]  # exp(S_i) / exp(S)
        terms = (weight * g, weight * g * g, weight * g * g * g)
        d1, d2, d3 = terms if d1 is None else (d1 + terms[0], d2 + terms[1], d3 + terms[2])
    d1, d2, d3 = d1 / samples, d2 / samples, d3 / samples
    return gradcampp_map(p.activations, d1, d2, d3, torch.exp(reference) if scale_by_exp_score else None)
