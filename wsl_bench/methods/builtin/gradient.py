"""Gradient saliency: Simonyan et al., "Deep Inside Convolutional Networks: Visualising Image
Classification Models and Saliency Maps", ICLR workshop 2014, Sec. 3.1."""

from __future__ import annotations

import torch

from ..core import Pass, reduce_channels, register_method


@register_method("gradient", input_grads=True)
def gradient(p: Pass, channel_reduce: str = "max_abs") -> torch.Tensor:
    """w = d S_c / d I at the image; M_ij = max_c |w_h(i,j,c)| over colour channels (Sec. 3.1;
    channel_reduce=max_abs). Input resolution: returns [B, T, H, W]."""
    return reduce_channels(p.input_grads, channel_reduce)
