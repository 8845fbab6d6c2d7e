"""Pointing game: Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016,
as TorchRay re-runs it (Fong et al. 2019). The point is the map's maximum at original image
size (or the method's own point where it has one: TorchRay's center baseline); it is a hit
when a ground-truth pixel of the class lies strictly closer than `tolerance` pixels (Euclidean).
Accuracy is the mean over classes of hits / (hits + misses).

Unit `pointing`: every map of a class present in the image is scored; the summary takes the maps
of ground-truth targets, over all of them (`pointing_acc`) and over the "difficult" subset
(`pointing_acc_difficult`, Zhang et al. Sec. 5.1: see wsl_bench.data.difficult)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from ..config import setting
from ..data.sample import ImageEntry
from ..errors import ConfigError
from .aggregate import MetricData, gt_rows, mean_over_classes
from .base import ImageTruth, MapChunk, MapMetric, Measured, MetricSettings, Statistic, register_metric
from .maps import NO_PEAK, NONFINITE, OK, argmax_points, map_status


def distance_to_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Euclidean distance from points (x, y) [N, 2] in pixel coordinates to the nearest pixel of
    the union of inclusive boxes [M, 4] -> [N] (0 on a box pixel, inf with no box)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.full(len(points), np.inf)
    dx = np.maximum(np.maximum(boxes[None, :, 0] - points[:, None, 0], 0.0), points[:, None, 0] - boxes[None, :, 2])
    dy = np.maximum(np.maximum(boxes[None, :, 1] - points[:, None, 1], 0.0), points[:, None, 1] - boxes[None, :, 3])
    return np.sqrt(dx**2 + dy**2).min(axis=1)


def distance_to_mask(point: Sequence[float], mask: np.ndarray, tolerance: float) -> float:
    """Distance from point (x, y) in pixel coordinates to the nearest True pixel of mask [H, W],
    searched within the tolerance window only (inf when none lies within it)."""
    x, y = float(point[0]), float(point[1])
    y0, y1 = max(0, int(np.floor(y - tolerance))), min(mask.shape[0], int(np.ceil(y + tolerance)) + 1)
    x0, x1 = max(0, int(np.floor(x - tolerance))), min(mask.shape[1], int(np.ceil(x + tolerance)) + 1)
    if y0 >= y1 or x0 >= x1:
        return float("inf")
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


@dataclass(frozen=True)
class PointingSettings(MetricSettings):
    """Hit when a GT pixel of the class lies strictly closer than `tolerance` px to the map's
    maximum (first in raster order on ties), or to the method's own point where it has one
    (TorchRay's center baseline: (W / 2, H / 2)). With box annotations (VOC), a class whose boxes are
    all "difficult" is skipped (`skip_all_difficult`); mask annotations (COCO) are used when
    present. `class_average`: `present` averages the accuracies of the classes scored (in the
    images, or the bootstrap resample); `all` averages over every class of the dataset, a class
    never scored counting as 0 (TorchRay's PointingGame.accuracy). `no_peak`: a map without a
    peak (all zero, constant, non-finite) is a `miss`, or scored at its `argmax` like any map, as
    TorchRay's benchmark scores it: the first pixel (0, 0) of a flat map, the first NaN of a map
    with NaNs (torch.argmax ranks NaN highest)."""

    tolerance: float = setting(15.0, gt=0)
    skip_all_difficult: bool = True
    class_average: Literal["present", "all"] = "present"
    no_peak: Literal["miss", "argmax"] = "miss"


def pointing_region(entry: ImageEntry, target: int, settings: PointingSettings, masks: dict[int, np.ndarray] | None) -> tuple[str, np.ndarray] | None:
    """The ground-truth region the pointing game checks for class `target`: ("mask", [H, W]) with
    mask annotations, ("boxes", [M, 4]) the union of its boxes otherwise; None when the class is
    not scored (not in the image, no region, or - with boxes - all its boxes difficult)."""
    if target not in entry.labels:
        return None
    if masks is not None:
        mask = masks.get(target)
        return ("mask", mask) if mask is not None and mask.any() else None
    of_class = entry.box_labels == target
    if not of_class.any():
        return None
    if settings.skip_all_difficult and len(entry.box_difficult) == len(entry.box_labels) and entry.box_difficult[of_class].all():
        return None
    return "boxes", entry.boxes[of_class]


@register_metric("pointing")
class Pointing(MapMetric):
    Settings = PointingSettings
    columns = (
        ("point_x", pa.float64()),  # the map's maximum (or the method's own point), original image pixels
        ("point_y", pa.float64()),
        ("point_hit", pa.bool_()),  # null when the class is not scored (not in the image, all boxes difficult, no region)
        ("pointing_difficult", pa.bool_()),  # the (image, class) belongs to the "difficult" subset
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.settings.class_average == "all" and self.run.num_classes < 1:
            raise ConfigError("metric.pointing.class_average=all needs the dataset's class count; use class_average=present")

    def measure(self, chunk: MapChunk, truth: ImageTruth) -> Measured:
        maps = chunk.maps
        if NONFINITE in chunk.status and self.settings.no_peak == "miss":
            maps = torch.nan_to_num(maps)  # the point recorded for a miss: the largest finite value's (finite maps: unchanged)
        points = argmax_points(maps).to(torch.float64)
        if chunk.points is not None:
            own = chunk.points.to(points)
            points = torch.where(own.isnan(), points, own)
        return {"points": points}

    def finish(self, measured: Measured, chunk: MapChunk, truth: ImageTruth) -> dict[str, Sequence[Any]]:
        s: PointingSettings = self.settings
        points = measured["points"].numpy()
        hits: list[bool | None] = []
        for point, cls, status in zip(points, chunk.classes, chunk.status):
            region = pointing_region(truth.entry, int(cls), s, truth.masks if int(cls) in truth.entry.labels else None)
            if region is None:
                hits.append(None)
            elif status in NO_PEAK and s.no_peak == "miss":  # no meaningful peak
                hits.append(False)
            elif region[0] == "mask":
                hits.append(bool(distance_to_mask(point, region[1], s.tolerance) < s.tolerance))
            else:
                hits.append(bool(distance_to_boxes(point, region[1])[0] < s.tolerance))
        difficult = set(truth.entry.difficult_classes)
        return {
            "point_x": points[:, 0].tolist(),
            "point_y": points[:, 1].tolist(),
            "point_hit": hits,
            "pointing_difficult": [int(c) in difficult for c in chunk.classes],
        }

    def statistics(self) -> list[Statistic]:
        return [
            Statistic("pointing_acc", self._accuracy(difficult_only=False), lower_is_better=False),
            Statistic("pointing_acc_difficult", self._accuracy(difficult_only=True), lower_is_better=False),
        ]

    def _accuracy(self, difficult_only: bool):
        every_class = self.run.num_classes if self.settings.class_average == "all" else None

        def build(rows: pd.DataFrame, images: pd.Index) -> MetricData | None:
            gt = gt_rows(rows)
            gt = gt[gt["point_hit"].notna()]
            if difficult_only:
                gt = gt[gt["pointing_difficult"].fillna(False).astype(bool)]
            return mean_over_classes(gt, gt["point_hit"].astype(float), gt["target"], images, every_class)

        return build
