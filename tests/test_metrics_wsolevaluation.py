"""metric.maxboxacc.mode=wsolevaluation: wsolevaluation's own box-extraction test cases
(evaluation_test.py: unimodal, multimodal, degenerate, NaN) with hand-checked boxes, hand-made
holes and polygon areas, and - when OpenCV is installed (the `test` extra) - every contour box and
every V1 box of random maps against cv2 itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsl_bench.errors import ConfigError
from wsl_bench.metrics.maxboxacc import MaxBoxAcc, MaxBoxAccSettings, boxacc_hits, threshold_components
from wsl_bench.metrics.wsol_contours import contour_boxes, fill_holes, normalize_scoremap, quantize, threshold_cuts, window_weights

WSOL = MaxBoxAccSettings(mode="wsolevaluation")


def v1_boxes(scoremap: np.ndarray, thresholds: np.ndarray) -> list[list[int]]:
    """The V1 (largest contour) box per threshold, through our normalization, quantization and cut."""
    q = quantize(normalize_scoremap(scoremap))
    cuts, tau_cut = np.unique(threshold_cuts(q, thresholds), return_inverse=True)
    return contour_boxes(q, cuts)[0][tau_cut].tolist()


# wsolevaluation's evaluation_test.py cases, thresholds 0, 0.2, ..., 0.8. The maps already span
# [0, 1], so normalization keeps them; q = floor(255 s): 0.2 -> 51, 0.4 -> 102, 0.6 -> 153,
# 0.8 -> 204, 1.0 -> 255, and the cuts int(tau * 255) are 0, 51, 102, 153 (or 152), 204 (or 203):
# a pixel at value tau is never above the cut of tau.
TAUS = np.arange(0, 1, 0.2)


UNIMODAL = (  # rows y = 0..3
    np.array([[0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.4, 0.4, 0.4, 0.6], [0.0, 0.4, 1.0, 0.8, 0.6], [0.0, 0.4, 0.4, 0.4, 0.6]]),
    # tau 0 and 0.2: the nonzero 3 x 4 block, x 1..4, y 1..3 -> (1, 1, 5, 4) clipped to (1, 1, 4, 3);
    # tau 0.4: 0.6, 0.8 and 1.0: x 2..4, y 1..3 -> (2, 1, 4, 3); tau 0.6: 0.8 and 1.0 at y = 2,
    # x 2..3 -> (2, 2, 4, 3); tau 0.8: the peak alone at (2, 2) -> (2, 2, 3, 3).
    [[1, 1, 4, 3], [1, 1, 4, 3], [2, 1, 4, 3], [2, 2, 4, 3], [2, 2, 3, 3]],
)
MULTIMODAL = (  # rows y = 0..3
    np.array([[0.4, 0.0, 0.2, 0.2, 0.2], [0.4, 0.4, 0.0, 0.4, 0.0], [0.0, 0.0, 0.0, 0.4, 0.0], [1.0, 0.6, 0.8, 0.2, 0.2]]),
    # tau 0: every nonzero pixel is one 8-connected component (the column x = 3 joins the top row to
    # the bottom one, (1, 1)-(2, 0) joins the left group): (0, 0, 4, 3).
    # tau 0.2: the L of three 0.4s at the top left (polygon area 1/2) against the bottom row with
    # (3, 1), (3, 2) (five pixels, but a polygon of area 0): the L, (0, 0, 1, 1) -> (0, 0, 2, 2).
    # tau 0.4: the bottom row 1.0, 0.6, 0.8: (0, 3, 2, 3) -> (0, 3, 3, 3).
    # tau 0.6: two single pixels, 1.0 at x = 0 and 0.8 at x = 2, both of area 0: OpenCV lists the
    # later-found first, so x = 2: (2, 3, 3, 3). tau 0.8: the peak alone: (0, 3, 1, 3).
    [[0, 0, 4, 3], [0, 0, 2, 2], [0, 3, 3, 3], [2, 3, 3, 3], [0, 3, 1, 3]],
)


@pytest.mark.parametrize("scoremap, expected", [UNIMODAL, MULTIMODAL], ids=["unimodal", "multimodal"])
def test_wsolevaluation_box_cases(scoremap, expected):
    assert v1_boxes(scoremap, TAUS) == expected


def test_degenerate_and_nan_maps_give_the_origin_box():
    # all zero: no contour at any cut (q > 0 is empty), the box (0, 0, 0, 0) at every threshold;
    # wsolevaluation's inference normalizes a NaN (or constant) map to all zero first.
    assert v1_boxes(np.zeros((3, 3)), TAUS) == [[0, 0, 0, 0]] * 5
    for bad in (np.full((3, 3), np.nan), np.full((3, 3), 0.7), np.array([[np.inf, 0.0], [1.0, 2.0]])):
        assert not normalize_scoremap(bad).any()
    # scored as wsolevaluation scores it: the 1-pixel box at the origin against the GT box
    nan = torch.full((6, 6), float("nan"))
    v1, v2 = boxacc_hits(nan, np.array([[0, 0, 0, 0]]), WSOL)
    assert v1.all() and v2.all()  # IoU 1 at every threshold
    v1, v2 = boxacc_hits(nan, np.array([[0, 0, 1, 1]]), WSOL)
    assert not v1.any() and not v2[0].any()  # IoU 1/4 < 0.3
    assert not boxacc_hits(nan, np.array([[0, 0, 0, 0]]))[0].any()  # mode=components: a miss


def test_hole_boundaries_are_v2_candidates():
    # A 7 x 7 square at 1.0 with a 3 x 3 hole (x, y 4..6). Outer contour: (2, 2, 8, 8) -> (2, 2, 9, 9);
    # the hole's border runs through its 4-neighbours, x, y 3..7 -> (3, 3, 8, 8). GT (3, 3, 7, 7):
    # IoU with the hole box 25/36 = 0.69 (>= 0.5, < 0.7); with the outer box 25/64 = 0.39.
    m = np.zeros((12, 12))
    m[2:9, 2:9] = 1.0
    m[4:7, 4:7] = 0.0
    gt = np.array([[3, 3, 7, 7]])
    v1, v2 = boxacc_hits(m, gt, WSOL)
    assert v2[0].all() and v2[1].all() and not v2[2].any()
    assert not v1.any()  # V1: the outer contour (area 36 > the hole's 8), IoU 0.39 < 0.5
    _, comp_v2 = boxacc_hits(m, gt, MaxBoxAccSettings(comparison="gt", box_convention="wsolevaluation"))
    assert not comp_v2[1].any()  # components have no hole boxes


def test_v1_ranks_by_polygon_area_not_pixel_count():
    # a 1 x 10 line (10 px, polygon area 0) and a 2 x 2 block (4 px, area 1)
    m = np.zeros((8, 14))
    m[1, 1:11] = 1.0
    m[5:7, 5:7] = 1.0
    block = np.array([[5, 5, 7, 7]])  # the block's wsolevaluation box (5, 5, 6 + 1, 6 + 1)
    assert boxacc_hits(m, block, WSOL)[0].all()
    assert not boxacc_hits(m, block, MaxBoxAccSettings(comparison="gt", box_convention="wsolevaluation"))[0].any()


def test_window_weights_sum_to_polygon_areas():
    # plus sign: a diamond polygon of area 2; 3 x 3 square: area 4; single pixel: 0
    m = np.zeros((9, 13))
    m[1:4, 2] = m[2, 1:4] = 1.0
    m[5:8, 5:8] = 1.0
    m[2, 10] = 1.0
    q = quantize(m)
    r = fill_holes(q)
    comps = threshold_components(r, np.array([0.0]), "gt", 8, weights=window_weights(r))
    assert sorted(comps.weight.tolist()) == [0.0, 2.0, 4.0]
    # a ring keeps its hole filled: 5 x 5 outline -> polygon area 16
    ring = np.zeros((7, 7))
    ring[1:6, 1:6] = 1.0
    ring[2:5, 2:5] = 0.0
    r = fill_holes(quantize(ring))
    assert threshold_components(r, np.array([0.0]), "gt", 8, weights=window_weights(r)).weight.tolist() == [16.0]


def test_mode_fixes_the_cut_connectivity_and_box():
    with pytest.raises(ConfigError, match=r"metric.maxboxacc.comparison=ge does not apply with metric.maxboxacc.mode=wsolevaluation"):
        MaxBoxAccSettings(mode="wsolevaluation", comparison="ge")
    with pytest.raises(ConfigError, match=r"metric.maxboxacc.box_convention=tight .*mode=components"):
        MaxBoxAccSettings(mode="wsolevaluation", box_convention="tight")
    ok = MaxBoxAccSettings(mode="wsolevaluation", comparison="gt", connectivity=8)
    assert ok.effective("box_convention") == "wsolevaluation"
    recorded = MaxBoxAcc(WSOL).provenance()
    assert recorded["comparison"] == "gt" and recorded["box_convention"] == "wsolevaluation" and recorded["mode"] == "wsolevaluation"
    assert MaxBoxAcc().provenance()["comparison"] == "ge"  # the default run records what it did


# ---------------------------------------------------------------- against OpenCV itself


def smooth_maps(count: int, seed: int = 0):
    """CAM-like maps (bicubic from a coarse grid), with rings (holes), negative blobs, plateaus and noise."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(20, 48, 2))
        yy, xx = np.mgrid[0:h, 0:w]
        coarse = torch.rand(1, 1, *(int(v) for v in rng.integers(3, 8, 2)), generator=torch.Generator().manual_seed(i))
        m = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0, 0].double().numpy()
        d = np.hypot(yy - rng.uniform(0, h), xx - rng.uniform(0, w))
        m += rng.uniform(0, 1.5) * np.exp(-((d - rng.uniform(3, 12)) ** 2) / (2 * rng.uniform(0.7, 3) ** 2))
        if i % 3 == 0:
            m += rng.normal(0, 0.05, m.shape)
        if i % 5 == 0:
            m = np.round(m * 6) / 6  # plateaus: equal areas and ties
        yield m


def cv2_reference(q: np.ndarray, cut: int):
    """wsolevaluation's steps at one cut with cv2 calls: every contour's rect as a box
    (x, y, x + w, y + h) clipped, and the box of the first contour of largest area."""
    cv2 = pytest.importorskip("cv2", reason="OpenCV is the reference here: pip install -e '.[test]'")
    height, width = q.shape
    _, mask = cv2.threshold(q[..., None], cut, 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if not contours:
        return [[0, 0, 0, 0]], [0, 0, 0, 0], 0.0
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
    areas = [cv2.contourArea(c) for c in contours]
    largest = max(range(len(contours)), key=lambda j: areas[j])
    return sorted(boxes), boxes[largest], areas[largest]


def test_every_box_matches_opencv_on_random_maps():
    pytest.importorskip("cv2", reason="OpenCV is the reference here: pip install -e '.[test]'")
    thresholds = np.arange(0, 1, 0.01)
    checked = 0
    for m in smooth_maps(24):
        q = quantize(normalize_scoremap(m))
        cuts = np.unique(threshold_cuts(q, thresholds))
        v1, level, boxes = contour_boxes(q, cuts)
        r = fill_holes(q)
        filled = threshold_components(r, cuts.astype(float), "gt", 8, weights=window_weights(r))
        for k, cut in enumerate(cuts):
            all_ref, v1_ref, area_ref = cv2_reference(q, int(cut))
            assert sorted(boxes[level == k].tolist()) == all_ref, (checked, cut)
            assert v1[k].tolist() == v1_ref, (checked, cut)
            at = filled.weight[filled.level == k]
            assert (at.max() if len(at) else 0.0) == area_ref
        checked += 1
    assert checked == 24
