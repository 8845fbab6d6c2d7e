"""Model registry: `create_model(cfg)` returns a ready-to-explain classifier and what the rest of
the pipeline needs to know about it (input normalization, default target layer, scoring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry


@dataclass
class LoadedModel:
    """A classifier in eval mode plus its protocol facts.

    target_layer: dotted module name whose output the CAM methods explain.
    mean/std: per-channel input normalization on [0, 1] RGB.
    multilabel: scores are independent sigmoids (VOC/COCO heads) rather than a softmax.
    predicts: False for a stand-in without a classifier (model=none): it makes no predictions,
    so a run explains ground-truth classes only and scores no model-based metric.
    """

    module: nn.Module
    name: str
    target_layer: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_classes: int
    multilabel: bool = False
    weights: str = ""
    predicts: bool = True

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=-1)


ModelBuilder = Callable[[Any], LoadedModel]
MODELS: Registry[ModelBuilder] = Registry("model", "wsl_bench.models.zoo")


def register_model(name: str, *, sized_by_dataset: bool = False) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register `builder(cfg) -> LoadedModel` under `name` (the `model.name` config value).
    sized_by_dataset: the builder is called as `builder(cfg, dataset_classes)`, its class count
    taken from the dataset (a model with no trained head, e.g. model=none)."""

    def wrap(builder: ModelBuilder) -> ModelBuilder:
        builder.sized_by_dataset = sized_by_dataset  # type: ignore[attr-defined]
        return MODELS.register(name, builder)

    return wrap


def create_model(cfg: Any, dataset_classes: int | None = None) -> LoadedModel:
    """Build the model described by the `model` config node, in eval mode, on CPU. The target
    layer name is checked here, before any compute, and candidates are listed on a typo.
    `model.multilabel=true` scores classes with independent sigmoids (VOC-20 / COCO-80 heads).
    `dataset_classes`: the dataset's class count, for builders registered sized_by_dataset."""
    # `model.source` names the builder for model families (torchvision, timm); else the name does
    builder = MODELS.get(cfg.get("source") or cfg.name)
    if getattr(builder, "sized_by_dataset", False):
        if not dataset_classes:
            raise ConfigError(f"model {cfg.name} takes its class count from the dataset; pass create_model(cfg, dataset_classes=N)")
        loaded = builder(cfg, dataset_classes)
    else:
        loaded = builder(cfg)
    if cfg.get("target_layer"):
        loaded.target_layer = cfg.target_layer
    if not loaded.target_layer:
        raise ConfigError(
            f"model {loaded.name} has no default target layer; set model.target_layer= to one of: "
            f"{', '.join(layer_candidates(loaded.module))}"
        )
    resolve_layer(loaded.module, loaded.target_layer)
    loaded.module.eval()
    return loaded


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    """The submodule named by a dotted path (`layer4`, `features.29`), or the module itself."""
    if isinstance(layer, nn.Module):
        return layer
    modules = dict(model.named_modules())
    if layer not in modules:
        candidates = layer_candidates(model)
        raise ConfigError(
            f"target layer {layer!r} not found in {type(model).__name__}; "
            f"set model.target_layer= to one of: {', '.join(candidates)}"
        )
    return modules[layer]


def layer_candidates(model: nn.Module, limit: int = 25) -> list[str]:
    """Top-level children and their direct children: where CAM target layers usually are."""
    names = [n for n, _ in model.named_modules() if n and n.count(".") <= 1]
    return names[-limit:]
