"""Synthetic images for benchmarks and scale tests: `dataset.size` images generated on the fly
(no files on disk), deterministic for a given `dataset.seed`, at the sizes real photos have
(ImageNet / VOC / COCO-like 333..640 px sides), each with one or more filled rectangles or
ellipses on a smooth textured background and their exact bounding boxes as ground truth.
Classes are ImageNet-1k indices (drawn at random), so any ImageNet model runs on it; the scores
mean nothing, the work done per image is what is real.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import ConfigError
from ..base import AnnotatedImages, register_dataset
from ..imagenet_classes import IMAGENET_CLASSES
from ..sample import ImageEntry

# (height, width) of common photo shapes
SIZES = ((375, 500), (500, 375), (333, 500), (500, 333), (480, 640), (427, 640), (640, 480), (500, 500))
MIN_OBJECT = 16  # px; ellipses this large or larger touch every side of their box


@dataclass(frozen=True)
class SyntheticImage:
    """Renders one image: background from `seed`, shapes[i] = (x0, y0, x1, y1, is_ellipse) inclusive."""

    seed: int
    height: int
    width: int
    shapes: tuple[tuple[int, int, int, int, bool], ...]

    def __call__(self) -> tuple[torch.Tensor, str]:
        rng = np.random.default_rng(self.seed)
        # smooth background: a coarse random grid, upsampled bilinearly, plus fine noise
        coarse = torch.from_numpy(rng.uniform(40, 215, size=(1, 3, 6, 8)).astype(np.float32))
        image = torch.nn.functional.interpolate(coarse, size=(self.height, self.width), mode="bilinear", align_corners=False)[0]
        image += torch.from_numpy(rng.integers(-12, 13, size=(3, self.height, self.width), dtype=np.int8)).float()
        for x0, y0, x1, y1, is_ellipse in self.shapes:
            color = torch.from_numpy(rng.uniform(0, 255, size=3).astype(np.float32))[:, None, None]
            region = image[:, y0 : y1 + 1, x0 : x1 + 1]
            if is_ellipse:  # pixel centers inside the ellipse inscribed in the box
                ry, rx = (y1 - y0 + 1) / 2, (x1 - x0 + 1) / 2
                ys = (torch.arange(y1 - y0 + 1, dtype=torch.float32)[:, None] + 0.5 - ry) / ry
                xs = (torch.arange(x1 - x0 + 1, dtype=torch.float32)[None, :] + 0.5 - rx) / rx
                region.copy_(torch.where(xs**2 + ys**2 <= 1, color, region))
            else:
                region.copy_(color.expand_as(region))
        return image.clamp_(0, 255).round_().to(torch.uint8), ""


def synthetic_entry(seed: int, index: int, max_objects: int, image_size: tuple[int, int] | None = None) -> ImageEntry:
    """Image `index`; image_size (height, width) fixes its size (else a photo shape at random)."""
    rng = np.random.default_rng([seed, index])
    height, width = SIZES[rng.integers(len(SIZES))]
    if image_size is not None:
        height, width = image_size
    shapes, labels = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        w = int(rng.integers(max(MIN_OBJECT, width // 5), int(width * 0.8)))
        h = int(rng.integers(max(MIN_OBJECT, height // 5), int(height * 0.8)))
        x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        shapes.append((x0, y0, x0 + w - 1, y0 + h - 1, bool(rng.integers(2))))
        labels.append(int(rng.integers(len(IMAGENET_CLASSES))))
    image_id = f"synthetic_{index:08d}"
    return ImageEntry(
        image_id=image_id,
        path=Path("synthetic") / f"{image_id}.png",
        labels=tuple(sorted(set(labels))),
        boxes=np.array([s[:4] for s in shapes], dtype=np.int64),
        box_labels=np.array(labels, dtype=np.int64),
        box_difficult=np.zeros(len(shapes), dtype=bool),
        size_hint=(height, width),
        render=SyntheticImage(int(rng.integers(2**31)), height, width, tuple(shapes)),
    )


@register_dataset("synthetic")
def build_synthetic(cfg: Any) -> AnnotatedImages:
    size, max_objects = int(cfg.size), int(cfg.get("max_objects", 2))
    if size < 1 or max_objects < 1:
        raise ConfigError(f"dataset.size={size} and dataset.max_objects={max_objects} must be >= 1")
    image_size = cfg.get("image_size")
    if image_size is not None:
        if len(image_size) != 2 or min(int(v) for v in image_size) < 2 * MIN_OBJECT:
            raise ConfigError(f"dataset.image_size={list(image_size)} must be [height, width], each >= {2 * MIN_OBJECT}, e.g. [375, 500]")
        image_size = (int(image_size[0]), int(image_size[1]))
    entries = [synthetic_entry(int(cfg.get("seed", 0)), i, max_objects, image_size) for i in range(size)]
    return AnnotatedImages(cfg.name, entries, list(IMAGENET_CLASSES), [])
