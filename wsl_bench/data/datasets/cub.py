"""CUB-200-2011 (Wah et al., Caltech tech. report CNS-TR-2011-001), 200 bird species:

    <root>/images/<class folder>/<name>.jpg
    <root>/images.txt               <image_id> <relative path>
    <root>/image_class_labels.txt   <image_id> <class_id 1..200>
    <root>/bounding_boxes.txt       <image_id> <x> <y> <width> <height>
    <root>/train_test_split.txt     <image_id> <1 = train, 0 = test>
    <root>/classes.txt              <class_id> <class name>   (optional; names only)

Box [x, y, w, h] (pixel-edge coordinates) -> inclusive corners (floor x, floor y,
ceil(x + w) - 1, ceil(y + h) - 1). `dataset.split`: test (5,794 images), train, or all.
`dataset.metadata=...` reads wsolevaluation's CUB / CUBV2 metadata instead (root = images/).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, DatasetLayoutError
from ..base import AnnotatedImages, dataset_root, first_n, read_lines, register_dataset, require
from ..sample import ImageEntry
from .coco import coco_box
from .wsol_metadata import build_from_metadata

HINT = "/path/to/CUB_200_2011"
N_CLASSES = 200


def _table(path: Path, what: str, cfg: Any, n_fields: int) -> dict[str, list[str]]:
    out = {}
    for number, line in enumerate(read_lines(path, what, cfg, HINT), 1):
        parts = line.split(maxsplit=n_fields - 1)
        if len(parts) != n_fields:
            raise DatasetLayoutError(f"dataset={cfg.name}: {path}:{number}: expected {n_fields} fields, got {line!r}")
        out[parts[0]] = parts[1:]
    return out


@register_dataset("cub")
def build_cub(cfg: Any) -> AnnotatedImages:
    root = dataset_root(cfg, HINT)
    if (root / "CUB_200_2011" / "images.txt").is_file():  # root given one level up
        root = root / "CUB_200_2011"
    class_names = [f"class_{i:03d}" for i in range(1, N_CLASSES + 1)]
    if (root / "classes.txt").is_file():
        for key, (name,) in _table(root / "classes.txt", "classes.txt", cfg, 2).items():
            if key.isdigit() and 1 <= int(key) <= N_CLASSES:
                class_names[int(key) - 1] = name
    if cfg.get("metadata"):
        return build_from_metadata(cfg, root / "images" if (root / "images").is_dir() else root, class_names, HINT)
    if cfg.split not in ("test", "train", "all"):
        raise ConfigError(f"dataset.split={cfg.split!r} is unknown for cub; use test, train or all")
    images_dir = require(root / "images", "images/", cfg, HINT)
    images = _table(root / "images.txt", "images.txt", cfg, 2)
    labels = _table(root / "image_class_labels.txt", "image_class_labels.txt", cfg, 2)
    boxes = _table(root / "bounding_boxes.txt", "bounding_boxes.txt", cfg, 5)
    splits = _table(root / "train_test_split.txt", "train_test_split.txt", cfg, 2)
    wanted = {"test": "0", "train": "1"}.get(cfg.split)
    ids = [i for i in images if wanted is None or splits.get(i, [None])[0] == wanted]
    if not ids:
        raise DatasetLayoutError(f"dataset={cfg.name}: train_test_split.txt in {root} puts no image in split {cfg.split!r}; set dataset.root={HINT}")
    entries, rejected = [], []
    for key in first_n(ids, cfg):
        relative = images[key][0]
        try:
            label = int(labels[key][0]) - 1
        except (KeyError, ValueError):
            rejected.append((relative, "no class label in image_class_labels.txt"))
            continue
        if not 0 <= label < N_CLASSES:
            rejected.append((relative, f"unknown class id {label + 1} in image_class_labels.txt"))
            continue
        try:
            box = coco_box([float(v) for v in boxes[key]])
        except (KeyError, ValueError):
            rejected.append((relative, "no bounding box in bounding_boxes.txt"))
            continue
        entries.append(
            ImageEntry(
                image_id=relative,
                path=images_dir / relative,
                labels=(label,),
                boxes=np.array([box], dtype=np.int64),
                box_labels=np.array([label], dtype=np.int64),
                box_difficult=np.zeros(1, dtype=bool),
            )
        )
    return AnnotatedImages(cfg.name, entries, class_names, rejected)
