"""MS COCO 2014 / 2017 validation images with instance annotations (Lin et al., ECCV 2014):

    <root>/val2014/COCO_val2014_000000000042.jpg       (val2017/000000000139.jpg)
    <root>/annotations/instances_val2014.json

Read with pycocotools. The 80 categories are indexed in order of category id (the contiguous
order COCO-80 classifier heads use). Per image: labels = categories with any annotation; boxes
from `bbox` ([x, y, w, h] -> inclusive pixel corners); crowd annotations (`iscrowd=1`) are what
COCO defines them to be, regions to ignore rather than objects: their boxes carry
box_difficult=True (the flag VOC uses for the same role), and their pixels belong to the category's
mask, so a point on a crowd of people points at people. `masks()` gives per category the union
of its instance masks (polygons and RLE) at original size, decoded on demand.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import DatasetLayoutError
from ..base import AnnotatedImages, dataset_root, first_n, register_dataset, require
from ..difficult import ebp_difficult_classes, read_difficult_flags
from ..sample import ImageEntry


@dataclass
class CocoMasks:
    """Union of instance masks per category for one image (picklable: holds only that image's
    segmentations)."""

    segmentations: dict[int, list[Any]]
    height: int
    width: int

    def __call__(self) -> dict[int, np.ndarray]:
        from pycocotools import mask as mask_utils

        out = {}
        for label, segs in self.segmentations.items():
            union = np.zeros((self.height, self.width), dtype=bool)
            for seg in segs:
                if isinstance(seg, list):  # polygons
                    if not seg:
                        continue
                    rle = mask_utils.merge(mask_utils.frPyObjects(seg, self.height, self.width))
                elif isinstance(seg.get("counts"), list):  # uncompressed RLE (crowd)
                    rle = mask_utils.frPyObjects(seg, self.height, self.width)
                else:
                    rle = seg
                with warnings.catch_warnings():  # pycocotools' numpy-2 copy= deprecation
                    warnings.simplefilter("ignore", DeprecationWarning)
                    union |= mask_utils.decode(rle).astype(bool)
            out[label] = union
        return out


def coco_box(bbox: list[float]) -> list[int]:
    """COCO [x, y, w, h] (continuous pixel-edge coordinates) -> inclusive pixel corners."""
    x, y, w, h = bbox
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    return [x0, y0, max(x0, int(np.ceil(x + w)) - 1), max(y0, int(np.ceil(y + h)) - 1)]


def build_coco(cfg: Any) -> AnnotatedImages:
    year, split = cfg.year, cfg.split
    hint = "/path/to/coco (the folder holding annotations/ and " + f"{split}{year}/)"
    root = dataset_root(cfg, hint)
    images_dir = require(root / f"{split}{year}", f"image folder {split}{year}/", cfg, hint)
    ann_file = require(root / "annotations" / f"instances_{split}{year}.json", f"annotations/instances_{split}{year}.json", cfg, hint)
    from pycocotools.coco import COCO

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco = COCO(str(ann_file))
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        raise DatasetLayoutError(f"dataset={cfg.name}: {ann_file} is not a COCO instances file ({type(exc).__name__}: {exc})") from None
    if not coco.imgs:
        raise DatasetLayoutError(f"dataset={cfg.name}: {ann_file} lists no images; set dataset.root={hint}")
    if not coco.anns:
        raise DatasetLayoutError(f"dataset={cfg.name}: {ann_file} has no annotations; set dataset.root={hint}")
    cat_ids = sorted(coco.cats)
    index = {c: i for i, c in enumerate(cat_ids)}
    class_names = [coco.cats[c]["name"] for c in cat_ids]
    flags = read_difficult_flags(cfg.difficult_flags, class_names, cfg.name) if cfg.get("difficult_flags") else None
    entries, rejected = [], []
    for image_id in first_n(sorted(coco.imgs), cfg):
        info = coco.imgs[image_id]
        name = str(info.get("file_name", image_id))
        anns = coco.imgToAnns.get(image_id, [])
        known = [a for a in anns if a.get("category_id") in index and a.get("bbox")]
        if not known:
            unknown = sorted({a.get("category_id") for a in anns if a.get("category_id") not in index})
            reason = f"no annotations of known categories (unknown ids: {unknown})" if unknown else "no object annotations for the image"
            rejected.append((name, reason))
            continue
        height, width = int(info["height"]), int(info["width"])
        boxes = np.array([coco_box(a["bbox"]) for a in known], dtype=np.int64)
        box_labels = np.array([index[a["category_id"]] for a in known], dtype=np.int64)
        segmentations: dict[int, list[Any]] = {}
        bad_rle = 0
        for a, label in zip(known, box_labels.tolist()):
            seg = a.get("segmentation")
            if isinstance(seg, dict) and list(seg.get("size", ())) != [height, width]:
                bad_rle += 1  # an RLE for another image size cannot be overlaid on this one
            elif seg:
                segmentations.setdefault(label, []).append(seg)
        n_unknown = len(anns) - len(known)
        notes = [f"ignored {n_unknown} annotation(s) of unknown category or without bbox"] if n_unknown else []
        if bad_rle:
            notes.append(f"ignored {bad_rle} RLE mask(s) whose size differs from the image")
        entries.append(
            ImageEntry(
                image_id=name,
                path=images_dir / name,
                labels=tuple(sorted(set(box_labels.tolist()))),
                boxes=boxes,
                box_labels=box_labels,
                box_difficult=np.array([bool(a.get("iscrowd", 0)) for a in known], dtype=bool),
                masks=CocoMasks(segmentations, height, width),
                difficult_classes=ebp_difficult_classes(boxes, box_labels, height, width, cfg.get("difficult_area", "union"))
                if flags is None else tuple(sorted(flags.get(name.rsplit(".", 1)[0], flags.get(name, ())))),
                notes="; ".join(notes),
                size_hint=(height, width),
            )
        )
    return AnnotatedImages(cfg.name, entries, class_names, rejected)


for _name in ("coco", "coco14", "coco17"):
    register_dataset(_name)(build_coco)
