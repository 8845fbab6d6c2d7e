"""Protocol transforms: how a decoded image becomes the network input, and which part of the
original image the input covers (so maps can be put back at original size)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from ..errors import ConfigError
from .sample import Sample, View

TRANSFORM_KINDS = ("squash", "shorter_side", "resize_crop", "torchray")
# Where maps are scored: on the original image (pointing game, Grad-CAM boxes) or on the network
# input grid with the ground truth mapped onto it (wsolevaluation: 224x224, boxes rescaled).
EVALUATE_AT = ("original", "input")
# How maps are resized onto the evaluation grid (metrics.maps.to_original_size).
UPSAMPLE = ("bilinear", "bicubic")
# How ground truth goes onto the network input grid (evaluate_at=input): `span`: a box takes the
# grid pixels its pixels' span touches, a mask the pixel under each grid pixel's centre;
# `wsolevaluation`: its resize_bbox (each corner scaled and truncated) and cv2.resize INTER_NEAREST
# for masks (the pixel at floor(i * source / grid), no half-pixel offset).
GT_TO_GRID = ("span", "wsolevaluation")


@dataclass(frozen=True)
class ProtocolTransform:
    """`squash`: resize to size x size, aspect not kept (Grad-CAM re-runs, RISE, Score-CAM, MaxBoxAcc).
    `shorter_side`: shorter side to `size`, aspect kept (pointing game, TorchRay).
    `resize_crop`: shorter side to `resize`, then center crop size x size (torchvision eval).
    Resizing is bilinear with antialiasing, on uint8 RGB; then (x/255 - mean) / std.
    `torchray`: shorter side to `size` exactly as TorchRay's `get_transform` (the pointing-game
    benchmark) does it: on x/255 in float, bilinear without antialiasing (F.interpolate,
    align_corners=False), the longer side int(size * long / short), then (x - mean) / std.
    `evaluate_at`: "original" or "input" (see EVALUATE_AT); `upsample`: how maps are resized onto
    the evaluation grid (UPSAMPLE); `gt_to_grid`: how ground truth goes onto the input grid
    (GT_TO_GRID)."""

    kind: str
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: int = 256
    evaluate_at: str = "original"
    upsample: str = "bilinear"
    gt_to_grid: str = "span"

    def __post_init__(self) -> None:
        if self.kind not in TRANSFORM_KINDS:
            raise ConfigError(f"transform.kind={self.kind!r} is unknown; use one of {', '.join(TRANSFORM_KINDS)}")
        if self.evaluate_at not in EVALUATE_AT:
            raise ConfigError(f"transform.evaluate_at={self.evaluate_at!r} is unknown; use one of {', '.join(EVALUATE_AT)}")
        if self.upsample not in UPSAMPLE:
            raise ConfigError(f"transform.upsample={self.upsample!r} is unknown; use one of {', '.join(UPSAMPLE)}")
        if self.gt_to_grid not in GT_TO_GRID:
            raise ConfigError(f"transform.gt_to_grid={self.gt_to_grid!r} is unknown; use one of {', '.join(GT_TO_GRID)}")
        if self.kind == "resize_crop" and self.resize < self.size:
            raise ConfigError(f"transform.resize={self.resize} is smaller than transform.size={self.size}; the crop would not fit")

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, View]:
        """image: [3, H, W] uint8 RGB. Returns the normalized float input and its view."""
        height, width = image.shape[-2:]
        view = View(0.0, 0.0, float(width), float(height))
        if self.kind == "torchray":
            short, long = sorted((height, width))
            new_size = [self.size, int(self.size * long / short)] if height <= width else [int(self.size * long / short), self.size]
            out = F.interpolate(image.float().div(255.0)[None], size=new_size, mode="bilinear", align_corners=False)[0]
            return TF.normalize(out, list(self.mean), list(self.std)), view
        if self.kind == "squash":
            out = TF.resize(image, [self.size, self.size], antialias=True)
        elif self.kind == "shorter_side":
            scale = self.size / min(height, width)
            new_size = [max(1, round(height * scale)), max(1, round(width * scale))]
            out = TF.resize(image, new_size, antialias=True)
        else:
            scale = self.resize / min(height, width)
            new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
            out = TF.resize(image, [new_h, new_w], antialias=True)
            top, left = (new_h - self.size) // 2, (new_w - self.size) // 2
            out = TF.crop(out, top, left, self.size, self.size)
            sy, sx = height / new_h, width / new_w
            view = View(left * sx, top * sy, (left + self.size) * sx, (top + self.size) * sy)
        out = out.float().div_(255.0)
        out = TF.normalize(out, list(self.mean), list(self.std))
        return out, view


def boxes_on_grid(boxes: np.ndarray, view: View, grid: tuple[int, int], rule: str = "span") -> tuple[np.ndarray, np.ndarray]:
    """Map inclusive original-pixel boxes [N, 4] onto a grid of `grid` = (height, width) pixels
    covering `view` of the original. rule `span`: a box covers the continuous span [x0, x1 + 1);
    its image is the set of grid pixels that span touches. `wsolevaluation`: its resize_bbox,
    each corner x -> int(x * width / source width) (the far corner can lose a pixel). Returns the
    mapped boxes and which boxes keep any pixel on the grid (a center crop can cut boxes off)."""
    height, width = grid
    span_w, span_h = view.x1 - view.x0, view.y1 - view.y0
    b = boxes.astype(np.float64)
    if rule == "wsolevaluation":  # the same float operations as resize_bbox: (x * new) / old
        xs, ys = ((b[:, [0, 2]] - view.x0) * width) / span_w, ((b[:, [1, 3]] - view.y0) * height) / span_h
        mapped = np.floor(np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1))
    else:
        sx, sy = width / span_w, height / span_h
        x0, x1 = (b[:, 0] - view.x0) * sx, (b[:, 2] + 1 - view.x0) * sx
        y0, y1 = (b[:, 1] - view.y0) * sy, (b[:, 3] + 1 - view.y0) * sy
        # 1e-9 absorbs float error so exact multiples land on the pixel they start
        mapped = np.stack([np.floor(x0 + 1e-9), np.floor(y0 + 1e-9), np.ceil(x1 - 1e-9) - 1, np.ceil(y1 - 1e-9) - 1], axis=1)
    keep = (mapped[:, 2] >= 0) & (mapped[:, 3] >= 0) & (mapped[:, 0] <= width - 1) & (mapped[:, 1] <= height - 1)
    mapped[:, [0, 2]] = np.clip(mapped[:, [0, 2]], 0, width - 1)
    mapped[:, [1, 3]] = np.clip(mapped[:, [1, 3]], 0, height - 1)
    return mapped.astype(np.int64), keep


def mask_on_grid(mask: np.ndarray, view: View, grid: tuple[int, int], rule: str = "span") -> np.ndarray:
    """Nearest-neighbour resample of a bool mask [H0, W0] onto the grid covering `view`. rule
    `span`: each grid pixel takes the original pixel under its center; `wsolevaluation`: as
    cv2.resize INTER_NEAREST, the pixel at floor(i * scale), scale = 1 / (grid / source) in float."""
    height, width = grid
    src_h, src_w = mask.shape
    if rule == "wsolevaluation":
        ys = np.floor(view.y0 + np.arange(height) * (1.0 / (height / (view.y1 - view.y0)))).astype(np.int64)
        xs = np.floor(view.x0 + np.arange(width) * (1.0 / (width / (view.x1 - view.x0)))).astype(np.int64)
    else:
        ys = np.floor(view.y0 + (np.arange(height) + 0.5) * (view.y1 - view.y0) / height).astype(np.int64)
        xs = np.floor(view.x0 + (np.arange(width) + 0.5) * (view.x1 - view.x0) / width).astype(np.int64)
    return mask[np.ix_(np.clip(ys, 0, src_h - 1), np.clip(xs, 0, src_w - 1))]


@dataclass
class MasksOnGrid:
    """The entry's masks - per class ({class: mask}) or one (the ignore region) - resampled onto
    the network input grid when asked for (picklable, so it can cross DataLoader workers)."""

    masks: Callable[[], dict[int, np.ndarray] | np.ndarray]
    view: View
    grid: tuple[int, int]
    rule: str = "span"

    def __call__(self) -> dict[int, np.ndarray] | np.ndarray:
        masks = self.masks()
        if isinstance(masks, np.ndarray):
            return mask_on_grid(masks, self.view, self.grid, self.rule)
        return {c: mask_on_grid(m, self.view, self.grid, self.rule) for c, m in masks.items()}


def on_input_grid(sample: Sample, rule: str = "span") -> Sample:
    """The sample with its ground truth mapped onto the network input grid, which becomes the
    evaluation grid (orig_size = input size, full view): maps are then scored at input
    resolution and never upsampled to the original image. Boxes cut off by a crop are dropped;
    a class that loses all its boxes stays labelled but has no box on the grid. rule: GT_TO_GRID."""
    assert sample.image is not None and sample.view is not None
    grid = tuple(sample.image.shape[-2:])
    entry = sample.entry
    changes = {}
    notes = sample.notes
    if len(entry.boxes):
        boxes, keep = boxes_on_grid(entry.boxes, sample.view, grid, rule)
        changes.update(
            boxes=boxes[keep],
            box_labels=entry.box_labels[keep],
            box_difficult=entry.box_difficult[keep] if len(entry.box_difficult) else entry.box_difficult,
        )
        if not keep.all():
            notes = "; ".join(n for n in (notes, f"{int((~keep).sum())} box(es) outside the input crop") if n)
    if entry.masks is not None:
        changes["masks"] = MasksOnGrid(entry.masks, sample.view, grid, rule)
    if entry.ignore is not None:
        changes["ignore"] = MasksOnGrid(entry.ignore, sample.view, grid, rule)
    changes["size_hint"] = grid
    height, width = grid
    return replace(
        sample, entry=replace(entry, **changes), orig_size=grid, view=View(0.0, 0.0, float(width), float(height)), notes=notes
    )
