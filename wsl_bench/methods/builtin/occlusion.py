"""Occlusion: Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks",
ECCV 2014, Sec. 4.2 (a gray square slid over the image, the change in the class score)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core import Pass, register_method
from ..perturbation import occlusion_maps, score_reader


def windows_to_pixels(grid: torch.Tensor, patch: int, stride: int, size: tuple[int, int]) -> torch.Tensor:
    """Spread a window-position grid [B, T, n_y, n_x] onto the input [B, T, H, W]: each pixel
    gets the mean value of the windows that cover it (0 where none does)."""
    batch, n_targets, n_y, n_x = grid.shape
    kernel = torch.ones(1, 1, patch, patch, dtype=grid.dtype, device=grid.device)
    flat = grid.reshape(batch * n_targets, 1, n_y, n_x)
    sums = F.conv_transpose2d(flat, kernel, stride=stride)
    counts = F.conv_transpose2d(torch.ones_like(flat[:1]), kernel, stride=stride)
    pixels = sums / counts.clamp(min=1)
    pad_y, pad_x = size[0] - pixels.shape[-2], size[1] - pixels.shape[-1]
    pixels = F.pad(pixels, (0, pad_x, 0, pad_y))
    return pixels.view(batch, n_targets, *size)


@register_method("occlusion")
def occlusion(
    p: Pass, patch: int = 48, stride: int = 16, fill: float = 0.0, batch_size: int = 64, score: str = "probability"
) -> torch.Tensor:
    """The drop in the target score, score(x) - score(x with a patch x patch square set to
    `fill`), for each window position (stride apart, inside the image), placed on the pixels.
    score=probability: the target's class probability (p.probabilities: softmax, or sigmoid
    for a multi-label head), the quantity the paper maps (Fig. 7 (d), "correct class
    probability, as a function of the position of the gray square"); score=logit: the raw
    logit (as Captum's Occlusion on a logit model). Each pixel gets the mean drop of the
    windows covering it. fill is in the normalized input
    space (0 = the dataset mean, the paper's gray). The occluded forwards run batched under
    inference mode, batch_size at a time, one serving all targets. Returns [B, T, H, W]."""
    read = score_reader(score, p.probabilities, "occlusion")
    grid = occlusion_maps(p.model, p.images, p.targets, patch=patch, stride=stride, fill=fill, chunk_size=batch_size, transform=read)
    return windows_to_pixels(grid, patch, stride, tuple(p.images.shape[-2:]))
