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

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DatasetLayoutError
from ..annotations import AnnotationError, IndexFile, corner_box, join_notes, read_index, swapped_note
from ..base import AnnotatedImages, config_int, dataset_root, first_n, register_dataset
from ..imagenet_classes import IMAGENET_CLASSES, imagenet_wnids
from ..sample import ImageEntry
from .voc import parse_voc_xml, unknown_note
from .wsol_metadata import build_from_metadata

log = logging.getLogger("wsl_bench")
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
HINT = "/path/to/ILSVRC2012 (the folder holding val/)"


def _is_dir(item: os.DirEntry) -> bool | str:
    """Whether the entry is a folder (links followed), or why it cannot be read (a link loop,
    a dangling link, no permission)."""
    try:
        return item.is_dir()
    except OSError as exc:
        return exc.strerror or str(exc)


def _scandir(path: str) -> list[os.DirEntry] | str:
    try:
        with os.scandir(path) as it:
            return list(it)
    except OSError as exc:
        return exc.strerror or str(exc)


def scan_images(folder: Path, known: set[str]) -> tuple[dict[str, tuple[Path, str | None]], list[tuple[str, str]]]:
    """Images of a flat or class-folder layout: {image id (file stem): (path, wnid of its class
    folder or None)}, and (name, reason) rows for what looks like an image but cannot be one: an
    entry that cannot be read, a folder named like an image, several files with one stem (the
    annotation, keyed by stem, cannot say which it describes) and an unreadable class folder.
    What links make reachable twice counts once."""
    candidates: dict[str, list[tuple[str, Path, str | None]]] = {}
    problems: list[tuple[str, Path, str]] = []

    def visit(item: os.DirEntry, relative: str, wnid: str | None, top: bool) -> None:
        looks_like_image = Path(item.name).suffix.lower() in IMAGE_SUFFIXES
        is_dir = _is_dir(item)
        if isinstance(is_dir, str):
            if looks_like_image or (top and item.name in known):
                problems.append((relative if looks_like_image else relative + "/", Path(item.path), f"{relative} cannot be read ({is_dir})"))
            else:
                log.warning("%s/%s cannot be read (%s); ignored", folder.name, relative, is_dir)
        elif is_dir and looks_like_image:
            problems.append((relative, Path(item.path), f"{relative} is a folder, not an image file"))
        elif is_dir and top:
            inner = _scandir(item.path)
            if isinstance(inner, str):
                if item.name in known:
                    problems.append((relative + "/", Path(item.path), f"class folder {relative}/ cannot be read ({inner})"))
                else:
                    log.warning("%s/%s/ cannot be read (%s); ignored", folder.name, relative, inner)
                return
            for sub in inner:
                visit(sub, f"{relative}/{sub.name}", item.name if item.name in known else None, False)
        elif not is_dir and looks_like_image:
            candidates.setdefault(Path(item.name).stem, []).append((relative, Path(item.path), wnid))

    top = _scandir(str(folder))
    if isinstance(top, str):
        raise DatasetLayoutError(f"dataset=imagenet: image folder {folder} cannot be read ({top}); set dataset.root={HINT}")
    for item in top:
        visit(item, item.name, None, True)

    def once(rows: list) -> list:
        """One row per real file (sorted by name: the shortest way to it first)."""
        seen: dict[str, Any] = {}
        for row in sorted(rows, key=lambda r: (r[0].count("/"), r[0])):
            seen.setdefault(os.path.realpath(row[1]), row)
        return list(seen.values())

    found: dict[str, tuple[Path, str | None]] = {}
    rejected = [(relative, reason) for relative, _, reason in once(problems)]
    for stem, files in candidates.items():
        files = once(files) if len(files) > 1 else files
        if len(files) == 1:
            found[stem] = files[0][1:]
            continue
        names = ", ".join(relative for relative, _, _ in files)
        for relative, _, _ in files:
            rejected.append((relative, f"{len(files)} image files share the image id {stem} ({names}): "
                                       "which one its annotation describes is ambiguous; keep one"))
    return found, sorted(rejected)


def _find_xml_dir(root: Path, images: Path, split: str) -> Path | None:
    for candidate in (root / f"{split}_bbox", root / f"bbox_{split}", root / "ILSVRC" / "Annotations" / "CLS-LOC" / split, images):
        if candidate.is_dir() and (next(candidate.glob("*.xml"), None) or next(candidate.glob("*/*.xml"), None)):
            return candidate
    return None


def _xml_index(folder: Path) -> dict[str, list[Path]]:
    index: dict[str, list[Path]] = {}
    for path in sorted(folder.glob("*.xml")) + sorted(folder.glob("*/*.xml")):
        index.setdefault(path.stem, []).append(path)
    return index


def solution_objects(solution: IndexFile, image_id: str, known: dict[str, int]) -> tuple[list[tuple[str, list[int]]], list[str], str]:
    """The image's row of LOC_<split>_solution.csv: objects of known classes as (wnid, box), the
    wnids of the others, and the note on swapped corners."""
    row = solution.one(image_id)
    if row is None:
        raise AnnotationError(f"no row for the image in {solution.name}")
    line, (text,) = row
    where = f"{solution.name} line {line}"
    tokens = text.split()
    if not tokens or len(tokens) % 5:
        raise AnnotationError(f"{where}: PredictionString has {len(tokens)} values, not groups of 5 (wnid xmin ymin xmax ymax)")
    objects, unknown, n_swapped = [], [], 0
    for k in range(0, len(tokens), 5):
        wnid = tokens[k]
        if wnid not in known:
            unknown.append(wnid)
            continue
        box, swapped = corner_box(tokens[k + 1 : k + 5], f"{where} box {k // 5 + 1} ({wnid})")
        objects.append((wnid, box))
        n_swapped += swapped
    return objects, unknown, swapped_note(n_swapped, solution.name)


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
    images, unusable = scan_images(images_dir, set(wnids))
    if not images and not unusable:
        raise DatasetLayoutError(f"dataset={cfg.name}: no images (*.JPEG) in {images_dir}; set dataset.root={HINT}")

    solution: IndexFile | None = None
    xmls: dict[str, list[Path]] | None = None
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
        solution = read_index(source, source.name, cfg, f"{HINT} or dataset.boxes=/path/to/LOC_{split}_solution.csv", 2, ",",
                              free_last=True, header=["ImageId", "PredictionString"])
    else:
        xmls = _xml_index(source)
        if not xmls:
            raise DatasetLayoutError(f"dataset={cfg.name}: no bbox XML files in {source}; set dataset.boxes=/path/to/xml_folder")

    offset = config_int(cfg, "box_offset", 0)
    entries, rejected = [], []
    unusable_reasons = dict(unusable)
    listed = first_n(sorted([*images, *unusable_reasons]), cfg)
    if solution is not None:
        solution.warn_unlisted(set(listed))
    for image_id in listed:
        if image_id in unusable_reasons:
            rejected.append((image_id, unusable_reasons[image_id]))
            continue
        path, folder_wnid = images[image_id]
        size, notes = None, []
        try:
            if solution is not None:
                objects, unknown, note = solution_objects(solution, image_id, index)
                objects = [(w, [v - offset for v in box]) for w, box in objects]
                notes.append(note)
            else:
                found = xmls.get(image_id, [])
                if len(found) != 1:
                    shown_paths = ", ".join(str(p.relative_to(source)) for p in found)
                    raise AnnotationError(f"{len(found)} annotation files for the image: {shown_paths}" if found else f"annotation file missing: {image_id}.xml")
                parsed = parse_voc_xml(found[0], index, offset, str(found[0].relative_to(source)), read_difficult=False)
                size, unknown, objects = parsed.size, parsed.unknown, [(w, box) for w, box, _ in parsed.objects]
                notes.extend(parsed.notes)
        except AnnotationError as exc:
            rejected.append((image_id, str(exc)))
            continue
        if not objects:
            reason = f"no boxes of known classes (unknown: {', '.join(map(repr, sorted(set(unknown))))})" if unknown else "annotation lists no boxes"
            rejected.append((image_id, reason))
            continue
        boxes = np.array([box for _, box in objects], dtype=np.int64)
        box_labels = np.array([index[w] for w, _ in objects], dtype=np.int64)
        notes.insert(0, unknown_note(unknown, "box(es)"))
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
                notes=join_notes(*notes),
                size_hint=size,
            )
        )
    return AnnotatedImages(cfg.name, entries, list(IMAGENET_CLASSES), rejected)
