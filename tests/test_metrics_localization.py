"""Box localization (Grad-CAM protocol), pointing game and energy pointing on hand-built maps, beyond\nthe foundation tests (tests/test_localization_protocol.py): normalization, invariances, degenerate\nmaps, pointing regions (masks, all-difficult skip), energy share."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsl_bench.data.sample import ImageEntry, Sample
from wsl_bench.metrics import largest_component_box, largest_component_boxes, pointing_hit
from wsl_bench.metrics.energy_pointing import energy_in_boxes
from metric_helpers import score_maps
from wsl_bench.metrics.localization import LocalizationSettings as LocalizationProtocol
from wsl_bench.metrics.base import ImageTruth, MapChunk
from wsl_bench.metrics.maps import map_status
from wsl_bench.metrics.pointing import Pointing, PointingSettings as PointingProtocol, pointing_region


def two_blobs() -> np.ndarray:
    m = np.zeros((20, 30))
    m[2:5, 2:5] = 1.0  # 9 px, the peak
    m[10:16, 10:20] = 0.5  # 60 px, the larger segment
    return m


def test_threshold_comparison_and_normalization():
    m = np.array([[1.0, 0.15, 0.0, 0.0]])
    assert largest_component_box(m, 0.15, "ge") == (0, 0, 1, 0)  # exactly 15% of max is in
    assert largest_component_box(m, 0.15, "gt") == (0, 0, 0, 0)
    # min-max: cut = -1 + 0.5 * 2 = 0 -> pixels >= 0; with max normalization cut = 0.5
    s = np.array([[-1.0, 0.0, 0.2, 1.0, -1.0]])
    assert largest_component_box(s, 0.5, normalize="minmax") == (1, 0, 3, 0)
    assert largest_component_box(s, 0.5, normalize="max") == (3, 0, 3, 0)


@pytest.mark.parametrize("bad", [np.zeros((5, 5)), np.full((5, 5), 3.0), np.full((5, 5), np.nan), -np.ones((5, 5)) * np.arange(5)])
def test_degenerate_maps_have_no_box(bad):
    assert largest_component_box(bad) is None


def test_positive_scaling_changes_no_box_or_point():
    m = two_blobs() + np.random.default_rng(0).random((20, 30)) * 0.01
    maps = torch.tensor(np.stack([m, 7.5 * m, 1e-4 * m]), dtype=torch.float32)
    scores = score_maps(maps, [np.array([[10, 10, 19, 15]])] * 3, LocalizationProtocol(), PointingProtocol())
    assert (scores.boxes == scores.boxes[0]).all() and (scores.points == scores.points[0]).all()
    assert scores.loc_correct.tolist() == [True] * 3
    assert np.allclose(energy_in_boxes(maps, [np.array([[10, 10, 19, 15]])] * 3), energy_in_boxes(maps[:1], [np.array([[10, 10, 19, 15]])])[0])


def test_torch_and_numpy_inputs_agree_and_batched_form_matches():
    m = two_blobs()
    assert largest_component_box(torch.tensor(m)) == largest_component_box(m)
    masks = np.stack([m > 0.1, m > 0.9, np.zeros_like(m, bool)])
    boxes = largest_component_boxes(masks)
    assert boxes.tolist() == [[10, 10, 19, 15], [2, 2, 4, 4], [-1, -1, -1, -1]]


def point_map(x: int, y: int, h: int = 60, w: int = 60) -> np.ndarray:
    m = np.zeros((h, w))
    m[y, x] = 1.0
    return m


def test_pointing_tolerance_boundary_boxes_and_masks():
    mask = np.zeros((60, 60), bool)
    mask[:, 40:] = True  # GT pixels from x = 40
    assert pointing_hit(point_map(25, 30), mask) is False  # 15 px away: miss
    assert pointing_hit(point_map(26, 30), mask) is True  # 14 px: hit
    assert pointing_hit(point_map(26, 30), mask, tolerance=14) is False
    assert pointing_hit(torch.tensor(point_map(26, 30)), torch.tensor(mask)) is True
    # Euclidean: (9, 12) away = 15 exactly is a miss; (9, 11) ~ 14.2 a hit
    corner = np.zeros((60, 60), bool)
    corner[42:, 39:] = True
    assert pointing_hit(point_map(30, 30), corner) is False
    assert pointing_hit(point_map(30, 31), corner) is True
    maps = torch.tensor(np.stack([point_map(25, 30), point_map(26, 30)]), dtype=torch.float32)
    scores = score_maps(maps, [np.array([[40, 0, 59, 59]])] * 2, LocalizationProtocol(), PointingProtocol())
    assert scores.point_hit == [False, True]


def test_pointing_scales_and_degenerate_maps_miss():
    mask = np.zeros((60, 60), bool)
    mask[20:30, 20:30] = True
    m = point_map(25, 25) + 0.1
    assert pointing_hit(m * 1000, mask) and pointing_hit(m * 1e-6, mask)
    assert not pointing_hit(np.zeros((60, 60)), mask)
    assert not pointing_hit(np.full((60, 60), np.inf), mask)
    # a negative map still has a peak: pointing is not a box metric
    neg = point_map(25, 25) - 5.0
    boxes = [np.array([[20, 20, 29, 29]])]
    scores = score_maps(torch.tensor(neg[None], dtype=torch.float32), boxes, LocalizationProtocol(), PointingProtocol())
    assert scores.status == ["non_positive"] and scores.point_hit == [True] and not scores.loc_correct[0]


def voc_entry() -> ImageEntry:
    return ImageEntry(
        "img", path=None, labels=(3, 7, 9),  # type: ignore[arg-type]
        boxes=np.array([[0, 0, 9, 9], [20, 20, 29, 29], [40, 40, 49, 49], [0, 40, 9, 49]]),
        box_labels=np.array([3, 7, 7, 9]),
        box_difficult=np.array([True, True, False, False]),
    )


def test_all_difficult_class_is_skipped_partly_difficult_is_not():
    entry, proto = voc_entry(), PointingProtocol()
    assert pointing_region(entry, 3, proto, None) is None  # its only box is difficult
    kind, boxes = pointing_region(entry, 7, proto, None)
    assert kind == "boxes" and boxes.tolist() == [[20, 20, 29, 29], [40, 40, 49, 49]]  # union, difficult included
    assert pointing_region(entry, 5, proto, None) is None  # not in the image
    assert pointing_region(entry, 3, PointingProtocol(skip_all_difficult=False), None)[0] == "boxes"
    mask = np.zeros((50, 50), bool)
    mask[0, 0] = True
    assert pointing_region(entry, 3, proto, {3: mask})[0] == "mask"  # masks (COCO): no difficult skip


def test_pointing_with_mask_region_uses_the_mask_not_its_box():
    ring = np.zeros((60, 60), bool)
    ring[10, 10:50] = ring[49, 10:50] = ring[10:50, 10] = ring[10:50, 49] = True
    maps = torch.tensor(point_map(30, 30)[None], dtype=torch.float32)
    scores = score_maps(maps, [np.array([[10, 10, 49, 49]])], LocalizationProtocol(), PointingProtocol(), regions=[("mask", ring)])
    assert scores.point_hit == [False]  # inside the box but 19 px from the nearest mask pixel
    scores = score_maps(maps, [np.array([[10, 10, 49, 49]])], LocalizationProtocol(), PointingProtocol())
    assert scores.point_hit == [True]


def test_energy_share_hand_computed():
    m = np.zeros((10, 10))
    m[:, :5] = 1.0
    m[:, 5:] = 3.0
    box = np.array([[0, 0, 4, 9]])  # the left half
    maps = torch.tensor(m[None], dtype=torch.float32)
    assert energy_in_boxes(maps, [box], "none")[0] == pytest.approx(50 / 200)
    assert energy_in_boxes(maps, [box], "minmax")[0] == pytest.approx(0.0)  # left half is the minimum
    two = np.array([[0, 0, 4, 9], [0, 0, 9, 1]])  # union: left half + top 2 rows of the right
    assert energy_in_boxes(maps, [two], "none")[0] == pytest.approx((50 + 30) / 200)
    bad = torch.stack([torch.zeros(10, 10), torch.full((10, 10), float("nan"))])
    assert energy_in_boxes(bad, [box, box]).tolist() == [0.0, 0.0]
    assert np.isnan(energy_in_boxes(maps, [np.zeros((0, 4))])[0])


def test_largest_component_boxes_equal_labeling_each_mask_alone():
    """The batched labeling (one 3-D call for a stack) against labeling each mask by itself, on
    random stacks with empty masks, many components and ties in size (first in raster order wins)."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    for _ in range(200):
        masks = rng.random((int(rng.integers(1, 6)), int(rng.integers(1, 25)), int(rng.integers(1, 25)))) < rng.random()
        masks[rng.integers(len(masks))] &= rng.random() < 0.7  # sometimes an empty mask
        for connectivity in (4, 8):
            structure = np.ones((3, 3), bool) if connectivity == 8 else ndimage.generate_binary_structure(2, 1)
            expected = []
            for mask in masks:
                labels, n = ndimage.label(mask, structure=structure)
                sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
                if n == 0:
                    expected.append([-1, -1, -1, -1])
                    continue
                ys, xs = np.nonzero(labels == 1 + int(sizes.argmax()))
                expected.append([xs.min(), ys.min(), xs.max(), ys.max()])
            assert largest_component_boxes(masks, connectivity).tolist() == expected


def test_a_flat_map_is_a_miss_or_torchrays_first_pixel():
    """no_peak=miss (ours): an all-zero or constant map misses even a box at the corner; no_peak=argmax
    (TorchRay's benchmark): its argmax, pixel (0, 0), is scored like any point: a hit for the
    corner box (0 px away), a miss for a box 20 px from it; a map with a peak is unaffected."""
    peaked = np.zeros((40, 40))
    peaked[30, 30] = 1.0
    maps = torch.tensor(np.stack([np.zeros((40, 40)), np.full((40, 40), 2.0), np.zeros((40, 40)), peaked]), dtype=torch.float32)
    boxes = [np.array([[0, 0, 5, 5]]), np.array([[0, 0, 5, 5]]), np.array([[20, 20, 30, 30]]), np.array([[0, 0, 5, 5]])]
    ours = score_maps(maps, boxes, LocalizationProtocol(), PointingProtocol())
    torchray = score_maps(maps, boxes, LocalizationProtocol(), PointingProtocol(no_peak="argmax"))
    assert ours.point_hit == [False, False, False, False]
    assert torchray.point_hit == [True, True, False, False]
    assert torchray.points.tolist() == [[0, 0], [0, 0], [0, 0], [30, 30]]


def test_a_map_with_nans_is_pointed_at_its_first_nan_as_torchray_does():
    """TorchRay's argmax ranks NaN highest: with no_peak=argmax a map with NaNs points at its first
    NaN in raster order (here (7, 3), hitting a box 10 px away, though the finite peak is at
    (30, 30)); with no_peak=miss it misses, its point the largest finite value's."""
    nan_map = np.zeros((40, 40))
    nan_map[30, 30] = 5.0
    nan_map[3, 7] = nan_map[3, 9] = nan_map[20, 0] = np.nan
    maps = torch.tensor(nan_map[None], dtype=torch.float32)
    boxes = [np.array([[17, 3, 20, 4]])]
    torchray = score_maps(maps, boxes, LocalizationProtocol(), PointingProtocol(no_peak="argmax"))
    ours = score_maps(maps, boxes, LocalizationProtocol(), PointingProtocol())
    assert torchray.status == ["nonfinite"]
    assert torchray.points.tolist() == [[7, 3]] and torchray.point_hit == [True]
    assert ours.points.tolist() == [[30, 30]] and ours.point_hit == [False]


@pytest.mark.parametrize("region", ["boxes", "mask"])
def test_a_methods_own_point_between_pixels_is_scored_from_where_it_lies(region):
    """A method's own point (TorchRay's center, (W / 2, H / 2) = (12.5, 8.5) on a 25 x 17 image)
    replaces the map's maximum, and the hit is measured from it as TorchRay's PointingGame does
    ((u - x)^2 + (v - y)^2 < 15^2 over the pixels u, v): a box at x = 27 is 14.5 px away (hit),
    at x = 28 15.5 px (miss); from the pixel (12, 8) under the point, x = 27 would be 15 px away, a miss."""
    truth_near, truth_far = np.zeros((17, 40), bool), np.zeros((17, 40), bool)
    truth_near[8, 27] = truth_far[8, 28] = True
    maps = torch.rand(3, 17, 40)
    boxes = [np.array([[27, 8, 27, 8]]), np.array([[28, 8, 28, 8]]), np.array([[28, 8, 28, 8]])]
    regions = None if region == "boxes" else [("mask", truth_near), ("mask", truth_far), ("mask", truth_far)]
    points = torch.tensor([[12.5, 8.5], [12.5, 8.5], [float("nan"), float("nan")]], dtype=torch.float64)
    maps[2, 8, 13] = 2.0  # the third map has no own point: its maximum (13, 8) is 15 px from x = 28

    masks = {i: r[1] for i, r in enumerate(regions)} if regions else None
    entry = ImageEntry(
        "img", path=None, labels=(0, 1, 2), boxes=np.concatenate(boxes), box_labels=np.arange(3),  # type: ignore[arg-type]
        masks=(lambda: masks) if masks else None,
    )
    chunk = MapChunk(maps, map_status(maps), np.arange(3), np.array([True] * 3), points)
    columns = Pointing(PointingProtocol()).score(chunk, ImageTruth(Sample(entry, None, (17, 40))))
    assert columns["point_x"] == [12.5, 12.5, 13.0] and columns["point_y"] == [8.5, 8.5, 8.0]
    assert columns["point_hit"] == [True, False, False]
    # TorchRay's PointingGame.evaluate, written out: the same hits
    for (x, y), mask, hit in zip([(12.5, 8.5), (12.5, 8.5), (13, 8)], [truth_near, truth_far, truth_far], columns["point_hit"]):
        v, u = np.meshgrid((np.arange(17, dtype=np.float32) - y) ** 2, (np.arange(40, dtype=np.float32) - x) ** 2, indexing="ij")
        assert bool((mask & ((v + u) < 15**2)).any()) == hit
