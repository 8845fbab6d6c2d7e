"""wsolevaluation's boxes, exactly: Choe et al., "Evaluating Weakly Supervised Object Localization
Methods Right", CVPR 2020, as their code computes them (github.com/clovaai/wsolevaluation:
`inference.normalize_scoremap`, `evaluation.compute_bboxes_from_scoremaps`), for every threshold
at once and without OpenCV. `metric.maxboxacc.mode=wsolevaluation` scores with it.

What wsolevaluation does, per threshold tau of the sweep:
1. the map is normalized, (s - min) / max(s - min), or all zero when it holds a NaN or is
   constant (here: any non-finite value);
2. quantized to uint8, q = floor(255 s), and cut with cv2.THRESH_BINARY at int(tau * max q):
   the mask is q > cut;
3. cv2.findContours(RETR_TREE) traces every contour of the mask: the outer border of each
   8-connected component and the border of each hole (a 4-connected background region the
   component encloses), islands inside holes included;
4. each contour's cv2.boundingRect (x, y, w, h) becomes the box (x, y, x + w, y + h), clipped to
   (W - 1, H - 1): one pixel wider and taller than the pixels it covers;
5. V1 keeps the contour of largest cv2.contourArea (the first such in OpenCV's list), V2 all of
   them; a mask without contours gives the box (0, 0, 0, 0).

The same sets from one-pass sweeps (maxboxacc.threshold_components), which follow from how a
border is traced (the traced pixels of a hole's border are exactly its 4-neighbours):
- outer contours: the rect is the component's tight box;
- hole contours: background components of {q <= cut} (4-connected) that do not touch the image
  border (cv2 pads the image with background); the rect is the hole's box grown by one pixel;
- V1: a hole's or an island's contour lies inside its parent's outer contour, so the largest is
  the outer contour of a top-level component. Its polygon runs through border pixel centres, so of
  each 2 x 2 window of pixel centres it covers all when the window's 4 pixels lie in the
  component with its holes filled, half when 3 do, none otherwise. The filled components at
  every cut are the components of r > cut, r the grayscale hole filling of q (reconstruction by
  erosion from the border, 4-connected background); each window's two halves are weights on its
  smallest and second-smallest pixel of r, so a component's summed weight is its polygon area.
  OpenCV lists sibling contours in reverse order of discovery (raster order of their first
  pixel), so ties go to the component whose first pixel comes last.
tests/test_metrics_wsolevaluation.py checks this against cv2 (contour sets, areas, V1 boxes) and
against wsolevaluation's own test cases; scripts/parity_wsolevaluation.py against its BoxEvaluator.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from skimage.morphology import reconstruction

from .localization import box_iou_matrix
from .maxboxacc import threshold_components

# The box of a mask without contours (wsolevaluation: np.asarray([[0, 0, 0, 0]])).
EMPTY_BOX = (0, 0, 0, 0)
_CROSS = ndimage.generate_binary_structure(2, 1)


def normalize_scoremaps(maps: torch.Tensor, valid: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
    """wsolevaluation's normalize_scoremap for maps [N, H, W], as float64: (s - min) / max(s - min),
    all zero for a map that holds a non-finite value or is constant. valid [H, W] bool: normalized
    over those pixels, the others 0 (below every cut, in no histogram bin above the first)."""
    maps = torch.as_tensor(maps).double()
    inside = torch.ones(maps.shape[-2:], dtype=torch.bool, device=maps.device) if valid is None else torch.as_tensor(valid, device=maps.device)
    flat = maps[:, inside]  # [N, P]
    lo, hi = flat.amin(dim=1), flat.amax(dim=1)
    ok = torch.isfinite(flat).all(dim=1) & (hi > lo)
    scaled = (flat - lo[:, None]) / torch.where(ok, hi - lo, torch.ones_like(hi))[:, None]
    out = torch.zeros_like(maps)
    out[:, inside] = torch.where(ok[:, None], scaled, torch.zeros_like(scaled))
    return out


def normalize_scoremap(saliency: np.ndarray | torch.Tensor, valid: np.ndarray | None = None) -> np.ndarray:
    """normalize_scoremaps of one map [H, W], as a numpy array."""
    return normalize_scoremaps(torch.as_tensor(saliency)[None], valid)[0].cpu().numpy()


def quantize(v: np.ndarray) -> np.ndarray:
    """uint8 copy of a map in [0, 1], truncated as numpy's astype does: floor(255 v)."""
    return (v * 255).astype(np.uint8)


def threshold_cuts(q: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """cv2.threshold's cut per tau: int(tau * max q) (thresholds as np.arange makes them)."""
    return (np.asarray(thresholds, dtype=np.float64) * q.max()).astype(np.int64)


def window_weights(r: np.ndarray) -> np.ndarray:
    """[H, W] float: half a unit on each 2 x 2 window's smallest and second-smallest pixel of r
    (ties by raster index), so the pixels of a component of r > cut weigh its polygon area."""
    height, width = r.shape
    index = np.arange(height * width).reshape(height, width)
    corners = [index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]]  # raster order within the window
    windows = np.stack([c.ravel() for c in corners], axis=1)  # [n_windows, 4]
    order = np.argsort(r.ravel()[windows], axis=1, kind="stable")[:, :2]
    lowest = np.take_along_axis(windows, order, axis=1)
    return 0.5 * np.bincount(lowest.ravel(), minlength=height * width).reshape(height, width).astype(np.float64)


def fill_holes(q: np.ndarray) -> np.ndarray:
    """r [H, W]: the lowest cut at which each pixel is reached from outside the image through a
    4-connected path of pixels at or below the cut (grayscale hole filling of q); r > cut is the
    mask at that cut with its holes filled."""
    q = q.astype(np.float64)
    seed = np.full_like(q, q.max())
    seed[0, :], seed[-1, :], seed[:, 0], seed[:, -1] = q[0, :], q[-1, :], q[:, 0], q[:, -1]
    return reconstruction(seed, q, method="erosion", footprint=_CROSS)


def contour_boxes(q: np.ndarray, cuts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """wsolevaluation's boxes of the uint8 map q at each of the ascending `cuts` (mask q > cut), in
    its convention: (v1 [K, 4]: the largest contour's box per cut; level [C], boxes [C, 4]: every
    contour's box and the index of its cut). A cut without contours has the one box EMPTY_BOX."""
    height, width = q.shape
    cuts = np.asarray(cuts, dtype=np.float64)
    if len(cuts) > 1 and not (np.diff(cuts) > 0).all():
        raise ValueError("contour_boxes: cuts must be strictly ascending")
    n = len(cuts)
    values = q.astype(np.float64)
    outer = threshold_components(values, cuts, "gt", 8)
    # background {q <= cut} as {255 - q >= 255 - cut}: its thresholds ascend as the cuts descend
    background = threshold_components(255.0 - values, 255.0 - cuts[::-1], "ge", 4)
    x0, y0, x1, y1 = background.boxes.T
    hole = (x0 > 0) & (y0 > 0) & (x1 < width - 1) & (y1 < height - 1)
    r = fill_holes(q)
    filled = threshold_components(r, cuts, "gt", 8, weights=window_weights(r))

    def cv2_box(boxes: np.ndarray) -> np.ndarray:  # boundingRect (x, y, w, h) -> (x, y, x + w, y + h), clipped
        out = boxes.copy()
        out[:, 2] = np.minimum(out[:, 2] + 1, width - 1)
        out[:, 3] = np.minimum(out[:, 3] + 1, height - 1)
        return out

    level = np.concatenate([outer.level, n - 1 - background.level[hole]])
    boxes = cv2_box(np.concatenate([outer.boxes, background.boxes[hole] + np.array([-1, -1, 1, 1])]))
    empty = np.setdiff1d(np.arange(n), level)
    level = np.concatenate([level, empty])
    boxes = np.concatenate([boxes, np.tile(np.array(EMPTY_BOX, dtype=np.int64), (len(empty), 1))])
    v1 = np.tile(np.array(EMPTY_BOX, dtype=np.int64), (n, 1))
    if len(filled.level):
        # per cut: the largest polygon area, then the last found (largest first pixel)
        order = np.lexsort((-filled.first, -filled.weight, filled.level))
        head = np.ones(len(order), dtype=bool)
        head[1:] = filled.level[order][1:] != filled.level[order][:-1]
        chosen = order[head]
        v1[filled.level[chosen]] = cv2_box(filled.boxes[chosen])
    return v1, level, boxes


def contour_ious(
    saliency: np.ndarray | torch.Tensor, gt_boxes: np.ndarray, thresholds: np.ndarray, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per threshold, as wsolevaluation's BoxEvaluator: IoU of the largest contour's box with its
    best GT box (V1) and the best IoU of any contour's box with any GT box (V2). A map that cannot
    be normalized is scored as its all-zero map: the box (0, 0, 0, 0) at every threshold."""
    n = len(thresholds)
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
    if len(gt_boxes) == 0:
        return np.zeros(n), np.zeros(n)
    q = quantize(normalize_scoremap(saliency, valid))
    cuts, tau_cut = np.unique(threshold_cuts(q, thresholds), return_inverse=True)  # taus may share a cut
    v1, level, boxes = contour_boxes(q, cuts)
    largest = box_iou_matrix(v1, gt_boxes).max(axis=1)
    best = np.zeros(len(cuts))
    np.maximum.at(best, level, box_iou_matrix(boxes, gt_boxes).max(axis=1))
    return largest[tau_cut], best[tau_cut]
