"""Ablation-CAM: Desai & Ramaswamy, "Ablation-CAM: Visual Explanations for Deep Convolutional
Network via Gradient-free Localization", WACV 2020, Sec. 3."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from ..core import Pass, register_method, weighted_channels


SUFFIX_HINT = (
    "the layers after the target layer do not follow its batch (they use the input's batch size "
    "or features from before it); set method.ablationcam.params.rerun=full"
)


def _run_with_layer_output(model: nn.Module, layer: nn.Module, images: torch.Tensor, replace: Any) -> torch.Tensor:
    """model(images) with the target layer's output replaced by replace(output); hook removed."""
    handle = layer.register_forward_hook(lambda _m, _i, output: replace(output))
    try:
        with torch.inference_mode():
            return model(images)
    finally:
        handle.remove()


@register_method("ablationcam")
def ablationcam(p: Pass, batch_size: int = 64, rerun: str = "suffix") -> torch.Tensor:
    """slope_k^c = (y^c - y_k^c) / y^c, y_k^c the target logit with channel k of the
    target layer set to zero; L^c = ReLU(sum_k slope_k^c A^k).

    The ablated forwards run batched under inference mode, `batch_size` at a time; one serves
    all T targets. An all-zero channel is unchanged by ablation, so its slope is exactly 0 and
    it costs no forward. rerun=suffix (default) runs the image once through the layers before
    the target layer and replaces the target layer's output by the batch of ablated copies, so
    only the layers after it run per channel; this needs the layers after the target layer to
    take nothing from before it but through it (true of the usual last-conv-block choices) and
    is checked by the batch size of the logits. rerun=full runs the whole network per copy.
    Returns [B, T, h, w]."""
    if rerun not in ("suffix", "full"):
        raise ValueError(f"ablationcam: rerun must be 'suffix' or 'full', got {rerun!r}")
    acts = p.activations
    batch, channels = acts.shape[:2]
    active = acts.flatten(2).ne(0).any(dim=2)  # [B, C]
    ablated = p.target_scores[:, :, None].expand(batch, p.targets.shape[1], channels).clone()  # y_k = y: slope 0
    for b in range(batch):
        chans = active[b].nonzero(as_tuple=True)[0]
        for start in range(0, len(chans), batch_size):
            ks = chans[start : start + batch_size]
            rows = torch.arange(len(ks), device=acts.device)
            if rerun == "suffix":
                copies = acts[b].expand(len(ks), *acts.shape[1:]).clone()
                copies[rows, ks] = 0
                try:
                    logits = _run_with_layer_output(p.model, p.layer, p.images[b : b + 1], lambda _out: copies)
                except RuntimeError as exc:  # e.g. a reshape to the input's batch size
                    raise ConfigError(f"ablationcam: {SUFFIX_HINT} ({str(exc).splitlines()[0][:120]})") from exc
            else:
                def zero_channel(output: torch.Tensor) -> torch.Tensor:
                    output = output.clone()
                    output[rows, ks] = 0
                    return output

                logits = _run_with_layer_output(p.model, p.layer, p.images[b : b + 1].expand(len(ks), -1, -1, -1), zero_channel)
            if logits.shape[0] != len(ks):
                raise ConfigError(f"ablationcam: {SUFFIX_HINT}")
            ablated[b, :, ks] = logits[:, p.targets[b]].T
    score = p.target_scores[:, :, None]
    slopes = (score - ablated) / score
    return torch.relu(weighted_channels(slopes, acts))
