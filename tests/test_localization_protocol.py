"""Grad-CAM box protocol and the pointing game on hand-built maps with hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsl_bench.metrics import (
    box_iou, box_iou_matrix, distance_to_boxes, largest_component_box, largest_component_boxes, pointing_hit,
)


def test_larger_of_two_blobs_is_boxed():
    sal = np.zeros((20, 30))
    sal[2:5, 3:6] = 1.0       # 9 px, holds the maximum
    sal[10:16, 12:20] = 0.5   # 48 px, the larger segment
    assert largest_component_box(sal) == (12, 10, 19, 15)


def test_diagonal_neighbours_join_under_8_connectivity_only():
    sal = np.zeros((10, 10))
    sal[1, 1] = sal[2, 2] = sal[3, 3] = 1.0  # a diagonal chain of 3 px
    sal[7, 7:9] = 1.0                         # 2 px side by side
    assert largest_component_box(sal) == (1, 1, 3, 3)
    # with 4-connectivity the chain falls apart into single pixels and the pair wins
    assert largest_component_box(sal, connectivity=4) == (7, 7, 8, 7)


def test_pixel_at_exactly_15_percent_of_max_is_included():
    sal = np.zeros((8, 8), dtype=np.float32)
    sal[4, 4] = 1.0
    sal[4, 5] = 0.15   # exactly at the cut (0.15 * 1.0 in float32 on both sides)
    sal[4, 6] = 0.149  # just below
    assert largest_component_box(sal) == (4, 4, 5, 4)
    assert largest_component_box(sal, comparison="gt") == (4, 4, 4, 4)


def test_scaling_a_map_changes_no_box():
    rng = np.random.default_rng(0)
    sal = rng.random((40, 50)) ** 4
    assert largest_component_box(sal) == largest_component_box(sal * 7.5)


@pytest.mark.parametrize("bad", [np.zeros((6, 6)), np.full((6, 6), 3.0), np.full((6, 6), np.nan)])
def test_unscorable_maps_give_no_box_and_a_miss(bad):
    assert largest_component_box(bad) is None
    assert pointing_hit(bad, np.ones((6, 6), dtype=bool)) is False


def test_batched_boxes_match_one_by_one_and_tie_goes_to_first_in_raster_order():
    masks = np.zeros((3, 6, 6), dtype=bool)
    masks[0, 0, 0:2] = True
    masks[0, 4, 3:5] = True           # same size: the first met in raster order wins
    masks[2, 1:4, 2] = True           # slice 1 stays empty
    boxes = largest_component_boxes(masks)
    assert boxes.tolist() == [[0, 0, 1, 0], [-1, -1, -1, -1], [2, 1, 2, 3]]
    assert largest_component_boxes(torch.from_numpy(masks)).tolist() == boxes.tolist()


def test_iou_inclusive_pixel_convention_hand_computed():
    # a: 10x10 = 100 px; b: x 5..14, y 5..14 -> 100 px; overlap x 5..9, y 5..9 -> 25 px
    assert box_iou((0, 0, 9, 9), (5, 5, 14, 14)) == pytest.approx(25 / 175)
    assert box_iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0
    assert box_iou((0, 0, 9, 9), (10, 0, 19, 9)) == 0.0          # touching, no shared pixel
    assert box_iou((3, 3, 3, 3), (3, 3, 3, 3)) == 1.0            # a single pixel has area 1
    # 1-px overlap column: x 9..9 of (0..9) and (9..18), heights 1 -> 1 / (10 + 10 - 1)
    assert box_iou((0, 0, 9, 0), (9, 0, 18, 0)) == pytest.approx(1 / 19)
    m = box_iou_matrix(np.array([[0, 0, 9, 9], [-1, -1, -1, -1]]), np.array([[5, 5, 14, 14], [0, 0, 4, 4]]))
    assert m == pytest.approx(np.array([[25 / 175, 25 / 100], [0.0, 0.0]]))


def test_pointing_boundary_15px_is_a_miss_14px_a_hit():
    mask = np.zeros((60, 60), dtype=bool)
    mask[30, 40] = True  # the only GT pixel
    for peak_x, expected in [(25, False), (26, True)]:  # distance 15 and 14
        sal = np.zeros((60, 60))
        sal[30, peak_x] = 1.0
        assert pointing_hit(sal, mask, tolerance=15) is expected
    # diagonal: (dx, dy) = (9, 12) is exactly 15 px away
    sal = np.zeros((60, 60))
    sal[18, 31] = 1.0
    assert pointing_hit(sal, mask) is False
    assert distance_to_boxes(np.array([[31, 18]]), np.array([[40, 30, 50, 35]]))[0] == 15.0
    assert distance_to_boxes(np.array([[45, 31]]), np.array([[40, 30, 50, 35]]))[0] == 0.0


def test_center_crop_box_stays_inside_the_crop_when_the_whole_map_is_above_the_cut():
    # A 2x2 map all above 15% of its max (min 0.5), covering only the center 100 x 100 crop of a
    # 200 x 100 image: every covered pixel is in the mask, so the box is the crop (50, 0, 149, 99),
    # IoU 1 with a GT box equal to it; the filled-in minimum outside must not widen it to the
    # whole image (IoU 0.5).
    from wsl_bench.data.sample import View
    from wsl_bench.metrics.maps import to_original_size, view_mask
    from metric_helpers import score_maps
    from wsl_bench.metrics.localization import LocalizationSettings as LocalizationProtocol
    from wsl_bench.metrics.pointing import PointingSettings as PointingProtocol

    view = View(50.0, 0.0, 150.0, 100.0)
    full = to_original_size(torch.tensor([[[0.5, 1.0], [0.75, 0.6]]]), (100, 200), view)
    valid = view_mask((100, 200), view)
    assert valid.sum() == 100 * 100 and valid[:, 50].all() and not valid[:, 49].any() and not valid[:, 150].any()
    scores = score_maps(full, [np.array([[50, 0, 149, 99]])], LocalizationProtocol(), PointingProtocol(), valid=valid)
    assert scores.boxes[0].tolist() == [50, 0, 149, 99]
    assert scores.iou[0] == 1.0 and scores.loc_correct[0]
    assert view_mask((100, 200), View(0.0, 0.0, 200.0, 100.0)) is None


def test_center_crop_energy_counts_no_energy_outside_the_crop():
    # Same crop, map 0.5 (left) to 1.0 (right): a GT box equal to the crop holds all of the map's
    # energy, share 1, with normalize=none as with minmax. Before the fix, normalize=none counted the
    # filled-in minimum 0.5 on the 100 x 100 pixels outside: 7500 / (7500 + 5000) = 0.6.
    from wsl_bench.data.sample import View
    from wsl_bench.metrics.maps import to_original_size, view_mask
    from metric_helpers import score_maps
    from wsl_bench.metrics.energy_pointing import EnergyPointingSettings as EnergyProtocol
    from wsl_bench.metrics.localization import LocalizationSettings as LocalizationProtocol
    from wsl_bench.metrics.pointing import PointingSettings as PointingProtocol

    view = View(50.0, 0.0, 150.0, 100.0)
    full = to_original_size(torch.tensor([[[0.5, 1.0], [0.5, 1.0]]]), (100, 200), view)
    valid = view_mask((100, 200), view)
    crop_box = [np.array([[50, 0, 149, 99]])]
    for normalize in ("none", "minmax"):
        scores = score_maps(full, crop_box, LocalizationProtocol(), PointingProtocol(), energy=EnergyProtocol(normalize=normalize), valid=valid)
        assert scores.energy[0] == pytest.approx(1.0)
