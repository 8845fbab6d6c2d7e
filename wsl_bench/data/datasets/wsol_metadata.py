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

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DatasetLayoutError
from ..annotations import AnnotationError, corner_box, integer, join_notes, number, read_index, swapped_note, unique_listing
from ..base import AnnotatedImages, first_n, read_lines
from ..sample import ImageEntry


def build_from_metadata(cfg: Any, image_root: Path, class_names: list[str], hint: str) -> AnnotatedImages:
    meta = Path(str(cfg.metadata)).expanduser().resolve()
    meta_hint = "/path/to/metadata/<DATASET>/<split>"
    if not meta.is_dir():
        raise DatasetLayoutError(f"dataset={cfg.name}: metadata folder {meta} not found; set dataset.metadata={meta_hint}")
    ids, listing_notes = unique_listing(read_lines(meta / "image_ids.txt", "image_ids.txt", cfg, hint), "image_ids.txt")
    ids = first_n(ids, cfg)
    labels = read_index(meta / "class_labels.txt", "class_labels.txt", cfg, hint, 2, ",")
    if not (meta / "localization.txt").is_file():
        raise DatasetLayoutError(f"dataset={cfg.name}: localization.txt not found in {meta}; set dataset.metadata={meta_hint}")
    boxes = read_index(meta / "localization.txt", "localization.txt", cfg, hint, 5, ",")
    sizes = read_index(meta / "image_sizes.txt", "image_sizes.txt", cfg, hint, 3, ",") if (meta / "image_sizes.txt").is_file() else None
    for table in (labels, boxes, sizes):
        if table is not None:
            table.warn_unlisted(set(ids))
    entries, rejected = [], []
    for image in ids:
        try:
            row = labels.one(image)
            if row is None:
                raise AnnotationError("no class label in class_labels.txt")
            label = integer(row[1][0], f"class_labels.txt line {row[0]}: class label")
            if not 0 <= label < len(class_names):
                raise AnnotationError(f"class_labels.txt line {row[0]}: class label {label} outside 0..{len(class_names) - 1}")
            lines = boxes.lines(image)
            if not lines:
                raise AnnotationError("no box in localization.txt")
            parsed = [corner_box(fields, f"localization.txt line {line}", ("x0", "y0", "x1", "y1")) for line, fields in lines]
            size_hint, size_note = image_size(sizes, image)
        except AnnotationError as exc:
            rejected.append((image, str(exc)))
            continue
        box_array = np.array([box for box, _ in parsed], dtype=np.int64)
        entries.append(
            ImageEntry(
                image_id=image,
                path=image_root / image,
                labels=(label,),
                boxes=box_array,
                box_labels=np.full(len(box_array), label, dtype=np.int64),
                box_difficult=np.zeros(len(box_array), dtype=bool),
                notes=join_notes(listing_notes.get(image, ""), swapped_note(sum(s for _, s in parsed), "localization.txt"), size_note),
                size_hint=size_hint,
            )
        )
    return AnnotatedImages(cfg.name, entries, class_names, rejected)


def image_size(sizes: Any, image: str) -> tuple[tuple[int, int] | None, str]:
    """(height, width) from image_sizes.txt (only a hint: the decoded image is authoritative)
    and a note when its line cannot be read."""
    try:
        row = sizes.one(image) if sizes is not None else None
        if row is None:
            return None, ""
        width, height = (int(number(v, f"image_sizes.txt line {row[0]}: {k}")) for v, k in zip(row[1], ("width", "height")))
        return (height, width), ""
    except AnnotationError as exc:
        return None, f"ignored the image size ({exc})"
