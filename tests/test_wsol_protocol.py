"""The wsolevaluation protocol's geometry: maps resized bicubically onto the evaluation grid
(transform.upsample, bilinear unchanged), ground truth put on the grid as its code does
(transform.gt_to_grid=wsolevaluation: resize_bbox, cv2 INTER_NEAREST), checked by hand and, when
OpenCV is installed, against cv2.resize itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsl_bench.data.sample import ImageEntry, Sample, View
from wsl_bench.data.transforms import ProtocolTransform, boxes_on_grid, mask_on_grid
from wsl_bench.errors import ConfigError
from wsl_bench.metrics.base import MapMetric, MetricSuite
from wsl_bench.metrics.maps import to_original_size


def test_bilinear_stays_bit_identical_and_bicubic_is_torch_bicubic():
    maps = torch.rand(3, 7, 9, generator=torch.Generator().manual_seed(0))
    bilinear = F.interpolate(maps[:, None], size=(50, 61), mode="bilinear", align_corners=False)[:, 0]
    assert torch.equal(to_original_size(maps, (50, 61)), bilinear)  # the default, as before
    assert torch.equal(to_original_size(maps, (50, 61), mode="bilinear"), bilinear)
    bicubic = to_original_size(maps, (50, 61), mode="bicubic")  # torch's, in float64, rounded to float32
    assert torch.equal(bicubic, F.interpolate(maps.double()[:, None], size=(50, 61), mode="bicubic", align_corners=False)[:, 0].float())
    assert (bicubic - F.interpolate(maps[:, None], size=(50, 61), mode="bicubic", align_corners=False)[:, 0]).abs().max() < 1e-6
    assert (bicubic - bilinear).abs().max() > 1e-3
    # bicubic (a = -0.75) overshoots a step where bilinear cannot
    step = torch.zeros(1, 4, 4)
    step[:, :, 2:] = 1.0
    assert to_original_size(step, (16, 16), mode="bicubic").min() < 0 < to_original_size(step, (16, 16)).min() + 1e-9
    crop = View(10.0, 0.0, 40.0, 30.0)  # the map fills a crop; the rest gets the map's minimum
    out = to_original_size(maps, (30, 50), crop, mode="bicubic")
    inner = F.interpolate(maps.double()[:, None], size=(30, 30), mode="bicubic", align_corners=False)[:, 0].float()
    assert torch.equal(out[:, :, 10:40], inner) and torch.equal(out[:, :, :10], inner.amin(dim=(1, 2))[:, None, None].expand(-1, 30, 10))
    flat = to_original_size(torch.full((1, 7, 7), 0.3), (224, 224), mode="bicubic")
    assert flat.min() == flat.max()  # a constant map stays constant (degenerate), as cv2.resize keeps it
    with pytest.raises(ValueError, match="bilinear, bicubic"):
        to_original_size(maps, (50, 61), mode="nearest")
    with pytest.raises(ConfigError, match=r"transform.upsample='area' is unknown; use one of bilinear, bicubic"):
        ProtocolTransform("squash", 224, (0.5,) * 3, (0.5,) * 3, upsample="area")
    with pytest.raises(ConfigError, match=r"transform.gt_to_grid='round' is unknown"):
        ProtocolTransform("squash", 224, (0.5,) * 3, (0.5,) * 3, gt_to_grid="round")


def test_bicubic_matches_opencv_inter_cubic():
    cv2 = pytest.importorskip("cv2", reason="OpenCV is the reference here: pip install -e '.[test]'")
    rng = np.random.default_rng(0)
    for h, w, size in [(7, 7, (224, 224)), (14, 14, (224, 224)), (13, 17, (224, 224)), (7, 7, (375, 500))]:
        cam = rng.random((h, w)).astype(np.float32)
        ours = to_original_size(torch.from_numpy(cam)[None], size, mode="bicubic")[0].numpy()
        theirs = cv2.resize(cam.astype(np.float64), (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        assert np.abs(ours - theirs).max() < 1e-5  # float32 here, float64 there


def test_score_image_resizes_with_the_configured_mode():
    seen = []

    class Capture(MapMetric):
        def score(self, chunk, truth):
            seen.append(chunk.maps)
            return {}

    maps = {"m": torch.rand(2, 5, 5, generator=torch.Generator().manual_seed(1))}
    sample = Sample(ImageEntry("x", path=None, labels=(0,)), None, (20, 30))  # type: ignore[arg-type]
    suite = MetricSuite((Capture(),))
    for mode in ("bilinear", "bicubic"):
        suite.score_image(sample, maps, [0, 1], [("gt", 0), ("top1", 1)], mode)
        assert torch.equal(seen[-1], to_original_size(maps["m"], (20, 30), mode=mode))
    suite.score_image(sample, maps, [0, 1], [("gt", 0), ("top1", 1)])
    assert torch.equal(seen[-1], seen[0])  # default: bilinear


def test_wsolevaluation_boxes_on_the_grid_as_resize_bbox():
    # wsolevaluation's test_resize_bbox_case: box (1, 2, 4, 3) of a 10 x 20 (w x h) image resized
    # to 35 x 10: int(1 * 35/10), int(2 * 10/20), int(4 * 35/10), int(3 * 10/20) = (3, 1, 14, 1)
    box = np.array([[1, 2, 4, 3]])
    mapped, keep = boxes_on_grid(box, View(0.0, 0.0, 10.0, 20.0), (10, 35), "wsolevaluation")
    assert mapped.tolist() == [[3, 1, 14, 1]] and keep.all()
    # the span rule covers the pixels the box touches instead: x [1, 5) * 3.5 -> 3..17, y [2, 4) / 2 -> 1..1
    assert boxes_on_grid(box, View(0.0, 0.0, 10.0, 20.0), (10, 35))[0].tolist() == [[3, 1, 17, 1]]
    # test_resize_bbox_degenerate: same size, same box
    same = np.array([[1, 2, 1, 2]])
    assert boxes_on_grid(same, View(0.0, 0.0, 3.0, 3.0), (3, 3), "wsolevaluation")[0].tolist() == [[1, 2, 1, 2]]
    # (x * new) / old as wsolevaluation computes it: 250 * 224 / 500 = 112 exactly
    assert boxes_on_grid(np.array([[250, 0, 250, 0]]), View(0.0, 0.0, 500.0, 375.0), (224, 224), "wsolevaluation")[0][0, 0] == 112


def test_wsolevaluation_masks_on_the_grid_as_cv2_inter_nearest():
    # 5 columns onto 2: cv2 reads columns floor(i * 2.5) = 0, 2; the pixel-centre rule 1, 3
    row = np.array([[True, False, True, False, False]])
    assert mask_on_grid(row, View(0.0, 0.0, 5.0, 1.0), (1, 2), "wsolevaluation").tolist() == [[True, True]]
    assert mask_on_grid(row, View(0.0, 0.0, 5.0, 1.0), (1, 2)).tolist() == [[False, False]]
    cv2 = pytest.importorskip("cv2", reason="OpenCV is the reference here: pip install -e '.[test]'")
    rng = np.random.default_rng(0)
    for h, w, grid in [(375, 500, (224, 224)), (100, 150, (224, 224)), (224, 224, (224, 224)), (333, 499, (224, 224)), (31, 17, (64, 40))]:
        mask = rng.random((h, w)) > 0.5
        ours = mask_on_grid(mask, View(0.0, 0.0, float(w), float(h)), grid, "wsolevaluation")
        theirs = cv2.resize(mask.astype(np.float32), (grid[1], grid[0]), interpolation=cv2.INTER_NEAREST) > 0.5
        assert (ours == theirs).all(), (h, w)
