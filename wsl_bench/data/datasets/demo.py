"""The embedded demo dataset: seven real photos that ship inside scikit-image and matplotlib,
with hand-drawn ground-truth boxes and ImageNet-1k classes (demo_annotations.csv)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DatasetLayoutError
from ..annotations import AnnotationError, corner_box, integer, join_notes, number, read_text, swapped_note, text_lines
from ..base import AnnotatedImages, first_n, register_dataset
from ..imagenet_classes import IMAGENET_CLASSES
from ..sample import ImageEntry

ANNOTATIONS = Path(__file__).parent.parent / "demo_annotations.csv"
COLUMNS = ("image_id", "package", "file", "width", "height", "class_index", "x_min", "y_min", "x_max", "y_max")
HINT = "null (the shipped demo_annotations.csv)"


def _package_dir(package: str, where: str) -> Path:
    if not package.isidentifier():  # a top-level package: finding it imports nothing
        raise AnnotationError(f"{where} package {package!r} is not a top-level package name")
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise AnnotationError(f"{where}: the demo image ships inside the '{package}' package, which is not installed: pip install {package}")
    return Path(spec.origin).parent


def demo_entry(image_id: str, row: dict[str, str], where: str) -> ImageEntry:
    """One row of the annotation table; AnnotationError names the malformed field."""
    path = _package_dir(row["package"], where) / row["file"]
    box, swapped = corner_box([row[k] for k in COLUMNS[6:]], where, COLUMNS[6:])
    label = integer(row["class_index"], f"{where} class_index")
    if not 0 <= label < len(IMAGENET_CLASSES):
        raise AnnotationError(f"{where} class_index {label} outside 0..{len(IMAGENET_CLASSES) - 1}")
    try:
        size, size_note = (int(number(row["height"], f"{where} height")), int(number(row["width"], f"{where} width"))), ""
    except AnnotationError as exc:
        size, size_note = None, f"ignored the image size ({exc})"
    return ImageEntry(
        image_id=image_id,
        path=path,
        labels=(label,),
        boxes=np.array([box], dtype=np.int64),
        box_labels=np.array([label], dtype=np.int64),
        box_difficult=np.zeros(1, dtype=bool),
        notes=join_notes(swapped_note(int(swapped), where), size_note),
        size_hint=size,
    )


@register_dataset("demo")
def build_demo(cfg: Any) -> AnnotatedImages:
    """The shipped table, or `dataset.annotations=` another one in the same columns."""
    path = Path(str(cfg.annotations)).expanduser() if cfg.get("annotations") else ANNOTATIONS
    lines = text_lines(read_text(path, "demo annotation table", cfg, HINT))
    numbers = [n for n, _ in lines]
    rows = list(csv.reader([line for _, line in lines]))
    header = [h.strip() for h in rows[0]] if rows else []
    if not set(COLUMNS) <= set(header):
        raise DatasetLayoutError(f"dataset={cfg.name}: {path} does not start with the header {','.join(COLUMNS)}; set dataset.annotations={HINT}")
    listed: dict[str, list[tuple[int, dict[str, str] | None]]] = {}
    for number_, fields in zip(numbers[1:], rows[1:]):
        record = dict(zip(header, (f.strip() for f in fields))) if len(fields) == len(header) else None
        image_id = (record or {}).get("image_id") or (fields[0].strip() if fields and fields[0].strip() else f"{path.name} line {number_}")
        listed.setdefault(image_id, []).append((number_, record))
    entries, rejected = [], []
    for image_id, found in first_n(list(listed.items()), cfg):
        number_, record = found[0]
        where = f"{path.name} line {number_}"
        try:
            if record is None:
                raise AnnotationError(f"{where}: expected {len(header)} comma-separated fields")
            if any(r != record for _, r in found):
                raise AnnotationError(f"{path.name} lists {image_id} on lines {', '.join(str(n) for n, _ in found[:4])} with different values")
            entry = demo_entry(image_id, record, where)
        except AnnotationError as exc:
            rejected.append((image_id, str(exc)))
            continue
        if len(found) > 1:
            entry.notes = join_notes(f"listed {len(found)} times in {path.name}; scored once", entry.notes)
        entries.append(entry)
    return AnnotatedImages("demo", entries, list(IMAGENET_CLASSES), rejected)
