"""Scoring maps at original image size against one image's ground truth, batched over maps:
the settings of each paper's protocol (all configuration, recorded in provenance.json) and
`score_maps`, which applies the map-only metrics (box localization, pointing game, energy
pointing, MaxBoxAcc sweep)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ..data.sample import ImageEntry
from ..errors import ConfigError
from .energy import energy_in_boxes
from .localization import box_iou_matrix, largest_component_boxes
from .maps import ALL_ZERO, CONSTANT, NON_POSITIVE, NONFINITE, OK, argmax_points, binarize, map_status
from .maxboxacc import BoxAccProtocol, boxacc_hits
from .pointing import distance_to_boxes, distance_to_mask


def _check(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not supported; use one of {', '.join(map(str, allowed))}")


@dataclass(frozen=True)
class LocalizationProtocol:
    """Grad-CAM paper defaults: 15% of max, >=, 8-connectivity, IoU >= 0.5."""

    threshold: float = 0.15
    comparison: str = "ge"
    normalize: str = "max"
    connectivity: int = 8
    iou: float = 0.5

    def __post_init__(self) -> None:
        _check("localization.comparison", self.comparison, ("ge", "gt"))
        _check("localization.normalize", self.normalize, ("max", "minmax"))
        _check("localization.connectivity", self.connectivity, (4, 8))


@dataclass(frozen=True)
class PointingProtocol:
    """Zhang et al. 2016 as TorchRay runs it: hit when a GT pixel of the class lies strictly
    closer than `tolerance` px to the map's maximum; with box annotations, a class whose boxes
    are all "difficult" is skipped (VOC). Mask annotations (COCO) are used when present."""

    tolerance: float = 15.0
    skip_all_difficult: bool = True


@dataclass(frozen=True)
class EnergyProtocol:
    """Score-CAM energy-based pointing game (see metrics.energy)."""

    enabled: bool = True
    normalize: str = "minmax"

    def __post_init__(self) -> None:
        _check("energy.normalize", self.normalize, ("minmax", "none"))


@dataclass(frozen=True)
class MetricProtocols:
    """Every map-only metric's settings, as configured."""

    loc: LocalizationProtocol = field(default_factory=LocalizationProtocol)
    pointing: PointingProtocol = field(default_factory=PointingProtocol)
    energy: EnergyProtocol = field(default_factory=EnergyProtocol)
    boxacc: BoxAccProtocol | None = field(default_factory=BoxAccProtocol)

    def to_dict(self) -> dict[str, Any]:
        return {
            "localization": asdict(self.loc),
            "pointing": asdict(self.pointing),
            "energy": asdict(self.energy),
            "maxboxacc": None if self.boxacc is None else {**asdict(self.boxacc), "iou_thresholds": list(self.boxacc.iou_thresholds)},
        }


def boxacc_protocol(cfg: Any) -> BoxAccProtocol | None:
    """BoxAccProtocol from the `maxboxacc` config node (None when disabled)."""
    if cfg is None or not cfg.get("enabled", True):
        return None
    params = {k: v for k, v in dict(cfg).items() if k != "enabled"}
    if "iou_thresholds" in params:
        params["iou_thresholds"] = tuple(float(v) for v in params["iou_thresholds"])
    try:
        proto = BoxAccProtocol(**params)
    except TypeError as exc:
        raise ConfigError(f"maxboxacc: {exc}; valid keys: enabled, {', '.join(BoxAccProtocol.__dataclass_fields__)}") from None
    _check("maxboxacc.comparison", proto.comparison, ("ge", "gt"))
    _check("maxboxacc.connectivity", proto.connectivity, (4, 8))
    _check("maxboxacc.box_convention", proto.box_convention, ("tight", "wsolevaluation"))
    if not 0 < proto.step < 1:
        raise ConfigError(f"maxboxacc.step={proto.step} must lie in (0, 1), e.g. 0.01")
    return proto


def pointing_region(entry: ImageEntry, target: int, protocol: PointingProtocol, masks: dict[int, np.ndarray] | None) -> tuple[str, np.ndarray] | None:
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
    if protocol.skip_all_difficult and len(entry.box_difficult) == len(entry.box_labels) and entry.box_difficult[of_class].all():
        return None
    return "boxes", entry.boxes[of_class]


@dataclass
class MapScores:
    """Per map: status, largest-component box, best IoU with the target class's boxes (NaN
    without such boxes), loc correctness, peak point (x, y), pointing hit (None: not scored),
    energy share (NaN: not scored), MaxBoxAcc hit vectors (None: not scored)."""

    status: list[str]
    boxes: np.ndarray
    iou: np.ndarray
    loc_correct: np.ndarray
    points: np.ndarray
    point_hit: list[bool | None]
    energy: np.ndarray = field(default_factory=lambda: np.zeros(0))
    boxacc_v1: list[np.ndarray | None] = field(default_factory=list)
    boxacc_v2: list[np.ndarray | None] = field(default_factory=list)


# A map that is non-finite, all zero or constant has no meaningful peak: a pointing miss.
_NO_PEAK = (NONFINITE, ALL_ZERO, CONSTANT)


def score_maps(
    maps: torch.Tensor,
    class_boxes: list[np.ndarray],
    loc: LocalizationProtocol,
    pointing: PointingProtocol,
    regions: list[tuple[str, np.ndarray] | None] | None = None,
    energy: EnergyProtocol | None = None,
    boxacc: BoxAccProtocol | None = None,
    gt_only: list[bool] | None = None,
    valid: torch.Tensor | None = None,
) -> MapScores:
    """maps [N, H, W] at original image size; class_boxes[i]: GT boxes [M_i, 4] of map i's class;
    regions[i]: its pointing-game region (pointing_region; None = not scored; when `regions` is
    None the class boxes are used); gt_only[i]: map i explains a ground-truth target, the only
maps the energy and MaxBoxAcc metrics score (None: all maps with class boxes); valid: [H, W] bool,
    the pixels the maps cover (metrics.maps.view_mask; None: all), the only ones a box (also in
    the MaxBoxAcc sweep) or energy may hold.
    Maps that cannot be scored get no box, a miss, zero energy and no hit at any threshold;
    their status says why."""
    n = maps.shape[0]
    status = map_status(maps, loc.normalize)
    ok = np.array([s == OK for s in status], dtype=bool)
    safe = torch.nan_to_num(maps)
    masks = binarize(safe, loc.threshold, loc.comparison, loc.normalize)
    masks[torch.from_numpy(~ok).to(masks.device)] = False
    if valid is not None:  # outside a crop the map has no value (to_original_size fills its minimum)
        masks &= valid.to(masks.device)
    boxes = largest_component_boxes(masks, loc.connectivity)
    points = argmax_points(safe).cpu().numpy()
    iou = np.full(n, np.nan)
    for i, gt in enumerate(class_boxes):
        if len(gt):
            iou[i] = box_iou_matrix(boxes[i], gt).max()
    loc_correct = np.nan_to_num(iou, nan=0.0) >= loc.iou
    if regions is None:
        regions = [("boxes", gt) if len(gt) else None for gt in class_boxes]
    point_hit: list[bool | None] = []
    for i, region in enumerate(regions):
        if region is None:
            point_hit.append(None)
        elif status[i] in _NO_PEAK:
            point_hit.append(False)
        elif region[0] == "mask":
            point_hit.append(bool(distance_to_mask(points[i], region[1], pointing.tolerance) < pointing.tolerance))
        else:
            point_hit.append(bool(distance_to_boxes(points[i], region[1])[0] < pointing.tolerance))
    wanted = [(gt_only is None or gt_only[i]) and len(class_boxes[i]) > 0 for i in range(n)]
    energies = np.full(n, np.nan)
    if energy is not None and energy.enabled and any(wanted):
        chosen = [i for i in range(n) if wanted[i]]
        # non-positive maps are not degenerate for the energy (with normalize=none their share is 0)
        own = [OK if status[i] == NON_POSITIVE else status[i] for i in chosen]
        chosen_maps = maps[chosen]
        if valid is not None and energy.normalize == "none":  # no energy outside a crop (minmax: min - min = 0 there)
            chosen_maps = chosen_maps * valid.to(chosen_maps.device)
        energies[chosen] = energy_in_boxes(chosen_maps, [class_boxes[i] for i in chosen], energy.normalize, own)
    v1: list[np.ndarray | None] = [None] * n
    v2: list[np.ndarray | None] = [None] * n
    if boxacc is not None:
        valid_np = None if valid is None else valid.cpu().numpy()
        for i in range(n):
            if wanted[i]:
                hit1, hit2 = boxacc_hits(maps[i] if status[i] not in _NO_PEAK else None, class_boxes[i], boxacc, valid_np)
                v1[i], v2[i] = hit1, hit2.ravel()
    return MapScores(status, boxes, iou, loc_correct, points, point_hit, energies, v1, v2)
