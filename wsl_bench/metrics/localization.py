"""Box localization, Grad-CAM protocol (Selvaraju et al., ICCV 2017, Sec. 4.1): binarize the map
at 15% of its max, take the bounding box of the single largest connected segment, and count it
correct when its IoU with a ground-truth box of the class is at least 0.5 (ILSVRC rule).

Boxes are inclusive pixel corners (x0, y0, x1, y1): a box covers (x1 - x0 + 1) x (y1 - y0 + 1)
pixels, the ILSVRC / VOC devkit convention. No box is encoded as (-1, -1, -1, -1).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from .maps import OK, binarize, map_status

NO_BOX = np.array([-1, -1, -1, -1], dtype=np.int64)


def _structure(connectivity: int) -> np.ndarray:
    if connectivity == 8:
        return np.ones((3, 3), dtype=bool)
    if connectivity == 4:
        return ndimage.generate_binary_structure(2, 1)
    raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")


def largest_component_boxes(masks: np.ndarray | torch.Tensor, connectivity: int = 8) -> np.ndarray:
    """Bounding box of the largest connected component of each binary mask [N, H, W] -> [N, 4].

    All masks are labeled in one C call (a 3-D structure that joins pixels only within a slice).
    Ties in size go to the component met first in raster order. Empty masks give NO_BOX."""
    if isinstance(masks, torch.Tensor):
        masks = masks.cpu().numpy()
    masks = np.asarray(masks, dtype=bool)
    n = masks.shape[0]
    boxes = np.tile(NO_BOX, (n, 1))
    if n == 0:
        return boxes
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = _structure(connectivity)
    labels, n_labels = ndimage.label(masks, structure=structure)
    if n_labels == 0:
        return boxes
    sizes = np.bincount(labels.ravel(), minlength=n_labels + 1)[1:]
    objects = ndimage.find_objects(labels)  # per label: (slice_n, slice_y, slice_x)
    slice_of = np.fromiter((obj[0].start for obj in objects), dtype=np.int64, count=n_labels)
    # Labels are numbered in raster order over the stack, so within a slice a stable sort by
    # descending size puts the first-met largest component first.
    order = np.lexsort((-sizes, slice_of))
    first = np.ones(n_labels, dtype=bool)
    first[1:] = slice_of[order][1:] != slice_of[order][:-1]
    for label_index in order[first]:
        _, ys, xs = objects[label_index]
        boxes[slice_of[label_index]] = (xs.start, ys.start, xs.stop - 1, ys.stop - 1)
    return boxes


def largest_component_box(
    saliency: np.ndarray | torch.Tensor,
    threshold: float = 0.15,
    comparison: str = "ge",
    normalize: str = "max",
    connectivity: int = 8,
) -> tuple[int, int, int, int] | None:
    """Inclusive box (x0, y0, x1, y1) around the largest connected segment of the map binarized
    at `threshold` of its max (Grad-CAM protocol), or None for a map that cannot be scored
    (all zero, constant, non-finite, or no positive value)."""
    maps = torch.as_tensor(np.asarray(saliency) if not isinstance(saliency, torch.Tensor) else saliency)
    maps = maps.float()[None]
    if map_status(maps, normalize)[0] != OK:
        return None
    box = largest_component_boxes(binarize(maps, threshold, comparison, normalize), connectivity)[0]
    return None if box[0] < 0 else tuple(int(v) for v in box)


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a [N, 4] with every box in b [M, 4], inclusive-pixel convention
    (+1 on widths and heights) -> [N, M]. Rows of `a` equal to NO_BOX give 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    union = area_a[:, None] + area_b[None, :] - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    iou[a[:, 0] < 0] = 0.0
    return iou


def box_iou(a: tuple | np.ndarray, b: tuple | np.ndarray) -> float:
    """IoU of two inclusive-pixel boxes (x0, y0, x1, y1): a box (0, 0, 9, 9) has area 100."""
    return float(box_iou_matrix(np.asarray(a), np.asarray(b))[0, 0])
