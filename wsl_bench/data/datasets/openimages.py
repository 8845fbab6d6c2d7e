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
names are the folder names (OpenImages MIDs without "/m/"). Masks are decoded when scored.

Per image, from the files' headers when the split is read: an image without a class label or a
mask, or with a listed mask PNG that is missing or not an image, is rejected with the reason; a
missing ignore PNG leaves no ignore region (noted); a mask whose size differs from the image is
resized onto it, nearest neighbour (noted). A PNG whose pixels fail to decode when scored skips
the image with the error (MaskDecodeError).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...errors import ConfigError, DatasetLayoutError
from ..base import AnnotatedImages, dataset_root, first_n, read_lines, register_dataset
from ..sample import ImageEntry
from .wsol_metadata import _split_csv

HINT = "/path/to/wsolevaluation/dataset/OpenImages"
N_CLASSES = 100


class MaskDecodeError(ValueError):
    """A mask PNG whose header read but whose pixels do not (the image's rows are skipped with it)."""


def _header_size(path: Path) -> tuple[int, int] | str:
    """(height, width) from an image file's header, or why it cannot be read."""
    if not path.is_file():
        return f"not found: {path}"
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds on corrupt files
        return f"unreadable ({type(exc).__name__}): {path}"


def _read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """[H, W] bool: nonzero pixels of a mask PNG, resized onto `size` (nearest) when it differs."""
    try:
        with Image.open(path) as img:
            gray = img.convert("L")
            if (gray.height, gray.width) != size:
                gray = gray.resize((size[1], size[0]), Image.NEAREST)
            return np.asarray(gray) > 0
    except Exception as exc:  # noqa: BLE001 - becomes this image's skipped row, not the run's end
        raise MaskDecodeError(f"unreadable mask PNG {path.name} ({type(exc).__name__})") from None


@dataclass
class OpenImagesMasks:
    """The image's class mask (union of its instance PNGs) and ignore region, read on demand
    (picklable)."""

    label: int
    mask_paths: tuple[Path, ...]
    ignore_path: Path | None
    size: tuple[int, int]

    def union(self) -> np.ndarray:
        return np.logical_or.reduce([_read_mask(p, self.size) for p in self.mask_paths])

    def __call__(self) -> dict[int, np.ndarray]:
        return {self.label: self.union()}

    def ignore(self) -> np.ndarray:
        """The ignore PNG's region outside the instance masks (wsolevaluation's get_mask)."""
        if self.ignore_path is None:
            return np.zeros(self.size, dtype=bool)
        return _read_mask(self.ignore_path, self.size) & ~self.union()


def _check_image(root: Path, image: str, label: int | None, masks: list[str], ignore: str | None) -> tuple[OpenImagesMasks, list[str]] | str:
    """The image's masks and the notes on what was repaired, or why it cannot be used (read from
    the files' headers only)."""
    if label is None:
        return "no class label in class_labels.txt"
    if not 0 <= label < N_CLASSES:
        return f"class label {label} outside 0..{N_CLASSES - 1}"
    if not masks:
        return "no mask in localization.txt"
    size = _header_size(root / image)
    if isinstance(size, str):
        return f"image {size}"
    notes = []
    for mask in masks:
        mask_size = _header_size(root / mask)
        if isinstance(mask_size, str):
            return f"mask PNG {mask_size}"
        if mask_size != size:
            notes.append(f"mask {Path(mask).name} is {mask_size[1]}x{mask_size[0]}, image {size[1]}x{size[0]}: resized (nearest)")
    ignore_path: Path | None = None
    if ignore is None:
        notes.append("no ignore mask listed: no ignore region")
    else:
        ignore_size = _header_size(root / ignore)
        if isinstance(ignore_size, str):
            notes.append(f"ignore PNG {ignore_size}: no ignore region")
        else:
            ignore_path = root / ignore
            if ignore_size != size:
                notes.append(f"ignore mask is {ignore_size[1]}x{ignore_size[0]}, image {size[1]}x{size[0]}: resized (nearest)")
    return OpenImagesMasks(label, tuple(root / m for m in masks), ignore_path, size), notes


def default_metadata(root: Path, split: str) -> Path:
    return root.parent.parent / "metadata" / "OpenImages" / split


@register_dataset("openimages")
def build_openimages(cfg: Any) -> AnnotatedImages:
    root = dataset_root(cfg, HINT)
    split = str(cfg.get("split", "test"))
    if split not in ("train", "val", "test") and not cfg.get("metadata"):
        raise ConfigError(f"dataset.split={split!r} is unknown for openimages; use val or test (or set dataset.metadata)")
    meta = Path(str(cfg.metadata)).expanduser().resolve() if cfg.get("metadata") else default_metadata(root, split)
    meta_hint = "/path/to/wsolevaluation/metadata/OpenImages/<split>"
    if not meta.is_dir():
        raise DatasetLayoutError(f"dataset={cfg.name}: metadata folder {meta} not found; set dataset.metadata={meta_hint}")
    ids = read_lines(meta / "image_ids.txt", "image_ids.txt", cfg, meta_hint)
    labels: dict[str, int] = {}
    path = meta / "class_labels.txt"
    for number, line in enumerate(read_lines(path, "class_labels.txt", cfg, meta_hint), 1):
        image, label = _split_csv(line, 2, path, number, cfg)
        if not label.lstrip("-").isdigit():
            raise DatasetLayoutError(f"dataset={cfg.name}: {path}:{number}: class label {label!r} is not a whole number")
        labels[image] = int(label)
    masks: dict[str, list[str]] = defaultdict(list)
    ignores: dict[str, str] = {}
    path = meta / "localization.txt"
    for number, line in enumerate(read_lines(path, "localization.txt", cfg, meta_hint), 1):
        image, mask, ignore = _split_csv(line, 3, path, number, cfg)
        if not mask:
            raise DatasetLayoutError(f"dataset={cfg.name}: {path}:{number}: no mask path in {line!r} (expected image,mask.png,ignore.png)")
        masks[image].append(mask)
        if ignore:
            ignores.setdefault(image, ignore)
    class_names = [f"class_{i}" for i in range(N_CLASSES)]
    entries, rejected = [], []
    for image in first_n(ids, cfg):
        checked = _check_image(root, image, labels.get(image), masks.get(image, []), ignores.get(image))
        if isinstance(checked, str):
            rejected.append((image, checked))
            continue
        gt, notes = checked
        class_names[gt.label] = Path(image).parent.name or class_names[gt.label]
        entries.append(ImageEntry(
            image_id=image, path=root / image, labels=(gt.label,), masks=gt, ignore=gt.ignore, notes="; ".join(notes), size_hint=gt.size,
        ))
    return AnnotatedImages(cfg.name, entries, class_names, rejected)
