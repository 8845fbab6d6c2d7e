"""Energy-based pointing game: Wang et al., "Score-CAM", CVPR-W 2020, Sec. 5.2 (Table 2): the
share of the map's energy that falls inside the ground-truth box(es) of the class,
sum(L inside) / (sum(L inside) + sum(L outside)).

Score-CAM's maps are non-negative; with normalize="minmax" (default) any map is first shifted and
scaled to [0, 1], so signed maps are comparable and a positive scale changes nothing.
normalize="none" uses the map as is (negative values clamped to 0). Several boxes of the class
count as their union. A map that cannot be scored (non-finite, constant, no positive value)
scores 0."""

from __future__ import annotations

import numpy as np
import torch

from .maps import OK, map_status


def union_box_masks(class_boxes: list[np.ndarray], height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """[N, H, W] bool: the union of each map's inclusive boxes."""
    masks = torch.zeros(len(class_boxes), height, width, dtype=torch.bool, device=device)
    for i, boxes in enumerate(class_boxes):
        for x0, y0, x1, y1 in np.asarray(boxes).reshape(-1, 4).tolist():
            masks[i, y0 : y1 + 1, x0 : x1 + 1] = True
    return masks


def energy_in_boxes(
    maps: torch.Tensor, class_boxes: list[np.ndarray], normalize: str = "minmax", status: list[str] | None = None
) -> np.ndarray:
    """maps [N, H, W] at original size, class_boxes[i]: inclusive boxes [M_i, 4] -> [N] share of
    energy inside (NaN where the class has no box, 0 for a map that cannot be scored)."""
    if normalize not in ("minmax", "none"):
        raise ValueError(f"energy normalize must be 'minmax' or 'none', got {normalize!r}")
    if status is None:
        status = map_status(maps.float(), "minmax" if normalize == "minmax" else "max")
    flat = torch.nan_to_num(maps.flatten(1).double(), nan=0.0, posinf=0.0, neginf=0.0)
    if normalize == "none":
        flat = flat.clamp_min(0)
    inside = union_box_masks(class_boxes, maps.shape[1], maps.shape[2], maps.device).flatten(1)
    total, total_in = flat.sum(dim=1), (flat * inside).sum(dim=1)
    if normalize == "minmax":  # sums of (L - min): the scale (max - min) cancels in the share
        lo = flat.amin(dim=1)
        total, total_in = total - lo * flat.shape[1], total_in - lo * inside.sum(dim=1)
    share = (total_in / total.clamp_min(torch.finfo(torch.float64).tiny)).cpu().numpy()
    share[np.array([s != OK for s in status])] = 0.0
    share[(total <= 0).cpu().numpy()] = 0.0
    share[np.array([len(np.asarray(b).reshape(-1, 4)) == 0 for b in class_boxes], dtype=bool)] = np.nan
    return share
