"""Box localization, Grad-CAM protocol (Selvaraju et al., ICCV 2017, Sec. 4.1): binarize the map
at 15% of its max, take the bounding box of the single largest connected segment, and count it
correct when its IoU with a ground-truth box of the class is at least 0.5 (ILSVRC rule).

Boxes are inclusive pixel corners (x0, y0, x1, y1): a box covers (x1 - x0 + 1) x (y1 - y0 + 1)
pixels, the ILSVRC / VOC devkit convention. No box is encoded as (-1, -1, -1, -1).

Unit `localization`: the box of every map, its best IoU with the target class's boxes, and
top-1 / top-5 / GT-known localization error (Grad-CAM Table 1): an image is correctly localized
at top-k when one of its top-k predictions is a ground-truth class whose map's box has IoU >= 0.5
with a box of that class; GT-known error scores every (image, GT class) map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from scipy import ndimage

from ..config import setting
from .aggregate import MetricData, gt_rows, mean_over_rows, per_image_any
from .base import ImageTruth, MapChunk, MapMetric, Measured, MetricSettings, Statistic, register_metric
from .maps import NON_POSITIVE, NONFINITE, OK, binarize, map_status

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
    # Labels are numbered in raster order over the stack: slice k holds the labels up to the
    # running maximum of the slices' highest labels, and within a slice a stable sort by
    # descending size puts the first-met largest component first.
    highest = np.maximum.accumulate(labels.reshape(n, -1).max(axis=1))
    slice_of = np.searchsorted(highest, np.arange(1, n_labels + 1), side="left")
    order = np.lexsort((-sizes, slice_of))
    first = np.ones(n_labels, dtype=bool)
    first[1:] = slice_of[order][1:] != slice_of[order][:-1]
    best = np.zeros(n, dtype=labels.dtype)
    best[slice_of[order[first]]] = order[first] + 1
    has = best > 0
    hit = labels == best[:, None, None]  # each slice's chosen component (background where none)
    rows, cols = hit.any(axis=2), hit.any(axis=1)
    height, width = masks.shape[1:]
    found = np.stack([cols.argmax(axis=1), rows.argmax(axis=1), width - 1 - cols[:, ::-1].argmax(axis=1), height - 1 - rows[:, ::-1].argmax(axis=1)], axis=1)
    boxes[has] = found[has]
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


@dataclass(frozen=True)
class LocalizationSettings(MetricSettings):
    """Grad-CAM paper defaults: cut at 15% of the max (`normalize=minmax`: of min + (max - min)),
    value >= cut (`gt`: >), 8-connected segments, correct at IoU >= 0.5."""

    threshold: float = setting(0.15, ge=0, le=1)
    comparison: Literal["ge", "gt"] = "ge"
    normalize: Literal["max", "minmax"] = "max"
    connectivity: Literal[4, 8] = 8
    iou: float = setting(0.5, gt=0, le=1)


def predicted_rows(rows: pd.DataFrame, rank: int) -> pd.DataFrame:
    """Rows of maps explaining one of the top-`rank` predictions."""
    return rows[(rows["pred_rank"] >= 1) & (rows["pred_rank"] <= rank)]


@register_metric("localization")
class Localization(MapMetric):
    Settings = LocalizationSettings
    columns = (
        ("pred_box", pa.list_(pa.int64())),  # [x0, y0, x1, y1] of the largest segment, or null
        ("iou", pa.float64()),  # best IoU with the target class's boxes; null when the class has none
        ("loc_correct", pa.bool_()),  # iou >= the IoU threshold
    )

    def measure(self, chunk: MapChunk, truth: ImageTruth) -> Measured:
        s: LocalizationSettings = self.settings
        scorable = [st == OK or (st == NON_POSITIVE and s.normalize == "minmax") for st in chunk.status]
        maps = chunk.maps if NONFINITE not in chunk.status else torch.nan_to_num(chunk.maps)  # finite maps: the same values
        masks = binarize(maps, s.threshold, s.comparison, s.normalize)
        masks &= torch.tensor(scorable, device=masks.device)[:, None, None]
        if truth.valid is not None:  # outside a crop the map has no value (to_original_size fills its minimum)
            masks &= truth.valid.to(masks.device)
        return {"masks": masks}

    def finish(self, measured: Measured, chunk: MapChunk, truth: ImageTruth) -> dict[str, Sequence[Any]]:
        s: LocalizationSettings = self.settings
        boxes = largest_component_boxes(measured["masks"], s.connectivity)
        iou = [box_iou_matrix(box, gt).max() if len(gt := truth.boxes_of(int(c))) else np.nan for box, c in zip(boxes, chunk.classes)]
        return {
            "pred_box": [None if box[0] < 0 else box.tolist() for box in boxes],
            "iou": [None if np.isnan(v) else float(v) for v in iou],
            "loc_correct": [bool(np.nan_to_num(v, nan=0.0) >= s.iou) for v in iou],
        }

    def statistics(self) -> list[Statistic]:
        return [
            Statistic("top1_loc_err", self._topk_error(1), lower_is_better=True),
            Statistic("top5_loc_err", self._topk_error(5), lower_is_better=True),
            Statistic("gtk_loc_err", self._gt_known_error, lower_is_better=True),
        ]

    def _topk_error(self, rank: int):
        def build(rows: pd.DataFrame, images: pd.Index) -> MetricData | None:
            if self.run.topk < rank:  # the run made fewer predicted maps
                return None
            pred = predicted_rows(rows, rank)
            per = per_image_any(pred, pred["class_in_gt"].astype(bool) & pred["loc_correct"].astype(bool))
            return mean_over_rows(per, per["flag"], images, -100.0, 100.0)

        return build

    @staticmethod
    def _gt_known_error(rows: pd.DataFrame, images: pd.Index) -> MetricData | None:
        gt = gt_rows(rows)
        return mean_over_rows(gt, gt["loc_correct"].astype(float), images, -100.0, 100.0)
