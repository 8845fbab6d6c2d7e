"""The "difficult" pointing-game subset of Zhang et al., "Top-down Neural Attention by Excitation
Backprop" (ECCV 2016), Sec. 5.1: an (image, class) pair is difficult when the total area of the
class's boxes is under 1/4 of the image and at least one other class is present in the image.

"Total area" is the area the class's boxes cover (their union, in inclusive pixels) by default;
`area="sum"` adds the boxes' areas instead (overlaps counted twice). The subset can also be read
from a flag file (`dataset.difficult_flags=...`), e.g. the lists TorchRay ships."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import DatasetLayoutError
from .annotations import shown

AREA_RULES = ("union", "sum")


def box_area(boxes: np.ndarray, height: int, width: int, area: str = "union") -> int:
    """Area in pixels of inclusive boxes [N, 4] on an image of height x width."""
    if len(boxes) == 0:
        return 0
    if area == "sum":
        return int(((boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)).sum())
    if area != "union":
        raise ValueError(f"area must be one of {AREA_RULES}, got {area!r}")
    canvas = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in np.clip(boxes, 0, [width - 1, height - 1, width - 1, height - 1]):
        canvas[y0 : y1 + 1, x0 : x1 + 1] = True
    return int(canvas.sum())


def ebp_difficult_classes(
    boxes: np.ndarray, box_labels: np.ndarray, height: int, width: int, area: str = "union"
) -> tuple[int, ...]:
    """Classes of one image in the EBP difficult subset (sorted)."""
    classes = sorted(set(np.asarray(box_labels).tolist()))
    if len(classes) < 2:  # no other class present: never difficult
        return ()
    quarter = height * width / 4.0
    return tuple(c for c in classes if box_area(boxes[box_labels == c], height, width, area) < quarter)


def read_difficult_flags(path: str | Path, class_names: list[str], dataset: str) -> tuple[dict[str, set[int]], dict[str, str]]:
    """A flag file: one `image_id class` pair per line (class by name or index; separated by
    spaces, tabs or a comma; `#` comments). Returns {image_id: {class index}} and, per image
    with a malformed line, the reason (that image's subset is unknown: it is skipped). A file
    without one readable line is a layout error."""
    path = Path(path).expanduser()
    fix = "set dataset.difficult_flags=/path/to/flags.txt or null to compute the subset"
    if not path.is_file():
        raise DatasetLayoutError(f"dataset={dataset}: difficult flag file {path.resolve()} not found; {fix}")
    index = {name: i for i, name in enumerate(class_names)}
    flags: dict[str, set[int]] = defaultdict(set)
    bad: dict[str, str] = {}
    text = path.read_bytes().decode("utf-8", errors="replace")
    for number, line in enumerate(text.split("\n"), 1):
        parts = line.split("#", 1)[0].replace(",", " ").split()
        if not parts:
            continue
        where = f"difficult flag file {path.name} line {number}"
        if len(parts) != 2:
            bad.setdefault(parts[0], f"{where}: expected 'image_id class', got {shown(' '.join(parts), 60)}")
            continue
        image_id, cls = parts
        if cls in index:
            flags[image_id].add(index[cls])
        elif cls.isascii() and cls.isdigit() and int(cls) < len(class_names):
            flags[image_id].add(int(cls))
        else:
            bad.setdefault(image_id, f"{where}: unknown class {shown(cls)}")
    if not flags and bad:
        raise DatasetLayoutError(f"dataset={dataset}: difficult flag file {path} has no readable line ({next(iter(bad.values()))}); {fix}")
    return dict(flags), bad
