"""HiResCAM: Draelos & Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations of
convolutional neural networks", arXiv 2011.08891 (2020), Sec. 3."""

from __future__ import annotations

import torch

from ..core import Pass, register_method


@register_method("hirescam", layer_grads=True)
def hirescam(p: Pass, relu: bool = True) -> torch.Tensor:
    """A^c = sum_k (d y^c / d A^k) (.) A^k: the element-wise product of gradient and activation,
    summed over channels (no gradient averaging). The paper's equation has no ReLU; relu=true
    (default, like Grad-CAM and the common implementations) keeps the positive evidence only,
    relu=false returns the signed sum. Returns [B, T, h, w]."""
    cam = (p.layer_grads * p.activations.unsqueeze(1)).sum(dim=2)
    return torch.relu(cam) if relu else cam
