"""MaxBoxAcc and MaxBoxAccV2: Choe et al., "Evaluating Weakly Supervised Object Localization
Methods Right", CVPR 2020 (Sec. 4.1 and the wsolevaluation code).

For the GT class's map, min-max normalized, and every threshold tau in [0, 1) (step 0.01): binarize
at tau, box the connected components, and record whether a box hits a GT box of the class
(IoU >= delta, inclusive-pixel IoU). MaxBoxAcc (V1): the largest component's box, delta = 0.5.
MaxBoxAccV2: the best-matching box among all components, at delta = 0.3 / 0.5 / 0.7. The dataset
accuracy is taken per tau over all images, maximized over tau (separately per delta), and V2
averages the three maxima.

mode=components (default) differs from wsolevaluation, deliberately: it traces cv2 contours
(holes included) on the map quantized to uint8, cuts with cv2.THRESH_BINARY (value >
int(tau * 255)), ranks contours by polygon area and makes boxes (x, y, x + w, y + h), one pixel
wider than the contour (box_convention="wsolevaluation" reproduces that box). Here components
are pixel-connected (8-connectivity by default, as cv2's outer contours), ranked by pixel count
(ties: first in raster order), boxes are tight inclusive corners, and the comparison (`ge`, the
paper's s >= tau, or `gt`) is configuration. mode=wsolevaluation is its BoxEvaluator exactly
(metrics.wsol_contours).

Speed: all thresholds are scored from one pass over the pixels, never by re-labeling the map per
threshold. Each pixel points to its best neighbour (higher level, ties by raster index); pointer
jumping sends every pixel to a local maximum. The "pieces" so formed have the property that their
pixels above any threshold are connected inside the piece (each reaches the maximum through
pixels at least as high), so the components at threshold k are unions of pieces linked by
adjacent pixel pairs both above k: one graph over (piece, threshold) nodes, labeled by one
connected-components call, gives every component at every threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from scipy import ndimage, sparse
from scipy.sparse.csgraph import connected_components

from ..config import setting
from ..errors import ConfigError
from .aggregate import MetricData, best_of_curves, curve_max, curve_max_mean, gt_rows, hit_matrix, with_values
from .base import ImageTruth, MapChunk, MapMetric, Measured, MetricSettings, Statistic, register_metric
from .localization import box_iou_matrix, predicted_rows
from .maps import NO_PEAK

_OFFSETS = {
    4: ((0, 1), (1, 0), (0, -1), (-1, 0)),
    8: ((0, 1), (1, 0), (1, 1), (1, -1), (0, -1), (-1, 0), (-1, -1), (-1, 1)),
}


def sweep_thresholds(step: float = 0.01) -> np.ndarray:
    """Thresholds 0, step, 2 step, ... < 1 (Choe et al.: np.arange(0, 1, step))."""
    if not 0 < step < 1:
        raise ValueError(f"maxboxacc step must be in (0, 1), got {step}")
    return np.arange(0.0, 1.0, step)


def minmax_normalized(maps: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps [N, H, W] min-max normalized in float64, (s - min) / (max - min), on their device
    without waiting for it, and [N] bool: the map could be normalized (finite, not constant).
    valid [H, W] bool (a center crop): the map is normalized again over the valid pixels only and
    the others get -1, below every threshold; a map constant there cannot be normalized."""
    s = maps.double()
    lo, hi = s.flatten(1).amin(dim=1), s.flatten(1).amax(dim=1)  # a non-finite value shows in them
    ok = torch.isfinite(lo) & torch.isfinite(hi) & (hi > lo)
    v = (s - lo[:, None, None]) / (hi - lo)[:, None, None]
    if valid is not None and not bool(valid.all()):
        valid = valid.to(v.device)
        lo = torch.where(valid, v, torch.full((), float("inf"), dtype=v.dtype, device=v.device)).flatten(1).amin(dim=1)
        hi = torch.where(valid, v, torch.full((), float("-inf"), dtype=v.dtype, device=v.device)).flatten(1).amax(dim=1)
        ok &= hi > lo
        inside = (v - lo[:, None, None]) / (hi - lo)[:, None, None]
        v = torch.where(valid, inside, torch.full((), -1.0, dtype=v.dtype, device=v.device))
    return v, ok


def minmax_normalize(saliency: np.ndarray | torch.Tensor) -> np.ndarray | None:
    """(s - min) / (max - min) as float64, or None for a map that cannot be normalized
    (non-finite values, or constant / all zero)."""
    v, ok = minmax_normalized(torch.as_tensor(np.asarray(saliency) if not isinstance(saliency, torch.Tensor) else saliency.detach().cpu())[None])
    return v[0].numpy() if bool(ok[0]) else None


@dataclass
class Components:
    """Every connected component of every binarized map of a sweep: its threshold index,
    pixel count, first pixel in raster order and inclusive box (x0, y0, x1, y1)."""

    level: np.ndarray  # [C] threshold index k
    area: np.ndarray  # [C]
    first: np.ndarray  # [C] raster index of its first pixel
    boxes: np.ndarray  # [C, 4]
    weight: np.ndarray | None = None  # [C] sum of the pixels' `weights` (threshold_components), when given


def _levels(v: np.ndarray, thresholds: np.ndarray, comparison: str) -> np.ndarray:
    """q[p] = number of thresholds whose mask holds p; the mask at threshold k is q > k.

    Equals np.searchsorted(thresholds, v, side="right" for ge / "left" for gt). For the sweep's
    thresholds (k * step, as np.arange makes them) it is a floor division plus one exact
    correction each way, computed with the same float products as the thresholds."""
    if comparison not in ("ge", "gt"):
        raise ValueError(f"comparison must be 'ge' or 'gt', got {comparison!r}")
    n = len(thresholds)
    step = float(thresholds[1]) if n > 1 else 0.0
    if n < 2 or thresholds[0] != 0 or not np.array_equal(thresholds, np.arange(n) * step):
        return np.searchsorted(thresholds, v, side="right" if comparison == "ge" else "left")
    holds = np.less_equal if comparison == "ge" else np.less  # threshold t holds pixel v: holds(t, v)
    q = np.floor(v / step)
    q += 1
    np.clip(q, 0, n, out=q)
    q += (q < n) & holds(q * step, v)  # threshold number q (0-based) holds v too
    q -= (q > 0) & ~holds((q - 1) * step, v)  # threshold number q - 1 does not
    return q.astype(np.int64)


@lru_cache(maxsize=8)
def _pixel_coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Raster index and x of every pixel (read-only, cached per shape)."""
    index = np.arange(height * width, dtype=np.int64)
    xs = index % width
    index.flags.writeable = False
    xs.flags.writeable = False
    return index, xs


def _shifted(a: np.ndarray, dy: int, dx: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Slices (here, there) pairing each pixel with its neighbour at (dy, dx)."""
    h, w = a.shape

    def span(d: int, n: int) -> tuple[slice, slice]:
        return (slice(0, n - d), slice(d, n)) if d >= 0 else (slice(-d, n), slice(0, n + d))

    (y_here, y_there), (x_here, x_there) = span(dy, h), span(dx, w)
    return (y_here, x_here), (y_there, x_there)


def threshold_components(
    v: np.ndarray, thresholds: np.ndarray, comparison: str = "ge", connectivity: int = 8, weights: np.ndarray | None = None
) -> Components:
    """All components of the masks {v >= t} (or {v > t}) for every t in thresholds, from one
    pass over the pixels (see the module docstring). v: [H, W] finite. weights [H, W]: per-pixel
    values summed over each component like its pixel count (Components.weight)."""
    if connectivity not in _OFFSETS:
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    height, width = v.shape
    n_thr = len(thresholds)
    q = _levels(v, thresholds, comparison)
    size = height * width
    index, xs = _pixel_coords(height, width)

    # Each pixel points to its best neighbour by (level, value, raster index), packed in one
    # int64, or to itself at a local maximum: following pointers never goes down a level. The
    # value (truncated) only makes the pieces fewer; correctness needs the level and the index.
    index_bits = max(1, int(size - 1).bit_length())
    level_bits = int(n_thr).bit_length()
    value_bits = max(0, 62 - index_bits - level_bits)
    # For v >= 0 the float64 bit pattern orders like the value; its top bits are a monotone key.
    key = q << (value_bits + index_bits)
    if value_bits:
        key |= (np.ascontiguousarray(v, dtype=np.float64).view(np.int64) >> (63 - value_bits)) << index_bits
    key |= index.reshape(height, width)
    best = key.copy()
    for dy, dx in _OFFSETS[connectivity]:
        here, there = _shifted(key, dy, dx)
        np.maximum(best[here], key[there], out=best[here])
    parent = (best.ravel() & ((1 << index_bits) - 1)).astype(np.int32 if size < 2**31 else np.int64)
    while True:  # pointer jumping: O(log path length) vectorized rounds
        grand = parent[parent]
        if np.array_equal(grand, parent):
            break
        parent = grand
    roots = np.flatnonzero(parent == index)
    n_pieces = len(roots)
    piece_of_root = np.empty(size, dtype=np.int64)
    piece_of_root[roots] = np.arange(n_pieces)
    piece = piece_of_root[parent].reshape(height, width)

    # Per (piece, level): pixel count, first index, box; then cumulated over levels >= k + 1.
    flat_q = q.ravel()
    code = piece.ravel() * (n_thr + 1) + flat_q
    n_codes = n_pieces * (n_thr + 1)
    flat_index = index
    big = size
    count = np.bincount(code, minlength=n_codes).reshape(n_pieces, n_thr + 1)
    weighted = None if weights is None else np.bincount(code, weights=np.ravel(weights), minlength=n_codes)
    first = np.full(n_codes, big, dtype=np.int64)
    np.minimum.at(first, code, flat_index)
    last = np.full(n_codes, -1, dtype=np.int64)
    np.maximum.at(last, code, flat_index)
    x_min = np.full(n_codes, big, dtype=np.int64)
    np.minimum.at(x_min, code, xs)
    x_max = np.full(n_codes, -1, dtype=np.int64)
    np.maximum.at(x_max, code, xs)

    def from_top(a: np.ndarray, op: np.ufunc) -> np.ndarray:
        a = a.reshape(n_pieces, n_thr + 1)[:, ::-1]
        return op.accumulate(a, axis=1)[:, ::-1][:, 1:]  # column k: levels > k

    area = from_top(count, np.add)
    weight_k = None if weighted is None else from_top(weighted, np.add)
    first_k, last_k = from_top(first, np.minimum), from_top(last, np.maximum)
    x0_k, x1_k = from_top(x_min, np.minimum), from_top(x_max, np.maximum)

    # Adjacent pixels in different pieces link them for thresholds below min(q_a, q_b).
    codes, weights = [], []
    for dy, dx in _OFFSETS[connectivity][: len(_OFFSETS[connectivity]) // 2]:
        here, there = _shifted(v, dy, dx)
        pa, pb = piece[here], piece[there]
        cross = pa != pb
        if not cross.any():
            continue
        a, b = pa[cross].astype(np.int64), pb[cross].astype(np.int64)
        codes.append(np.minimum(a, b) * n_pieces + np.maximum(a, b))
        weights.append(np.minimum(q[here][cross], q[there][cross]))
    node_alive = area > 0  # [P, K]
    if codes:
        pair, inverse = np.unique(np.concatenate(codes), return_inverse=True)
        link = np.zeros(len(pair), dtype=np.int64)
        np.maximum.at(link, inverse, np.concatenate(weights))
        keep = link > 0
        pair, link = pair[keep], link[keep]
        src_piece, dst_piece = pair // n_pieces, pair % n_pieces
        offsets = np.repeat(np.cumsum(link) - link, link)
        k = np.arange(int(link.sum())) - offsets
        src = np.repeat(src_piece, link) * n_thr + k
        dst = np.repeat(dst_piece, link) * n_thr + k
    else:
        src = dst = np.zeros(0, dtype=np.int64)
    n_nodes = n_pieces * n_thr
    graph = sparse.coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n_nodes, n_nodes)).tocsr()
    _, labels = connected_components(graph, directed=False)
    alive = np.flatnonzero(node_alive.ravel())
    label = labels[alive]
    uniq, comp = np.unique(label, return_inverse=True)
    n_comp = len(uniq)
    level = np.zeros(n_comp, dtype=np.int64)
    level[comp] = alive % n_thr  # all nodes of a component share the threshold
    out_area = np.bincount(comp, weights=area.ravel()[alive], minlength=n_comp).astype(np.int64)
    out_first = np.full(n_comp, big, dtype=np.int64)
    np.minimum.at(out_first, comp, first_k.ravel()[alive])
    out_last = np.full(n_comp, -1, dtype=np.int64)
    np.maximum.at(out_last, comp, last_k.ravel()[alive])
    bx0 = np.full(n_comp, big, dtype=np.int64)
    np.minimum.at(bx0, comp, x0_k.ravel()[alive])
    bx1 = np.full(n_comp, -1, dtype=np.int64)
    np.maximum.at(bx1, comp, x1_k.ravel()[alive])
    boxes = np.stack([bx0, out_first // width, bx1, out_last // width], axis=1)
    out_weight = None if weight_k is None else np.bincount(comp, weights=weight_k.ravel()[alive], minlength=n_comp)
    return Components(level, out_area, out_first, boxes, out_weight)


def threshold_components_relabel(
    v: np.ndarray, thresholds: np.ndarray, comparison: str = "ge", connectivity: int = 8
) -> Components:
    """Reference implementation: label the mask once per threshold (scipy.ndimage.label, sizes
    by bincount, boxes by find_objects). For tests and the benchmark only."""
    structure = np.ones((3, 3), bool) if connectivity == 8 else ndimage.generate_binary_structure(2, 1)
    width = v.shape[1]
    levels, areas, firsts, boxes = [], [], [], []
    for k, t in enumerate(thresholds):
        labels, n = ndimage.label(v >= t if comparison == "ge" else v > t, structure=structure)
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        for j, (ys, xs) in enumerate(ndimage.find_objects(labels), start=1):
            top = labels[ys.start, xs]
            levels.append(k)
            areas.append(sizes[j])
            firsts.append(ys.start * width + xs.start + int(np.argmax(top == j)))
            boxes.append((xs.start, ys.start, xs.stop - 1, ys.stop - 1))
    return Components(
        np.array(levels, np.int64), np.array(areas, np.int64), np.array(firsts, np.int64), np.array(boxes, np.int64).reshape(-1, 4)
    )


def sweep_ious(components: Components, gt_boxes: np.ndarray, n_thresholds: int) -> tuple[np.ndarray, np.ndarray]:
    """Per threshold: IoU of the largest component's box with its best GT box (V1) and the best
    IoU of any component's box with any GT box (V2). 0 where the mask is empty."""
    largest = np.zeros(n_thresholds)
    best = np.zeros(n_thresholds)
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
    if len(components.level) == 0 or len(gt_boxes) == 0:
        return largest, best
    iou = box_iou_matrix(components.boxes, gt_boxes).max(axis=1)
    np.maximum.at(best, components.level, iou)
    order = np.lexsort((components.first, -components.area, components.level))
    head = np.ones(len(order), dtype=bool)
    head[1:] = components.level[order][1:] != components.level[order][:-1]
    chosen = order[head]
    largest[components.level[chosen]] = iou[chosen]
    return largest, best


# What each mode means by the settings left unset (null): mode=wsolevaluation fixes them to its
# cv2 contours (cut q > int(tau * max q), 8-connected components, boxes (x, y, x + w, y + h)).
MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "components": {"comparison": "ge", "connectivity": 8, "box_convention": "tight"},
    "wsolevaluation": {"comparison": "gt", "connectivity": 8, "box_convention": "wsolevaluation"},
}


@dataclass(frozen=True)
class MaxBoxAccSettings(MetricSettings):
    """Choe et al. 2020 defaults: thresholds 0..0.99 step 0.01, IoU levels 0.3 / 0.5 / 0.7 for V2,
    V1 at IoU 0.5. mode `components`: connected components of the float map, s >= tau on the
    min-max normalized map (`comparison=gt`: s > tau), 8-connectivity, box_convention `tight`
    (inclusive box of the component) or `wsolevaluation` (its cv2 box (x, y, x + w, y + h), one
    pixel wider and taller, clipped to the image). mode `wsolevaluation`: wsolevaluation's
    BoxEvaluator exactly (metrics.wsol_contours), which fixes comparison, connectivity and
    box_convention (left null, or set to what it uses). top1: also the top-1 statistics (a box
    counts only when the image's top-1 prediction is its class)."""

    step: float = setting(0.01, gt=0, lt=1)
    iou_thresholds: tuple[float, ...] = (0.3, 0.5, 0.7)
    mode: Literal["components", "wsolevaluation"] = "components"
    comparison: Literal["ge", "gt"] | None = None  # null: the mode's (MODE_DEFAULTS)
    connectivity: Literal[4, 8] | None = None
    v1_iou: float = setting(0.5, gt=0, le=1)
    box_convention: Literal["tight", "wsolevaluation"] | None = None
    top1: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.iou_thresholds or not all(0 < v <= 1 for v in self.iou_thresholds):
            raise ConfigError(f"{self.config_path}.iou_thresholds={list(self.iou_thresholds)} must be a non-empty list of values in (0, 1]")
        if self.mode == "wsolevaluation":
            for key, value in MODE_DEFAULTS["wsolevaluation"].items():
                given = getattr(self, key)
                if given is not None and given != value:
                    raise ConfigError(
                        f"{self.config_path}.{key}={given} does not apply with {self.config_path}.mode=wsolevaluation, whose cv2 "
                        f"contours fix it to {value}; drop it or use {self.config_path}.mode=components"
                    )

    def effective(self, key: str) -> Any:
        """A setting as scored: its value, or the mode's when left null."""
        value = getattr(self, key)
        return MODE_DEFAULTS[self.mode][key] if value is None else value


def boxacc_hits(
    saliency: np.ndarray | torch.Tensor | None,
    gt_boxes: np.ndarray,
    protocol: MaxBoxAccSettings = MaxBoxAccSettings(),
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Hit vectors of one map over the threshold sweep: (v1 [K], v2 [n_iou, K]) booleans.
    A map that cannot be normalized (None, non-finite, constant) misses at every threshold, except
    that mode=wsolevaluation scores a non-finite or constant map as its all-zero map (box
    (0, 0, 0, 0)), as wsolevaluation does. valid [H, W] bool: the pixels the map covers (a center
    crop); the others are in no mask."""
    if protocol.mode == "wsolevaluation" and saliency is not None:
        return contour_hits(saliency, gt_boxes, protocol, valid)
    v = None
    if saliency is not None and len(gt_boxes):
        maps = torch.as_tensor(np.asarray(saliency) if not isinstance(saliency, torch.Tensor) else saliency.detach().cpu())[None]
        normalized, ok = minmax_normalized(maps, None if valid is None else torch.as_tensor(np.asarray(valid, dtype=bool)))
        v = normalized[0].numpy() if bool(ok[0]) else None
    return sweep_hits(v, gt_boxes, protocol)


def contour_hits(
    saliency: np.ndarray | torch.Tensor, gt_boxes: np.ndarray, protocol: MaxBoxAccSettings, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """boxacc_hits of mode=wsolevaluation: wsolevaluation's cv2 contour boxes (metrics.wsol_contours)."""
    from .wsol_contours import contour_ious  # (imported here: that module builds on this one)

    largest, best = contour_ious(saliency, gt_boxes, sweep_thresholds(protocol.step), valid)
    return largest >= protocol.v1_iou, best[None, :] >= np.asarray(protocol.iou_thresholds)[:, None]


def sweep_hits(v: np.ndarray | None, gt_boxes: np.ndarray, protocol: MaxBoxAccSettings) -> tuple[np.ndarray, np.ndarray]:
    """boxacc_hits of a normalized map v [H, W] (minmax_normalized; None: misses everywhere)."""
    thresholds = sweep_thresholds(protocol.step)
    n_iou = len(protocol.iou_thresholds)
    if v is None or len(gt_boxes) == 0:
        return np.zeros(len(thresholds), bool), np.zeros((n_iou, len(thresholds)), bool)
    comps = threshold_components(v, thresholds, protocol.effective("comparison"), protocol.effective("connectivity"))
    if protocol.effective("box_convention") == "wsolevaluation":
        height, width = v.shape
        comps.boxes[:, 2] = np.minimum(comps.boxes[:, 2] + 1, width - 1)
        comps.boxes[:, 3] = np.minimum(comps.boxes[:, 3] + 1, height - 1)
    largest, best = sweep_ious(comps, gt_boxes, len(thresholds))
    return largest >= protocol.v1_iou, best[None, :] >= np.asarray(protocol.iou_thresholds)[:, None]


def max_box_acc(v1_hits: np.ndarray, v2_hits: np.ndarray) -> dict[str, object]:
    """Dataset-level scores from stacked hit vectors v1 [N, K], v2 [N, n_iou, K]: accuracy
    per threshold (the curves), each maximized over the threshold, V2 = mean of its maxima (%).
    The same reducers as the summary's (and its bootstrap's) MaxBoxAcc statistics."""
    n, n_iou = len(v1_hits), v2_hits.shape[1]
    v1_sums, v2_sums = v1_hits.sum(axis=0, dtype=np.float64)[None], v2_hits.reshape(n, -1).sum(axis=0, dtype=np.float64)[None]
    curve_v1 = 100.0 * v1_sums[0] / n
    curve_v2 = 100.0 * v2_sums[0].reshape(n_iou, -1) / n
    return {
        "maxboxacc": float(100.0 * curve_max(v1_sums, np.full_like(v1_sums, n))[0]),
        "maxboxacc_v2": float(100.0 * curve_max_mean(n_iou)(v2_sums, np.full_like(v2_sums, n))[0]),
        "maxboxacc_v2_per_iou": curve_v2.max(axis=1),
        "best_tau_index_v1": int(curve_v1.argmax()),
        "best_tau_index_v2": curve_v2.argmax(axis=1),
        "curve_v1": curve_v1,
        "curve_v2": curve_v2,
    }


@register_metric("maxboxacc")
class MaxBoxAcc(MapMetric):
    """MaxBoxAcc (V1) and MaxBoxAccV2 over the maps of ground-truth targets; the per-threshold
    accuracy curves go to boxacc_curves.csv."""

    Settings = MaxBoxAccSettings
    columns = (
        ("boxacc_v1_hits", pa.list_(pa.bool_())),  # per threshold: largest component's box hits (gt rows)
        ("boxacc_v2_hits", pa.list_(pa.bool_())),  # per IoU level, per threshold (row-major): best box hits
    )

    def _scored(self, chunk: MapChunk, truth: ImageTruth) -> tuple[list[int], list[int]]:
        """The maps scored (ground-truth targets whose class has boxes) and those of them swept:
        with a peak, or all of them with mode=wsolevaluation (which scores an unnormalizable map
        as all zero)."""
        chosen = [i for i, cls in enumerate(chunk.classes) if chunk.is_gt[i] and len(truth.boxes_of(int(cls)))]
        if self.settings.mode == "wsolevaluation":
            return chosen, chosen
        return chosen, [i for i in chosen if chunk.status[i] not in NO_PEAK]

    def measure(self, chunk: MapChunk, truth: ImageTruth) -> Measured:
        _, swept = self._scored(chunk, truth)
        if not swept:
            return {}
        if self.settings.mode == "wsolevaluation":  # its contours take the map itself (float32, smaller than normalized)
            return {"maps": chunk.maps[swept]}
        normalized, ok = minmax_normalized(chunk.maps[swept], truth.valid)
        return {"normalized": normalized, "ok": ok}

    def finish(self, measured: Measured, chunk: MapChunk, truth: ImageTruth) -> dict[str, Sequence[Any]]:
        chosen, swept = self._scored(chunk, truth)
        v1: list[list[bool] | None] = [None] * len(chunk)
        v2: list[list[bool] | None] = [None] * len(chunk)
        if self.settings.mode == "wsolevaluation":
            valid = None if truth.valid is None else truth.valid.cpu().numpy()
            for j, i in enumerate(swept):
                hit1, hit2 = contour_hits(measured["maps"][j], truth.boxes_of(int(chunk.classes[i])), self.settings, valid)
                v1[i], v2[i] = hit1.tolist(), hit2.ravel().tolist()
            return {"boxacc_v1_hits": v1, "boxacc_v2_hits": v2}
        normalized = dict(zip(swept, measured["normalized"].numpy())) if swept else {}
        ok = dict(zip(swept, measured["ok"].tolist())) if swept else {}
        for i in chosen:
            hit1, hit2 = sweep_hits(normalized[i] if ok.get(i) else None, truth.boxes_of(int(chunk.classes[i])), self.settings)
            v1[i], v2[i] = hit1.tolist(), hit2.ravel().tolist()
        return {"boxacc_v1_hits": v1, "boxacc_v2_hits": v2}

    def statistics(self) -> list[Statistic]:
        ious = self.settings.iou_thresholds
        stats = [
            Statistic("maxboxacc", self._best("boxacc_v1_hits"), lower_is_better=False),
            Statistic("maxboxacc_v2", self._best("boxacc_v2_hits", groups=len(ious)), lower_is_better=False),
        ]
        stats += [
            Statistic(f"maxboxacc_v2_iou{round(100 * iou)}", self._best("boxacc_v2_hits", groups=len(ious), level=j), lower_is_better=False)
            for j, iou in enumerate(ious)
        ]
        if self.settings.top1:
            stats += [
                Statistic("maxboxacc_top1", self._best_top1("boxacc_v1_hits"), lower_is_better=False),
                Statistic("maxboxacc_v2_top1", self._best_top1("boxacc_v2_hits", groups=len(ious)), lower_is_better=False),
            ]
        return stats

    def _best_top1(self, column: str, groups: int = 1):
        """Top-1 MaxBoxAcc: per image, the hits of the GT-class map of its top-1 prediction when
        that prediction is one of its GT classes, else misses at every threshold; one unit per
        image (for single-label data: GT-known hits and a right top-1 class), best threshold over
        the dataset. Needs the predictions (targets.topk >= 1)."""

        def build(rows: pd.DataFrame, images: pd.Index) -> MetricData | None:
            picked = with_values(gt_rows(rows), column)
            if self.run.topk < 1 or not len(picked):
                return None
            top1 = predicted_rows(rows, 1).drop_duplicates("image_id").set_index("image_id")["target"]
            right = (picked["target"].to_numpy() == picked["image_id"].map(top1).to_numpy()).astype(np.float64)
            hits = hit_matrix(picked, column) * right[:, None]
            image_ids, position = np.unique(picked["image_id"].to_numpy(), return_inverse=True)
            per_image = np.zeros((len(image_ids), hits.shape[1]))
            np.add.at(per_image, position, hits)  # at most one right row per image
            return best_of_curves(pd.DataFrame({"image_id": image_ids}), per_image, images, groups)

        return build

    @staticmethod
    def _best(column: str, groups: int = 1, level: int | None = None):
        def build(rows: pd.DataFrame, images: pd.Index) -> MetricData | None:
            picked = with_values(gt_rows(rows), column)
            if not len(picked):
                return None
            hits = hit_matrix(picked, column)
            if level is not None:  # one IoU level of V2
                return best_of_curves(picked, hits.reshape(len(hits), groups, -1)[:, level], images)
            return best_of_curves(picked, hits, images, groups)

        return build

    def provenance(self) -> dict[str, Any]:
        """The settings as scored: those left null are recorded as the mode made them."""
        return {**super().provenance(), **{key: self.settings.effective(key) for key in MODE_DEFAULTS[self.settings.mode]}}

    def tables(self, records: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """boxacc_curves: accuracy (%) per threshold per method: columns method, version (v1 / v2),
        iou, tau, acc."""
        thresholds = sweep_thresholds(self.settings.step)
        out = []
        for method, rows in records.groupby("method", sort=False):
            scored = gt_rows(rows[rows["skip_reason"].isna()])
            for column, version, ious in (("boxacc_v1_hits", "v1", [self.settings.v1_iou]), ("boxacc_v2_hits", "v2", list(self.settings.iou_thresholds))):
                picked = with_values(scored, column)
                if not len(picked):
                    continue
                per = (100.0 * hit_matrix(picked, column).mean(axis=0)).reshape(len(ious), len(thresholds))
                for iou, acc in zip(ious, per):
                    out.append(pd.DataFrame({"method": method, "version": version, "iou": iou, "tau": thresholds, "acc": acc}))
        return {"boxacc_curves": pd.concat(out, ignore_index=True)} if out else {}
