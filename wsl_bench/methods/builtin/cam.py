"""CAM: Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016, Sec. 2."""

from __future__ import annotations

import torch
from torch import nn

from ...errors import ConfigError
from ...models.base import resolve_layer
from ..core import Pass, register_method, weighted_channels


def _classifier(p: Pass, name: str) -> nn.Linear:
    """The linear layer mapping pooled target-layer features to the logits."""
    channels, classes = p.activations.shape[1], p.logits.shape[1]
    if name:
        layer = resolve_layer(p.model, name)
        if not isinstance(layer, nn.Linear):
            raise ConfigError(f"cam: classifier {name!r} is a {type(layer).__name__}, not nn.Linear")
        return layer
    linears = [m for m in p.model.modules() if isinstance(m, nn.Linear) and m.in_features == channels and m.out_features == classes]
    if not linears:
        raise ConfigError(
            f"cam needs a head of global average pooling + one linear layer on the target layer "
            f"({channels} -> {classes}); this model has none: use method=gradcam (CAM's generalization)"
        )
    return linears[-1]


@register_method("cam")
def cam(p: Pass, classifier: str = "", tolerance: float = 1e-3) -> torch.Tensor:
    """M_c(x, y) = sum_k w_k^c f_k(x, y) (Sec. 2): the target class's weights of the linear layer
    after global average pooling, applied to the target layer's channels. No ReLU (the paper
    has none), so maps can be negative.

    The head is checked, not assumed: the logits must equal GAP(target layer) @ W^T + b within
    `tolerance` (relative to the logits' scale); otherwise a clear error. `classifier` names the
    linear layer; empty = the last nn.Linear with matching shape. Returns [B, T, h, w]."""
    linear = _classifier(p, classifier)
    pooled = p.activations.mean(dim=(-2, -1))
    expected = torch.nn.functional.linear(pooled, linear.weight, linear.bias)
    error = (expected - p.logits).abs().max().item()
    scale = p.logits.abs().max().item() + 1.0
    if error > tolerance * scale:
        raise ConfigError(
            f"cam needs logits = linear(global average pool(target layer)); here they differ by {error:.3g}. "
            "Set model.target_layer to the last feature map before the pooling, or use method=gradcam"
        )
    return weighted_channels(linear.weight[p.targets], p.activations)
