"""What every dataset yields: one `ImageEntry` per image (annotations, parsed up front) and one
`Sample` per decoded, protocol-transformed image. Everything downstream reads only these."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch


def empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), dtype=np.int64)


@dataclass
class ImageEntry:
    """Annotations of one image, in original pixel coordinates.

    boxes: [N, 4] int64, inclusive corners (x_min, y_min, x_max, y_max), 0-based.
    box_labels: [N] class index of each box. box_difficult: [N] bool (VOC "difficult").
    labels: classes present in the image (image-level ground truth).
    masks: optional per-class ground-truth masks at original size, built on demand (COCO).
    ignore: optional [H, W] bool mask of pixels that pixel-level metrics leave out (OpenImages'
    ignore regions), at original size, built on demand.
    render: optional generator of the image itself ([3, H, W] uint8, note) for datasets that need
    no files (synthetic); when set, `path` is only a name.

    With `transform.evaluate_at=input`, the Sample's entry holds these annotations mapped onto the
    network input grid instead (see transforms.on_input_grid).
    """

    image_id: str
    path: Path
    labels: tuple[int, ...]
    boxes: np.ndarray = field(default_factory=empty_boxes)
    box_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    box_difficult: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    masks: Callable[[], dict[int, np.ndarray]] | None = None
    ignore: Callable[[], np.ndarray] | None = None
    # Per-class flags: the class counts only in the "difficult" pointing-game subset.
    difficult_classes: tuple[int, ...] = ()
    # Annotation repairs made while loading (e.g. "clipped 1 box"), recorded per row.
    notes: str = ""
    # Known size from the annotation file, if any (H, W); the decoded image is authoritative.
    size_hint: tuple[int, int] | None = None
    render: Callable[[], tuple[torch.Tensor, str]] | None = None


@dataclass
class View:
    """Where the network input sits in the original image: the rectangle of the original image
    (x0, y0, x1, y1 in continuous pixel-edge coordinates) that the input grid covers."""

    x0: float
    y0: float
    x1: float
    y1: float

    def is_full(self, height: int, width: int) -> bool:
        return self.x0 == 0 and self.y0 == 0 and self.x1 == width and self.y1 == height


@dataclass
class Sample:
    """A decoded image ready for the network, or a skipped one (image is None, skip_reason set)."""

    entry: ImageEntry
    image: torch.Tensor | None  # [3, H, W] float32, normalized for the model
    # (height, width) of the grid metrics are evaluated on: the decoded original image, or the
    # network input when transform.evaluate_at=input (then entry boxes/masks are on that grid too)
    orig_size: tuple[int, int]
    view: View | None = None
    skip_reason: str | None = None
    notes: str = ""
    # (height, width) of the decoded original image, whatever the evaluation grid
    source_size: tuple[int, int] | None = None


@dataclass
class Batch:
    """Images of one shape, stacked; `samples` keeps per-image annotations in the same order."""

    images: torch.Tensor  # [B, 3, H, W]
    samples: list[Sample]


def collate_samples(samples: list[Sample]) -> tuple[list[Batch], list[Sample]]:
    """Group decoded samples by input shape (protocols that keep the aspect ratio give several
    shapes per batch) and set skipped samples aside."""
    groups: dict[tuple[int, ...], list[Sample]] = {}
    skipped = []
    for sample in samples:
        if sample.image is None:
            skipped.append(sample)
        else:
            groups.setdefault(tuple(sample.image.shape), []).append(sample)
    batches = [Batch(torch.stack([s.image for s in group]), group) for group in groups.values()]
    return batches, skipped
