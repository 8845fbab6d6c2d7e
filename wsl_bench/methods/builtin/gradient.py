"""Gradient saliency: Simonyan et al., "Deep Inside Convolutional Networks: Visualising Image
Classification Models and Saliency Maps", ICLR workshop 2014, Sec. 3.1."""

from __future__ import annotations

import torch

from ..core import Pass, reduce_channels, register_method
from ..smoothing import smooth_saliency


@register_method("gradient", input_grads=True, at_image_size=smooth_saliency)
def gradient(p: Pass, channel_reduce: str = "max_abs") -> torch.Tensor:
    """w = d S_c / d I at the image; M_ij = max_c |w_h(i,j,c)| over colour channels (Sec. 3.1;
    channel_reduce=max_abs). Input resolution: returns [B, T, H, W].
    Param smooth (default 0): once resized to the image, the map is blurred with sigma = smooth x
    its longer side, as TorchRay's pointing game does (smooth=0.02; methods.smoothing)."""
    return reduce_channels(p.input_grads, channel_reduce)
