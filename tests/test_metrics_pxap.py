"""PxAP (Choe et al. 2020, wsolevaluation's MaskEvaluator): a hand-computed two-image mask set
with an ignore region, scored by the unit as the pipeline scores it, and its exact bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from wsl_bench.data.sample import ImageEntry, Sample
from wsl_bench.metrics.base import ImageTruth, MapChunk
from wsl_bench.metrics.maps import map_status
from wsl_bench.metrics.pxap import PxAP, PxAPSettings, average_precision, bin_edges

# step 0.25: bins [0, .25), [.25, .5), [.5, .75), [.75, 1), [1, 2), [2, 3]
UNIT = PxAP(PxAPSettings(step=0.25))


def score_image(image_id: str, saliency: np.ndarray, mask: np.ndarray, cls: int = 4, ignore: np.ndarray | None = None) -> dict:
    entry = ImageEntry(image_id, path=None, labels=(cls,), masks=lambda: {cls: mask}, ignore=(lambda: ignore) if ignore is not None else None)  # type: ignore[arg-type]
    truth = ImageTruth(Sample(entry, None, saliency.shape))
    maps = torch.tensor(saliency[None], dtype=torch.float32)
    chunk = MapChunk(maps, map_status(maps), np.array([cls]), np.array([True]))
    columns = UNIT.score(chunk, truth)
    return {"image_id": image_id, "target_source": "gt", **{k: v[0] for k, v in columns.items()}}


IMAGE_1 = (np.array([[1.0, 0.6, 0.0], [0.8, 0.3, 0.1]]), np.array([[1, 1, 0], [1, 0, 0]], bool))
IGNORE_1 = np.array([[0, 0, 0], [0, 0, 1]], bool)  # the 0.1 pixel is neither positive nor negative
IMAGE_2 = (np.array([[0.0, 0.5], [1.0, 0.2]]), np.array([[0, 0], [0, 1]], bool))


def test_pxap_by_hand_with_an_ignore_region():
    one = score_image("one", *IMAGE_1, ignore=IGNORE_1)
    assert one["pxap_pos_hist"] == [0, 0, 1, 1, 1, 0]  # 0.6, 0.8, 1.0 (1.0 falls in [1, 2))
    assert one["pxap_neg_hist"] == [1, 1, 0, 0, 0, 0]  # 0.0, 0.3; the ignored 0.1 nowhere
    two = score_image("two", *IMAGE_2)
    assert two["pxap_pos_hist"] == [1, 0, 0, 0, 0, 0] and two["pxap_neg_hist"] == [1, 0, 1, 0, 1, 0]
    rows = pd.DataFrame([one, two])
    data = UNIT.statistics()[0].build(rows, pd.Index(["one", "two"]))
    # positives [1, 0, 1, 1, 1, 0], negatives [2, 1, 1, 0, 1, 0]; from the top, at tau = 1, .75, .5,
    # .25, 0: TP 1, 2, 3, 3, 4 of 4, FP 1, 1, 2, 3, 5: precision 1/2, 2/3, 3/5, 1/2, 4/9 at recall
    # 1/4, 1/2, 3/4, 3/4, 1 -> AP = (1/2 + 2/3 + 3/5 + 4/9) / 4 = 199/360.
    assert data.value() == pytest.approx(100 * 199 / 360)
    # the ignored pixel counted as a negative instead: FP 6 at tau = 0 -> (1/2 + 2/3 + 3/5 + 4/10) / 4
    counted = pd.DataFrame([score_image("one", *IMAGE_1), two])
    assert UNIT.statistics()[0].build(counted, pd.Index(["one", "two"])).value() == pytest.approx(100 * 13 / 24)
    # exact bootstrap: image one twice, image two never -> image one alone, a perfect ranking
    assert data.values(np.array([[2.0, 0.0]]))[0] == pytest.approx(100.0)


def test_maps_are_normalized_as_wsolevaluation_does():
    saliency, mask = IMAGE_1
    assert score_image("a", 3 * saliency + 2, mask) == score_image("a", saliency, mask)
    flat = score_image("a", np.full((2, 3), 5.0), mask)  # constant -> all zero -> all in the first bin
    assert flat["pxap_pos_hist"] == [3, 0, 0, 0, 0, 0] and flat["pxap_neg_hist"] == [3, 0, 0, 0, 0, 0]
    nan = score_image("a", np.full((2, 3), np.nan), mask)
    assert nan["pxap_pos_hist"] == flat["pxap_pos_hist"]


def test_histogram_edges_and_reducer():
    assert bin_edges(0.25).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0, 2.0, 3.0]
    # np.histogram's bins: a value on an edge belongs to the bin it opens
    on_edges = score_image("a", np.array([[0.0, 0.25, 0.5, 0.75, 1.0]]), np.ones((1, 5), bool))
    assert on_edges["pxap_pos_hist"] == [1, 1, 1, 1, 1, 0]
    assert np.isnan(average_precision(np.zeros((1, 6)), np.ones((1, 6))))[0]  # no positive pixel
    no_gt_mask = ImageEntry("b", path=None, labels=(1,))  # type: ignore[arg-type]
    truth = ImageTruth(Sample(no_gt_mask, None, (2, 2)))
    chunk = MapChunk(torch.rand(1, 2, 2), ["ok"], np.array([1]), np.array([True]))
    assert UNIT.score(chunk, truth) == {"pxap_pos_hist": [None], "pxap_neg_hist": [None]}  # boxes only: not scored
