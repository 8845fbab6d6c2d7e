"""The metadata format of "Evaluating Weakly Supervised Object Localization Methods Right"
(Choe et al., CVPR 2020; github.com/clovaai/wsolevaluation), used by its ImageNet / ImageNetV2 /
CUB / CUBV2 / OpenImages splits:

    <metadata>/image_ids.txt      one image path per line, relative to dataset.root
    <metadata>/class_labels.txt   path,class_index
    <metadata>/localization.txt   path,x0,y0,x1,y1   (one line per box; inclusive pixel corners)
    <metadata>/image_sizes.txt    path,width,height  (optional)

Selected with `dataset.metadata=/path/to/metadata/<DATASET>/<split>` on dataset=imagenet or cub.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DatasetLayoutError
from ..base import AnnotatedImages, first_n, read_lines
from ..sample import ImageEntry


def _split_csv(line: str, n: int, path: Path, number: int, cfg: Any) -> list[str]:
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != n:
        raise DatasetLayoutError(f"dataset={cfg.name}: {path}:{number}: expected {n} comma-separated fields, got {line!r}")
    return parts


def build_from_metadata(cfg: Any, image_root: Path, class_names: list[str], hint: str) -> AnnotatedImages:
    meta = Path(str(cfg.metadata)).expanduser().resolve()
    if not meta.is_dir():
        raise DatasetLayoutError(f"dataset={cfg.name}: metadata folder {meta} not found; set dataset.metadata=/path/to/metadata/<DATASET>/<split>")
    meta_hint = "/path/to/metadata/<DATASET>/<split>"
    ids = [line.strip() for line in read_lines(meta / "image_ids.txt", "image_ids.txt", cfg, hint)]
    labels: dict[str, int] = {}
    path = meta / "class_labels.txt"
    for number, line in enumerate(read_lines(path, "class_labels.txt", cfg, hint), 1):
        image, label = _split_csv(line, 2, path, number, cfg)
        labels[image] = int(label)
    boxes: dict[str, list[list[int]]] = defaultdict(list)
    path = meta / "localization.txt"
    if not path.is_file():
        raise DatasetLayoutError(f"dataset={cfg.name}: localization.txt not found in {meta}; set dataset.metadata={meta_hint}")
    for number, line in enumerate(read_lines(path, "localization.txt", cfg, hint), 1):
        image, *coords = _split_csv(line, 5, path, number, cfg)
        boxes[image].append([int(round(float(c))) for c in coords])
    sizes: dict[str, tuple[int, int]] = {}
    path = meta / "image_sizes.txt"
    if path.is_file():
        for number, line in enumerate(read_lines(path, "image_sizes.txt", cfg, hint), 1):
            image, width, height = _split_csv(line, 3, path, number, cfg)
            sizes[image] = (int(height), int(width))
    entries, rejected = [], []
    for image in first_n(ids, cfg):
        label = labels.get(image)
        if label is None:
            rejected.append((image, "no class label in class_labels.txt"))
            continue
        if not 0 <= label < len(class_names):
            rejected.append((image, f"class label {label} outside 0..{len(class_names) - 1}"))
            continue
        if not boxes.get(image):
            rejected.append((image, "no box in localization.txt"))
            continue
        box_array = np.array(boxes[image], dtype=np.int64)
        entries.append(
            ImageEntry(
                image_id=image,
                path=image_root / image,
                labels=(label,),
                boxes=box_array,
                box_labels=np.full(len(box_array), label, dtype=np.int64),
                box_difficult=np.zeros(len(box_array), dtype=bool),
                size_hint=sizes.get(image),
            )
        )
    return AnnotatedImages(cfg.name, entries, class_names, rejected)
