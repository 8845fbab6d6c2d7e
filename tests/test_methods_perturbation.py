"""Perturbation methods and baselines: batched results equal one-at-a-time references, chunks
stay bounded, and what the model ignores changes nothing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wsl_bench import explain
from wsl_bench.errors import ConfigError
from wsl_bench.methods.builtin.rise import rise_masks, upsample_masks
from wsl_bench.methods.perturbation import occlusion_maps


class TinyCNN(nn.Module):
    """conv -> ReLU -> conv -> ReLU (target: features.3) -> GAP -> linear; channel 0 of the
    target layer is dead (always 0), so it is constant."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, padding=1, stride=2), nn.ReLU())
        with torch.no_grad():
            self.features[2].weight[0] = 0
            self.features[2].bias[0] = -1.0
        self.fc = nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((-2, -1)))


class LeftHalfOnly(TinyCNN):
    """Looks only at the left 8 columns of a 16-wide input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x[..., :8])


def max_batch_seen(model: nn.Module) -> list[int]:
    seen: list[int] = []
    model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[0]))
    return seen


def activations(model: TinyCNN, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.features(x)


def test_occluding_a_region_the_model_ignores_changes_nothing():
    model = LeftHalfOnly().eval()
    x, targets = torch.randn(2, 3, 16, 16), torch.tensor([[1, 3], [0, 2]])
    grid = occlusion_maps(model, x, targets, patch=4, stride=2, fill=0.0, chunk_size=5)
    assert grid.shape == (2, 2, 7, 7)
    x0 = torch.arange(0, 13, 2)
    # zero up to float rounding (the occluded copies run in other batch sizes than the original)
    assert grid[..., x0 >= 8].abs().max() < 1e-5 and grid[..., x0 <= 4].abs().max() > 1e-2
    maps = explain(model, x, targets, methods=["occlusion"], target_layer="features.3", params={"occlusion": {"patch": 4, "stride": 2}})["occlusion"]
    assert maps.shape == (2, 2, 16, 16)
    # default score=probability (softmax): probability drops (small here), rounding noise far below them
    assert maps[..., 11:].abs().max() < 1e-6 and maps[..., :8].abs().max() > 1e-4


@pytest.mark.parametrize("score", ["probability", "logit"])
def test_occlusion_pixel_map_is_the_mean_drop_of_covering_windows(score):
    model = TinyCNN().eval()
    x, targets = torch.randn(1, 3, 16, 16), torch.tensor([[2]])
    read = (lambda logits: torch.softmax(logits, 1)) if score == "probability" else (lambda logits: logits)
    transform = read if score == "probability" else None
    grid = occlusion_maps(model, x, targets, patch=6, stride=5, fill=0.0, chunk_size=64, transform=transform)  # windows at 0, 5, 10
    params = {"occlusion": {"patch": 6, "stride": 5, "score": score}}
    maps = explain(model, x, targets, methods=["occlusion"], target_layer="features.3", params=params)["occlusion"]
    # pixel (y=5, x=0) is covered by windows (y0=0, x0=0) and (5, 0); pixel (12, 12) only by (10, 10)
    torch.testing.assert_close(maps[0, 0, 5, 0], (grid[0, 0, 0, 0] + grid[0, 0, 1, 0]) / 2)
    torch.testing.assert_close(maps[0, 0, 12, 12], grid[0, 0, 2, 2])
    # by hand: occlude the window at (5, 10) and read the drop
    occluded = x.clone()
    occluded[..., 5:11, 10:16] = 0
    with torch.no_grad():  # the paper maps the class probability (score=probability)
        drop = read(model(x))[0, 2] - read(model(occluded))[0, 2]
    torch.testing.assert_close(grid[0, 0, 1, 2], drop)
    torch.testing.assert_close(maps[0, 0, 7, 12], drop)  # pixel (7, 12): covered by that window only


@pytest.mark.parametrize("rerun", ["suffix", "full"])
def test_ablationcam_equals_one_channel_at_a_time_reference(rerun):
    model = TinyCNN().eval()
    x, targets = torch.randn(2, 3, 16, 16), torch.tensor([[1, 4], [3, 0]])
    acts = activations(model, x)
    with torch.no_grad():
        y = model(x).gather(1, targets)
        expected = torch.zeros(2, 2, 8, 8)
        for b in range(2):
            slopes = []
            for k in range(6):
                ablated = acts[b : b + 1].clone()
                ablated[:, k] = 0
                y_k = model.fc(ablated.mean((-2, -1)))[0, targets[b]]
                slopes.append((y[b] - y_k) / y[b])  # Eq. 3
            expected[b] = torch.relu(torch.einsum("kt,khw->thw", torch.stack(slopes), acts[b]))
    seen = max_batch_seen(model)
    got = explain(model, x, targets, methods=["ablationcam"], target_layer="features.3", params={"ablationcam": {"batch_size": 2, "rerun": rerun}})["ablationcam"]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # 5 live channels per image in chunks of <= 2 (the dead channel costs nothing)
    assert len(seen) == 1 + 2 * 3 and max(seen[1:]) <= (1 if rerun == "suffix" else 2)


def test_rise_equals_one_mask_at_a_time_reference():
    model = TinyCNN().eval()
    x, targets = torch.randn(2, 3, 16, 16), torch.tensor([[1, 4], [3, 0]])
    params = {"n_masks": 10, "cells": 3, "prob": 0.4, "seed": 7, "batch_size": 6}
    grids, shifts = rise_masks(10, 3, 0.4, (16, 16), 7, x.device)
    masks = upsample_masks(grids, shifts, (16, 16))[:, 0]
    assert masks.shape == (10, 16, 16) and masks.min() >= 0 and masks.max() <= 1
    expected = torch.zeros(2, 2, 16, 16)
    with torch.no_grad():
        for i in range(10):
            probs = torch.softmax(model(x * masks[i]), dim=1).gather(1, targets)  # [B, T]
            expected += probs[..., None, None] * masks[i]
    expected /= 10 * 0.4  # Eq. 6: 1 / (E[M] N)
    seen = max_batch_seen(model)
    got = explain(model, x, targets, methods=["rise"], target_layer="features.3", params={"rise": params})["rise"]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert max(seen[1:]) <= 6
    again = explain(model, x, targets, methods=["rise"], target_layer="features.3", params={"rise": params})["rise"]
    other = explain(model, x, targets, methods=["rise"], target_layer="features.3", params={"rise": {**params, "seed": 8}})["rise"]
    assert torch.equal(got, again) and not torch.equal(got, other)


def test_rise_masks_follow_the_paper_procedure():
    grids, shifts = rise_masks(2000, 7, 0.5, (224, 224), 0, torch.device("cpu"))
    assert set(grids.unique().tolist()) == {0.0, 1.0} and abs(grids.mean().item() - 0.5) < 0.01
    assert shifts.min() >= 0 and shifts.max() == 31  # cell = ceil(224 / 7) = 32
    masks = upsample_masks(grids[:50], shifts[:50], (224, 224))
    assert masks.shape == (50, 1, 224, 224)
    # a shift of 0 crops the top-left of the (s + 1) * 32 = 256 upsampled grid
    zero = torch.zeros(1, 2, dtype=torch.long)
    full = F.interpolate(grids[:1], size=(256, 256), mode="bilinear", align_corners=False)
    torch.testing.assert_close(upsample_masks(grids[:1], zero, (224, 224)), full[..., :224, :224])


def test_eigencam_is_the_first_component_with_a_positive_sign():
    class Const(nn.Module):  # the target layer's output is a fixed rank-1 tensor
        def __init__(self, acts: torch.Tensor) -> None:
            super().__init__()
            self.acts = acts
            self.layer = nn.Identity()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.layer(self.acts.expand(x.shape[0], -1, -1, -1)).mean((-2, -1)))

    spatial = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 0.5]])
    for channel in (torch.tensor([1.0, 2.0, -0.5, 0.3]), torch.tensor([-1.0, -2.0, 0.5, -0.3])):
        acts = (channel[:, None, None] * spatial)[None]
        maps = explain(Const(acts), torch.zeros(1, 3, 6, 6), torch.tensor([[0, 1]]), methods=["eigencam"], target_layer="layer")["eigencam"]
        # O = spatial (x) channel is rank 1: O v1 = +-|channel| * spatial; the mean activation is
        # mean(channel) * spatial, so the sign makes the map correlate with it
        sign = 1.0 if channel.mean() > 0 else -1.0
        torch.testing.assert_close(maps[0, 0], sign * channel.norm() * spatial)
        torch.testing.assert_close(maps[0, 1], maps[0, 0])


def test_center_baseline_peaks_at_the_center_and_random_is_seeded():
    model = TinyCNN().eval()
    x = torch.randn(2, 3, 15, 17)
    maps = explain(model, x, torch.tensor([1, 2]), methods=["center", "random"], target_layer="features.3")
    center = maps["center"]
    assert center.shape == (2, 15, 17)
    assert divmod(int(center[0].argmax()), 17) == (7, 8) and center[0, 7, 8] == 1.0
    again = explain(model, x, torch.tensor([1, 2]), methods=["random"], target_layer="features.3")["random"]
    other = explain(model, x, torch.tensor([1, 2]), methods=["random"], target_layer="features.3", params={"random": {"seed": 1}})["random"]
    assert maps["random"].shape == (2, 8, 9) and torch.equal(maps["random"], again) and not torch.equal(again, other)


def test_ablationcam_suffix_mode_explains_a_model_it_cannot_serve():
    class InputBatchReshape(TinyCNN):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            batch = x.shape[0]
            return self.fc(self.features(x).reshape(batch, 6, -1).mean(-1))

    model = InputBatchReshape().eval()
    x, targets = torch.randn(1, 3, 16, 16), torch.tensor([2])
    with pytest.raises(ConfigError, match="rerun=full"):
        explain(model, x, targets, methods=["ablationcam"], target_layer="features.3")
    full = explain(model, x, targets, methods=["ablationcam"], target_layer="features.3", params={"ablationcam": {"rerun": "full"}})
    assert full["ablationcam"].shape == (1, 8, 8)


@pytest.mark.parametrize("channels,grid", [(8, 2), (3, 3)])  # both Gram-matrix branches
def test_eigencam_equals_the_svd_projection_up_to_the_fixed_sign(channels, grid):
    class Const(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.acts = torch.randn(2, channels, grid, grid)
            self.layer = nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layer(self.acts).mean((-2, -1))

    model = Const()
    maps = explain(model, torch.zeros(2, 3, 4, 4), torch.tensor([0, 1]), methods=["eigencam"], target_layer="layer")["eigencam"]
    matrix = model.acts.flatten(2).transpose(1, 2).double()
    _, _, vh = torch.linalg.svd(matrix, full_matrices=False)
    reference = (matrix @ vh[:, 0, :, None])[..., 0].view(2, grid, grid).float()
    torch.testing.assert_close(maps.abs(), reference.abs(), rtol=1e-4, atol=1e-5)
    mean_act = model.acts.mean(1).flatten(1)
    for b in range(2):
        assert torch.corrcoef(torch.stack([maps[b].flatten(), mean_act[b]]))[0, 1] > 0
