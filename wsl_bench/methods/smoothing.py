"""Gaussian smoothing of maps and images, as the pointing-game reference code (TorchRay,
Fong et al. 2019) applies it: to gradient, deconvnet and guided-backprop saliency once it is
resized to the image (sigma = 0.02 x the longer side, replicate padding), to extremal
perturbation masks (0.09 x the shorter side, zero padding), and to build the blur pyramid of
extremal perturbation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ConfigError

PADDINGS = ("constant", "replicate")
_SQRT_TWO = torch.tensor(math.sqrt(2), dtype=torch.float32)
_EPSILON = torch.tensor(torch.finfo(torch.float32).eps, dtype=torch.float32)


def gaussian_blur(x: torch.Tensor, sigma: float | torch.Tensor, padding: str = "constant") -> torch.Tensor:
    """Separable Gaussian filter of x [N, C, H, W] (vertical, then horizontal), output size kept.

    Taps i = -w..w with w = ceil(4 sigma), f_i proportional to exp(-(i / (sqrt(2) sigma + eps))^2)
    and normalized to sum 1 (eps = float32 epsilon, so sigma = 0 is the identity); computed in
    float32 as TorchRay's `imsmooth` does, so the two agree to the last bit. padding: constant
    (zeros outside the map) or replicate (the border value repeated)."""
    if padding not in PADDINGS:
        raise ConfigError(f"smoothing padding must be one of {', '.join(PADDINGS)}, got {padding!r}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {float(sigma)}")
    width = math.ceil(4 * sigma)  # in sigma's own precision (a Python float or a float32 tensor)
    scale = _SQRT_TWO * torch.as_tensor(sigma, dtype=torch.float32) + _EPSILON
    taps = torch.arange(-width, width + 1, dtype=torch.float32, device=x.device) / scale.to(x.device)
    taps = torch.exp(-taps * taps)
    taps = (taps / taps.sum()).to(x.dtype)
    channels = x.shape[1]
    if padding == "constant":
        pad = width
    else:
        x = F.pad(x, (width, width, width, width), mode=padding)
        pad = 0
    x = F.conv2d(x, taps.reshape(1, 1, -1, 1).expand(channels, -1, -1, -1), padding=(pad, 0), groups=channels)
    return F.conv2d(x, taps.reshape(1, 1, 1, -1).expand(channels, -1, -1, -1), padding=(0, pad), groups=channels)


def smooth_maps(maps: torch.Tensor, smooth: float, relative_to: str, padding: str) -> torch.Tensor:
    """maps [N, H, W] blurred with sigma = smooth x max(H, W) (relative_to="max") or
    min(H, W) ("min"); smooth = 0 returns the maps unchanged."""
    if smooth < 0:
        raise ConfigError(f"smooth={smooth} must be >= 0 (0 = no smoothing)")
    if smooth == 0:
        return maps
    side = {"max": max, "min": min}[relative_to](maps.shape[-2:])
    return gaussian_blur(maps[:, None], smooth * side, padding)[:, 0]


def smooth_saliency(maps: torch.Tensor, smooth: float = 0.0) -> torch.Tensor:
    """The blur TorchRay's pointing-game benchmark gives gradient, deconvnet and guided-backprop
    saliency after resizing it to the image: sigma = smooth x the longer side, replicate padding
    (TorchRay uses smooth = 0.02). Applied by the pipeline once maps are at image size."""
    return smooth_maps(maps, smooth, "max", "replicate")
