"""MaxBoxAcc / MaxBoxAccV2 (Choe et al. 2020): the one-pass sweep against per-threshold
relabeling, a hand-built map whose answer is known at every threshold, dataset-level best tau."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsl_bench.metrics.maxboxacc import MaxBoxAccSettings as BoxAccProtocol
from wsl_bench.metrics.maxboxacc import (
    _levels, boxacc_hits, max_box_acc, minmax_normalize, sweep_ious, sweep_thresholds,
    threshold_components, threshold_components_relabel,
)


def canonical(c) -> np.ndarray:
    order = np.lexsort((c.first, c.level))
    return np.c_[c.level[order], c.area[order], c.first[order], c.boxes[order]]


@pytest.mark.parametrize("step", [0.01, 0.05, 0.003])
def test_levels_match_searchsorted_at_threshold_values(step):
    t = sweep_thresholds(step)
    v = np.r_[t, np.nextafter(t, 2), np.nextafter(t, -1), np.random.default_rng(0).random(500), 0.0, 1.0]
    v = v[(v >= 0) & (v <= 1)]
    assert (_levels(v, t, "ge") == np.searchsorted(t, v, side="right")).all()
    assert (_levels(v, t, "gt") == np.searchsorted(t, v, side="left")).all()


def random_maps():
    rng = np.random.default_rng(1)
    for trial in range(12):
        h, w = (int(x) for x in rng.integers(2, 30, 2))
        yield rng.random((h, w))  # noise: many components
        yield rng.integers(0, 4, (h, w)).astype(float)  # plateaus and ties
        coarse = torch.rand(1, 1, 3, 4, generator=torch.Generator().manual_seed(trial))
        yield F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0, 0].double().numpy()  # CAM-like


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("comparison", ["ge", "gt"])
def test_one_pass_sweep_equals_relabeling_every_threshold(connectivity, comparison):
    t = sweep_thresholds(0.01)
    for m in random_maps():
        v = minmax_normalize(m)
        if v is None:
            continue
        fast = canonical(threshold_components(v, t, comparison, connectivity))
        slow = canonical(threshold_components_relabel(v, t, comparison, connectivity))
        assert fast.shape == slow.shape and (fast == slow).all()


def hand_map() -> tuple[np.ndarray, np.ndarray]:
    """A 6x6 blob at 0.5 (36 px) and a 3x3 blob at 1.0 (9 px) on a zero background; the GT box
    is the small blob."""
    m = np.zeros((20, 20))
    m[1:7, 1:7] = 0.5
    m[12:15, 12:15] = 1.0
    return m, np.array([[12, 12, 14, 14]])


def test_sweep_known_at_every_threshold():
    m, gt = hand_map()
    k = np.arange(100)
    # >= : tau 0 keeps the whole image (one full box, IoU 9/400); 0 < tau <= 0.5 both blobs,
    # the larger (wrong) one largest; tau > 0.5 only the small blob.
    v1, v2 = boxacc_hits(m, gt)
    assert (v1 == (k >= 51)).all()
    assert (v2[0] == (k >= 1)).all() and (v2[1] == (k >= 1)).all() and (v2[2] == (k >= 1)).all()
    comps = threshold_components(minmax_normalize(m), sweep_thresholds(), "ge", 8)
    largest, best = sweep_ious(comps, gt, 100)
    assert largest[0] == pytest.approx(9 / 400) and best[0] == pytest.approx(9 / 400)
    assert largest[30] == 0.0 and best[30] == 1.0 and largest[60] == 1.0
    # > : at tau 0 the background drops out; at tau 0.5 the large blob does
    v1, v2 = boxacc_hits(m, gt, BoxAccProtocol(comparison="gt"))
    assert (v1 == (k >= 50)).all() and (v2[1] == (k >= 0)).all()


def test_v2_iou_levels_each_use_their_own_threshold():
    # GT box 10x10; the map is a 12x12 square (IoU 100/144 = 0.69) with a 10x10 core at 1.0
    m = np.zeros((30, 30))
    m[4:16, 4:16] = 0.4
    m[5:15, 5:15] = 1.0
    gt = np.array([[5, 5, 14, 14]])
    v1, v2 = boxacc_hits(m, gt)
    k = np.arange(100)
    assert (v2[2] == (k >= 41)).all()  # IoU >= 0.7 only once the core stands alone
    assert (v2[0] == (k >= 1)).all() and (v2[1] == (k >= 1)).all()
    assert (v1 == (k >= 1)).all()


def test_dataset_level_best_threshold_not_per_image():
    k = np.arange(100)
    v1 = np.stack([k >= 51, k <= 30])  # each image is right at some threshold, never both
    v2 = np.stack([np.stack([k >= 51] * 3), np.stack([k <= 30] * 3)])
    res = max_box_acc(v1, v2)
    assert res["maxboxacc"] == 50.0 and res["maxboxacc_v2"] == 50.0
    assert res["curve_v1"][0] == 50.0 and res["curve_v1"][40] == 0.0 and res["best_tau_index_v1"] == 0


def test_invariances_and_degenerate_maps():
    m, gt = hand_map()
    base = boxacc_hits(m, gt)
    for transformed in (m * 1e-3, m * 40 + 7, torch.tensor(m * 2)):
        got = boxacc_hits(transformed, gt)
        assert (got[0] == base[0]).all() and (got[1] == base[1]).all()
    for bad in (np.zeros((5, 5)), np.full((5, 5), 2.0), np.full((5, 5), np.nan), None):
        v1, v2 = boxacc_hits(bad, gt)
        assert v1.shape == (100,) and v2.shape == (3, 100) and not v1.any() and not v2.any()


def test_step_sets_the_number_of_thresholds():
    m, gt = hand_map()
    v1, v2 = boxacc_hits(m, gt, BoxAccProtocol(step=0.1))
    assert v1.shape == (10,) and (v1 == (np.arange(10) >= 6)).all()  # tau 0.6 .. 0.9
    with pytest.raises(ValueError):
        sweep_thresholds(1.5)


def test_wsolevaluation_box_convention_is_one_pixel_larger():
    m = np.zeros((20, 20))
    m[5:8, 5:8] = 1.0
    gt = np.array([[5, 5, 7, 7]])
    tight = boxacc_hits(m, gt)[1]
    wide = boxacc_hits(m, gt, BoxAccProtocol(box_convention="wsolevaluation"))[1]
    assert tight[2, 50] and not wide[2, 50] and wide[1, 50]  # IoU 9/16 = 0.5625: below 0.7, above 0.5
    edge = np.zeros((20, 20))
    edge[17:20, 17:20] = 1.0  # at the border the wider box is clipped back to the image
    assert boxacc_hits(edge, np.array([[17, 17, 19, 19]]), BoxAccProtocol(box_convention="wsolevaluation"))[1][2, 50]


def test_center_crop_pixels_outside_the_crop_are_in_no_mask():
    # The map covers columns 2..5 of a 4 x 8 image (a crop), where it rises 0, 1/3, 2/3, 1; outside it
    # holds the filled-in minimum 0. At tau = 0 (s >= 0) the mask is the crop, box (2, 0, 5, 3),
    # IoU 1 with a GT box equal to it; before, the whole image (IoU 0.5). At tau in (0, 1/3]
    # the mask is columns 3..5: IoU 12 / 16 = 0.75.
    from wsl_bench.metrics.maxboxacc import MaxBoxAccSettings as BoxAccProtocol, boxacc_hits
    sal = np.zeros((4, 8))
    sal[:, 2:6] = [0.0, 1 / 3, 2 / 3, 1.0]
    valid = np.zeros((4, 8), bool)
    valid[:, 2:6] = True
    gt = np.array([[2, 0, 5, 3]])
    proto = BoxAccProtocol(step=0.25, iou_thresholds=(0.8,), v1_iou=0.8)
    v1, v2 = boxacc_hits(sal, gt, proto, valid)
    assert v1.tolist() == [True, False, False, False] and v2[0].tolist() == [True, False, False, False]
    v1_all, _ = boxacc_hits(sal, gt, proto)
    assert not v1_all[0]  # without the crop mask the whole 4 x 8 image is boxed at tau = 0
    v1, _ = boxacc_hits(sal, gt, BoxAccProtocol(step=0.25, v1_iou=0.75), valid)
    assert v1.tolist() == [True, True, False, False]


def test_top1_maxboxacc_counts_a_box_only_under_a_right_top1_prediction():
    import pandas as pd

    from wsl_bench.metrics.base import RunInfo
    from wsl_bench.metrics.maxboxacc import MaxBoxAcc

    # 4 thresholds (step 0.25), one IoU level. a: class 3, top-1 3 (right); b: class 5, top-1 7
    # (wrong); c: classes 1 and 2 (multi-label), top-1 1: its class-1 map's hits count.
    gt = [("a", 3, [1, 1, 0, 0]), ("b", 5, [0, 1, 1, 0]), ("c", 1, [0, 0, 1, 1]), ("c", 2, [1, 1, 1, 1])]
    top1 = [("a", 3), ("b", 7), ("c", 1)]
    rows = pd.DataFrame(
        [{"image_id": i, "target": t, "target_source": "gt", "pred_rank": 0, "boxacc_v1_hits": [bool(h) for h in hits],
          "boxacc_v2_hits": [bool(h) for h in hits]} for i, t, hits in gt]
        + [{"image_id": i, "target": t, "target_source": "top1", "pred_rank": 1, "boxacc_v1_hits": None, "boxacc_v2_hits": None} for i, t in top1]
    )
    images = pd.Index(["a", "b", "c"])
    unit = MaxBoxAcc(BoxAccProtocol(step=0.25, iou_thresholds=(0.5,), top1=True), RunInfo(topk=1))
    stats = {s.name: s for s in unit.statistics()}
    # per image: a [1, 1, 0, 0], b zeros, c [0, 0, 1, 1] -> 1/3 at every threshold
    assert stats["maxboxacc_top1"].build(rows, images).value() == pytest.approx(100 / 3)
    assert stats["maxboxacc_v2_top1"].build(rows, images).value() == pytest.approx(100 / 3)
    # GT-known, per GT map: [2, 3, 3, 2] / 4
    assert stats["maxboxacc"].build(rows, images).value() == pytest.approx(75.0)
    rows.loc[rows["target_source"].eq("top1") & rows["image_id"].eq("c"), "target"] = 2  # c's top-1: class 2, all hits
    assert stats["maxboxacc_top1"].build(rows, images).value() == pytest.approx(200 / 3)  # [2, 2, 1, 1] / 3
    assert MaxBoxAcc(BoxAccProtocol(top1=True), RunInfo(topk=0)).statistics()[-1].build(rows, images) is None  # no predictions
    assert "maxboxacc_top1" not in {s.name for s in MaxBoxAcc().statistics()}  # off by default
