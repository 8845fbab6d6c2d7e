"""Methods on small hand-built models where the answer is known in closed form."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wsl_bench import explain
from wsl_bench.errors import ConfigError
from wsl_bench.methods import METHODS, Explainer
from wsl_bench.methods.builtin.excitation_backprop import excitation_rules
from wsl_bench.methods.core import deconvnet_relu_rule, guided_relu_rule, register_method

torch.set_default_dtype(torch.float32)


class TinyCNN(nn.Module):
    """conv -> ReLU -> conv -> ReLU (target: features.3, 6 x 8 x 8) -> GAP -> linear."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, padding=1, stride=2), nn.ReLU()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


class LinearHead(nn.Module):
    """conv -> ReLU (target: act) -> flatten -> linear: the logits are linear in the target layer,
    y^c = sum_kij W[c, k, i, j] A[k, i, j] + b[c], so d y^c / d A = W[c]."""

    def __init__(self, classes: int = 4, channels: int = 3, grid: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1, stride=2)
        self.act = nn.ReLU()
        self.fc = nn.Linear(channels * grid * grid, classes)
        self.shape = (channels, grid, grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.conv(x)).flatten(1))


def layer_output(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    store = {}
    handle = layer.register_forward_hook(lambda _m, _i, out: store.setdefault("a", out.detach().clone()))
    with torch.no_grad():
        model(x)
    handle.remove()
    return store["a"]


# Cheap params so every method runs on the 16 x 16 tiny inputs.
CHEAP = {
    "occlusion": {"patch": 4, "stride": 2, "batch_size": 7},
    "rise": {"n_masks": 24, "cells": 4, "batch_size": 10},
    "smoothgradcampp": {"samples": 3},
    "scorecam": {"batch_size": 5},
    "scorecam_channel_softmax": {"batch_size": 5},
    "ablationcam": {"batch_size": 4},
    "extremal_perturbation": {"areas": [0.1, 0.3], "max_iter": 3, "step": 2, "sigma": 2.0, "batch_size": 3},
    "smoothgrad": {"samples": 3, "batch_size": 4},
    "integrated_gradients": {"steps": 4, "batch_size": 5},
    "meaningful_perturbation": {"iterations": 3, "batch_size": 3, "mask_scale": 4},
}
BUILTINS = sorted(n for n in METHODS.names() if METHODS.get(n).fn.__module__.startswith("wsl_bench.methods.builtin."))
PIXEL_METHODS = {
    "gradient", "guided_backprop", "guided_gradcam", "occlusion", "rise", "center", "scorecam", "smoothgrad",
    "integrated_gradients", "meaningful_perturbation", "deconvnet", "extremal_perturbation",
}


@pytest.fixture(autouse=True)
def _registry_restored():
    """Methods a test registers do not outlive it."""
    METHODS.names()
    before = dict(METHODS._entries)
    yield
    METHODS._entries.clear()
    METHODS._entries.update(before)


@pytest.fixture
def tiny() -> TinyCNN:
    torch.manual_seed(1)
    return TinyCNN().eval()


def test_every_builtin_has_its_yaml():
    from pathlib import Path

    conf = Path(__file__).resolve().parent.parent / "conf" / "method"
    builtins = [n for n in METHODS.names() if METHODS.get(n).fn.__module__.startswith("wsl_bench.methods.builtin.")]
    assert len(builtins) == 26  # 18 CAM-family + 4 TorchRay-benchmark + 4 attribution methods
    for name in builtins:
        text = (conf / f"{name}.yaml").read_text()
        assert text.startswith(f"# @package method.{name}\n") and f"name: {name}\n" in text


@pytest.mark.parametrize("name", BUILTINS)
def test_shape_dtype_device_contract(tiny, name):
    images = torch.randn(2, 3, 16, 16)
    single = explain(tiny, images, torch.tensor([1, 3]), methods=[name], target_layer="features.3", params=CHEAP)[name]
    multi = explain(tiny, images, torch.tensor([[1, 0], [3, 4]]), methods=[name], target_layer="features.3", params=CHEAP)[name]
    grid = (16, 16) if name in PIXEL_METHODS else (8, 8)
    assert single.shape == (2, *grid) and multi.shape == (2, 2, *grid)
    assert single.dtype == torch.float32 and single.device == images.device
    assert torch.isfinite(multi).all() and not multi.requires_grad


@pytest.mark.parametrize("name", [n for n in BUILTINS if n != "random"])
def test_multi_target_equals_one_target_at_a_time(tiny, name):
    images = torch.randn(3, 3, 16, 16)
    targets = torch.tensor([[0, 1, 2], [4, 3, 0], [2, 2, 1]])
    together = explain(tiny, images, targets, methods=[name], target_layer="features.3", params=CHEAP)[name]
    for t in range(3):
        alone = explain(tiny, images, targets[:, t], methods=[name], target_layer="features.3", params=CHEAP)[name]
        torch.testing.assert_close(together[:, t], alone, rtol=1e-4, atol=1e-6)


def test_methods_requested_together_equal_methods_alone(tiny):
    names = ["gradcam", "gradcampp", "xgradcam", "layercam", "hirescam", "gradient", "guided_gradcam", "cam"]
    images, targets = torch.randn(2, 3, 16, 16), torch.tensor([[1, 2], [0, 4]])
    together = explain(tiny, images, targets, methods=names, target_layer="features.3")
    for name in names:
        alone = explain(tiny, images, targets, methods=[name], target_layer="features.3")[name]
        torch.testing.assert_close(together[name], alone)


def test_one_forward_and_one_backward_serve_all_gradient_methods_and_targets(tiny):
    calls = []
    tiny.features[0].register_forward_hook(lambda *_: calls.append("forward"))
    names = ["gradcam", "gradcampp", "xgradcam", "layercam", "hirescam", "gradcam_neg", "cam", "eigencam"]
    explainer = Explainer(tiny, "features.3", names)
    explainer.forward(torch.randn(2, 3, 16, 16))
    backward = []
    original = torch.autograd.grad
    torch.autograd.grad = lambda *a, **k: backward.append(1) or original(*a, **k)
    try:
        maps = explainer.maps(torch.tensor([[0, 1, 2, 3, 4]] * 2))
    finally:
        torch.autograd.grad = original
    assert calls == ["forward"] and backward == [1] and set(maps) == set(names)


def test_gradcam_equals_cam_up_to_a_positive_factor_for_gap_linear(tiny):
    images, targets = torch.randn(4, 3, 16, 16), torch.tensor([[0, 1], [2, 3], [4, 0], [1, 2]])
    maps = explain(tiny, images, targets, methods=["gradcam", "cam"], target_layer="features.3")
    # d y^c / d A_ij = w^c / Z, so Grad-CAM = ReLU(CAM) / Z with Z = 8 * 8.
    torch.testing.assert_close(maps["gradcam"] * 64, torch.relu(maps["cam"]), rtol=1e-5, atol=1e-6)
    assert (maps["cam"] < 0).any()  # CAM itself has no ReLU
    # and CAM is the linear layer's weights on the channels, by hand:
    acts = layer_output(tiny, tiny.features[3], images)
    by_hand = torch.einsum("btk,bkhw->bthw", tiny.fc.weight[targets], acts)
    torch.testing.assert_close(maps["cam"], by_hand)


def test_cam_refuses_a_head_that_is_not_gap_linear():
    torch.manual_seed(0)
    model = LinearHead().eval()
    with pytest.raises(ConfigError, match="cam needs"):
        explain(model, torch.randn(1, 3, 8, 8), torch.tensor([0]), methods=["cam"], target_layer="act")


@pytest.fixture
def linear_head():
    torch.manual_seed(2)
    model = LinearHead().eval()
    images = torch.randn(3, 3, 8, 8)
    targets = torch.tensor([[0, 3], [1, 2], [2, 2]])
    weights = model.fc.weight.view(4, *model.shape)[targets]  # [B, T, C, h, w] = d y / d A
    return model, images, targets, weights, layer_output(model, model.act, images)


def test_gradient_cams_reduce_to_closed_forms_when_linear_in_the_layer(linear_head):
    model, images, targets, g, acts = linear_head
    names = ["gradcam", "gradcam_neg", "hirescam", "xgradcam", "layercam", "gradcampp"]
    maps = explain(model, images, targets, methods=names, target_layer="act", params={"hirescam": {"relu": False}})
    a = acts[:, None]  # [B, 1, C, h, w]
    torch.testing.assert_close(maps["gradcam"], torch.relu((g.mean((-2, -1), keepdim=True) * a).sum(2)))
    torch.testing.assert_close(maps["gradcam_neg"], torch.relu((-g.mean((-2, -1), keepdim=True) * a).sum(2)))
    hires = (g * a).sum(2)
    torch.testing.assert_close(maps["hirescam"], hires)
    # HiResCAM sums to the logit minus the bias (it is exact for a linear head).
    logits = model(images).detach()
    torch.testing.assert_close(hires.sum((-2, -1)), logits.gather(1, targets) - model.fc.bias[targets].detach())
    alpha = (g * a).sum((-2, -1)) / a.sum((-2, -1))
    torch.testing.assert_close(maps["xgradcam"], torch.relu((alpha[..., None, None] * a).sum(2)))
    torch.testing.assert_close(maps["layercam"], torch.relu((torch.relu(g) * a).sum(2)))
    # Grad-CAM++ Eq. 19 with g constant in each channel's position: alpha = g^2 / (2 g^2 + S_k g^3).
    denom = 2 * g**2 + a.sum((-2, -1), keepdim=True) * g**3
    alpha_pp = torch.where(denom != 0, g**2 / denom, torch.zeros_like(g))
    w = (alpha_pp * torch.relu(g)).sum((-2, -1))
    torch.testing.assert_close(maps["gradcampp"], torch.relu((w[..., None, None] * a).sum(2)))


def test_xgradcam_satisfies_conservation_when_linear(linear_head):
    model, images, targets, g, acts = linear_head
    model.fc.weight.data.abs_()  # positive evidence everywhere, so the ReLU changes nothing
    maps = explain(model, images, targets, methods=["xgradcam"], target_layer="act")["xgradcam"]
    logits = model(images).detach()
    torch.testing.assert_close(maps.sum((-2, -1)), logits.gather(1, targets) - model.fc.bias[targets].detach())


def test_gradcampp_exp_scale_and_smooth_with_zero_noise_equals_gradcampp(tiny):
    images, targets = torch.randn(2, 3, 16, 16), torch.tensor([[1, 2], [3, 0]])
    plain = explain(tiny, images, targets, methods=["gradcampp"], target_layer="features.3")["gradcampp"]
    scaled = explain(tiny, images, targets, methods=["gradcampp"], target_layer="features.3", params={"gradcampp": {"scale_by_exp_score": True}})["gradcampp"]
    scores = tiny(images).detach().gather(1, targets)
    torch.testing.assert_close(scaled, plain * scores.exp()[..., None, None])
    smooth = explain(tiny, images, targets, methods=["smoothgradcampp"], target_layer="features.3", params={"smoothgradcampp": {"samples": 3, "noise_level": 0.0}})
    torch.testing.assert_close(smooth["smoothgradcampp"], plain)
    noisy = [explain(tiny, images, targets, methods=["smoothgradcampp"], target_layer="features.3", params={"smoothgradcampp": {"samples": 3, "seed": s}})["smoothgradcampp"] for s in (0, 0, 1)]
    torch.testing.assert_close(noisy[0], noisy[1])
    assert not torch.allclose(noisy[0], noisy[2])


def test_smoothgradcampp_map_of_an_image_does_not_depend_on_its_batch(tiny):
    images, targets = torch.randn(3, 3, 16, 16), torch.tensor([[1], [3], [0]])
    params = {"smoothgradcampp": {"samples": 4, "noise_level": 0.3}}
    batched = explain(tiny, images, targets, methods=["smoothgradcampp"], target_layer="features.3", params=params)["smoothgradcampp"]
    for b in range(3):
        alone = explain(tiny, images[b : b + 1], targets[b : b + 1], methods=["smoothgradcampp"], target_layer="features.3", params=params)["smoothgradcampp"]
        torch.testing.assert_close(alone[0], batched[b], rtol=1e-4, atol=1e-6)


class MLP(nn.Module):
    def __init__(self, act: type[nn.Module], inplace: bool = False) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.l1, self.l2, self.l3 = nn.Linear(12, 10), nn.Linear(10, 8), nn.Linear(8, 3)
        self.a1, self.a2 = act(inplace=inplace), act(inplace=inplace)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l3(self.a2(self.l2(self.a1(self.l1(x.flatten(1))))))


@pytest.mark.parametrize("act,inplace", [(nn.ReLU, False), (nn.ReLU, True), (nn.ReLU6, True)])
def test_guided_backprop_passes_only_positive_gradients_through_rectifiers(act, inplace):
    model = MLP(act, inplace).eval()
    x = torch.randn(4, 3, 2, 2) * 4  # large enough that some ReLU6 units saturate
    targets = torch.tensor([[0, 2], [1, 1], [2, 0], [0, 1]])
    with torch.no_grad():
        z1 = model.l1(x.flatten(1))
        h1 = act()(z1)
        z2 = model.l2(h1)
    # the rectifier's own gate: derivative 1 where it passed its input (0 < z, and z < 6 for ReLU6)
    gate1 = ((z1 > 0) & ((z1 < 6) if act is nn.ReLU6 else True)).float()
    gate2 = ((z2 > 0) & ((z2 < 6) if act is nn.ReLU6 else True)).float()
    r2 = gate2[:, None] * model.l3.weight[targets].detach().clamp(min=0)  # [B, T, 8]
    r1 = gate1[:, None] * (r2 @ model.l2.weight.detach()).clamp(min=0)  # [B, T, 10]
    expected = (r1 @ model.l1.weight.detach()).view(4, 2, 3, 2, 2)
    maps = explain(model, x, targets, methods=["guided_backprop", "gradient"], target_layer="l1", params={"guided_backprop": {"channel_reduce": "sum"}})
    torch.testing.assert_close(maps["guided_backprop"], expected.sum(2))
    # and the plain gradient (same pass object, no guided rule leaking) is the usual chain rule
    plain = ((gate2[:, None] * model.l3.weight[targets].detach()) @ model.l2.weight.detach() * gate1[:, None]) @ model.l1.weight.detach()
    torch.testing.assert_close(maps["gradient"], plain.view(4, 2, 3, 2, 2).abs().amax(2))
    assert all(not m._forward_hooks for m in model.modules())


def test_guided_backprop_on_torchvision_resnet_with_reused_inplace_relu():
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    x, targets = torch.randn(2, 3, 32, 32), torch.tensor([[3, 7], [1, 1]])
    got = explain(model, x, targets, methods=["guided_backprop"], target_layer="layer4", params={"guided_backprop": {"channel_reduce": "sum"}})["guided_backprop"]

    class GuidedReLU(torch.autograd.Function):  # reference: the rule as a custom autograd function
        @staticmethod
        def forward(ctx, inp):
            out = inp.clamp(min=0)
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, grad):
            (out,) = ctx.saved_tensors
            return grad.clamp(min=0) * (out > 0)

    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    for m in relus:
        m.forward = GuidedReLU.apply
    try:
        expected = []
        for t in range(2):
            xi = x.clone().requires_grad_(True)
            model(xi).gather(1, targets[:, t : t + 1]).sum().backward()
            expected.append(xi.grad.sum(1))
    finally:
        for m in relus:
            del m.forward
    torch.testing.assert_close(got, torch.stack(expected, 1), rtol=1e-4, atol=1e-6)


def test_guided_rule_needs_rectifier_modules():
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="nn.ReLU"):
        explain(model, torch.randn(1, 3, 8, 8), torch.tensor([0]), methods=["guided_backprop"], target_layer="0")


def test_hooks_flags_and_mode_restored_after_an_exception(tiny):
    @register_method("_test_boom", layer_grads=True, guided_input_grads=True)
    def boom(p):
        raise RuntimeError("boom")

    tiny.train()
    tiny.fc.weight.requires_grad_(False)
    flags = [p.requires_grad for p in tiny.parameters()]
    with pytest.raises(RuntimeError, match="boom"):
        explain(tiny, torch.randn(2, 3, 16, 16), torch.tensor([0, 1]), methods=["_test_boom"], target_layer="features.3")
    for rule in (guided_relu_rule, deconvnet_relu_rule, excitation_rules):
        with pytest.raises(RuntimeError, match="inside"):
            with rule(tiny):
                raise RuntimeError("inside")
    assert tiny.training and [p.requires_grad for p in tiny.parameters()] == flags
    assert all(not m._forward_hooks and not m._backward_hooks for m in tiny.modules())
    assert torch.is_grad_enabled()
    # and after a successful call too, in eval mode, with no parameter gradient accumulated
    tiny.eval()
    explain(tiny, torch.randn(2, 3, 16, 16), torch.tensor([0, 1]), methods=list(CHEAP) + ["guided_gradcam", "deconvnet", "excitation_backprop", "contrastive_excitation_backprop"], target_layer="features.3", params=CHEAP)
    assert not tiny.training and all(p.grad is None for p in tiny.parameters())
    assert all(not m._forward_hooks for m in tiny.modules())


def test_unknown_method_param_fails_before_compute(tiny):
    with pytest.raises(ConfigError, match="unknown param.*patchsize.*accepted: patch"):
        Explainer(tiny, "features.3", ["occlusion"], {"occlusion": {"patchsize": 3}})


def test_method_yaml_module_and_target_errors_are_clear(tmp_path, monkeypatch):
    from wsl_bench.methods import method_from_config

    with pytest.raises(ConfigError, match="method module 'not_there_cams' cannot be imported"):
        method_from_config("mine", {"name": "mine", "module": "not_there_cams"})
    with pytest.raises(ConfigError, match="not found"):
        method_from_config("mine", {"module": str(tmp_path / "missing.py")})
    with pytest.raises(ConfigError, match="method 'nosuch' is unknown; available: ablationcam, cam, center"):
        method_from_config("nosuch", {})
    (tmp_path / "user_cams_file.py").write_text(
        "import torch\n\ndef flat(p, value: float = 1.0):\n    return torch.full_like(p.activations[:, :1], value).expand(-1, p.targets.shape[1], -1, -1)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    name = method_from_config("flat", {"name": "flat", "_target_": "user_cams_file.flat", "layer_grads": True})
    assert name == "flat" and METHODS.get("flat").needs_layer_grads
    assert method_from_config("flat2", {"name": "flat2", "module": str(tmp_path / "user_cams_file.py"), "_target_": "user_cams_file.flat"}) == "flat2"


def test_mixed_module_modes_and_grad_flags_are_restored_exactly():
    """A model in eval mode with one submodule left training, and a partly frozen backbone:
    explaining (also when it fails) leaves every module's mode and every flag as it was."""
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3),
    )
    model.eval()
    model[1].train()
    model[0].weight.requires_grad_(False)
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    images = torch.randn(2, 3, 8, 8)
    explain(model, images, torch.tensor([0, 2]), methods=("gradcam",), target_layer="2")
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    with pytest.raises(Exception):
        explain(model, images, torch.tensor([0, 7]), methods=("gradcam",), target_layer="2")  # class 7 does not exist
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
