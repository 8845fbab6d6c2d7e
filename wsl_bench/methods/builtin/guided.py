"""Guided backpropagation: Springenberg et al., "Striving for Simplicity: The All Convolutional
Net", ICLR workshop 2015, Sec. 3.4 / Fig. 1; and Guided Grad-CAM: Selvaraju et al., ICCV 2017,
Sec. 3 ("Guided Grad-CAM"). Both use the guided pass of wsl_bench.methods.core (one extra
forward/backward shared by the family)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core import Pass, reduce_channels, register_method
from ..smoothing import smooth_saliency
from .gradcam import gradcam


@register_method("guided_backprop", guided_input_grads=True, at_image_size=smooth_saliency)
def guided_backprop(p: Pass, channel_reduce: str = "max_abs") -> torch.Tensor:
    """Gradient of the target logit w.r.t. the input where every ReLU passes back only positive
    gradients at positions its input was positive: R^l = (f^l > 0) (R^{l+1} > 0) R^{l+1}.
    The 3-channel reconstruction is reduced to a map by channel_reduce (default max |.|, as for
    gradient saliency). Input resolution: returns [B, T, H, W]. Param smooth (default 0): the
    blur at image size TorchRay's pointing game applies (0.02; see methods.smoothing)."""
    return reduce_channels(p.guided_input_grads, channel_reduce)


@register_method("guided_gradcam", layer_grads=True, guided_input_grads=True)
def guided_gradcam(p: Pass, channel_reduce: str = "max_abs") -> torch.Tensor:
    """Guided backpropagation times Grad-CAM bilinearly upsampled to the input (element-wise,
    per colour channel), then reduced over channels like guided_backprop. Grad-CAM comes from
    the shared backward (plain gradients), guided gradients from the guided pass.
    Returns [B, T, H, W]."""
    batch, n_targets, _, height, width = p.guided_input_grads.shape
    coarse = gradcam(p)  # [B, T, h, w]
    upsampled = F.interpolate(coarse.flatten(0, 1)[:, None], size=(height, width), mode="bilinear", align_corners=False)
    upsampled = upsampled.view(batch, n_targets, 1, height, width)
    return reduce_channels(p.guided_input_grads * upsampled, channel_reduce)
