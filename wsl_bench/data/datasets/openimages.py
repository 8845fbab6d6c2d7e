"""OpenImages30k, the mask benchmark of "Evaluating Weakly Supervised Object Localization Methods
Right" (Choe et al., CVPR 2020; github.com/clovaai/wsolevaluation), 100 classes, in its layout:

    <root>/<split>/<class>/<id>.jpg                     root: wsolevaluation's dataset/OpenImages
    <root>/<split>/<class>/<id>_m<class>_<instance>.png one per instance mask
    <root>/<split>/<class>/<id>_ignore.png              the image's ignore region
    <metadata>/image_ids.txt      <split>/<class>/<id>.jpg, one per line
    <metadata>/class_labels.txt   <image>,<class index 0..99>
    <metadata>/localization.txt   <image>,<mask png>,<ignore png>  (one line per mask; the
                                  ignore png on the image's first line only, paths under root)

`dataset.metadata` defaults to <root>/../../metadata/OpenImages/<split> (both inside a
wsolevaluation checkout). Per class, the mask is the union of the image's instance masks (a
pixel is in a mask when its PNG value is nonzero: wsolevaluation's `> 0.5` on cv2's grayscale
read); ImageEntry.ignore is the ignore region minus that union (wsolevaluation's get_mask). Class
names are the folder names (OpenImages MIDs without "/m/").

The metadata files follow the rule of wsl_bench.data.annotations: a malformed line concerns only
the image it names. Per image, from the files' headers when the split is read: an image without
a class label or a mask, or with a listed mask PNG that is missing or not an image, is rejected
with the reason naming the localization.txt line and the path (the image file itself is checked
when decoded, as in every dataset). The PNGs' pixels are read with the image (DecodedImages,
`OpenImagesMasks`): a mask PNG whose pixels do not decode skips the image with the reason; mask
or ignore PNGs of another size than the image are resized onto it, nearest neighbour (one note,
with a hint when the size is the image's transposed: an EXIF-rotated image); a missing or
undecodable ignore PNG leaves no ignore region (noted).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...errors import ConfigError, DatasetLayoutError
from ..annotations import AnnotationError, integer, join_notes, read_index, shown, unique_listing
from ..base import AnnotatedImages, dataset_root, first_n, read_lines, register_dataset
from ..sample import ImageEntry, Rasterized

HINT = "/path/to/wsolevaluation/dataset/OpenImages"
META_HINT = "/path/to/wsolevaluation/metadata/OpenImages/<split>"
N_CLASSES = 100


def _header_problem(path: Path) -> str:
    """Why an image file's header cannot be read ("" when it can)."""
    try:
        if not path.is_file():
            return "not found"
        with Image.open(path):
            return ""
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds on corrupt files; OSError on a name too long
        return f"unreadable ({type(exc).__name__})"


def _read_mask(path: Path, height: int, width: int) -> tuple[np.ndarray, tuple[int, int] | None]:
    """[H, W] bool: nonzero pixels of a mask PNG, resized onto height x width (nearest) when its
    size differs (then also its own (height, width)); ValueError naming the file when its pixels
    do not decode."""
    try:
        with Image.open(path) as img:
            mask = np.asarray(img.convert("L")) > 0
    except Exception as exc:  # noqa: BLE001 - becomes this image's skipped row, not the run's end
        raise ValueError(f"{path.name} cannot be decoded ({type(exc).__name__}: {str(exc)[:80]})") from None
    if mask.shape == (height, width):
        return mask, None
    return np.asarray(Image.fromarray(mask).resize((width, height), Image.NEAREST)), mask.shape


def _resized_note(resized: list[tuple[str, tuple[int, int]]], height: int, width: int) -> str:
    """One note for the PNGs ("mask a.png", "ignore mask b.png") resized onto the image, the first
    named (a thousand masks, one note); "" when none was."""
    if not resized:
        return ""
    name, (h, w) = resized[0]
    first = f"{name} is {w}x{h}" if len(resized) == 1 else f"{len(resized)} mask PNGs of another size (first: {name} is {w}x{h})"
    # the image's size transposed: the PNGs may be drawn on the stored pixels of an EXIF-rotated image
    hint = " (the image's size transposed: set dataset.exif_orientation=ignore if drawn on the stored pixels)" if (h, w) == (width, height) else ""
    return f"{first}, image {width}x{height}: resized (nearest){hint}"


@dataclass
class OpenImagesMasks:
    """The image's class mask (union of its instance PNGs) and ignore region, read on the decoded
    image's grid by DecodedImages (a MaskSource; picklable)."""

    label: int
    mask_paths: tuple[Path, ...]
    ignore_path: Path | None

    def rasterize(self, height: int, width: int, boxes: np.ndarray) -> Rasterized:
        masks, resized, notes = [], [], []
        for path in self.mask_paths:
            try:
                mask, size = _read_mask(path, height, width)
            except ValueError as exc:
                raise AnnotationError(f"mask PNG {exc}") from None
            masks.append(mask)
            if size is not None:
                resized.append((f"mask {path.name}", size))
        union = np.logical_or.reduce(masks)
        ignore = np.zeros((height, width), dtype=bool)
        if self.ignore_path is not None:  # (none: noted when the split was read)
            try:
                region, size = _read_mask(self.ignore_path, height, width)
                ignore = region & ~union  # the ignore region outside the objects (wsolevaluation's get_mask)
                if size is not None:
                    resized.append((f"ignore mask {self.ignore_path.name}", size))
            except ValueError as exc:
                notes.append(f"ignore PNG {exc}: no ignore region")
        note = join_notes(_resized_note(resized, height, width), *notes)
        return Rasterized({self.label: union}, note, ignore)


def _check_masks(root: Path, label: int, masks: list[tuple[int, str]], ignore: tuple[int, str] | None) -> tuple[OpenImagesMasks, str]:
    """The image's masks and a note when it has no usable ignore PNG; AnnotationError naming the
    localization.txt line and path when a mask PNG cannot be used (read from the files' headers
    only; the image itself is checked when decoded, as in every dataset)."""
    for number, mask in masks:
        problem = _header_problem(root / mask)
        if problem:
            raise AnnotationError(f"localization.txt line {number}: mask PNG {shown(mask, 120)} {problem}")
    if ignore is None:
        return OpenImagesMasks(label, tuple(root / m for _, m in masks), None), "no ignore mask listed: no ignore region"
    number, path = ignore
    problem = _header_problem(root / path)
    note = f"localization.txt line {number}: ignore PNG {shown(path, 120)} {problem}: no ignore region" if problem else ""
    return OpenImagesMasks(label, tuple(root / m for _, m in masks), None if problem else root / path), note


def image_annotation(labels: Any, localization: Any, image: str) -> tuple[int, list[tuple[int, str]], tuple[int, str] | None]:
    """(class label, [(line number, mask path)], (line number, ignore path) or None) of one image
    from its metadata lines; AnnotationError naming the file, line and value when they cannot be used."""
    row = labels.one(image)
    if row is None:
        raise AnnotationError("no class label in class_labels.txt")
    label = integer(row[1][0], f"class_labels.txt line {row[0]}: class label")
    if not 0 <= label < N_CLASSES:
        raise AnnotationError(f"class_labels.txt line {row[0]}: class label {label} outside 0..{N_CLASSES - 1}")
    lines = localization.lines(image)
    if not lines:
        raise AnnotationError("no mask in localization.txt")
    masks: dict[str, int] = {}
    ignores: dict[str, int] = {}
    for number, (mask, ignore) in lines:
        if not mask:
            raise AnnotationError(f"localization.txt line {number}: no mask path (expected image,mask.png,ignore.png)")
        masks.setdefault(mask, number)  # a repeated line adds nothing to the union
        if ignore:
            ignores.setdefault(ignore, number)
    if len(ignores) > 1:
        numbers = ", ".join(str(n) for n in ignores.values())
        raise AnnotationError(f"localization.txt lines {numbers} give the image different ignore masks")
    ignore_line = next(((n, path) for path, n in ignores.items()), None)
    return label, [(n, path) for path, n in masks.items()], ignore_line


def default_metadata(root: Path, split: str) -> Path:
    return root.parent.parent / "metadata" / "OpenImages" / split


@register_dataset("openimages")
def build_openimages(cfg: Any) -> AnnotatedImages:
    root = dataset_root(cfg, HINT)
    split = str(cfg.get("split", "test"))
    if split not in ("train", "val", "test") and not cfg.get("metadata"):
        raise ConfigError(f"dataset.split={split!r} is unknown for openimages; use val or test (or set dataset.metadata)")
    meta = Path(str(cfg.metadata)).expanduser().resolve() if cfg.get("metadata") else default_metadata(root, split)
    if not meta.is_dir():
        raise DatasetLayoutError(f"dataset={cfg.name}: metadata folder {meta} not found; set dataset.metadata={META_HINT}")
    ids, listing_notes = unique_listing(read_lines(meta / "image_ids.txt", "image_ids.txt", cfg, META_HINT), "image_ids.txt")
    ids = first_n(ids, cfg)
    labels = read_index(meta / "class_labels.txt", "class_labels.txt", cfg, META_HINT, 2, ",")
    localization = read_index(meta / "localization.txt", "localization.txt", cfg, META_HINT, 3, ",")
    for table in (labels, localization):
        table.warn_unlisted(set(ids))
    class_names = [f"class_{i}" for i in range(N_CLASSES)]
    folders: dict[int, set[str]] = defaultdict(set)
    entries, rejected = [], []
    for image in ids:
        try:
            label, masks, ignore = image_annotation(labels, localization, image)
            gt, ignore_note = _check_masks(root, label, masks, ignore)
        except AnnotationError as exc:
            rejected.append((image, str(exc)))
            continue
        folders[label].add(Path(image).parent.name)
        entries.append(ImageEntry(
            image_id=image, path=root / image, labels=(label,), masks=gt, notes=join_notes(listing_notes.get(image, ""), ignore_note),
        ))
    for label, names in folders.items():
        if len(names) == 1 and next(iter(names)):  # a class's name is its images' folder when they agree
            class_names[label] = next(iter(names))
    return AnnotatedImages(cfg.name, entries, class_names, rejected)
