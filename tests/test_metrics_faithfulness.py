"""Faithfulness metrics on tiny hand-made models whose confidences are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from wsl_bench.metrics.avg_drop import AvgDropSettings as ConfidenceSettings
from wsl_bench.metrics.avg_drop import average_drop, explanation_confidence, increase_in_confidence
from wsl_bench.metrics.insertion_deletion import InsertionDeletionSettings, blur, gaussian_kernel, insertion_deletion, trapezoid_auc
from wsl_bench.metrics.occlusion_corr import OcclusionCache, OcclusionCorrSettings as OcclusionSettings
from wsl_bench.metrics.occlusion_corr import map_on_occlusion_grid, occlusion_correlation, spearman


class SignedHalves(nn.Module):
    """logits = [mean(w * x), 0] with w = +1 on the left half of the image, -1 on the right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.ones(x.shape[-2:], dtype=x.dtype)
        w[:, x.shape[-1] // 2 :] = -1
        score = (x * w).mean(dim=(1, 2, 3))
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def halves(width: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    left = torch.zeros(4, width)
    left[:, : width // 2] = 1
    return left, 1 - left


def sigmoid(z: float) -> float:
    return 1 / (1 + np.exp(-z))


def test_average_drop_and_increase_known_confidences_normalized_space():
    images = torch.ones(1, 3, 4, 8)
    left, right = halves()
    maps = torch.stack([left, right])
    settings = ConfidenceSettings(space="normalized")
    o = explanation_confidence(SignedHalves(), images, torch.tensor([0, 0]), maps, torch.tensor([0, 0]), (0, 0, 0), (1, 1, 1), settings)
    assert o == pytest.approx([sigmoid(0.5), sigmoid(-0.5)])  # softmax([z, 0])[0] = sigmoid(z)
    y = np.array([0.5, 0.5])  # mean(w * 1) = 0
    assert average_drop(y, o) == pytest.approx(100 * 0.5 * (0.5 - sigmoid(-0.5)) / 0.5)
    assert increase_in_confidence(y, o) == 50.0


def test_explanation_in_pixel_space_follows_grad_campp():
    # mean = std = 0.5 and x = 1 -> pixels I = 1, E = L, input (E - 0.5) / 0.5 = 2L - 1
    images = torch.ones(1, 3, 4, 8)
    left, _ = halves()
    o = explanation_confidence(SignedHalves(), images, torch.tensor([0]), left[None], torch.tensor([0]), (0.5,) * 3, (0.5,) * 3, ConfidenceSettings())
    assert o[0] == pytest.approx(sigmoid(1.0))  # left: +1 * 1, right: -1 * -1
    # a map that cannot be scored becomes an all-zero L: E is black
    o = explanation_confidence(SignedHalves(), images, torch.tensor([0]), torch.full((1, 4, 8), float("nan")), torch.tensor([0]), (0.5,) * 3, (0.5,) * 3, ConfidenceSettings())
    assert o[0] == pytest.approx(sigmoid(0.0))
    # the map is scaled to [0, 1]: a positive factor changes nothing
    a = explanation_confidence(SignedHalves(), images, torch.tensor([0, 0]), torch.stack([left * 3 + 0.1, left * 30 + 1]), torch.tensor([0, 0]), (0.5,) * 3, (0.5,) * 3, ConfidenceSettings())
    assert a[0] == pytest.approx(a[1])


class WeightedSum(nn.Module):
    """A single score: sum of channel 0 / 10 (read through an identity 'probability')."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, 0].flatten(1).sum(dim=1) / 10)[:, None]


def test_deletion_and_insertion_hand_computed():
    image = torch.tensor([[4.0, 3.0], [2.0, 1.0]]).expand(3, 2, 2)[None].clone()
    good = torch.tensor([[[4.0, 3.0], [2.0, 1.0]]])
    bad = torch.flip(good, dims=(1, 2))
    ident = lambda logits: logits  # noqa: E731
    ins, dele, ins_curve, del_curve = insertion_deletion(
        WeightedSum(), image, torch.tensor([0, 0]), torch.cat([good, bad]), torch.tensor([0, 0]), InsertionDeletionSettings(step=1), ident
    )
    assert del_curve[0] == pytest.approx([1.0, 0.6, 0.3, 0.1, 0.0])
    assert del_curve[1] == pytest.approx([1.0, 0.9, 0.7, 0.4, 0.0])
    assert dele == pytest.approx([(2.0 - 0.5) / 4, (3.0 - 0.5) / 4])
    blurred = blur(image)[0, 0].flatten()
    order = [0, 1, 2, 3]  # good map: descending = raster order here
    expected = [float((image[0, 0].flatten()[order[:k]].sum() + blurred[order[k:]].sum()) / 10) for k in range(5)]
    assert ins_curve[0] == pytest.approx(expected)
    assert ins[0] == pytest.approx(trapezoid_auc(np.array(expected)))
    # step as a fraction of the image: 0.5 -> 2 px per step, 3 points
    _, _, _, curve = insertion_deletion(WeightedSum(), image, torch.tensor([0]), good, torch.tensor([0]), InsertionDeletionSettings(step=0.5), ident)
    assert curve[0] == pytest.approx([1.0, 0.3, 0.0])


def test_insertion_deletion_of_unscorable_maps_is_null_not_a_raster_order_number():
    image = torch.tensor([[4.0, 3.0], [2.0, 1.0]]).expand(3, 2, 2)[None].clone()
    maps = torch.stack([torch.zeros(2, 2), torch.full((2, 2), 5.0), torch.tensor([[1.0, float("nan")], [0.0, 2.0]]),
                        torch.tensor([[4.0, 3.0], [2.0, 1.0]])])
    ident = lambda logits: logits  # noqa: E731
    ins, dele, _, _ = insertion_deletion(
        WeightedSum(), image, torch.zeros(4, dtype=torch.long), maps, torch.zeros(4, dtype=torch.long), InsertionDeletionSettings(step=1), ident
    )
    assert np.isnan(ins[:3]).all() and np.isnan(dele[:3]).all()
    assert dele[3] == pytest.approx((2.0 - 0.5) / 4)


def test_trapezoid_and_blur_kernel():
    assert trapezoid_auc(np.array([1.0, 1.0, 1.0])) == 1.0
    assert trapezoid_auc(np.array([0.0, 1.0])) == 0.5
    k = gaussian_kernel(11, 5.0)
    assert k.shape == (11, 11) and k.sum() == pytest.approx(1.0) and k[5, 5] == k.max() and np.allclose(k, k.T)


def test_spearman_hand_values_ties_and_monotone_invariance():
    a = np.array([[1.0, 2.0, 3.0, 4.0]])
    b = np.array([[1.0, 3.0, 2.0, 4.0]])
    assert spearman(a, b)[0] == pytest.approx(0.8)  # 1 - 6 * 2 / (4 * 15)
    assert spearman(np.exp(a * 5), b ** 3 - 7)[0] == pytest.approx(0.8)
    assert spearman(a, -b)[0] == pytest.approx(-0.8)
    tied = spearman(np.array([[1.0, 1.0, 2.0]]), np.array([[1.0, 2.0, 3.0]]))[0]
    assert tied == pytest.approx(np.corrcoef([1.5, 1.5, 3], [1, 2, 3])[0, 1])
    assert np.isnan(spearman(np.ones((1, 4)), b)[0])


def test_map_on_occlusion_grid_averages_each_window():
    m = torch.arange(16.0).view(1, 4, 4)
    grid = map_on_occlusion_grid(m, (4, 4), patch=2, stride=2)
    assert grid[0].tolist() == [[2.5, 4.5], [10.5, 12.5]]


class Linear(nn.Module):
    """logit = sum(w * x) over channel 0: occluding a window with 0 drops the score by the
    window's sum of w * x."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x[:, 0] * self.w).flatten(1).sum(dim=1)
        return torch.stack([s, -s], dim=1)


def test_occlusion_correlation_exact_for_a_linear_model_and_cache_reuse(tmp_path):
    torch.manual_seed(0)
    w = torch.rand(12, 12)
    image = torch.rand(1, 3, 12, 12)
    model = Linear(w)
    settings = OcclusionSettings(patch=4, stride=2, fill=0.0, chunk_size=16)
    cache = OcclusionCache(tmp_path, "linear|test", settings)
    grids, computed = cache.grids(model, image, [[0]])
    assert computed == 1 and grids[0][0].shape == (5, 5)
    # the input x weight map, averaged per window, ranks the windows exactly as their drops
    saliency = (w * image[0, 0])[None]
    rho = occlusion_correlation(saliency, grids[0][0][None], (12, 12), 4, 2)
    assert rho[0] == pytest.approx(1.0)
    # on a 1-px occluder grid the map is compared pixel for pixel: a monotone transform of it
    # leaves the correlation unchanged
    pixel = OcclusionCache(None, "linear|test", OcclusionSettings(patch=1, stride=1)).grids(model, image, [[0]])[0][0][0][None]
    noisy = saliency + 0.05 * torch.rand_like(saliency)
    rho = occlusion_correlation(noisy, pixel, (12, 12), 1, 1)[0]
    assert rho < 1.0
    assert occlusion_correlation(torch.exp(noisy * 3) - 2, pixel, (12, 12), 1, 1)[0] == pytest.approx(rho)
    assert occlusion_correlation(torch.zeros(1, 12, 12), grids[0][0][None], (12, 12), 4, 2)[0] == 0.0  # degenerate map
    # reused from disk: same model, image and settings; new class computed alone
    again, computed = OcclusionCache(tmp_path, "linear|test", settings).grids(model, image, [[0, 1]])
    assert computed == 1 and torch.equal(again[0][0], grids[0][0]) and torch.allclose(again[0][1], -grids[0][0])
    # anything the maps depend on changes the key
    keys = {OcclusionCache(tmp_path, m, s).key(img) for m, s, img in [
        ("linear|test", settings, image[0]), ("other|test", settings, image[0]),
        ("linear|test", OcclusionSettings(patch=5, stride=2), image[0]), ("linear|test", OcclusionSettings(patch=4, stride=1), image[0]),
        ("linear|test", OcclusionSettings(patch=4, stride=2, fill=0.5), image[0]), ("linear|test", settings, image[0] * 2),
    ]}
    assert len(keys) == 6
    assert OcclusionCache(tmp_path, "linear|test", OcclusionSettings(patch=4, stride=2, chunk_size=3)).key(image[0]) == cache.key(image[0])


def test_mean_curve_puts_curves_of_different_step_counts_on_one_grid():
    from wsl_bench.metrics.insertion_deletion import mean_curve

    fraction, mean = mean_curve([np.array([0.0, 1.0, 0.5]), np.array([1.0, 0.0, 0.5])])
    assert fraction.tolist() == [0.0, 0.5, 1.0] and mean.tolist() == [0.5, 0.5, 0.5]
    # y = x sampled with 1 and with 2 steps, and y = 1: on the 101-point grid the mean is (2x + 1) / 3
    fraction, mean = mean_curve([np.array([0.0, 1.0]), np.array([0.0, 0.5, 1.0]), np.ones(4)])
    assert len(fraction) == 101 and np.allclose(mean, (2 * fraction + 1) / 3)
