"""Dataset registry and the torch Dataset that decodes entries on the fly."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
from torch.utils.data import Dataset

from ..registry import Registry
from .decode import ImageDecodeError, decode_rgb
from .sample import ImageEntry, Sample
from .transforms import ProtocolTransform


@dataclass
class AnnotatedImages:
    """A dataset split with all annotations parsed: what a dataset builder returns."""

    name: str
    entries: list[ImageEntry]
    class_names: list[str]
    # entries dropped while parsing annotations, as (image_id, reason): they become skipped rows
    rejected: list[tuple[str, str]]


DatasetBuilder = Callable[[Any], AnnotatedImages]
DATASETS: Registry[DatasetBuilder] = Registry("dataset", "wsl_bench.data.datasets")


def register_dataset(name: str) -> Callable[[DatasetBuilder], DatasetBuilder]:
    """Register `builder(cfg) -> AnnotatedImages` under `name` (the `dataset.name` config value).
    Builders check the on-disk layout first and raise DatasetLayoutError naming what is missing."""
    return DATASETS.decorator(name)


def build_dataset(cfg: Any) -> AnnotatedImages:
    """Parse the annotations of the dataset described by `cfg` (the `dataset` config node)."""
    return DATASETS.get(cfg.name)(cfg)


class DecodedImages(Dataset):
    """Decodes and transforms entries; a bad file becomes a skipped Sample, never an exception."""

    def __init__(self, entries: list[ImageEntry], transform: ProtocolTransform) -> None:
        self.entries = entries
        self.transform = transform

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Sample:
        entry = self.entries[index]
        try:
            rgb, note = decode_rgb(entry.path)
        except ImageDecodeError as exc:
            return Sample(entry, None, (0, 0), skip_reason=str(exc))
        height, width = rgb.shape[-2:]
        notes = [n for n in (entry.notes, note) if n]
        if len(entry.boxes):
            clipped = clip_boxes(entry.boxes, height, width)
            if clipped is None:
                return Sample(entry, None, (height, width), skip_reason="all ground-truth boxes lie outside the image")
            boxes, n_clipped = clipped
            if n_clipped:
                notes.append(f"clipped {n_clipped} box(es) to the image")
                entry = replace(entry, boxes=boxes)
        image, view = self.transform(rgb)
        return Sample(entry, image, (height, width), view=view, notes="; ".join(notes))


def clip_boxes(boxes: np.ndarray, height: int, width: int) -> tuple[np.ndarray, int] | None:
    """Clip inclusive boxes to the image; None if every box falls outside it."""
    clipped = boxes.copy()
    clipped[:, [0, 2]] = np.clip(clipped[:, [0, 2]], 0, width - 1)
    clipped[:, [1, 3]] = np.clip(clipped[:, [1, 3]], 0, height - 1)
    inside = (boxes[:, 2] >= 0) & (boxes[:, 3] >= 0) & (boxes[:, 0] <= width - 1) & (boxes[:, 1] <= height - 1)
    if not inside.any():
        return None
    n_changed = int((clipped != boxes).any(axis=1).sum())
    return clipped, n_changed

