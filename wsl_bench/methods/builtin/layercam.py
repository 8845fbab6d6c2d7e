"""LayerCAM: Jiang et al., "LayerCAM: Exploring Hierarchical Class Activation Maps for
Localization", IEEE TIP 30, 2021, Sec. 3."""

from __future__ import annotations

import torch

from ..core import Pass, register_method


@register_method("layercam", layer_grads=True)
def layercam(p: Pass) -> torch.Tensor:
    """Spatial weights w^kc_ij = ReLU(d y^c / d A^k_ij) ; M^c = ReLU(sum_k w^kc (.) A^k)
    (the linear combination with spatial weights). Returns [B, T, h, w]."""
    return torch.relu((torch.relu(p.layer_grads) * p.activations.unsqueeze(1)).sum(dim=2))
