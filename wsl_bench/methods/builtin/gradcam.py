"""Grad-CAM: Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV 2017 (arXiv 1610.02391), Eq. 1-2; and its counterfactual
variant (the paper's "Counterfactual Explanations")."""

from __future__ import annotations

import torch

from ..core import Pass, register_method, weighted_channels


def gradcam_weights(p: Pass) -> torch.Tensor:
    """alpha_k^c = (1/Z) sum_ij d y^c / d A^k_ij (Eq. 1): [B, T, C]."""
    return p.layer_grads.mean(dim=(-2, -1))


@register_method("gradcam", layer_grads=True)
def gradcam(p: Pass) -> torch.Tensor:
    """L^c = ReLU(sum_k alpha_k^c A^k), alpha_k^c = (1/Z) sum_ij d y^c / d A^k_ij (Eq. 1-2).

    y^c is the pre-softmax score of class c; returns [B, T, h, w]."""
    if "gradcam" not in p.cache:  # guided_gradcam reuses it
        p.cache["gradcam"] = torch.relu(weighted_channels(gradcam_weights(p), p.activations))
    return p.cache["gradcam"]


@register_method("gradcam_neg", layer_grads=True)
def gradcam_neg(p: Pass) -> torch.Tensor:
    """Counterfactual Grad-CAM: the weights are those of Eq. 1 with negated
    gradients, alpha_k^c = (1/Z) sum_ij -d y^c / d A^k_ij; L = ReLU(sum_k alpha_k^c A^k): the
    regions whose removal would make the network more confident in c."""
    return torch.relu(weighted_channels(-gradcam_weights(p), p.activations))
