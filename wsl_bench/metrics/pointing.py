"""Pointing game: Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016,
as TorchRay re-runs it (Fong et al. 2019). The point is the map's maximum at original image
size; it is a hit when a ground-truth pixel of the class lies strictly closer than `tolerance`
pixels (Euclidean). Accuracy is the mean over classes of hits / (hits + misses)."""

from __future__ import annotations

import numpy as np
import torch

from .maps import OK, argmax_points, map_status


def distance_to_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Euclidean distance from integer pixels (x, y) [N, 2] to the nearest pixel of the union of
    inclusive boxes [M, 4] -> [N] (0 inside a box, inf with no box)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.full(len(points), np.inf)
    dx = np.maximum(np.maximum(boxes[None, :, 0] - points[:, None, 0], 0.0), points[:, None, 0] - boxes[None, :, 2])
    dy = np.maximum(np.maximum(boxes[None, :, 1] - points[:, None, 1], 0.0), points[:, None, 1] - boxes[None, :, 3])
    return np.sqrt(dx**2 + dy**2).min(axis=1)


def distance_to_mask(point: tuple[int, int], mask: np.ndarray, tolerance: float) -> float:
    """Distance from pixel (x, y) to the nearest True pixel of mask [H, W], searched within the
    tolerance window only (inf when none lies within it)."""
    x, y = int(point[0]), int(point[1])
    r = int(np.ceil(tolerance))
    y0, y1, x0, x1 = max(0, y - r), min(mask.shape[0], y + r + 1), max(0, x - r), min(mask.shape[1], x + r + 1)
    ys, xs = np.nonzero(mask[y0:y1, x0:x1])
    if len(ys) == 0:
        return float("inf")
    return float(np.sqrt((ys + y0 - y) ** 2 + (xs + x0 - x) ** 2).min())


def pointing_hit(
    saliency: np.ndarray | torch.Tensor, gt_mask: np.ndarray | torch.Tensor, tolerance: float = 15
) -> bool:
    """True when the map's maximum lies strictly closer than `tolerance` px to a True pixel of
    gt_mask (same size as the map). A map that cannot be scored (all zero, constant,
    non-finite) is a miss."""
    maps = torch.as_tensor(np.asarray(saliency) if not isinstance(saliency, torch.Tensor) else saliency).float()[None]
    mask = np.asarray(gt_mask.cpu() if isinstance(gt_mask, torch.Tensor) else gt_mask, dtype=bool)
    if maps.shape[1:] != mask.shape:
        raise ValueError(f"saliency {tuple(maps.shape[1:])} and gt_mask {mask.shape} differ in size")
    if map_status(maps, normalize="minmax")[0] != OK:
        return False
    point = argmax_points(maps)[0].tolist()
    return distance_to_mask(point, mask, tolerance) < tolerance
