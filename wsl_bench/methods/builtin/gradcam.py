"""Grad-CAM: Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV 2017 (arXiv 1610.02391), Eq. 1-2."""

from __future__ import annotations

import torch

from ..core import Pass, register_method


@register_method("gradcam", layer_grads=True)
def gradcam(p: Pass) -> torch.Tensor:
    """L^c = ReLU(sum_k alpha_k^c A^k), alpha_k^c = (1/Z) sum_ij d y^c / d A^k_ij (Eq. 1-2).

    y^c is the pre-softmax score of class c; returns [B, T, h, w]."""
    weights = p.layer_grads.mean(dim=(-2, -1), keepdim=True)  # [B, T, C, 1, 1]
    return torch.relu((weights * p.activations.unsqueeze(1)).sum(dim=2))
