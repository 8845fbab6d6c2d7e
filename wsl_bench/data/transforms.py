"""Protocol transforms: how a decoded image becomes the network input, and which part of the
original image the input covers (so maps can be put back at original size)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms.v2 import functional as TF

from ..errors import ConfigError
from .sample import View

TRANSFORM_KINDS = ("squash", "shorter_side", "resize_crop")


@dataclass(frozen=True)
class ProtocolTransform:
    """`squash`: resize to size x size, aspect not kept (Grad-CAM re-runs, RISE, Score-CAM, MaxBoxAcc).
    `shorter_side`: shorter side to `size`, aspect kept (pointing game, TorchRay).
    `resize_crop`: shorter side to `resize`, then center crop size x size (torchvision eval).
    Resizing is bilinear with antialiasing, on uint8 RGB; then (x/255 - mean) / std."""

    kind: str
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: int = 256

    def __post_init__(self) -> None:
        if self.kind not in TRANSFORM_KINDS:
            raise ConfigError(f"transform.kind={self.kind!r} is unknown; use one of {', '.join(TRANSFORM_KINDS)}")

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, View]:
        """image: [3, H, W] uint8 RGB. Returns the normalized float input and its view."""
        height, width = image.shape[-2:]
        view = View(0.0, 0.0, float(width), float(height))
        if self.kind == "squash":
            out = TF.resize(image, [self.size, self.size], antialias=True)
        elif self.kind == "shorter_side":
            scale = self.size / min(height, width)
            new_size = [max(1, round(height * scale)), max(1, round(width * scale))]
            out = TF.resize(image, new_size, antialias=True)
        else:
            scale = self.resize / min(height, width)
            new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
            out = TF.resize(image, [new_h, new_w], antialias=True)
            top, left = (new_h - self.size) // 2, (new_w - self.size) // 2
            out = TF.crop(out, top, left, self.size, self.size)
            sy, sx = height / new_h, width / new_w
            view = View(left * sx, top * sy, (left + self.size) * sx, (top + self.size) * sy)
        out = out.float().div_(255.0)
        out = TF.normalize(out, list(self.mean), list(self.std))
        return out, view
