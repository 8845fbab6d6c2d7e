"""MS COCO 2014 / 2017 validation images with instance annotations (Lin et al., ECCV 2014):

    <root>/val2014/COCO_val2014_000000000042.jpg       (val2017/000000000139.jpg)
    <root>/annotations/instances_val2014.json

The 80 categories are indexed in order of category id (the contiguous order COCO-80 classifier
heads use). Per image: labels = categories with any annotation; boxes from `bbox` ([x, y, w, h]
-> inclusive pixel corners); crowd annotations (`iscrowd=1`) are what COCO defines them to be,
regions to ignore rather than objects: their boxes carry box_difficult=True (the flag VOC uses
for the same role), and their pixels belong to the category's mask, so a point on a crowd of
people points at people. Per category the mask is the union of its instance masks (polygons
rasterized by pycocotools, RLEs), on the decoded image's grid.

The JSON is indexed here, entry by entry, so a malformed entry concerns only its image (see
wsl_bench.data.annotations). An instance without a segmentation (a boxes-only export), with an
RLE for another image size, or whose segmentation covers no pixel of the image, has its box as
its mask, and the note says so: the pointing game then still scores its category.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DatasetLayoutError
from ..annotations import AnnotationError, edge_box, flag, integer, join_notes, number, shown
from ..base import AnnotatedImages, dataset_root, first_n, register_dataset, require
from ..difficult import read_difficult_flags
from ..sample import ImageEntry, Rasterized

log = logging.getLogger("wsl_bench")


@dataclass
class CocoMasks:
    """Instance segmentations of one image, (class index, segmentation) in box order, where a
    segmentation is a list of polygons ([2K] float arrays), an RLE {"size": (h, w), "counts":
    [int]} or None (picklable: holds only this image's annotations)."""

    instances: list[tuple[int, Any]]

    def rasterize(self, height: int, width: int, boxes: np.ndarray) -> Rasterized:
        """Per-class union of the instance masks on the height x width grid, and the note."""
        out: dict[int, np.ndarray] = {}
        counts = defaultdict(int)
        for (label, seg), box in zip(self.instances, boxes):
            mask = None
            if seg is None:
                counts["none"] += 1
            elif isinstance(seg, dict):
                if tuple(seg["size"]) == (height, width):
                    mask = rle_mask(seg["counts"], height, width)
                else:
                    counts["size"] += 1
            else:
                polygons, clipped = fit_polygons(seg, height, width)
                counts["clipped"] += clipped
                mask = polygon_mask(polygons, height, width)
            if mask is not None and not mask.any():
                counts["empty"] += 1
                mask = None
            if mask is None:
                mask = box_mask(box, height, width)
            out[label] = out[label] | mask if label in out else mask
        notes = [
            f"{counts['none']} instance(s) without segmentation: their boxes serve as masks" if counts["none"] else "",
            f"{counts['size']} RLE mask(s) not sized {height}x{width} like the image: their boxes serve as masks" if counts["size"] else "",
            f"{counts['empty']} segmentation(s) cover no pixel of the image: their boxes serve as masks" if counts["empty"] else "",
            f"clipped {counts['clipped']} polygon(s) to the image" if counts["clipped"] else "",
        ]
        return Rasterized(out, join_notes(*notes))


def box_mask(box: np.ndarray, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    x0, y0, x1, y1 = (int(v) for v in box)
    mask[max(y0, 0) : max(y1 + 1, 0), max(x0, 0) : max(x1 + 1, 0)] = True
    return mask


def rle_mask(counts: list[int], height: int, width: int) -> np.ndarray:
    """COCO RLE (alternating runs of 0s and 1s, column-major, summing to height * width)."""
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape(width, height).T


def rle_string_counts(text: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools' rleToString format: 5 bits
    per character offset by 48, 0x20 = more characters follow, 0x10 = sign of the last group;
    runs after the second are stored as differences to the run two before)."""
    counts: list[int] = []
    p = 0
    while p < len(text):
        x = k = 0
        more = True
        while more:
            if p >= len(text):
                raise ValueError("the string ends inside a run")
            c = ord(text[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {text[p]!r} at {p} is not an RLE character")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def fit_polygons(polygons: list[np.ndarray], height: int, width: int) -> tuple[list[np.ndarray], int]:
    """Polygons reaching further beyond the image than its longer side, clipped to that margin
    (Sutherland-Hodgman); returns them and how many were clipped (a polygon left with under 3
    vertices is dropped). pycocotools traces every edge on a 5x upsampled grid, so a vertex at
    1e9 would take gigabytes (and overflow its int coordinates); within the margin polygons
    are rasterized exactly as written. Clipping keeps the region inside the image, but
    pycocotools' pixel rounding along the cut edges can move a few boundary pixels: noted."""
    margin = max(height, width)
    lo, hi = -margin, np.array([width, height]) + margin
    out, n_clipped = [], 0
    for flat in polygons:
        points = flat.reshape(-1, 2)
        if (points >= lo).all() and (points <= hi).all():
            out.append(flat)
            continue
        n_clipped += 1
        for axis, bound, keep_above in ((0, lo, True), (0, hi[0], False), (1, lo, True), (1, hi[1], False)):
            if len(points) == 0:
                break
            inside = points[:, axis] >= bound if keep_above else points[:, axis] <= bound
            kept = []
            for i in range(len(points)):
                prev, cur = points[i - 1], points[i]
                if inside[i] != inside[i - 1]:
                    t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                    crossing = prev + t * (cur - prev)
                    crossing[axis] = bound
                    kept.append(crossing)
                if inside[i]:
                    kept.append(cur)
            points = np.array(kept).reshape(-1, 2)
        if len(points) >= 3:
            out.append(points.ravel())
    return out, n_clipped


def polygon_mask(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Union of polygons rasterized as COCO defines them (pycocotools)."""
    if not polygons:
        return np.zeros((height, width), dtype=bool)
    from pycocotools import mask as mask_utils

    rle = mask_utils.merge(mask_utils.frPyObjects([p.tolist() for p in polygons], height, width))
    with warnings.catch_warnings():  # pycocotools' numpy-2 copy= deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def _numbers(values: list[Any], where: str) -> np.ndarray:
    if all(type(v) in (int, float) for v in values):
        array = np.asarray(values, dtype=np.float64)
        if np.isfinite(array).all():
            return array
    return np.array([number(v, f"{where} value {j}", text=False) for j, v in enumerate(values, 1)])


def parse_segmentation(seg: Any, where: str) -> Any:
    """A validated segmentation (see CocoMasks) or None when absent or empty; AnnotationError
    when malformed (a partial RLE, a polygon of under 3 points, a value that is not a number)."""
    if seg is None or seg == [] or seg == {}:
        return None
    if isinstance(seg, list):
        polygons = []
        for k, poly in enumerate(seg, 1):
            if not isinstance(poly, list):
                raise AnnotationError(f"{where} segmentation polygon {k} {shown(poly)} is not a list of coordinates")
            if not poly:
                continue
            if len(poly) < 6 or len(poly) % 2:
                raise AnnotationError(f"{where} segmentation polygon {k} has {len(poly)} coordinates (need an even number >= 6)")
            polygons.append(_numbers(poly, f"{where} segmentation polygon {k}"))
        return polygons or None
    if isinstance(seg, dict):
        size = seg.get("size")
        if not isinstance(size, list) or len(size) != 2:
            raise AnnotationError(f"{where} segmentation RLE size {shown(size)} is not [height, width]")
        h, w = (integer(v, f"{where} segmentation RLE size", text=False) for v in size)
        if h <= 0 or w <= 0:
            raise AnnotationError(f"{where} segmentation RLE size {shown(size)} is not positive")
        raw = seg.get("counts")
        if isinstance(raw, str):
            try:
                counts = rle_string_counts(raw)
            except ValueError as exc:
                raise AnnotationError(f"{where} segmentation RLE counts {shown(raw)}: {exc}") from None
        elif isinstance(raw, list):
            counts = [integer(v, f"{where} segmentation RLE count {j}", text=False) for j, v in enumerate(raw, 1)]
        else:
            raise AnnotationError(f"{where} segmentation RLE counts {shown(raw)} are neither a list nor a string")
        if any(c < 0 for c in counts):
            raise AnnotationError(f"{where} segmentation RLE has a negative run ({min(counts)})")
        if sum(counts) != h * w:
            raise AnnotationError(f"{where} segmentation RLE runs cover {sum(counts)} pixels, not {h}x{w} = {h * w} (a partial mask)")
        return {"size": (h, w), "counts": counts}
    raise AnnotationError(f"{where} segmentation {shown(seg)} is neither polygons nor an RLE")


def image_key(value: Any) -> int | str | None:
    """An image id as annotations refer to it (an integer, or a string id); None if unusable."""
    if isinstance(value, str) and value:
        return value
    try:
        return integer(value, "", text=False)
    except AnnotationError:
        return None


def _categories(doc: dict, name: str, cfg: Any, hint: str) -> dict[int, str]:
    categories = doc.get("categories")
    if not isinstance(categories, list):
        raise DatasetLayoutError(f"dataset={cfg.name}: {name} has no 'categories' list; set dataset.root={hint}")
    names: dict[int, str] = {}
    bad = 0
    for cat in categories:
        key = image_key(cat.get("id")) if isinstance(cat, dict) else None
        if not isinstance(key, int) or key in names:
            bad += 1
            continue
        label = cat.get("name")
        names[key] = label if isinstance(label, str) and label else f"category {key}"
    if bad:
        log.warning("%s: %d category entries without a usable, unique integer id ignored", name, bad)
    if not names:
        raise DatasetLayoutError(f"dataset={cfg.name}: {name} lists no categories; set dataset.root={hint}")
    return names


def _listing(images: list[Any], name: str) -> list[tuple[tuple, str, Any, dict | None, str]]:
    """The image entries as (sort key, record id, image key, entry, reason or note). An entry
    that is not an image, has no file_name or no id is refused; an id listed twice with different
    entries, or a file listed under several ids, is ambiguous (refused); an exact repeat is
    scored once with a note."""
    rows = []
    by_key: dict[Any, list[int]] = defaultdict(list)
    by_file: dict[str, list[int]] = defaultdict(list)
    for i, info in enumerate(images):
        where = f"{name} images[{i}]"
        if not isinstance(info, dict):
            rows.append(((2, i), f"images[{i}]", None, None, f"{where} {shown(info)} is not an image entry"))
            continue
        file_name = info.get("file_name")
        if not isinstance(file_name, str) or not file_name.strip():
            problem = "has no file_name" if file_name is None else f"file_name {shown(file_name)} is not a file name"
            rows.append(((2, i), f"images[{i}]", None, None, f"{where} {problem}"))
            continue
        key = image_key(info.get("id"))
        if key is None:
            rows.append(((2, i), file_name, None, None, f"{where} ({file_name}) id {shown(info.get('id'))} is not an integer or string id"))
            continue
        by_key[key].append(len(rows))
        by_file[file_name].append(len(rows))
        rows.append(((0, key, "") if isinstance(key, int) else (1, 0, key), file_name, key, info, ""))
    drop = set()
    for key, positions in by_key.items():
        if len(positions) > 1:
            if all(rows[p][3] == rows[positions[0]][3] for p in positions):
                first = rows[positions[0]]
                rows[positions[0]] = (*first[:4], f"listed {len(positions)} times in {name} images; scored once")
                drop.update(positions[1:])
            else:
                files = ", ".join(dict.fromkeys(rows[p][1] for p in positions))
                for p in positions:
                    rows[p] = (*rows[p][:3], None, f"{name} lists image id {shown(key)} {len(positions)} times with different entries ({files})")
    for file_name, positions in by_file.items():
        keys = list(dict.fromkeys(rows[p][2] for p in positions if p not in drop))
        if len(keys) > 1:
            for p in positions[1:]:
                drop.add(p)
            p = positions[0]
            rows[p] = (*rows[p][:3], None, f"{name} lists {file_name} under {len(keys)} image ids ({', '.join(map(shown, keys[:4]))})")
    return sorted((r for p, r in enumerate(rows) if p not in drop), key=lambda r: r[0])


def _size_hint(info: dict, where: str) -> tuple[tuple[int, int] | None, str]:
    try:
        height, width = (integer(info.get(k), f"{where} {k}", text=False) for k in ("height", "width"))
        if height <= 0 or width <= 0:
            raise AnnotationError(f"{where} size {width}x{height} is not positive")
        return (height, width), ""
    except AnnotationError as exc:
        return None, f"ignored the image size ({exc})"


def build_coco(cfg: Any) -> AnnotatedImages:
    year, split = cfg.year, cfg.split
    hint = "/path/to/coco (the folder holding annotations/ and " + f"{split}{year}/)"
    root = dataset_root(cfg, hint)
    images_dir = require(root / f"{split}{year}", f"image folder {split}{year}/", cfg, hint)
    ann_file = require(root / "annotations" / f"instances_{split}{year}.json", f"annotations/instances_{split}{year}.json", cfg, hint)
    name = ann_file.name
    try:
        # Bytes that are not UTF-8 and control characters inside strings concern only the
        # values holding them; integers too long for int() become inf, which fails as a value.
        text = ann_file.read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff")
        doc = json.loads(text, strict=False, parse_int=lambda s: int(s) if len(s) < 4000 else float(s))
    except (ValueError, RecursionError, OSError) as exc:
        raise DatasetLayoutError(f"dataset={cfg.name}: {ann_file} is not a COCO instances file ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) or not isinstance(doc.get("annotations"), list):
        raise DatasetLayoutError(f"dataset={cfg.name}: {ann_file} is not a COCO instances file (no 'images' and 'annotations' lists)")
    if not doc["images"]:
        raise DatasetLayoutError(f"dataset={cfg.name}: {ann_file} lists no images; set dataset.root={hint}")
    if not doc["annotations"]:
        raise DatasetLayoutError(f"dataset={cfg.name}: {ann_file} has no annotations; set dataset.root={hint}")
    categories = _categories(doc, name, cfg, hint)
    cat_ids = sorted(categories)
    index = {c: i for i, c in enumerate(cat_ids)}
    by_image: dict[Any, list[tuple[int, dict]]] = defaultdict(list)
    stray = 0
    for j, ann in enumerate(doc["annotations"]):
        key = image_key(ann.get("image_id")) if isinstance(ann, dict) else None
        if key is None:
            stray += 1
        else:
            by_image[key].append((j, ann))
    listed = first_n(_listing(doc["images"], name), cfg)
    listed_keys = {row[2] for row in listed}
    unmatched = stray + sum(len(v) for k, v in by_image.items() if k not in listed_keys)
    if unmatched and cfg.get("limit") is None:
        log.warning("%s: %d annotation(s) refer to no listed image; ignored", name, unmatched)
    class_names = [categories[c] for c in cat_ids]
    flags = read_difficult_flags(cfg.difficult_flags, class_names, cfg.name) if cfg.get("difficult_flags") else None
    entries, rejected = [], []
    for _, record_id, key, info, text in listed:
        if info is None:
            rejected.append((record_id, text))
            continue
        try:
            entry = coco_entry(record_id, info, by_image.get(key, []), index, name, images_dir, cfg, flags)
        except AnnotationError as exc:
            rejected.append((record_id, str(exc)))
            continue
        entry.notes = join_notes(text, entry.notes)
        entries.append(entry)
    return AnnotatedImages(cfg.name, entries, class_names, rejected)


def coco_entry(
    file_name: str, info: dict, anns: list[tuple[int, dict]], index: dict[int, int], name: str, images_dir: Path, cfg: Any,
    flags: tuple[dict[str, set[int]], dict[str, str]] | None = None,
) -> ImageEntry:
    """One image's entry from its annotations; AnnotationError names the first malformed one.
    `flags`: read_difficult_flags' (subset, reasons), keyed by file name or its stem (TorchRay's
    file); None: the subset is computed from the boxes."""
    difficult: tuple[int, ...] = ()
    if flags is not None:
        keys = (file_name.rsplit(".", 1)[0], file_name)
        reason = next((flags[1][k] for k in keys if k in flags[1]), None)
        if reason is not None:
            raise AnnotationError(reason)
        difficult = tuple(sorted(next((flags[0][k] for k in keys if k in flags[0]), ())))
    if not anns:
        raise AnnotationError("no object annotations for the image")
    boxes, labels, crowd, instances, unknown = [], [], [], [], []
    for j, ann in anns:
        ann_id = ann.get("id")
        where = f"{name} annotation {shown(ann_id)}" if isinstance(ann_id, (int, str)) and not isinstance(ann_id, bool) else f"{name} annotations[{j}]"
        try:
            category = integer(ann.get("category_id"), "", text=False)
        except AnnotationError:
            category = None
        if category not in index:
            unknown.append(ann.get("category_id"))
            continue
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise AnnotationError(f"{where} bbox is missing" if bbox is None else f"{where} bbox {shown(bbox)} is not [x, y, width, height]")
        boxes.append(edge_box(bbox, f"{where} bbox", text=False))
        labels.append(index[category])
        crowd.append(flag(ann.get("iscrowd"), f"{where} iscrowd", default=False, text=False))
        instances.append((index[category], parse_segmentation(ann.get("segmentation"), where)))
    if not boxes:
        raise AnnotationError(f"no annotations of known categories (unknown ids: {', '.join(dict.fromkeys(map(shown, unknown)))})")
    size_hint, size_note = _size_hint(info, f"{name} image {file_name}")
    box_labels = np.array(labels, dtype=np.int64)
    notes = [f"ignored {len(unknown)} annotation(s) of unknown category (ids: {', '.join(dict.fromkeys(map(shown, unknown)))})"] if unknown else []
    return ImageEntry(
        image_id=file_name,
        path=images_dir / file_name,
        labels=tuple(sorted(set(labels))),
        boxes=np.array(boxes, dtype=np.int64),
        box_labels=box_labels,
        box_difficult=np.array(crowd, dtype=bool),
        masks=CocoMasks(instances),
        difficult_classes=difficult,
        difficult_rule=cfg.get("difficult_area", "union") if flags is None else None,
        notes=join_notes(*notes, size_note),
        size_hint=size_hint,
    )


for _name in ("coco", "coco14", "coco17"):
    register_dataset(_name)(build_coco)
