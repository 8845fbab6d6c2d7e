"""SmoothGrad, Integrated Gradients and meaningful perturbation on small models with known
answers: closed forms, completeness, a planted region, batch independence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from wsl_bench import explain
from wsl_bench.errors import ConfigError
from wsl_bench.methods.builtin.integrated_gradients import path_points
from wsl_bench.methods.builtin.meaningful_perturbation import total_variation

from test_methods import TinyCNN


class Quadratic(nn.Module):
    """logit_c = 0.5 * sum_i a_c,i x_i^2 (+ a ReLU'd conv 'layer' the explainer hooks): the
    input gradient of class c is a_c * x, so every attribution has a closed form."""

    def __init__(self, classes: int = 3, shape: tuple[int, int, int] = (3, 4, 5)) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.a = nn.Parameter(torch.rand(classes, *shape, generator=generator) + 0.5)
        self.layer = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer(x)
        return 0.5 * torch.einsum("nchw,kchw->nk", x * x, self.a)


def tiny_cnn() -> TinyCNN:
    torch.manual_seed(5)
    return TinyCNN(classes=4).eval()


def run(model: nn.Module, method: str, x: torch.Tensor, targets: torch.Tensor, layer: str = "layer", **params) -> torch.Tensor:
    return explain(model, x, targets, methods=[method], target_layer=layer, params={method: params})[method]


# SmoothGrad ---------------------------------------------------------------------------------


@pytest.mark.parametrize("per_sample", ["raw", "square", "abs"])
def test_smoothgrad_is_the_mean_gradient_over_seeded_noise(per_sample):
    model = Quadratic().eval()
    x = torch.randn(2, 3, 4, 5)
    targets = torch.tensor([[0, 2], [1, 1]])
    got = run(model, "smoothgrad", x, targets, samples=6, noise_level=0.2, seed=9, per_sample=per_sample, channel_reduce="sum", batch_size=5)
    noise = torch.randn((6, 3, 4, 5), generator=torch.Generator().manual_seed(9))
    sigma = 0.2 * (x.flatten(1).amax(1) - x.flatten(1).amin(1))  # the paper's noise level x input range, per image
    for b in range(2):
        for t in range(2):
            grads = model.a[targets[b, t]].detach() * (x[b] + sigma[b] * noise)  # d logit / dx = a * x, [6, 3, 4, 5]
            grads = {"raw": grads, "square": grads**2, "abs": grads.abs()}[per_sample]
            torch.testing.assert_close(got[b, t], grads.mean(0).sum(0), rtol=1e-5, atol=1e-6)


def test_smoothgrad_of_a_linear_model_is_its_weights_and_batches_do_not_matter():
    model = nn.Sequential(nn.Identity(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).eval()
    x = torch.randn(3, 3, 4, 4)
    got = run(model, "smoothgrad", x, torch.tensor([1, 0, 1]), layer="0", samples=4)
    weights = model[2].weight.detach().view(2, 3, 4, 4)
    torch.testing.assert_close(got[0], weights[1].abs().sum(0))  # abs_sum over colour channels of a constant gradient
    torch.testing.assert_close(got[1], weights[0].abs().sum(0))
    quadratic = Quadratic().eval()
    x = torch.randn(3, 3, 4, 5)
    together = run(quadratic, "smoothgrad", x, torch.tensor([0, 1, 2]), samples=5, batch_size=4)
    alone = run(quadratic, "smoothgrad", x[1:2], torch.tensor([1]), samples=5, batch_size=32)
    torch.testing.assert_close(together[1:2], alone)


# Integrated Gradients -----------------------------------------------------------------------


@pytest.mark.parametrize("rule,factor", [
    ("riemann_right", lambda m: (m + 1) / (2 * m)),  # sum_k (k / m) / m
    ("riemann_left", lambda m: (m - 1) / (2 * m)),
    ("riemann_middle", lambda m: 0.5),  # exact for an integrand linear in alpha
    ("riemann_trapezoid", lambda m: 0.5),
    ("gausslegendre", lambda m: 0.5),
])
def test_integrated_gradients_closed_form_for_a_quadratic(rule, factor):
    """grad at x' + alpha (x - x') is a (x' + alpha d), d = x - x'; the rule's sum of weights *
    alpha is `factor`, so IG = d * a * (x' + factor * d), summed over colour channels."""
    model = Quadratic().eval()
    x, baseline, steps = torch.randn(2, 3, 4, 5), [0.3, -0.2, 0.1], 7
    targets = torch.tensor([[2], [0]])
    got = run(model, "integrated_gradients", x, targets, steps=steps, baseline=baseline, rule=rule, score="logit", channel_reduce="sum", batch_size=6)
    x_ref = torch.tensor(baseline).view(1, 3, 1, 1)
    d = x - x_ref
    for b in range(2):
        expected = (d[b] * model.a[targets[b, 0]].detach() * (x_ref[0] + factor(steps) * d[b])).sum(0)
        torch.testing.assert_close(got[b, 0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("score", ["probability", "logit"])
def test_integrated_gradients_completeness_on_a_relu_network(score):
    """Sum of attributions = F(x) - F(x') up to the quadrature error, which shrinks with steps."""
    model = tiny_cnn()
    x, targets = torch.randn(2, 3, 12, 12), torch.tensor([[1, 3], [0, 2]])
    read = (lambda z: torch.softmax(z, 1)) if score == "probability" else (lambda z: z)
    with torch.no_grad():
        gap = read(model(x)).gather(1, targets) - read(model(torch.zeros_like(x))).gather(1, targets)  # baseline 0
    errors = []
    for steps in (4, 64):
        maps = run(model, "integrated_gradients", x, targets, layer="features.3", steps=steps, rule="riemann_trapezoid", score=score, channel_reduce="sum")
        errors.append((maps.sum((-2, -1)) - gap).abs().max().item())
    assert errors[1] < 0.01 * gap.abs().max().item() and errors[1] < errors[0]


def test_path_points_integrate_polynomials():
    for rule in ("riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid", "gausslegendre"):
        alphas, weights = path_points(rule, 5)
        assert math.isclose(float(weights.sum()), 1.0, rel_tol=1e-12)
    alphas, weights = path_points("gausslegendre", 5)  # exact up to degree 2 * 5 - 1
    assert math.isclose(float((weights * alphas**9).sum()), 0.1, rel_tol=1e-10)
    alphas, _ = path_points("riemann_trapezoid", 4)
    assert alphas.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]  # m + 1 points, as the authors' code
    with pytest.raises(ConfigError, match="rule must be one of"):
        path_points("simpson", 4)


# Meaningful perturbation --------------------------------------------------------------------


class PlantedRegion(nn.Module):
    """Two classes; logit 0 = 8 * (mean of channel 0 over the box rows 8..15, cols 16..23), logit 1
    = 0. On a bright square exactly in the box, blurring the box lowers the class-0 probability;
    blurring anywhere else changes nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        evidence = self.layer(x)[:, 0, 8:16, 16:24].mean((-2, -1))
        return torch.stack([8 * evidence, torch.zeros_like(evidence)], 1)


def planted_image() -> torch.Tensor:
    x = torch.zeros(1, 3, 32, 32)
    x[:, :, 8:16, 16:24] = 1.0
    return x


def test_meaningful_perturbation_recovers_a_planted_region():
    # Regularizers scaled to a 32 x 32 input; starting from m = 1 the probability (0.9997) is
    # saturated and L1 holds the mask there, so the mask starts at 0.5.
    params = {"iterations": 100, "mask_scale": 4, "blur_sigma": 4.0, "mask_blur": 1.0, "jitter": 1, "init": 0.5, "l1_coeff": 1e-3, "tv_coeff": 1e-4}
    deletion = run(PlantedRegion(), "meaningful_perturbation", planted_image(), torch.tensor([0]), **params)[0]
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[8:16, 16:24] = True
    far = ~torch.nn.functional.max_pool2d(inside[None].float(), 9, 1, 4)[0].bool()  # > 4 px from the box
    assert deletion[inside].mean() > 0.9 and deletion[far].mean() < 0.05
    y, x = divmod(int(deletion.argmax()), 32)
    assert 8 <= y < 16 and 16 <= x < 24


def test_meaningful_perturbation_batches_and_chunks_change_nothing():
    model = tiny_cnn()
    x, targets = torch.randn(2, 3, 16, 16), torch.tensor([[1, 3], [0, 2]])
    params = {"iterations": 4, "mask_scale": 4, "jitter": 2}
    together = run(model, "meaningful_perturbation", x, targets, layer="features.3", batch_size=3, **params)
    alone = run(model, "meaningful_perturbation", x[1:], targets[1:, 1:], layer="features.3", batch_size=16, **params)
    torch.testing.assert_close(together[1:, 1:], alone, rtol=1e-4, atol=1e-5)
    assert together.min() >= 0 and together.max() <= 1


def test_total_variation_by_hand():
    m = torch.tensor([[0.0, 1.0], [0.5, 0.5]]).view(1, 1, 2, 2)
    # forward differences (0 past the edge): u=(0,0): dy 0.5, dx 1; (0,1): dy -0.5; (1,0): dx 0
    squares = np.array([0.25 + 1.0, 0.25, 0.0, 0.0])
    for beta in (2.0, 3.0):
        expected = float((squares ** (beta / 2)).sum())
        assert math.isclose(float(total_variation(m, beta)), expected, rel_tol=1e-5, abs_tol=1e-9)


def test_circle_init_starts_with_the_center_deleted():
    """The authors' init deletes a centered disc blurred with sigma 10 px (so the input is 96 px,
    where such a disc is local): the initial mask is lowest at the center and 1 at the corners,
    and zero iterations return exactly 1 - that mask, upsampled."""
    size = 96
    box = slice(size // 2 - 8, size // 2 + 8)
    x = torch.zeros(1, 3, size, size)
    x[:, :, box, box] = 1.0

    class Center(PlantedRegion):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            evidence = self.layer(x)[:, 0, box, box].mean((-2, -1))
            return torch.stack([8 * evidence, torch.zeros_like(evidence)], 1)

    deletion = run(Center(), "meaningful_perturbation", x, torch.tensor([0]), iterations=0, mask_blur=0.0)[0]
    assert deletion[size // 2, size // 2] > 0.99 and deletion[0, 0] == 0 and deletion[0, size - 1] == 0
    profile = deletion[size // 2, : size // 2]  # from the left edge to the center: rising
    assert bool((profile[1:] >= profile[:-1] - 1e-6).all())


def test_bad_options_fail_with_the_accepted_values():
    x = torch.randn(1, 3, 4, 5)
    with pytest.raises(ConfigError, match="per_sample must be one of raw, abs, square"):
        run(Quadratic(), "smoothgrad", x, torch.tensor([0]), per_sample="cube")
    with pytest.raises(ConfigError, match="baseline must be a number or 3 values"):
        run(Quadratic(), "integrated_gradients", x, torch.tensor([0]), baseline=[0.0, 1.0])
    with pytest.raises(ConfigError, match="score must be 'probability'"):
        run(Quadratic(), "integrated_gradients", x, torch.tensor([0]), score="softmax")
    with pytest.raises(ConfigError, match="upsampling must be one of nearest, bilinear"):
        run(Quadratic(), "meaningful_perturbation", x, torch.tensor([0]), upsampling="bicubic")
