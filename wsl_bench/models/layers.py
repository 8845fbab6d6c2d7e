"""Default Grad-CAM target layers: the last convolutional feature map of each architecture; and
the residual sum as a module."""

from __future__ import annotations

import torch
from torch import nn


class ResidualSum(nn.Module):
    """A residual connection's sum as a module, so that backward rules can see it (excitation
    backprop splits the signal between the two terms in proportion to their values)."""

    def forward(self, residual: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        return residual + identity

# By architecture family, as the Grad-CAM / pointing-game literature uses them.
NAMED = {
    "googlenet": "inception5b",
    "inception_v3": "Mixed_7c",
    "regnet": "trunk_output",
    "shufflenet": "conv5",
    "mnasnet": "layers",
}


def default_target_layer(model: nn.Module, arch: str) -> str:
    """vgg16 -> features.29 and alexnet -> features.11 (last ReLU of `features`); resnet/resnext/
    wide_resnet -> layer4; googlenet -> inception5b; densenet -> features.norm5; efficientnet,
    convnext, mobilenet, squeezenet -> the last block of `features`; timm models -> the last entry
    of their feature_info. Empty when unknown (then model.target_layer must be set)."""
    modules = dict(model.named_modules())
    for family, layer in NAMED.items():
        if arch.startswith(family) and layer in modules:
            return layer
    if arch.startswith(("vgg", "alexnet")) and isinstance(modules.get("features"), nn.Sequential):
        relus = [i for i, m in enumerate(modules["features"]) if isinstance(m, nn.ReLU)]
        return f"features.{relus[-1]}"
    if arch.startswith("densenet") and "features.norm5" in modules:
        return "features.norm5"
    if "layer4" in modules:
        return "layer4"
    info = getattr(model, "feature_info", None)
    if info is not None:
        try:
            return info[-1]["module"]
        except (IndexError, KeyError, TypeError):
            pass
    features = modules.get("features")
    if isinstance(features, nn.Sequential) and len(features):
        return f"features.{len(features) - 1}"
    return ""
