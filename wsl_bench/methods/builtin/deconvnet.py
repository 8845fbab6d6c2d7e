"""Deconvnet: Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014,
Sec. 2.1 (the deconvnet's unpooling, rectification and filtering), as a backpropagation method
(Springenberg et al. 2015, Sec. 3.4, and TorchRay's `deconvnet`)."""

from __future__ import annotations

import torch

from ..core import Pass, deconvnet_relu_rule, input_grads_under, reduce_channels, register_method
from ..smoothing import smooth_saliency


@register_method("deconvnet", at_image_size=smooth_saliency)
def deconvnet(p: Pass, channel_reduce: str = "max_abs") -> torch.Tensor:
    """The target class's signal projected back to the pixels through the network's transposed
    filters, max-pooling switches (the backward of max pooling routes to the recorded maximum)
    and rectification of the signal itself: R^l = max(R^{l+1}, 0) at every ReLU, whatever the
    forward input was (Sec. 2.1, "Rectification"). One forward/backward of its own, batched over
    targets. The 3-channel reconstruction is reduced by channel_reduce (max |.|, as TorchRay).
    Param smooth (default 0): the blur at image size TorchRay's pointing game applies (0.02).
    Input resolution: returns [B, T, H, W]."""
    grads = input_grads_under(deconvnet_relu_rule, p.model, p.images, p.targets)
    return reduce_channels(grads, channel_reduce)
