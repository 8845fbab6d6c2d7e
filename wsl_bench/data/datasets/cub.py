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

import logging
from typing import Any

import numpy as np

from ...errors import ConfigError, DatasetLayoutError
from ..annotations import AnnotationError, IndexFile, edge_box, flag, integer, read_index
from ..base import AnnotatedImages, dataset_root, first_n, register_dataset, require
from ..sample import ImageEntry
from .wsol_metadata import build_from_metadata

log = logging.getLogger("wsl_bench")
HINT = "/path/to/CUB_200_2011"
N_CLASSES = 200


def class_names_of(root: Any, cfg: Any) -> list[str]:
    """Names from classes.txt (optional: a name it does not give stays class_<id>)."""
    names = [f"class_{i:03d}" for i in range(1, N_CLASSES + 1)]
    if (root / "classes.txt").is_file():
        table = read_index(root / "classes.txt", "classes.txt", cfg, HINT, 2, free_last=True)
        for key, rows in table.rows.items():
            if key.isascii() and key.isdigit() and 1 <= int(key) <= N_CLASSES:
                names[int(key) - 1] = rows[0][1][0]
        if table.bad:
            log.warning("classes.txt: %d malformed line(s) ignored (first: %s)", len(table.bad), next(iter(table.bad.values())))
    return names


def listing(images: IndexFile, tables: list[IndexFile]) -> list[tuple[str, str, str | None, str]]:
    """images.txt in file order as (image key, record id, reason it cannot be used or None, note).
    The record id is the relative path (a line without one is named by its key). A key given
    with several paths is ambiguous for every table keyed by it; a path listed under several
    keys is scored once when their annotations agree, else refused."""
    by_path: dict[str, list[str]] = {}
    out = []
    for key in images.order:
        if key in images.bad:
            out.append((key, f"images.txt image id {key}", images.bad[key], ""))
            continue
        paths = list(dict.fromkeys(fields[0] for _, fields in images.rows[key]))
        reason = f"images.txt lists image id {key} with {len(paths)} paths ({', '.join(paths[:3])})" if len(paths) > 1 else None
        repeats = len(images.rows[key])
        note = f"listed {repeats} times in images.txt; scored once" if repeats > 1 and reason is None else ""
        for path in paths:
            if path not in by_path:
                out.append((key, path, reason, note))
            by_path.setdefault(path, []).append(key)
    for i, (key, image_id, reason, note) in enumerate(out):
        keys = list(dict.fromkeys(by_path.get(image_id, [key])))
        if len(keys) > 1 and reason is None:
            shown_keys = ", ".join(keys[:4])
            # the keys' lines (repeats of one line are one value) agree in every table
            same = all(len({frozenset(tuple(f) for _, f in table.rows.get(k, [])) for k in keys}) == 1 for table in tables)
            if same:
                out[i] = (key, image_id, None, f"listed under image ids {shown_keys} in images.txt; scored once")
            else:
                out[i] = (key, image_id, f"images.txt lists the image under ids {shown_keys} with different annotations", "")
    return out


@register_dataset("cub")
def build_cub(cfg: Any) -> AnnotatedImages:
    root = dataset_root(cfg, HINT)
    if (root / "CUB_200_2011" / "images.txt").is_file():  # root given one level up
        root = root / "CUB_200_2011"
    class_names = class_names_of(root, cfg)
    if cfg.get("metadata"):
        return build_from_metadata(cfg, root / "images" if (root / "images").is_dir() else root, class_names, HINT)
    if cfg.split not in ("test", "train", "all"):
        raise ConfigError(f"dataset.split={cfg.split!r} is unknown for cub; use test, train or all")
    images_dir = require(root / "images", "images/", cfg, HINT)
    images = read_index(root / "images.txt", "images.txt", cfg, HINT, 2, free_last=True)
    labels = read_index(root / "image_class_labels.txt", "image_class_labels.txt", cfg, HINT, 2)
    boxes = read_index(root / "bounding_boxes.txt", "bounding_boxes.txt", cfg, HINT, 5)
    splits = read_index(root / "train_test_split.txt", "train_test_split.txt", cfg, HINT, 2)
    wanted = {"test": False, "train": True}.get(cfg.split)
    listed, reasons, notes = [], {}, {}
    for key, image_id, reason, note in listing(images, [labels, boxes, splits]):
        notes[image_id] = note
        if reason is None and wanted is not None:
            try:
                row = splits.one(key)
                if row is None:
                    raise AnnotationError(f"no line for image id {key} in train_test_split.txt")
                if flag(row[1][0], f"train_test_split.txt line {row[0]}: is_training_image") != wanted:
                    continue
            except AnnotationError as exc:
                reason = str(exc)
        listed.append((key, image_id))
        if reason is not None:
            reasons[image_id] = reason
    if not listed:
        raise DatasetLayoutError(f"dataset={cfg.name}: train_test_split.txt in {root} puts no image in split {cfg.split!r}; set dataset.root={HINT}")
    listed = first_n(listed, cfg)
    keys = {key for key, _ in listed}
    for table in (labels, boxes, splits):
        table.warn_unlisted(keys)
    entries, rejected = [], []
    for key, image_id in listed:
        try:
            if image_id in reasons:
                raise AnnotationError(reasons[image_id])
            row = labels.one(key)
            if row is None:
                raise AnnotationError(f"no class label for image id {key} in image_class_labels.txt")
            label = integer(row[1][0], f"image_class_labels.txt line {row[0]}: class id") - 1
            if not 0 <= label < N_CLASSES:
                raise AnnotationError(f"image_class_labels.txt line {row[0]}: unknown class id {label + 1}")
            row = boxes.one(key)
            if row is None:
                raise AnnotationError(f"no bounding box for image id {key} in bounding_boxes.txt")
            box = edge_box(row[1], f"bounding_boxes.txt line {row[0]}:")
        except AnnotationError as exc:
            rejected.append((image_id, str(exc)))
            continue
        entries.append(
            ImageEntry(
                image_id=image_id,
                path=images_dir / image_id,
                labels=(label,),
                boxes=np.array([box], dtype=np.int64),
                box_labels=np.array([label], dtype=np.int64),
                box_difficult=np.zeros(1, dtype=bool),
                notes=notes[image_id],
            )
        )
    return AnnotatedImages(cfg.name, entries, class_names, rejected)
