"""Energy-based pointing game: Wang et al., "Score-CAM", CVPR-W 2020, Sec. 5.2 (Table 2): the
share of the map's energy that falls inside the ground-truth box(es) of the class,
sum(L inside) / (sum(L inside) + sum(L outside)).

Score-CAM's maps are non-negative; with normalize="minmax" (default) any map is first shifted and
scaled to [0, 1], so signed maps are comparable and a positive scale changes nothing.
normalize="none" uses the map as is (negative values clamped to 0). Several boxes of the class
count as their union. A map that cannot be scored (non-finite, constant, no positive value)
scores 0.

Unit `energy_pointing`: the maps of ground-truth targets whose class has boxes; the summary is the
mean share, in %."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from .aggregate import MetricData, gt_rows, mean_over_rows, with_values
from .base import ImageTruth, MapChunk, MapMetric, Measured, MetricSettings, Statistic, register_metric
from .maps import NON_POSITIVE, OK, map_status


def union_box_masks(class_boxes: list[np.ndarray], height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """[N, H, W] bool: the union of each map's inclusive boxes."""
    masks = torch.zeros(len(class_boxes), height, width, dtype=torch.bool, device=device)
    for i, boxes in enumerate(class_boxes):
        for x0, y0, x1, y1 in np.asarray(boxes).reshape(-1, 4).tolist():
            masks[i, y0 : y1 + 1, x0 : x1 + 1] = True
    return masks


def energy_shares(maps: torch.Tensor, class_boxes: list[np.ndarray], normalize: str, status: list[str]) -> torch.Tensor:
    """maps [N, H, W] at original size, class_boxes[i]: inclusive boxes [M_i, 4], status[i] its
    map's status -> [N] float64 share of energy inside, on the maps' device without waiting for it
    (NaN where the class has no box, 0 for a map that cannot be scored)."""
    if normalize not in ("minmax", "none"):
        raise ValueError(f"energy normalize must be 'minmax' or 'none', got {normalize!r}")
    flat = maps.flatten(1).double()
    if any(st != OK for st in status):  # non-finite values count as 0 (finite maps: the same values)
        flat = torch.nan_to_num(flat, nan=0.0, posinf=0.0, neginf=0.0)
    if normalize == "none":
        flat = flat.clamp_min(0)
    inside = union_box_masks(class_boxes, maps.shape[1], maps.shape[2], maps.device).flatten(1)
    total, total_in = flat.sum(dim=1), (flat * inside).sum(dim=1)
    if normalize == "minmax":  # sums of (L - min): the scale (max - min) cancels in the share
        lo = flat.amin(dim=1)
        total, total_in = total - lo * flat.shape[1], total_in - lo * inside.sum(dim=1)
    share = total_in / total.clamp_min(torch.finfo(torch.float64).tiny)
    failed = torch.tensor([st != OK for st in status], device=maps.device) | (total <= 0)
    share = torch.where(failed, torch.zeros((), dtype=share.dtype, device=share.device), share)
    no_box = torch.tensor([len(np.asarray(b).reshape(-1, 4)) == 0 for b in class_boxes], dtype=torch.bool, device=maps.device)
    return torch.where(no_box, torch.full((), float("nan"), dtype=share.dtype, device=share.device), share)


def energy_in_boxes(
    maps: torch.Tensor, class_boxes: list[np.ndarray], normalize: str = "minmax", status: list[str] | None = None
) -> np.ndarray:
    """maps [N, H, W] at original size, class_boxes[i]: inclusive boxes [M_i, 4] -> [N] share of
    energy inside (NaN where the class has no box, 0 for a map that cannot be scored)."""
    if status is None:
        status = map_status(maps.float(), "minmax" if normalize == "minmax" else "max")
    return energy_shares(maps, class_boxes, normalize, status).cpu().numpy()


@dataclass(frozen=True)
class EnergyPointingSettings(MetricSettings):
    """normalize: `minmax` scales each map to [0, 1] first; `none` uses it as is (negatives clamped)."""

    normalize: Literal["minmax", "none"] = "minmax"


@register_metric("energy_pointing")
class EnergyPointing(MapMetric):
    Settings = EnergyPointingSettings
    columns = (("energy", pa.float64()),)  # share of map energy inside the class's boxes (gt rows)

    def _chosen(self, chunk: MapChunk, truth: ImageTruth) -> tuple[list[int], list[np.ndarray]]:
        """The maps scored (of ground-truth targets whose class has boxes) and every map's class boxes."""
        class_boxes = [truth.boxes_of(int(c)) for c in chunk.classes]
        return [i for i in range(len(chunk)) if chunk.is_gt[i] and len(class_boxes[i])], class_boxes

    def measure(self, chunk: MapChunk, truth: ImageTruth) -> Measured:
        s: EnergyPointingSettings = self.settings
        chosen, class_boxes = self._chosen(chunk, truth)
        energies = torch.full((len(chunk),), float("nan"), dtype=torch.float64, device=chunk.maps.device)
        if chosen:
            # non-positive maps are not degenerate for the energy (with normalize=none their share is 0)
            own = [OK if chunk.status[i] == NON_POSITIVE else chunk.status[i] for i in chosen]
            maps = chunk.maps[chosen]
            if truth.valid is not None and s.normalize == "none":  # no energy outside a crop (minmax: min - min = 0 there)
                maps = maps * truth.valid.to(maps.device)
            energies[chosen] = energy_shares(maps, [class_boxes[i] for i in chosen], s.normalize, own)
        return {"energy": energies}

    def finish(self, measured: Measured, chunk: MapChunk, truth: ImageTruth) -> dict[str, Sequence[Any]]:
        chosen = set(self._chosen(chunk, truth)[0])
        return {"energy": [float(v) if i in chosen else None for i, v in enumerate(measured["energy"].tolist())]}

    def statistics(self) -> list[Statistic]:
        return [Statistic("energy_pointing", self._mean_share, lower_is_better=False)]

    @staticmethod
    def _mean_share(rows: pd.DataFrame, images: pd.Index) -> MetricData | None:
        picked = with_values(gt_rows(rows), "energy")
        return mean_over_rows(picked, picked["energy"].astype(float), images, 100.0)
