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

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Container

import numpy as np

from ...errors import DatasetLayoutError
from ..annotations import AnnotationError, corner_box, flag, join_notes, number, swapped_note, unique_listing
from ..base import AnnotatedImages, config_int, dataset_root, first_n, read_lines, register_dataset, require
from ..difficult import read_difficult_flags
from ..sample import ImageEntry

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
_INDEX = {name: i for i, name in enumerate(VOC_CLASSES)}
# a line of a per-class split file (ImageSets/Main/<class>_<split>.txt): id and presence flag
CLASS_SPLIT_LINE = re.compile(r"(\S+)\s+(-1|0|1)")


@dataclass
class XmlAnnotation:
    """One parsed VOC / ILSVRC XML: objects of known classes as (name, box, difficult), the
    names of the objects of other classes, and notes on repairs."""

    size: tuple[int, int] | None
    objects: list[tuple[str, list[int], bool]]
    unknown: list[str]
    notes: list[str]


def parse_voc_xml(path: Path, known: Container[str], offset: int = 1, shown_as: str = "", read_difficult: bool = True) -> XmlAnnotation:
    """Objects of `known` classes with their boxes ([x0, y0, x1, y1] minus `offset`: 1 turns
    VOC's 1-based pixel indices 0-based) and `difficult` flags; (height, width) from <size>
    (None when absent: it is only a hint, the decoded image is authoritative). Any malformed
    value of a known object is an AnnotationError naming the file, the object and the field;
    objects of other classes are reported by name, their boxes unread."""
    name = shown_as or path.name
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise AnnotationError(f"annotation file missing: {name}") from None
    except (ET.ParseError, OSError, ValueError) as exc:  # ValueError: a NUL byte in the id
        raise AnnotationError(f"annotation file unreadable: {name} ({str(exc)[:120]})") from None
    notes = []
    size = None
    node = root.find("size")
    if node is not None:
        try:
            size = tuple(int(round(number(node.findtext(k), f"{name} size/{k}"))) for k in ("height", "width"))
            if min(size) <= 0:
                raise AnnotationError(f"{name} size {size[1]}x{size[0]} is not positive")
        except AnnotationError as exc:
            size = None
            notes.append(f"ignored the image size ({exc})")
    objects, unknown, n_swapped = [], [], 0
    for k, obj in enumerate(root.iter("object"), 1):
        label = (obj.findtext("name") or "").strip()
        if label not in known:
            unknown.append(label)
            continue
        where = f"{name} object {k} ({label})"
        box = obj.find("bndbox")
        if box is None:
            raise AnnotationError(f"{where} has no bndbox")
        coords, swapped = corner_box([box.findtext(f) for f in ("xmin", "ymin", "xmax", "ymax")], where, offset=offset)
        n_swapped += swapped
        difficult = flag(obj.findtext("difficult"), f"{where} difficult", default=False) if read_difficult else False
        objects.append((label, coords, difficult))
    notes.append(swapped_note(n_swapped, name))
    return XmlAnnotation(size, objects, unknown, [n for n in notes if n])


def unknown_note(names: list[str], what: str = "object(s)") -> str:
    """The note on objects of classes the dataset does not have ("" when there are none)."""
    if not names:
        return ""
    return f"ignored {len(names)} {what} of unknown class {', '.join(map(repr, sorted(set(names))))}"


def split_ids(lines: list[str], annotations: Path) -> list[str]:
    """Image ids of a split file: the whole line (VOC ids may contain spaces), or the first
    field of a per-class split file's `<id> <-1|0|1>` line when no annotation is named by the
    whole line."""
    ids = []
    for line in lines:
        match = CLASS_SPLIT_LINE.fullmatch(line)
        whole_exists = "\0" not in line and (annotations / f"{line}.xml").is_file()
        ids.append(match.group(1) if match and not whole_exists else line)
    return ids


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
    split_name = f"ImageSets/Main/{cfg.split}.txt"
    lines = read_lines(root / "ImageSets" / "Main" / f"{cfg.split}.txt", f"split file {split_name}", cfg, hint)
    if next(annotations.glob("*.xml"), None) is None:
        raise DatasetLayoutError(f"dataset={cfg.name}: no annotation files (*.xml) in {annotations}; set dataset.root={hint}")
    ids, listing_notes = unique_listing(split_ids(lines, annotations), split_name)
    ids = first_n(ids, cfg)
    flags, bad_flags = read_difficult_flags(cfg.difficult_flags, list(VOC_CLASSES), cfg.name) if cfg.get("difficult_flags") else (None, {})
    area_rule = cfg.get("difficult_area", "union")
    offset = config_int(cfg, "box_offset", 1)
    entries, rejected = [], []
    for image_id in ids:
        try:
            if image_id in bad_flags:
                raise AnnotationError(bad_flags[image_id])
            parsed = parse_voc_xml(annotations / f"{image_id}.xml", _INDEX, offset, f"Annotations/{image_id}.xml")
        except AnnotationError as exc:
            rejected.append((image_id, str(exc)))
            continue
        if not parsed.objects:
            reason = f"no objects of known classes (unknown: {', '.join(map(repr, sorted(set(parsed.unknown))))})" if parsed.unknown else "annotation lists no objects"
            rejected.append((image_id, reason))
            continue
        boxes = np.array([box for _, box, _ in parsed.objects], dtype=np.int64)
        box_labels = np.array([_INDEX[name] for name, _, _ in parsed.objects], dtype=np.int64)
        entries.append(
            ImageEntry(
                image_id=image_id,
                path=root / "JPEGImages" / f"{image_id}.jpg",
                labels=tuple(sorted(set(box_labels.tolist()))),
                boxes=boxes,
                box_labels=box_labels,
                box_difficult=np.array([diff for _, _, diff in parsed.objects], dtype=bool),
                difficult_classes=tuple(sorted(flags.get(image_id, ()))) if flags is not None else (),
                difficult_rule=None if flags is not None else area_rule,
                notes=join_notes(listing_notes.get(image_id, ""), unknown_note(parsed.unknown), *parsed.notes),
                size_hint=parsed.size,
            )
        )
    return AnnotatedImages(cfg.name, entries, list(VOC_CLASSES), rejected)


for _name in ("voc", "voc07", "voc12"):
    register_dataset(_name)(build_voc_entries)
