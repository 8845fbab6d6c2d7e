"""Dataset registry and the torch Dataset that decodes entries on the fly."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from torch.utils.data import Dataset

from ..errors import ConfigError, DatasetLayoutError
from ..registry import Registry
from .annotations import AnnotationError, join_notes, read_text, text_lines
from .decode import DecodeOptions, Decoded, ImageDecodeError, decode_rgb
from .difficult import ebp_difficult_classes
from .sample import Fixed, ImageEntry, Sample, View
from .subsets import select_subset
from .transforms import ProtocolTransform, on_input_grid


@dataclass
class AnnotatedImages:
    """A dataset split with all annotations parsed: what a dataset builder returns."""

    name: str
    entries: list[ImageEntry]
    class_names: list[str]
    # entries dropped while parsing annotations, as (image_id, reason): they become skipped rows
    rejected: list[tuple[str, str]]


DatasetBuilder = Callable[[Any], AnnotatedImages]
DATASETS: Registry[DatasetBuilder] = Registry("dataset", "wsl_bench.data.datasets")


def register_dataset(name: str) -> Callable[[DatasetBuilder], DatasetBuilder]:
    """Register `builder(cfg) -> AnnotatedImages` under `name` (the `dataset.name` config value).
    Builders check the on-disk layout first and raise DatasetLayoutError naming what is missing."""
    return DATASETS.decorator(name)


def build_dataset(cfg: Any) -> AnnotatedImages:
    """Parse the annotations of the dataset described by `cfg` (the `dataset` config node),
    restricted to `dataset.subset` when set (wsl_bench.data.subsets). Configuration errors,
    layout errors and a split where no image can be scored stop here, before any compute, with
    one line."""
    check_limit(cfg)
    options = DecodeOptions.from_config(cfg)
    data = DATASETS.get(cfg.name)(cfg)
    for entry in data.entries:
        entry.decode = options
    if not data.entries and data.rejected:
        reasons = Counter(reason for _, reason in data.rejected)
        image_id, reason = data.rejected[0]
        raise DatasetLayoutError(
            f"dataset={cfg.name}: none of the {len(data.rejected)} listed image(s) can be scored "
            f"({len(reasons)} distinct reason(s); first: {image_id}: {reason})"
        )
    return select_subset(data, cfg.get("subset"))


def check_limit(cfg: Any) -> None:
    """`dataset.limit` is null or a positive integer."""
    limit = cfg.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"dataset.limit={limit!r} must be a positive number of images, or null for all")


def config_int(cfg: Any, key: str, default: int) -> int:
    """An integer option of the dataset node (e.g. `dataset.box_offset`); anything else is a ConfigError."""
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"dataset.{key}={value!r} must be an integer")
    return value


def first_n(items: list, cfg: Any) -> list:
    """The first `dataset.limit` items of a split (all when unset): builders apply it to the
    image list before parsing annotations, so a quick run on a large split stays quick."""
    limit = cfg.get("limit")
    return items[:limit] if limit else items


def dataset_root(cfg: Any, hint: str) -> Path:
    """`dataset.root` as an absolute path; a missing folder is a layout error naming the override."""
    raw = cfg.get("root")
    if not raw:
        raise DatasetLayoutError(f"dataset={cfg.name}: dataset.root is not set; set dataset.root={hint}")
    root = Path(str(raw)).expanduser().resolve()
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset={cfg.name}: folder {root} not found; set dataset.root={hint}")
    return root


def require(path: Path, what: str, cfg: Any, hint: str) -> Path:
    """`path` must exist (file or folder), else a one-line layout error naming it and the fix."""
    if not path.exists():
        raise DatasetLayoutError(f"dataset={cfg.name}: {what} not found at {path}; set dataset.root={hint}")
    return path


def read_lines(path: Path, what: str, cfg: Any, hint: str) -> list[str]:
    """Non-empty, stripped, non-comment lines of a required text file; missing or empty is a
    layout error."""
    lines = [line for _, line in text_lines(read_text(path, what, cfg, hint))]
    if not lines:
        raise DatasetLayoutError(f"dataset={cfg.name}: {what} {path} is empty; set dataset.root={hint}")
    return lines


class DecodedImages(Dataset):
    """Decodes and transforms entries; a bad file becomes a skipped Sample, never an exception.

    The ground truth stays on the original image's pixel grid, whatever resolution the file was
    decoded at: the network input's view is mapped back onto it (decode.py, `max_pixels`)."""

    def __init__(self, entries: list[ImageEntry], transform: ProtocolTransform) -> None:
        self.entries = entries
        self.transform = transform

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Sample:
        entry = self.entries[index]
        try:
            return self._prepare(entry)
        except Exception as exc:  # noqa: BLE001 - in a DataLoader worker an exception would end the run
            return Sample(entry, None, (0, 0), skip_reason=f"could not prepare the image ({type(exc).__name__}: {str(exc)[:120]})")

    def _prepare(self, entry: ImageEntry) -> Sample:
        try:
            if entry.render is not None:
                rgb, note = entry.render()
                decoded = Decoded(rgb, note, tuple(rgb.shape[-2:]))
            else:
                decoded = decode_rgb(entry.path, entry.decode)
        except ImageDecodeError as exc:
            return Sample(entry, None, (0, 0), skip_reason=str(exc))
        height, width = decoded.size
        notes = [entry.notes, decoded.note, size_hint_note(entry, decoded)]
        if entry.masks is not None and hasattr(entry.masks, "rasterize"):
            try:
                rasterized = entry.masks.rasterize(height, width, entry.boxes)
            except AnnotationError as exc:
                return Sample(entry, None, (height, width), skip_reason=str(exc))
            ignore = Fixed(rasterized.ignore) if rasterized.ignore is not None else entry.ignore
            entry = replace(entry, masks=Fixed(rasterized.masks), ignore=ignore)
            notes.append(rasterized.note)
        if len(entry.boxes):
            clipped = clip_boxes(entry, height, width)
            if clipped is None:
                return Sample(entry, None, (height, width), skip_reason=outside_reason(entry.boxes, height, width))
            entry, box_note = clipped
            notes.append(box_note)
        if entry.difficult_rule is not None:
            entry = replace(entry, difficult_classes=ebp_difficult_classes(entry.boxes, entry.box_labels, height, width, entry.difficult_rule))
        try:
            image, view = self.transform(decoded.rgb)
        except Exception as exc:  # noqa: BLE001 - in a DataLoader worker an exception would end the run
            return Sample(entry, None, (height, width), skip_reason=f"could not transform the image ({type(exc).__name__}: {str(exc)[:120]})")
        decoded_h, decoded_w = decoded.rgb.shape[-2:]
        if (decoded_h, decoded_w) != (height, width):  # decoded reduced: the view in original pixels
            sx, sy = width / decoded_w, height / decoded_h
            view = View(view.x0 * sx, view.y0 * sy, view.x1 * sx, view.y1 * sy)
        sample = Sample(entry, image, (height, width), view=view, notes=join_notes(*notes), source_size=(height, width))
        if self.transform.evaluate_at == "input":
            sample = on_input_grid(sample, self.transform.gt_to_grid)
        return sample


def size_hint_note(entry: ImageEntry, decoded: Decoded) -> str:
    """A note when the annotation's image size differs from the decoded image ("" otherwise)."""
    height, width = decoded.size
    if entry.size_hint is None or tuple(entry.size_hint) == (height, width):
        return ""
    note = f"annotation size {entry.size_hint[1]}x{entry.size_hint[0]} differs from image {width}x{height}"
    if tuple(entry.size_hint) == (width, height) and "EXIF orientation" in decoded.note:
        note += " (it matches the stored pixels: set dataset.exif_orientation=ignore if the boxes were drawn on them)"
    return note


def outside_reason(boxes: np.ndarray, height: int, width: int) -> str:
    return f"all {len(boxes)} ground-truth box(es) lie outside the {width}x{height} image (first: {boxes[0].tolist()})"


def clip_boxes(entry: ImageEntry, height: int, width: int) -> tuple[ImageEntry, str] | None:
    """Clip the entry's inclusive boxes to the image (counted in the note). Boxes wholly outside are dropped (and a
    class left with no box leaves the labels); None if no box is left. Returns the repaired entry
    and a note counting the repairs ("" when nothing changed)."""
    boxes = entry.boxes
    inside = (boxes[:, 2] >= 0) & (boxes[:, 3] >= 0) & (boxes[:, 0] <= width - 1) & (boxes[:, 1] <= height - 1)
    if not inside.any():
        return None
    clipped = boxes.copy()
    clipped[:, [0, 2]] = np.clip(clipped[:, [0, 2]], 0, width - 1)
    clipped[:, [1, 3]] = np.clip(clipped[:, [1, 3]], 0, height - 1)
    # A corner on the image's far edge (x1 == width) is the edge-coordinate convention of some
    # annotation tools, not an error: clipped without a note.
    beyond = (boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > width) | (boxes[:, 3] > height)
    n_clipped = int((beyond & inside).sum())
    n_dropped = int((~inside).sum())
    if not n_clipped and not n_dropped:
        return replace(entry, boxes=clipped), ""
    notes = []
    if n_clipped:
        notes.append(f"clipped {n_clipped} box(es) to the image")
    changes: dict[str, Any] = {"boxes": clipped[inside]}
    if n_dropped:
        notes.append(f"dropped {n_dropped} box(es) outside the image")
        box_labels = entry.box_labels[inside]
        lost = set(entry.box_labels[~inside].tolist()) - set(box_labels.tolist())
        changes.update(
            box_labels=box_labels,
            box_difficult=entry.box_difficult[inside] if len(entry.box_difficult) else entry.box_difficult,
            labels=tuple(c for c in entry.labels if c not in lost),
            difficult_classes=tuple(c for c in entry.difficult_classes if c not in lost),
        )
    return replace(entry, **changes), "; ".join(notes)
