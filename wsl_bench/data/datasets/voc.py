"""PASCAL VOC (VOCdevkit layout): JPEGImages/, Annotations/, ImageSets/Main/<split>.txt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import DatasetLayoutError
from ..base import AnnotatedImages, register_dataset


@register_dataset("voc")
def build_voc(cfg: Any) -> AnnotatedImages:
    root = Path(cfg.root).expanduser().resolve()
    for sub in ("JPEGImages", "Annotations", f"ImageSets/Main/{cfg.split}.txt"):
        if not (root / sub).exists():
            raise DatasetLayoutError(
                f"dataset=voc: {sub} not found in {root}; set dataset.root=/path/to/VOCdevkit/VOC{cfg.year}"
            )
    raise DatasetLayoutError("dataset=voc: the VOC annotation reader is not available in this version")
