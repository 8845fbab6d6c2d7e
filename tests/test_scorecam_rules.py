"""Score-CAM's two rules, each checked by hand on tiny models: the authors' code (`scorecam`:
the masked-input class probability is the channel weight) and Algorithm 1 as pytorch-grad-cam /
torchcam read it (`scorecam_channel_softmax`: softmax over channels of the masked-input logit)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wsl_bench import explain
from wsl_bench.errors import ConfigError
from wsl_bench.methods.builtin.scorecam import channel_masks

from test_methods import layer_output
from test_methods_perturbation import TinyCNN  # features.2 (a conv, signed) -> features.3 (ReLU); a dead channel


class ThreeChannels(nn.Module):
    """Target layer: the input's three channels as they are (1 x 2 pixels, so masks need no
    upsampling); logit c = sum of channel c over the pixels, for c = 0, 1 (channel 2 is read by
    no logit)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.layer(x)
        return a[:, :2].sum((-2, -1))


def three_channel_input(constant: float = 0.0) -> torch.Tensor:
    x = torch.zeros(1, 3, 1, 2)
    x[0, 0] = torch.tensor([0.0, 2.0])  # mask (0, 1): masked channels 0 = (0, 2), 1 = (0, 0) -> logits (2, 0)
    x[0, 1] = torch.tensor([1.0, 0.0])  # mask (1, 0): masked channels 0 = (0, 0), 1 = (1, 0) -> logits (0, 1)
    x[0, 2] = constant  # constant channel: its mask is constant, X (.) 0 gives logits (0, 0)
    return x


def sig(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def run(method: str, x: torch.Tensor, target: int = 0, probabilities=None, **params) -> torch.Tensor:
    kwargs = {"probabilities": probabilities} if probabilities is not None else {}
    return explain(ThreeChannels(), x, torch.tensor([target]), methods=[method], target_layer="layer", params={method: params}, **kwargs)[method][0]


def test_authors_rule_weights_channels_by_the_masked_class_probability():
    x = three_channel_input()
    # target 0: P(0 | logits (2, 0)) = sig(2) for channel 0, P(0 | logits (0, 1)) = sig(-1) for channel 1
    w0, w1 = sig(2.0), sig(-1.0)
    expected = torch.tensor([[w1 * 1.0, w0 * 2.0]])  # w0 * (0, 2) + w1 * (1, 0); no softmax over channels
    torch.testing.assert_close(run("scorecam", x), expected)
    # target 1: P(1 | (2, 0)) = sig(-2), P(1 | (0, 1)) = sig(1)
    torch.testing.assert_close(run("scorecam", x, target=1), torch.tensor([[sig(1.0), 2 * sig(-2.0)]]))


def test_authors_rule_skips_constant_channels_or_scores_them_on_the_zero_input():
    x = three_channel_input(constant=3.0)
    w0, w1 = sig(2.0), sig(-1.0)
    skipped = torch.tensor([[w1, 2 * w0]])  # the constant channel gets weight 0 (the authors' `continue`)
    torch.testing.assert_close(run("scorecam", x), skipped)
    # zero_mask: X (.) 0 gives logits (0, 0), P(0) = 1/2, times the constant 3 at every pixel
    torch.testing.assert_close(run("scorecam", x, constant_channels="zero_mask"), skipped + 1.5)


def test_channel_softmax_rule_is_the_softmax_of_masked_logits():
    x = three_channel_input(constant=3.0)
    # zero_mask (the peers): channel logits for target 0 are 2, 0 and 0 (the zero input)
    alpha = torch.softmax(torch.tensor([2.0, 0.0, 0.0]), 0)
    expected = alpha[0] * x[0, 0] + alpha[1] * x[0, 1] + alpha[2] * x[0, 2]
    torch.testing.assert_close(run("scorecam_channel_softmax", x), expected)
    # skip: the constant channel leaves the softmax
    alpha = torch.softmax(torch.tensor([2.0, 0.0]), 0)
    torch.testing.assert_close(run("scorecam_channel_softmax", x, constant_channels="skip"), alpha[0] * x[0, 0] + alpha[1] * x[0, 1])


def test_the_rules_read_the_models_scoring_function():
    """A multi-label (sigmoid) head: the authors' rule reads sigmoids, the logit rule is unchanged."""
    x = three_channel_input()
    w0, w1 = sig(2.0), sig(0.0)  # sigmoid of the target logit 2 and 0 (softmax would give sig(2), sig(-1))
    got = run("scorecam", x, probabilities=torch.sigmoid)
    torch.testing.assert_close(got, torch.tensor([[w1, 2 * w0]]))
    assert not torch.allclose(got, run("scorecam", x))
    torch.testing.assert_close(run("scorecam_channel_softmax", x, probabilities=torch.sigmoid), run("scorecam_channel_softmax", x))


@pytest.mark.parametrize("align_corners,expected", [(False, [0.0, 0.25, 0.75, 1.0]), (True, [0.0, 1 / 3, 2 / 3, 1.0])])
def test_mask_upsampling_follows_align_corners(align_corners, expected):
    """A 1 x 2 channel (0, 4) bilinearly upsampled to 1 x 4: half-pixel centers sample at
    -0.25, 0.25, 0.75, 1.25 (clamped) -> 0, 1, 3, 4; corner-aligned at 0, 1/3, 2/3, 1 -> 0, 4/3,
    8/3, 4; then min-max normalized."""
    acts = torch.tensor([0.0, 4.0]).view(1, 1, 1, 2)
    masks = channel_masks(acts, torch.tensor([0]), torch.tensor([0]), (1, 4), align_corners)
    torch.testing.assert_close(masks.view(-1), torch.tensor(expected))


class Recorder(nn.Module):
    """Target layer: 1 x 2 average pooling of a 1 x 4 input; records every input it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.AvgPool2d((1, 2))
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return self.layer(x).flatten(1)


@pytest.mark.parametrize("method", ["scorecam", "scorecam_channel_softmax"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_masked_inputs_are_the_input_times_each_upsampled_mask(method, align_corners):
    model = Recorder()
    x = torch.tensor([[0.0, 0.0, 4.0, 4.0], [4.0, 4.0, 0.0, 0.0], [1.0, 2.0, 3.0, 5.0]]).view(1, 3, 1, 4)
    explain(model, x, torch.tensor([0]), methods=[method], target_layer="layer", params={method: {"align_corners": align_corners, "batch_size": 8}})
    up = [0.0, 1 / 3, 2 / 3, 1.0] if align_corners else [0.0, 0.25, 0.75, 1.0]
    rising = torch.tensor(up)
    # pooled channels: (0, 4) -> rising mask, (4, 0) -> falling mask, (1.5, 4) -> rising mask
    expected = torch.stack([x[0] * rising, x[0] * rising.flip(0), x[0] * rising])
    torch.testing.assert_close(model.seen[1], expected)


def reference(model, layer, x, targets, rule, constant_channels, align_corners, map_grid):
    """One channel at a time, one image at a time, as the authors' loop (and the peers' rule)."""
    acts = layer_output(model, layer, x)
    out = []
    for b in range(len(x)):
        weights, kept = [], []
        for k in range(acts.shape[1]):
            up = F.interpolate(acts[b : b + 1, k : k + 1], size=x.shape[-2:], mode="bilinear", align_corners=align_corners)
            # constant on the layer grid (the constant -1 of the dead channel can upsample to
            # -1 +- rounding, which must not become a mask)
            if acts[b, k].max() == acts[b, k].min():
                if constant_channels == "skip":
                    continue
                mask = torch.zeros_like(up)
            else:
                mask = (up - up.min()) / (up.max() - up.min())
            with torch.no_grad():
                logits = model(x[b : b + 1] * mask)[0]
            read = torch.softmax(logits, 0) if rule == "scorecam" else logits
            weights.append(read[targets[b]])
            kept.append(k)
        w = torch.stack(weights, 1)  # [T, kept]
        if rule == "scorecam_channel_softmax":
            w = torch.softmax(w, dim=1)
        cam = torch.einsum("tk,khw->thw", w, acts[b, kept])
        if map_grid == "input":
            cam = F.interpolate(cam[None], size=x.shape[-2:], mode="bilinear", align_corners=align_corners)[0]
        out.append(torch.relu(cam))
    return torch.stack(out)


@pytest.mark.parametrize("rule", ["scorecam", "scorecam_channel_softmax"])
@pytest.mark.parametrize(
    "layer,constant_channels,align_corners,map_grid",
    [("features.3", "skip", False, "input"), ("features.3", "zero_mask", True, "layer"), ("features.2", "zero_mask", False, "input"), ("features.2", "skip", True, "layer")],
)
def test_batched_rules_equal_a_one_channel_at_a_time_reference(rule, layer, constant_channels, align_corners, map_grid):
    model = TinyCNN().eval()
    x, targets = torch.randn(2, 3, 16, 16), torch.tensor([[1, 4], [0, 0]])
    params = {"batch_size": 3, "constant_channels": constant_channels, "align_corners": align_corners, "map_grid": map_grid}
    got = explain(model, x, targets, methods=[rule], target_layer=layer, params={rule: params})[rule]
    expected = reference(model, dict(model.named_modules())[layer], x, targets, rule, constant_channels, align_corners, map_grid)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_signed_layer_map_grid_matters_and_nonnegative_layer_it_does_not():
    model = TinyCNN().eval()
    x, targets = torch.randn(1, 3, 16, 16), torch.tensor([2])

    def maps(layer: str, grid: str) -> torch.Tensor:
        return explain(model, x, targets, methods=["scorecam"], target_layer=layer, params={"scorecam": {"map_grid": grid}})["scorecam"]

    coarse = F.interpolate(maps("features.3", "layer")[None], size=(16, 16), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(maps("features.3", "input"), coarse)  # ReLU layer: the sum is never negative
    coarse = F.interpolate(maps("features.2", "layer")[None], size=(16, 16), mode="bilinear", align_corners=False)[0]
    assert (maps("features.2", "input") - coarse).abs().max() > 1e-3


def test_both_rules_together_share_one_set_of_masked_forwards():
    model = TinyCNN().eval()
    x, targets = torch.randn(2, 3, 16, 16), torch.tensor([[1, 4], [0, 3]])
    seen: list[int] = []
    model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[0]))
    both = explain(model, x, targets, methods=["scorecam", "scorecam_channel_softmax"], target_layer="features.3")
    n_both = sum(seen[1:])
    seen.clear()
    alone = explain(model, x, targets, methods=["scorecam"], target_layer="features.3")["scorecam"]
    # 5 varying channels per image, scored once for both rules; the zero input only for the peers' zero_mask
    assert n_both == 2 * 5 + 2 and sum(seen[1:]) == 2 * 5
    torch.testing.assert_close(both["scorecam"], alone)
    assert both["scorecam"].shape == (2, 2, 16, 16) and both["scorecam_channel_softmax"].shape == (2, 2, 8, 8)


def test_bad_options_name_the_accepted_values():
    x = three_channel_input()
    with pytest.raises(ConfigError, match="constant_channels must be one of skip, zero_mask"):
        run("scorecam", x, constant_channels="drop")
    with pytest.raises(ConfigError, match="map_grid must be one of input, layer"):
        run("scorecam_channel_softmax", x, map_grid="original")
