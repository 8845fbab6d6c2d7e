"""`model=none`: no network at all, for baselines whose maps look at no model (the center
baseline of the pointing game and of Choe et al., CVPR 2020: "center" with 52.5 MaxBoxAccV2 on
ImageNet and 59.7 on CUB; seeded noise). Nothing is loaded and nothing is trained; the run says
so in its records (model `none`) and provenance (`model_weights`).

The stand-in passes the input through one named layer (`input`, where the pipeline hooks its
target layer) and scores every class NaN, so no number can be read from predictions it does not
make: the pipeline refuses top-k targets and model-based metrics with it, and a method that
differentiates the network stops with a clear error."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from ..base import LoadedModel, register_model

NO_WEIGHTS = "none: no network, no weights (a baseline that looks at no model)"


class NoNetwork(nn.Module):
    """Input -> `input` (identity) -> NaN class scores [B, num_classes]."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.input = nn.Identity()
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input(x)
        if torch.is_grad_enabled():
            raise ConfigError("model=none has no network to differentiate; with it use methods that need no model (center, random)")
        return x.new_full((x.shape[0], self.num_classes), float("nan"))


@register_model("none", sized_by_dataset=True)
def build_none(cfg: Any, dataset_classes: int) -> LoadedModel:
    return LoadedModel(
        module=NoNetwork(dataset_classes), name="none", target_layer="input", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
        num_classes=dataset_classes, weights=NO_WEIGHTS, predicts=False,
    )
