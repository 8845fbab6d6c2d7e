"""Dataset registry and the torch Dataset that decodes entries on the fly."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from torch.utils.data import Dataset

from ..errors import DatasetLayoutError
from ..registry import Registry
from .decode import ImageDecodeError, decode_rgb
from .sample import ImageEntry, Sample
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
    restricted to `dataset.subset` when set (wsl_bench.data.subsets)."""
    return select_subset(DATASETS.get(cfg.name)(cfg), cfg.get("subset"))


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
    """Non-empty, stripped lines of a required text file; missing or empty is a layout error."""
    require(path, what, cfg, hint)
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        raise DatasetLayoutError(f"dataset={cfg.name}: {what} {path} is empty; set dataset.root={hint}")
    return lines


class DecodedImages(Dataset):
    """Decodes and transforms entries; a bad file becomes a skipped Sample, never an exception."""

    def __init__(self, entries: list[ImageEntry], transform: ProtocolTransform) -> None:
        self.entries = entries
        self.transform = transform

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Sample:
        entry = self.entries[index]
        try:
            rgb, note = entry.render() if entry.render is not None else decode_rgb(entry.path)
        except ImageDecodeError as exc:
            return Sample(entry, None, (0, 0), skip_reason=str(exc))
        height, width = rgb.shape[-2:]
        notes = [n for n in (entry.notes, note) if n]
        if entry.size_hint is not None and tuple(entry.size_hint) != (height, width):
            notes.append(
                f"annotation size {entry.size_hint[1]}x{entry.size_hint[0]} differs from image {width}x{height}"
            )
        if len(entry.boxes):
            clipped = clip_boxes(entry, height, width)
            if clipped is None:
                return Sample(entry, None, (height, width), skip_reason="all ground-truth boxes lie outside the image")
            entry, box_note = clipped
            if box_note:
                notes.append(box_note)
        try:
            image, view = self.transform(rgb)
        except Exception as exc:  # noqa: BLE001 - in a DataLoader worker an exception would end the run
            return Sample(entry, None, (height, width), skip_reason=f"could not transform the image ({type(exc).__name__}: {str(exc)[:120]})")
        sample = Sample(entry, image, (height, width), view=view, notes="; ".join(notes), source_size=(height, width))
        if self.transform.evaluate_at == "input":
            sample = on_input_grid(sample, self.transform.gt_to_grid)
        return sample


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
