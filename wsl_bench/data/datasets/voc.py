"""PASCAL VOC 2007 / 2012 in the VOCdevkit layout (Everingham et al., IJCV 2010):

    VOC2007/JPEGImages/<id>.jpg
    VOC2007/Annotations/<id>.xml          one object per <object>: name, difficult, bndbox
    VOC2007/ImageSets/Main/<split>.txt    image ids, one per line

20 classes, multi-label. Boxes in the XMLs are 1-based inclusive pixel corners; they are stored
0-based. Each box keeps its "difficult" flag. Per (image, class) the Excitation-Backprop difficult
subset is computed from its definition (wsl_bench.data.difficult) or read from
`dataset.difficult_flags`. `dataset=voc` is VOC 2007 test.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DatasetLayoutError
from ..base import AnnotatedImages, dataset_root, first_n, read_lines, register_dataset, require
from ..difficult import ebp_difficult_classes, read_difficult_flags
from ..sample import ImageEntry

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
_INDEX = {name: i for i, name in enumerate(VOC_CLASSES)}


class AnnotationError(Exception):
    """One image's annotation cannot be used; the message is the skip reason."""


def parse_voc_xml(path: Path, offset: int = 1) -> tuple[tuple[int, int] | None, list[tuple[str, list[int], bool]]]:
    """(height, width) from <size> (None when absent) and [(name, [x0, y0, x1, y1], difficult)],
    coordinates minus `offset` (1 turns VOC's 1-based pixel indices 0-based)."""
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise AnnotationError(f"annotation file missing: {path.parent.name}/{path.name}") from None
    except (ET.ParseError, OSError) as exc:
        raise AnnotationError(f"annotation file unreadable: {path.name} ({exc})") from None
    size = None
    node = root.find("size")
    if node is not None:
        try:
            size = (int(float(node.findtext("height"))), int(float(node.findtext("width"))))
        except (TypeError, ValueError):
            size = None
        if size is not None and min(size) <= 0:
            size = None
    objects = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        try:
            coords = [int(round(float(box.findtext(k)))) - offset for k in ("xmin", "ymin", "xmax", "ymax")]
        except (AttributeError, TypeError, ValueError):
            raise AnnotationError(f"annotation file {path.name}: object {name!r} has no valid bndbox") from None
        objects.append((name, coords, (obj.findtext("difficult") or "0").strip() == "1"))
    return size, objects


def _locate(cfg: Any) -> Path:
    """The VOC<year> folder: dataset.root itself, or root/VOC<year>, or root/VOCdevkit/VOC<year>."""
    hint = f"/path/to/VOCdevkit/VOC{cfg.year}"
    root = dataset_root(cfg, hint)
    for candidate in (root, root / f"VOC{cfg.year}", root / "VOCdevkit" / f"VOC{cfg.year}"):
        if (candidate / "ImageSets").is_dir() or (candidate / "Annotations").is_dir():
            return candidate
    return root


def build_voc_entries(cfg: Any) -> AnnotatedImages:
    hint = f"/path/to/VOCdevkit/VOC{cfg.year}"
    root = _locate(cfg)
    require(root / "JPEGImages", "JPEGImages/", cfg, hint)
    annotations = require(root / "Annotations", "Annotations/", cfg, hint)
    split_file = root / "ImageSets" / "Main" / f"{cfg.split}.txt"
    ids = [line.split()[0] for line in read_lines(split_file, f"split file ImageSets/Main/{cfg.split}.txt", cfg, hint)]
    if next(annotations.glob("*.xml"), None) is None:
        raise DatasetLayoutError(f"dataset={cfg.name}: no annotation files (*.xml) in {annotations}; set dataset.root={hint}")
    ids = first_n(ids, cfg)
    flags = read_difficult_flags(cfg.difficult_flags, list(VOC_CLASSES), cfg.name) if cfg.get("difficult_flags") else None
    area_rule = cfg.get("difficult_area", "union")
    entries, rejected = [], []
    for image_id in ids:
        try:
            size, objects = parse_voc_xml(annotations / f"{image_id}.xml", int(cfg.get("box_offset", 1)))
        except AnnotationError as exc:
            rejected.append((image_id, str(exc)))
            continue
        unknown = sorted({name for name, _, _ in objects if name not in _INDEX})
        known = [(name, box, diff) for name, box, diff in objects if name in _INDEX]
        if not known:
            reason = f"no objects of known classes (unknown: {', '.join(map(repr, unknown))})" if unknown else "annotation lists no objects"
            rejected.append((image_id, reason))
            continue
        boxes = np.array([box for _, box, _ in known], dtype=np.int64)
        box_labels = np.array([_INDEX[name] for name, _, _ in known], dtype=np.int64)
        notes = f"ignored {len(objects) - len(known)} object(s) of unknown class {', '.join(map(repr, unknown))}" if unknown else ""
        if flags is not None:
            difficult = tuple(sorted(flags.get(image_id, ())))
        elif size is not None:
            difficult = ebp_difficult_classes(boxes, box_labels, size[0], size[1], area_rule)
        else:
            difficult = ()
            notes = "; ".join(n for n in (notes, "no <size> in annotation: difficult subset not computed") if n)
        entries.append(
            ImageEntry(
                image_id=image_id,
                path=root / "JPEGImages" / f"{image_id}.jpg",
                labels=tuple(sorted(set(box_labels.tolist()))),
                boxes=boxes,
                box_labels=box_labels,
                box_difficult=np.array([diff for _, _, diff in known], dtype=bool),
                difficult_classes=difficult,
                notes=notes,
                size_hint=size,
            )
        )
    return AnnotatedImages(cfg.name, entries, list(VOC_CLASSES), rejected)


for _name in ("voc", "voc07", "voc12"):
    register_dataset(_name)(build_voc_entries)
