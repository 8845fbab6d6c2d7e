"""ILSVRC-2012 validation set (Russakovsky et al., IJCV 2015), 50,000 images, 1000 classes.

Images: `<root>/val/ILSVRC2012_val_00000001.JPEG` (flat) or `<root>/val/<wnid>/...JPEG` (class
folders, the common valprep layout); the Kaggle layout `<root>/ILSVRC/Data/CLS-LOC/val/` too.
Boxes: `<root>/LOC_val_solution.csv` (Kaggle; `ImageId,PredictionString` with groups of
`wnid xmin ymin xmax ymax`), or one ILSVRC bbox XML per image (`ILSVRC2012_bbox_val_v3.tgz`, in
`<root>/val_bbox/`, `<root>/ILSVRC/Annotations/CLS-LOC/val/` or beside the images), or any path
given as `dataset.boxes=`. Box coordinates are used as written (`dataset.box_offset` subtracts a
1-based origin). Class index = position of the wnid in the sorted list of the 1000 wnids, the
order torchvision's and timm's weights use. With `dataset.metadata=...` the wsolevaluation
metadata format is read instead (see wsol_metadata.py).
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DatasetLayoutError
from ..base import AnnotatedImages, dataset_root, first_n, register_dataset
from ..imagenet_classes import IMAGENET_CLASSES, imagenet_wnids
from ..sample import ImageEntry
from .voc import AnnotationError, parse_voc_xml
from .wsol_metadata import build_from_metadata

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
HINT = "/path/to/ILSVRC2012 (the folder holding val/)"


def scan_images(folder: Path, known: set[str]) -> dict[str, tuple[Path, str | None]]:
    """{image stem: (path, wnid of its class folder or None)} for a flat or class-folder layout."""
    found: dict[str, tuple[Path, str | None]] = {}
    with os.scandir(folder) as it:
        for item in it:
            if item.is_dir():
                wnid = item.name if item.name in known else None
                with os.scandir(item.path) as inner:
                    for sub in inner:
                        if Path(sub.name).suffix.lower() in IMAGE_SUFFIXES:
                            found[Path(sub.name).stem] = (Path(sub.path), wnid)
            elif Path(item.name).suffix.lower() in IMAGE_SUFFIXES:
                found[Path(item.name).stem] = (Path(item.path), None)
    return found


def read_solution_csv(path: Path) -> dict[str, list[tuple[str, list[int]]]]:
    """LOC_<split>_solution.csv -> {image id: [(wnid, [x0, y0, x1, y1])]}."""
    out: dict[str, list[tuple[str, list[int]]]] = {}
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
            raise DatasetLayoutError(f"dataset=imagenet: {path} does not start with the header 'ImageId,PredictionString'")
        for row in reader:
            if len(row) < 2:
                continue
            parts = row[1].split()
            out[row[0].strip()] = [
                (parts[i], [int(round(float(v))) for v in parts[i + 1 : i + 5]]) for i in range(0, len(parts) - 4, 5)
            ]
    return out


def _find_xml_dir(root: Path, images: Path, split: str) -> Path | None:
    for candidate in (root / f"{split}_bbox", root / f"bbox_{split}", root / "ILSVRC" / "Annotations" / "CLS-LOC" / split, images):
        if candidate.is_dir() and (next(candidate.glob("*.xml"), None) or next(candidate.glob("*/*.xml"), None)):
            return candidate
    return None


def _xml_index(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in list(folder.glob("*.xml")) + list(folder.glob("*/*.xml"))}


@register_dataset("imagenet")
def build_imagenet(cfg: Any) -> AnnotatedImages:
    root = dataset_root(cfg, HINT)
    if cfg.get("metadata"):
        return build_from_metadata(cfg, root, list(IMAGENET_CLASSES), HINT)
    split = cfg.split
    candidates = [root / split, root / "ILSVRC" / "Data" / "CLS-LOC" / split]
    images_dir = next((c for c in candidates if c.is_dir()), None)
    if images_dir is None:
        raise DatasetLayoutError(
            f"dataset={cfg.name}: image folder {split}/ not found in {root} (nor ILSVRC/Data/CLS-LOC/{split}/); set dataset.root={HINT}"
        )
    wnids = imagenet_wnids()
    index = {w: i for i, w in enumerate(wnids)}
    images = scan_images(images_dir, set(wnids))
    if not images:
        raise DatasetLayoutError(f"dataset={cfg.name}: no images (*.JPEG) in {images_dir}; set dataset.root={HINT}")

    solution: dict[str, list[tuple[str, list[int]]]] | None = None
    xmls: dict[str, Path] | None = None
    source = Path(str(cfg.boxes)).expanduser().resolve() if cfg.get("boxes") else None
    if source is not None and not source.exists():
        raise DatasetLayoutError(f"dataset={cfg.name}: box annotations {source} not found; set dataset.boxes=/path/to/LOC_{split}_solution.csv or a folder of bbox XMLs")
    if source is None and (root / f"LOC_{split}_solution.csv").is_file():
        source = root / f"LOC_{split}_solution.csv"
    if source is None:
        source = _find_xml_dir(root, images_dir, split)
    if source is None:
        raise DatasetLayoutError(
            f"dataset={cfg.name}: no box annotations in {root}: expected LOC_{split}_solution.csv or a folder of ILSVRC2012 "
            f"bbox XMLs ({split}_bbox/); set dataset.boxes=/path/to/LOC_{split}_solution.csv or /path/to/xml_folder"
        )
    if source.is_file():
        solution = read_solution_csv(source)
        if not solution:
            raise DatasetLayoutError(f"dataset={cfg.name}: {source} lists no images; set dataset.boxes=/path/to/LOC_{split}_solution.csv")
    else:
        xmls = _xml_index(source)
        if not xmls:
            raise DatasetLayoutError(f"dataset={cfg.name}: no bbox XML files in {source}; set dataset.boxes=/path/to/xml_folder")

    offset = int(cfg.get("box_offset", 0))
    entries, rejected = [], []
    for image_id in first_n(sorted(images), cfg):
        path, folder_wnid = images[image_id]
        size = None
        try:
            if solution is not None:
                if image_id not in solution:
                    raise AnnotationError(f"no row for the image in {source.name}")
                objects = solution[image_id]
            else:
                if image_id not in xmls:
                    raise AnnotationError(f"annotation file missing: {image_id}.xml")
                size, parsed = parse_voc_xml(xmls[image_id], offset=0)
                objects = [(name, box) for name, box, _ in parsed]
        except AnnotationError as exc:
            rejected.append((image_id, str(exc)))
            continue
        known = [(w, box) for w, box in objects if w in index]
        unknown = sorted({w for w, _ in objects if w not in index})
        if not known:
            reason = f"no boxes of known classes (unknown: {', '.join(map(repr, unknown))})" if unknown else "annotation lists no boxes"
            rejected.append((image_id, reason))
            continue
        boxes = np.array([box for _, box in known], dtype=np.int64) - offset
        box_labels = np.array([index[w] for w, _ in known], dtype=np.int64)
        notes = [f"ignored {len(objects) - len(known)} box(es) of unknown class {', '.join(map(repr, unknown))}"] if unknown else []
        if folder_wnid is not None:
            label = index[folder_wnid]
            if label not in box_labels:
                notes.append(f"class folder {folder_wnid} has no box in the annotation")
        else:
            label = Counter(box_labels.tolist()).most_common(1)[0][0]
        entries.append(
            ImageEntry(
                image_id=image_id,
                path=path,
                labels=(int(label),),
                boxes=boxes,
                box_labels=box_labels,
                box_difficult=np.zeros(len(boxes), dtype=bool),
                notes="; ".join(notes),
                size_hint=size,
            )
        )
    return AnnotatedImages(cfg.name, entries, list(IMAGENET_CLASSES), rejected)
