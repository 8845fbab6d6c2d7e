"""The embedded demo dataset: seven real photos that ship inside scikit-image and matplotlib,
with hand-drawn ground-truth boxes and ImageNet-1k classes (demo_annotations.csv)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DatasetLayoutError
from ..imagenet_classes import IMAGENET_CLASSES
from ..base import AnnotatedImages, register_dataset
from ..sample import ImageEntry

ANNOTATIONS = Path(__file__).parent.parent / "demo_annotations.csv"


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise DatasetLayoutError(f"the demo images ship inside the '{package}' package, which is not installed: pip install {package}")
    return Path(spec.origin).parent


@register_dataset("demo")
def build_demo(cfg: Any) -> AnnotatedImages:
    with open(ANNOTATIONS, newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    entries = []
    for row in rows:
        path = _package_dir(row["package"]) / row["file"]
        if not path.is_file():
            raise DatasetLayoutError(f"demo image {row['image_id']} not found at {path}; reinstall {row['package']}")
        box = np.array([[int(row[k]) for k in ("x_min", "y_min", "x_max", "y_max")]], dtype=np.int64)
        label = int(row["class_index"])
        entries.append(
            ImageEntry(
                image_id=row["image_id"],
                path=path,
                labels=(label,),
                boxes=box,
                box_labels=np.array([label], dtype=np.int64),
                box_difficult=np.zeros(1, dtype=bool),
                size_hint=(int(row["height"]), int(row["width"])),
            )
        )
    limit = cfg.get("limit")
    return AnnotatedImages("demo", entries[:limit] if limit else entries, list(IMAGENET_CLASSES), [])
