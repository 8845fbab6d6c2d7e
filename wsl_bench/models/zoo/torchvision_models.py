"""Any torchvision classification model by name (`model.source=torchvision model.name=resnet50`),
with its weights enum (`model.weights=IMAGENET1K_V1`, or DEFAULT), or a local checkpoint
(`model.checkpoint=...`, e.g. a VOC-20 / COCO-80 fine-tuned head with `model.num_classes`).

Online weights are used from torch's cache (TORCH_HOME/hub/checkpoints) when present; otherwise
they are downloaded only if `model.download` is true and download.pytorch.org answers within a
few seconds. When it cannot, one line says where to put the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from ..base import LoadedModel, register_model
from ..checkpoint import download_allowed, host_reachable, load_checkpoint, offline_message, with_timeout
from ..layers import default_target_layer

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resolve_weights(arch: str, name: str) -> Any:
    from torchvision.models import get_model_weights

    enum = get_model_weights(arch)
    key = name.split(".")[-1]  # accept "ResNet50_Weights.IMAGENET1K_V1"
    if key == "DEFAULT":
        return enum.DEFAULT
    try:
        return enum[key]
    except KeyError:
        raise ConfigError(f"model.weights={name!r} is not a weight of {arch}; use one of: {', '.join(w.name for w in enum)} or DEFAULT") from None


def fetch_state_dict(arch: str, weights: Any, cfg: Any) -> dict[str, torch.Tensor]:
    """The weights' state dict from torch's cache, downloading only when allowed and reachable."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    label = f"{type(weights).__name__}.{weights.name}"
    if not cached.is_file():
        if not download_allowed(cfg):
            raise ConfigError(offline_message(arch, label, weights.url, cached, "model.download=false"))
        if not host_reachable(weights.url):
            raise ConfigError(offline_message(arch, label, weights.url, cached, f"{weights.url.split('/')[2]} cannot be reached"))
    try:
        return with_timeout(weights.get_state_dict, progress=False, check_hash=True)
    except (OSError, RuntimeError) as exc:
        raise ConfigError(offline_message(arch, label, weights.url, cached, f"loading failed ({type(exc).__name__}: {str(exc)[:100]})")) from None


@register_model("torchvision")
def build_torchvision(cfg: Any) -> LoadedModel:
    from torchvision.models import get_model, list_models

    arch = cfg.name
    if arch not in list_models(module=__import__("torchvision").models):
        close = [m for m in list_models(module=__import__("torchvision").models) if arch.split("_")[0] in m][:12]
        raise ConfigError(f"model.name={arch!r} is not a torchvision classification model; e.g. {', '.join(close) or 'resnet50, vgg16'}")
    checkpoint = cfg.get("checkpoint")
    weights = resolve_weights(arch, str(cfg.weights)) if cfg.get("weights") and not checkpoint else None
    num_classes = cfg.get("num_classes") or (len(weights.meta["categories"]) if weights is not None else 1000)
    kwargs = {"aux_logits": False, "init_weights": False} if arch in ("googlenet", "inception_v3") else {}
    if not checkpoint and weights is None:
        raise ConfigError(f"model {arch}: no weights; set model.weights=DEFAULT (torchvision's) or model.checkpoint=/path/to/weights.pth")
    # weights are located (cache or download) before the network is built, so a missing file fails fast
    state = fetch_state_dict(arch, weights, cfg) if not checkpoint else None
    module: nn.Module = get_model(arch, weights=None, num_classes=num_classes, **kwargs)
    if checkpoint:
        provenance = load_checkpoint(module, checkpoint)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        if kwargs:  # the checkpoint carries the auxiliary heads that eval never uses
            state = {k: v for k, v in state.items() if not k.startswith(("aux1.", "aux2.", "AuxLogits."))}
        module.load_state_dict(state, strict=True)
        if kwargs:
            module.transform_input = True  # torchvision's googlenet/inception_v3 weights expect its input re-scaling
        preset = weights.transforms()
        mean, std = tuple(preset.mean), tuple(preset.std)
        provenance = f"torchvision {type(weights).__name__}.{weights.name}"
    return LoadedModel(
        module=module,
        name=arch,
        target_layer=default_target_layer(module, arch),
        mean=tuple(cfg.mean) if cfg.get("mean") else mean,
        std=tuple(cfg.std) if cfg.get("std") else std,
        num_classes=num_classes,
        multilabel=bool(cfg.get("multilabel", False)),
        weights=provenance,
    )
