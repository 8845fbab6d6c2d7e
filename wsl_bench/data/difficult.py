"""The "difficult" pointing-game subset of Zhang et al., "Top-down Neural Attention by Excitation
Backprop" (ECCV 2016), Sec. 5.1: an (image, class) pair is difficult when the total area of the
class's boxes is under 1/4 of the image and at least one other class is present in the image.

"Total area" is the area the class's boxes cover (their union, in inclusive pixels) by default;
`area="sum"` adds the boxes' areas instead (overlaps counted twice). The subset can also be read
from a flag file (`dataset.difficult_flags=...`): TorchRay's published lists
(`pointing_game_ebp_voc07_difficult.txt`, `pointing_game_ebp_coco_difficult.txt`, read from the
given path or, with `dataset.difficult_flags=torchray`, from an installed torchray package)."""

from __future__ import annotations

import importlib.util
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import DatasetLayoutError

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


TORCHRAY_FLAG_FILES = {20: "pointing_game_ebp_voc07_difficult.txt", 80: "pointing_game_ebp_coco_difficult.txt"}


def torchray_flag_file(n_classes: int, dataset: str) -> Path:
    """TorchRay's flag file for a VOC (20 classes) or COCO (80) dataset, from the installed
    torchray package (located without importing it)."""
    name = TORCHRAY_FLAG_FILES.get(n_classes)
    spec = importlib.util.find_spec("torchray")
    if name is None or spec is None or not spec.submodule_search_locations:
        what = f"{name} from an installed torchray package" if name else f"a TorchRay flag file for {n_classes} classes"
        raise DatasetLayoutError(
            f"dataset={dataset}: dataset.difficult_flags=torchray needs {what} (pip install --no-deps torchray); "
            "or give the file's path, or null to compute the subset"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "benchmark" / name


def read_difficult_flags(path: str | Path, class_names: list[str], dataset: str) -> dict[str, set[int]]:
    """A flag file, one image per line, in either layout (separated by spaces, tabs or a comma;
    `#` comments): `image_id class` pairs (class by name or index), or TorchRay's
    `image_name flag_0 ... flag_{K-1}` rows of 0/1 per class. `torchray` reads TorchRay's file
    from an installed torchray package. Returns {image_id: {class index}}."""
    if str(path) == "torchray":
        path = torchray_flag_file(len(class_names), dataset)
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetLayoutError(
            f"dataset={dataset}: difficult flag file {path.resolve()} not found; "
            "set dataset.difficult_flags=/path/to/flags.txt or null to compute the subset"
        )
    index = {name: i for i, name in enumerate(class_names)}
    flags: dict[str, set[int]] = defaultdict(set)
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].replace(",", " ").split()
        if not line:
            continue
        if len(line) == len(class_names) + 1 and set(line[1:]) <= {"0", "1"}:  # TorchRay's per-class row
            flags[line[0]].update(i for i, flag in enumerate(line[1:]) if flag == "1")
            continue
        if len(line) != 2:
            raise DatasetLayoutError(
                f"dataset={dataset}: {path}:{number}: expected 'image_id class' or 'image_id' and {len(class_names)} 0/1 flags, got {' '.join(line)[:80]!r}"
            )
        image_id, cls = line
        if cls in index:
            flags[image_id].add(index[cls])
        elif cls.isdigit() and int(cls) < len(class_names):
            flags[image_id].add(int(cls))
        else:
            raise DatasetLayoutError(f"dataset={dataset}: {path}:{number}: unknown class {cls!r}")
    return dict(flags)
