"""Image subsets papers evaluate on, as a dataset option every dataset takes (`dataset.subset`):

- `n` images drawn at random without replacement, seeded (`seed`), e.g. the 2000 random ILSVRC
  val images of Score-CAM (Wang et al., CVPR-W 2020) Tables 1 and 3;
- `rule: one_box` first keeps the images with one ground-truth class that has exactly one box,
  covering under `max_box_fraction` of the image: Score-CAM Table 2's 500 images ("objects
  covering less than 50% of the image, one box for the class").

The draw is over the images the split lists, after `dataset.limit` and in the split's order, so
the same split, rule and seed give the same images on any machine; images whose annotations were
rejected are not drawn."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from PIL import Image

from ..config import Settings, setting, settings_from
from .sample import ImageEntry

if TYPE_CHECKING:
    from .base import AnnotatedImages

log = logging.getLogger("wsl_bench")


@dataclass(frozen=True)
class SubsetSettings(Settings):
    """n: images drawn at random (null: all that the rule keeps); seed: the draw's seed; rule:
    null (every image) or one_box (one GT class with exactly one box, under max_box_fraction of
    the image's area)."""

    config_path: ClassVar[str] = "dataset.subset"
    n: int | None = setting(None, ge=1)
    seed: int = 0
    rule: Literal["one_box"] | None = None
    max_box_fraction: float = setting(0.5, gt=0, le=1)


def image_size(entry: ImageEntry) -> tuple[int, int] | None:
    """(height, width) from the annotation, else from the image file's header; None if unreadable."""
    if entry.size_hint is not None:
        return tuple(entry.size_hint)  # type: ignore[return-value]
    try:
        with Image.open(entry.path) as image:  # reads the header only
            return image.height, image.width
    except (OSError, ValueError):
        return None


def one_small_box(entry: ImageEntry, max_fraction: float) -> bool:
    """One GT class, exactly one box of it, covering under max_fraction of the image (inclusive pixels)."""
    if len(entry.labels) != 1 or int((entry.box_labels == entry.labels[0]).sum()) != 1:
        return False
    size = image_size(entry)
    if size is None:
        return False
    x0, y0, x1, y1 = entry.boxes[entry.box_labels == entry.labels[0]][0].tolist()
    return (x1 - x0 + 1) * (y1 - y0 + 1) < max_fraction * size[0] * size[1]


def select_subset(data: AnnotatedImages, node: Any) -> AnnotatedImages:
    """The dataset (AnnotatedImages) restricted to the subset `node` (the `dataset.subset`
    config node) describes; unchanged without one."""
    if not node:
        return data
    settings = settings_from(SubsetSettings, node)
    entries = data.entries
    if settings.rule == "one_box":
        entries = [e for e in entries if one_small_box(e, settings.max_box_fraction)]
    if settings.n is not None and settings.n < len(entries):
        chosen = np.sort(np.random.default_rng(settings.seed).choice(len(entries), settings.n, replace=False))
        entries = [entries[i] for i in chosen]
    elif settings.n is not None:
        log.warning("dataset.subset.n=%d but only %d image(s) qualify: using all of them", settings.n, len(entries))
    log.info("dataset.subset: %d of %d images", len(entries), len(data.entries))
    return replace(data, entries=entries, rejected=[])
