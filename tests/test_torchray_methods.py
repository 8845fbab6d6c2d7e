"""The pointing-game methods on small hand-built networks where the answer is known: excitation
backprop computed by hand on a two-layer non-negative network, its contrastive difference, the
probability it conserves through residual sums and batch norm, the deconvnet's rectification,
TorchRay's backward seed on a spatial score map, its 0.02 blur at image size, the center point,
RISE at a fixed input size and extremal perturbation finding a planted region."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

from wsl_bench import explain
from wsl_bench.errors import ConfigError
from wsl_bench.methods import Explainer
from wsl_bench.methods.core import layer_grads_of
from wsl_bench.methods.builtin.baselines import center_at_image_size
from wsl_bench.methods.smoothing import gaussian_blur, smooth_saliency
from wsl_bench.metrics.maps import argmax_points
from wsl_bench.models.layers import ResidualSum
from wsl_bench.models.zoo.torchray_models import spatial_logsumexp


class TwoLayer(nn.Module):
    """conv 1x1 -> ReLU (the saliency layer `act`, 2 x 2 x 2) -> flatten -> fc1 (8 -> 3) -> ReLU -> fc2 (3 -> 2)."""

    def __init__(self, w2: torch.Tensor) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(3, 2, 1)
        self.act = nn.ReLU()
        self.fc1 = nn.Linear(8, 3)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(3, 2)
        with torch.no_grad():
            self.conv.weight.uniform_(0.1, 1.0)  # positive activations at the saliency layer for x >= 0
            self.conv.bias.fill_(0.05)
            self.fc1.weight.copy_(torch.rand(3, 8) + 0.1)  # excitatory
            self.fc1.bias.zero_()
            self.fc2.weight.copy_(w2)
            self.fc2.bias.fill_(0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(self.act(self.conv(x)).flatten(1))))


def mwp_by_hand(a: list[float], w1: list[list[float]], w2_row: list[float]) -> list[float]:
    """Marginal winning probabilities of the saliency neurons a_i for a one-hot top signal on the
    target: P(h_j) = h_j w2+_j / sum_k w2+_k h_k, P(a_i) = sum_j a_i w1+_ji / (sum_k w1+_jk a_k) P(h_j)."""
    h = [sum(w1[j][i] * a[i] for i in range(len(a))) for j in range(len(w1))]
    plus2 = [max(w, 0.0) for w in w2_row]
    top = [h[j] * plus2[j] / sum(plus2[k] * h[k] for k in range(len(h))) for j in range(len(h))]
    out = []
    for i in range(len(a)):
        out.append(sum(a[i] * max(w1[j][i], 0.0) / sum(max(w1[j][k], 0.0) * a[k] for k in range(len(a))) * top[j] for j in range(len(h))))
    return out


def test_excitation_backprop_equals_the_hand_computed_winning_probabilities():
    w2 = torch.tensor([[0.5, 0.2, 0.9], [-0.4, 0.7, 0.1]])
    model = TwoLayer(w2).eval()
    x = torch.rand(1, 3, 2, 2)
    maps = explain(model, x, torch.tensor([[0, 1]]), methods=["excitation_backprop"], target_layer="act")["excitation_backprop"]
    with torch.no_grad():
        a = model.act(model.conv(x)).flatten().tolist()
    w1 = model.fc1.weight.tolist()
    for t, target in enumerate((0, 1)):
        probability = torch.tensor(mwp_by_hand(a, w1, w2[target].tolist())).view(2, 2, 2).sum(dim=0)  # summed over channels
        torch.testing.assert_close(maps[0, t], probability, rtol=1e-5, atol=1e-7)
        assert math.isclose(float(maps[0, t].sum()), 1.0, rel_tol=1e-5)  # a probability: sums to 1


def test_contrastive_excitation_backprop_is_the_difference_with_the_negated_classifier():
    w2 = torch.tensor([[0.5, -0.6, 0.9], [-0.4, 0.7, -0.8]])
    model = TwoLayer(w2).eval()
    x = torch.rand(1, 3, 2, 2)
    maps = explain(model, x, torch.tensor([[0, 1]]), methods=["contrastive_excitation_backprop"], target_layer="act")
    with torch.no_grad():
        a = model.act(model.conv(x)).flatten().tolist()
    w1 = model.fc1.weight.tolist()
    for t, target in enumerate((0, 1)):
        target_mwp = torch.tensor(mwp_by_hand(a, w1, w2[target].tolist()))
        dual_mwp = torch.tensor(mwp_by_hand(a, w1, (-w2[target]).tolist()))
        expected = (target_mwp - dual_mwp).view(2, 2, 2).sum(dim=0).clamp(min=0)
        torch.testing.assert_close(maps["contrastive_excitation_backprop"][0, t], expected, rtol=1e-5, atol=1e-7)
        assert (expected > 0).any() and (expected == 0).any()  # the clamp is exercised


class ResidualNet(nn.Module):
    """Saliency layer `act` -> conv -> BN -> ReLU -> ResidualSum(., act) -> ReLU -> GAP -> fc, all excitatory."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.skip = ResidualSum()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            self.conv.weight.uniform_(0.05, 1.0)
            self.bn.weight.uniform_(0.5, 2.0)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.fc.weight.uniform_(0.1, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.act(self.stem(x))
        out = self.relu(self.skip(self.relu(self.bn(self.conv(a))), a))
        return self.fc(self.pool(out).flatten(1))


def test_excitation_backprop_conserves_probability_through_residual_sums_and_batch_norm():
    model = ResidualNet().eval()
    x = torch.rand(2, 3, 5, 7)
    out = explain(model, x, torch.tensor([[0, 2], [1, 0]]), methods=["excitation_backprop", "gradient"], target_layer="act")
    maps = out["excitation_backprop"]
    assert maps.shape == (2, 2, 5, 7) and (maps >= 0).all()
    torch.testing.assert_close(maps.sum(dim=(-2, -1)), torch.ones(2, 2), rtol=1e-5, atol=1e-6)
    assert model.relu.inplace  # restored


def test_excitation_backprop_splits_torchvision_residual_sums_too():
    torch.manual_seed(7)
    model = torchvision.models.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1], num_classes=3).eval()
    with torch.no_grad():  # excitatory everywhere, activations >= 0: the winning probabilities sum to 1
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.abs_()
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.zero_()
                m.running_mean.zero_()
    x = torch.rand(2, 3, 40, 40)
    maps = explain(model, x, torch.tensor([[0, 2], [1, 0]]), methods=["excitation_backprop"], target_layer="layer1")["excitation_backprop"]
    torch.testing.assert_close(maps.sum(dim=(-2, -1)), torch.ones(2, 2), rtol=1e-4, atol=1e-5)  # a plain += would pass all of it to both terms (8x here)
    assert not any(m._forward_hooks for m in model.modules())
    assert all("forward" not in m.__dict__ and "residual_sum" not in m._modules for m in model.modules())


class ZeroSumNet(nn.Module):
    """1x1 convolutions only, excitatory: the saliency layer `act` is 0 where the input is 0, so
    there both terms of the residual sum, and the sum, are exactly 0."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.stem = nn.Conv2d(3, 4, 1, bias=False)
        self.act = nn.ReLU()
        self.conv = nn.Conv2d(4, 4, 1, bias=False)
        self.relu = nn.ReLU()
        self.skip = ResidualSum()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            for m in (self.stem, self.conv, self.fc):
                m.weight.uniform_(0.1, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.act(self.stem(x))
        return self.fc(self.pool(self.relu(self.skip(self.relu(self.conv(a)), a))).flatten(1))


@pytest.mark.parametrize("method", ["excitation_backprop", "contrastive_excitation_backprop"])
def test_a_residual_sum_of_zero_passes_nothing_or_nan_as_torchray_divides(method):
    # zero_sum=zero: no signal where the sum is 0 (the map is 0 there, EBP's still sums to 1);
    # zero_sum=torchray: TorchRay's term / sum gives 0 / 0 = NaN exactly there, the rest unchanged.
    x = torch.rand(1, 3, 4, 5)
    x[..., :2, :3] = 0
    zero_region = torch.zeros(4, 5, dtype=torch.bool)
    zero_region[:2, :3] = True
    model = ZeroSumNet().eval()
    targets = torch.tensor([[0, 2]])
    ours = explain(model, x, targets, methods=[method], target_layer="act")[method]
    theirs = explain(model, x, targets, methods=[method], target_layer="act", params={method: {"zero_sum": "torchray"}})[method]
    assert torch.isfinite(ours).all() and (ours[..., zero_region] == 0).all()
    if method == "excitation_backprop":
        torch.testing.assert_close(ours.sum(dim=(-2, -1)), torch.ones(1, 2), rtol=1e-5, atol=1e-6)
    assert torch.equal(theirs.isnan(), zero_region.expand_as(theirs))
    torch.testing.assert_close(theirs[..., ~zero_region], ours[..., ~zero_region])
    with pytest.raises(ConfigError, match="zero_sum must be one of zero, torchray"):
        explain(model, x, targets, methods=[method], target_layer="act", params={method: {"zero_sum": "nan"}})


def test_gradcam_is_torchrays_map_bit_for_bit():
    # TorchRay: w = mean(dy/dA, (2, 3)); ReLU(sum(A * w, 1)) on one image and class [1, C, h, w]
    # at a time. From the same activations and gradients the same float operations give the same
    # bits (a matrix-product einsum does not, and an exact tie of the resized map, e.g. on its
    # border, is then decided differently).
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 512, 3), nn.ReLU(), nn.Conv2d(512, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    x = torch.rand(2, 3, 9, 11)
    targets = torch.tensor([[0, 3], [2, 1]])
    maps = explain(model, x, targets, methods=["gradcam"], target_layer="1")["gradcam"]
    _, activations, grads = layer_grads_of(model, model[1], x, targets)
    told_apart = 0
    for b in range(2):
        for t in range(2):
            weight = torch.mean(grads[b : b + 1, t], (2, 3), keepdim=True)
            expected = torch.clamp(torch.sum(activations[b : b + 1] * weight, 1, keepdim=True), min=0)[0, 0]
            assert torch.equal(maps[b, t], expected)
            einsum = torch.einsum("k,khw->hw", weight[0, :, 0, 0], activations[b]).clamp(min=0)
            told_apart += not torch.equal(einsum, expected)
    assert told_apart  # the test tells the two apart


@pytest.mark.parametrize("inplace", [False, True])
def test_deconvnet_rectifies_the_signal_whatever_the_forward_input(inplace):
    torch.manual_seed(5)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.ReLU(inplace=inplace), nn.Linear(4, 2)).eval()
    with torch.no_grad():
        model[1].bias.copy_(torch.tensor([5.0, -5.0, 5.0, -5.0]))  # units 1 and 3 off in the forward
        model[3].weight.copy_(torch.tensor([[1.0, 2.0, -3.0, 0.5], [-1.0, 1.5, 2.0, -0.5]]))
    x = torch.rand(1, 3, 2, 2) * 0.1
    out = explain(model, x, torch.tensor([[0, 1]]), methods=["deconvnet", "gradient"], target_layer="2")
    w1, w2 = model[1].weight, model[3].weight
    for c in (0, 1):
        deconv = (w1.T @ w2[c].clamp(min=0)).view(3, 2, 2).abs().amax(dim=0)  # ReLU^*(p) = max(p, 0), no forward mask
        grad = (w1.T @ (w2[c] * torch.tensor([1.0, 0.0, 1.0, 0.0]))).view(3, 2, 2).abs().amax(dim=0)
        torch.testing.assert_close(out["deconvnet"][0, c], deconv)
        torch.testing.assert_close(out["gradient"][0, c], grad)
        assert not torch.allclose(deconv, grad)
    assert model[2].inplace == inplace and not any(m._forward_hooks for m in model.modules())


class ScoreMapNet(nn.Module):
    """A fully convolutional classifier: conv -> ReLU -> 1x1 conv giving class score maps, logits
    the log-sum-exp over positions (as wsl_bench's TorchRay models)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(6)
        self.features = nn.Sequential(nn.Conv2d(3, 5, 3, stride=2), nn.ReLU())
        self.head = nn.Conv2d(5, 4, 1)

    def score_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spatial_logsumexp(self.score_map(x))


def test_gradient_methods_get_torchrays_pointing_seed_on_spatial_scores():
    model = ScoreMapNet().eval()
    x = torch.randn(2, 3, 9, 13)
    targets = torch.tensor([[1, 3], [0, 1]])
    explainer = Explainer(model, "features.1", ["gradient"], {"gradient": {"channel_reduce": "sum"}})
    explainer.forward(x)
    ours = explainer.maps(targets)["gradient"]
    for b in range(2):
        for t in range(2):
            inputs = x[b : b + 1].clone().requires_grad_(True)
            scores = model.score_map(inputs)
            seed = torch.zeros_like(scores)  # TorchRay's get_pointing_gradient, written out
            c = int(targets[b, t])
            seed[0, c] = torch.exp(scores[0, c])
            seed[0, c] /= seed[0, c].sum()
            (grad,) = torch.autograd.grad(scores, inputs, seed)
            torch.testing.assert_close(ours[b, t], grad[0].sum(dim=0), rtol=1e-5, atol=1e-6)


def test_the_blur_at_image_size_is_a_normalized_gaussian_with_replicate_padding():
    delta = torch.zeros(1, 41, 61)
    delta[0, 20, 30] = 1.0
    sigma = 0.05 * 61  # smooth x the longer side
    out = smooth_saliency(delta, smooth=0.05)
    width = math.ceil(4 * sigma)
    taps = torch.exp(-((torch.arange(-width, width + 1, dtype=torch.float32) / (math.sqrt(2) * sigma)) ** 2))
    taps /= taps.sum()
    expected = torch.zeros(41, 61)
    expected[20 - width : 21 + width, 30 - width : 31 + width] = taps[:, None] * taps[None, :]
    torch.testing.assert_close(out[0], expected, rtol=1e-5, atol=1e-7)
    ramp = torch.arange(61, dtype=torch.float32).expand(1, 41, 61)
    torch.testing.assert_close(smooth_saliency(ramp, smooth=0.05)[0, 20], smooth_saliency(ramp, smooth=0.05)[0, 0])  # no vertical border effect
    constant = torch.full((1, 10, 12), 2.0)
    torch.testing.assert_close(smooth_saliency(constant, smooth=0.2), constant)  # replicate: no fade at the border
    assert gaussian_blur(constant[None], 1.0, "constant")[0, 0, 0, 0] < 2.0  # zeros outside (extremal perturbation)
    assert torch.equal(smooth_saliency(delta, smooth=0.0), delta)


def test_the_blur_runs_at_image_size_for_the_methods_that_ask_for_it_only():
    model = ScoreMapNet().eval()
    params = {"gradient": {"smooth": 0.1}, "center": {"origin": "torchray"}}
    explainer = Explainer(model, "features.1", ["gradient", "gradcam", "center"], params)
    maps = torch.rand(3, 17, 23)
    out = explainer.at_image_size(maps, ["gradient", "gradcam", "center"])
    torch.testing.assert_close(out[0], smooth_saliency(maps[:1], 0.1)[0])
    assert torch.equal(out[1], maps[1])
    assert argmax_points(out[2:]).tolist() == [[11, 8]]  # (floor(W / 2), floor(H / 2)) for odd sides
    steps, points = explainer.image_size_steps(maps, ["gradient", "gradcam", "center"])
    assert torch.equal(steps, out)
    assert torch.equal(points[2], torch.tensor([11.5, 8.5], dtype=torch.float64))  # the center's own point, (W / 2, H / 2)
    assert points[:2].isnan().all()  # the others point at their maxima
    plain = Explainer(model, "features.1", ["gradcam", "center"])  # center at origin=input: no own point
    assert plain.points_at_image_size(maps[:2], ["gradcam", "center"]) is None
    with pytest.raises(ConfigError, match="accepted: channel_reduce, smooth"):
        Explainer(model, "features.1", ["gradient"], {"gradient": {"smoth": 0.02}})


def test_torchray_center_point_and_argmax_ties_first_in_raster_order():
    # TorchRay's center baseline points at (W / 2, H / 2); on an odd side the two pixels either
    # side are equal and the argmax (TorchRay's and ours: the first maximum of the flattened
    # map, row-major) takes the first.
    maps = center_at_image_size(torch.zeros(2, 375, 500), origin="torchray")
    assert argmax_points(maps).tolist() == [[250, 187], [250, 187]]
    ties = torch.tensor([[[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]]])
    assert argmax_points(ties).tolist() == [[1, 0]]
    flat = int(ties.flatten(1).argmax(dim=1))  # TorchRay's _saliency_to_point
    assert (flat % 4, flat // 4) == (1, 0)


class ImageScoresNet(ScoreMapNet):
    """Logits from the log-sum-exp, image-level scores from the map's mean (perturbation methods)."""

    def image_scores(self, x: torch.Tensor) -> torch.Tensor:
        return self.score_map(x).mean(dim=(2, 3))


def test_rise_runs_at_its_own_input_size_and_reads_image_scores():
    model = ImageScoresNet().eval()
    x = torch.randn(2, 3, 12, 20)
    params = {"rise": {"n_masks": 16, "cells": 3, "input_size": 9, "score": "logit", "batch_size": 8}}
    out = explain(model, x, torch.tensor([[0, 2], [1, 3]]), methods=["rise"], target_layer="features.1", params=params)["rise"]
    assert out.shape == (2, 2, 9, 9)
    # with every mask all ones, the map is the image score at 9 x 9 everywhere (divided by prob)
    with torch.no_grad():
        resized = torch.nn.functional.interpolate(x, size=(9, 9), mode="bilinear", align_corners=False)
        full = explain(model, x, torch.tensor([[0, 2], [1, 3]]), methods=["rise"], target_layer="features.1",
                       params={"rise": {**params["rise"], "prob": 1.0}})["rise"]
        expected = model.image_scores(resized).gather(1, torch.tensor([[0, 2], [1, 3]]))
    torch.testing.assert_close(full, expected[..., None, None].expand_as(full), rtol=1e-5, atol=1e-5)


class PlantedRegion(nn.Module):
    """Class 0 scores the sum of channel 0 over a planted region R; class 1 over the rest."""

    def __init__(self, region: torch.Tensor) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)  # a layer to name as target layer
        self.register_buffer("region", region.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel = self.conv(x)[:, 0]
        return torch.stack([(channel * self.region).sum(dim=(1, 2)), (channel * (1 - self.region)).sum(dim=(1, 2))], dim=1)


@pytest.fixture
def one_thread():
    """Hundreds of tiny ops: thread synchronization would dominate on a loaded CI machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_extremal_perturbation_recovers_a_planted_region(one_thread):
    region = torch.zeros(24, 24, dtype=torch.bool)
    region[6:12, 14:20] = True  # 36 px = 6.25% of the image
    model = PlantedRegion(region).eval()
    with torch.no_grad():
        model.conv.weight.copy_(torch.eye(3)[:, :, None, None])
        model.conv.bias.zero_()
    image = torch.zeros(1, 3, 24, 24)
    image[:, :, region] = 1.0  # bright where class 0 looks: blurring it away lowers the score
    params = {"extremal_perturbation": {"areas": [0.0625], "max_iter": 100, "step": 2, "sigma": 2.0, "max_blur": 4.0, "jitter": False}}
    maps = explain(model, image, torch.tensor([[0]]), methods=["extremal_perturbation"], target_layer="conv", params=params)["extremal_perturbation"]
    mask = maps[0, 0]
    assert mask.shape == (24, 24) and 0 <= float(mask.min()) and float(mask.max()) <= 1
    chosen = mask > 0.5
    overlap = float((chosen & region).sum() / (chosen | region).sum())
    assert overlap > 0.6, overlap
    assert region[tuple(argmax_points(mask[None])[0].flip(0))]
