"""Scoring hand-made maps with the real metric units, as the pipeline does for one image."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from wsl_bench.data.sample import ImageEntry, Sample
from wsl_bench.metrics.base import ImageTruth, MapChunk
from wsl_bench.metrics.energy_pointing import EnergyPointing
from wsl_bench.metrics.localization import NO_BOX, Localization
from wsl_bench.metrics.maps import map_status
from wsl_bench.metrics.maxboxacc import MaxBoxAcc
from wsl_bench.metrics.pointing import Pointing


def score_maps(maps, class_boxes, loc, pointing, regions=None, energy=None, boxacc=None, gt_only=None, valid=None):
    """maps [N, H, W]; map i explains its own class i, whose boxes are class_boxes[i] and whose
    pointing region is regions[i] (("boxes", b) / ("mask", m) / None: not in the image; default:
    its boxes). Returns the units' columns as arrays: status, boxes, iou, loc_correct, points,
    point_hit, energy, boxacc_v1, boxacc_v2."""
    n = len(maps)
    class_boxes = [np.asarray(b, dtype=np.int64).reshape(-1, 4) for b in class_boxes]
    regions = regions if regions is not None else [("boxes", b) if len(b) else None for b in class_boxes]
    masks = {i: r[1] for i, r in enumerate(regions) if r is not None and r[0] == "mask"}
    entry = ImageEntry(
        "img", path=None, labels=tuple(i for i, r in enumerate(regions) if r is not None),  # type: ignore[arg-type]
        boxes=np.concatenate(class_boxes) if class_boxes else np.zeros((0, 4), np.int64),
        box_labels=np.concatenate([np.full(len(b), i) for i, b in enumerate(class_boxes)]).astype(np.int64),
        masks=(lambda: masks) if masks else None,
    )
    truth = ImageTruth(Sample(entry, None, tuple(maps.shape[-2:])))
    truth.valid = valid
    chunk = MapChunk(maps, map_status(maps), np.arange(n), np.array(gt_only if gt_only is not None else [True] * n))
    columns = {}
    for unit in [Localization(loc), Pointing(pointing)] + ([EnergyPointing(energy)] if energy else []) + ([MaxBoxAcc(boxacc)] if boxacc else []):
        columns.update(unit.score(chunk, truth))
    return SimpleNamespace(
        status=chunk.status,
        boxes=np.array([NO_BOX if b is None else b for b in columns["pred_box"]]),
        iou=np.array([np.nan if v is None else v for v in columns["iou"]]),
        loc_correct=np.array(columns["loc_correct"]),
        points=np.stack([columns["point_x"], columns["point_y"]], axis=1),
        point_hit=columns["point_hit"],
        energy=np.array([np.nan if v is None else v for v in columns.get("energy", [None] * n)], dtype=float),
        boxacc_v1=[None if v is None else np.array(v) for v in columns.get("boxacc_v1_hits", [None] * n)],
        boxacc_v2=[None if v is None else np.array(v) for v in columns.get("boxacc_v2_hits", [None] * n)],
    )
