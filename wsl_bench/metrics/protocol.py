"""Scoring maps at original image size against one image's ground truth, batched over maps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .localization import box_iou_matrix, largest_component_boxes
from .maps import OK, argmax_points, binarize, map_status
from .pointing import distance_to_boxes


@dataclass(frozen=True)
class LocalizationProtocol:
    """Grad-CAM paper defaults: 15% of max, >=, 8-connectivity, IoU >= 0.5."""

    threshold: float = 0.15
    comparison: str = "ge"
    normalize: str = "max"
    connectivity: int = 8
    iou: float = 0.5


@dataclass(frozen=True)
class PointingProtocol:
    tolerance: float = 15.0


@dataclass
class MapScores:
    """Per map: status, largest-component box, best IoU with the target class's boxes (NaN
    without such boxes), loc correctness, peak point (x, y) and pointing hit."""

    status: list[str]
    boxes: np.ndarray
    iou: np.ndarray
    loc_correct: np.ndarray
    points: np.ndarray
    point_hit: np.ndarray


def score_maps(
    maps: torch.Tensor,
    class_boxes: list[np.ndarray],
    loc: LocalizationProtocol,
    pointing: PointingProtocol,
) -> MapScores:
    """maps [N, H, W] at original image size; class_boxes[i]: GT boxes [M_i, 4] of map i's class.
    Maps that cannot be scored get no box and a miss; their status says why."""
    status = map_status(maps, loc.normalize)
    ok = np.array([s == OK for s in status])
    masks = binarize(torch.nan_to_num(maps), loc.threshold, loc.comparison, loc.normalize)
    masks[torch.from_numpy(~ok).to(masks.device)] = False
    boxes = largest_component_boxes(masks, loc.connectivity)
    points = argmax_points(torch.nan_to_num(maps)).cpu().numpy()
    n = len(status)
    iou = np.full(n, np.nan)
    distance = np.full(n, np.inf)
    for i, gt in enumerate(class_boxes):
        if len(gt):
            iou[i] = box_iou_matrix(boxes[i], gt).max()
            distance[i] = distance_to_boxes(points[i], gt)[0]
    loc_correct = np.nan_to_num(iou, nan=0.0) >= loc.iou
    point_hit = ok & (distance < pointing.tolerance)
    return MapScores(status, boxes, iou, loc_correct, points, point_hit)
