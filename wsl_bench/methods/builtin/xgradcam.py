"""XGrad-CAM: Fu et al., "Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation
of CNNs", BMVC 2020 (arXiv 2008.02312), Sec. 3."""

from __future__ import annotations

import torch

from ..core import Pass, register_method, weighted_channels


@register_method("xgradcam", layer_grads=True)
def xgradcam(p: Pass) -> torch.Tensor:
    """alpha_k^c = sum_ij (A^k_ij / sum_ab A^k_ab) d y^c / d A^k_ij (the activation-weighted
    gradient that best satisfies the sensitivity and conservation axioms), map =
    ReLU(sum_k alpha_k^c A^k) as in Grad-CAM. A channel whose activations sum to 0 gets weight 0
    (the ratio is undefined). Returns [B, T, h, w]."""
    acts = p.activations.unsqueeze(1)  # [B, 1, C, h, w]
    total = acts.sum(dim=(-2, -1))  # [B, 1, C]
    weighted = (acts * p.layer_grads).sum(dim=(-2, -1))  # [B, T, C]
    weights = torch.where(total != 0, weighted / torch.where(total != 0, total, torch.ones_like(total)), torch.zeros_like(weighted))
    return torch.relu(weighted_channels(weights, p.activations))
