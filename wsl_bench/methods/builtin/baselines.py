"""Baselines that look at nothing: a centered Gaussian (the center-bias baseline of the pointing
game, Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016, Sec. 5.1)
and seeded uniform noise."""

from __future__ import annotations

import torch

from ..core import Pass, register_method


def centered_gaussian(height: int, width: int, sigma: float, cy: float, cx: float, device: torch.device) -> torch.Tensor:
    """exp(-((y - cy)^2 / (2 (sigma H)^2) + (x - cx)^2 / (2 (sigma W)^2))) on an H x W grid."""
    ys = torch.arange(height, dtype=torch.float32, device=device) - cy
    xs = torch.arange(width, dtype=torch.float32, device=device) - cx
    return torch.exp(-(ys[:, None] ** 2) / (2 * (sigma * height) ** 2) - xs[None, :] ** 2 / (2 * (sigma * width) ** 2))


def _torchray_origin(origin: str) -> bool:
    if origin not in ("input", "torchray"):
        raise ValueError(f"center: origin must be 'input' or 'torchray', got {origin!r}")
    return origin == "torchray"


def center_at_image_size(maps: torch.Tensor, sigma: float = 0.25, origin: str = "input") -> torch.Tensor:
    """origin=torchray: the Gaussian redrawn on the image, centered at (W / 2, H / 2), the point
    TorchRay's pointing game uses for its center baseline (for an odd side half-way between two
    pixels, whose equal values an argmax resolves to the first, floor(W / 2))."""
    if not _torchray_origin(origin):
        return maps
    height, width = maps.shape[-2:]
    return centered_gaussian(height, width, sigma, height / 2, width / 2, maps.device).expand_as(maps)


def center_point(maps: torch.Tensor, origin: str = "input") -> torch.Tensor | None:
    """origin=torchray: the point itself, (W / 2, H / 2) in pixel coordinates, as TorchRay's
    benchmark takes it (not a map's maximum: on an odd side it lies between two pixels, and
    the pointing game measures its distance to the object from there). origin=input: None,
    the map's maximum."""
    if not _torchray_origin(origin):
        return None
    height, width = maps.shape[-2:]
    return torch.tensor([[width / 2, height / 2]], dtype=torch.float64, device=maps.device).expand(len(maps), 2)


@register_method("center", at_image_size=center_at_image_size, point_at_image_size=center_point)
def center(p: Pass, sigma: float = 0.25) -> torch.Tensor:
    """exp(-((y - cy)^2 / (2 (sigma H)^2) + (x - cx)^2 / (2 (sigma W)^2))) on the input grid,
    centered at ((H - 1) / 2, (W - 1) / 2): its maximum is the image center (the central pixel
    for odd sizes, the central 2 x 2 block for even ones). Param origin (at image size): input
    (this map, resized; its point its maximum) or torchray (redrawn at (W / 2, H / 2) of the
    image, and that position is its point, TorchRay's center point). Returns [B, T, H, W]."""
    batch, _, height, width = p.images.shape
    gauss = centered_gaussian(height, width, sigma, (height - 1) / 2, (width - 1) / 2, p.images.device)
    return gauss.expand(batch, p.targets.shape[1], height, width)


@register_method("random")
def random(p: Pass, seed: int = 0, grid: str = "layer") -> torch.Tensor:
    """Uniform [0, 1) noise, independently per image and target, from a generator seeded with
    `seed` (the same batch gives the same maps). grid=layer: the target layer's grid (like a
    CAM); grid=input: the input's pixels. Returns [B, T, h, w]."""
    batch, n_targets = p.targets.shape
    if grid == "layer":
        size = p.activations.shape[-2:]
    elif grid == "input":
        size = p.images.shape[-2:]
    else:
        raise ValueError(f"random: grid must be 'layer' or 'input', got {grid!r}")
    generator = torch.Generator(device=p.images.device).manual_seed(seed)
    return torch.rand((batch, n_targets, *size), generator=generator, device=p.images.device)
