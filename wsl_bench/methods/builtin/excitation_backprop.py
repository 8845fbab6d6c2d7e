"""Excitation backprop and contrastive excitation backprop: Zhang, Lin, Brandt, Shen & Sclaroff,
"Top-down Neural Attention by Excitation Backprop", ECCV 2016 (Sec. 3.1-3.3), extended in
Zhang, Bargal et al., IJCV 126 (2018) (Sec. 3-4, layer-by-layer implementation); following
TorchRay's implementation (the reference the pointing-game table was produced with) where the
papers leave a choice open.

The marginal winning probability (MWP) of neuron a_i is P(a_i) = sum_j P(a_i | a_j) P(a_j) with
P(a_i | a_j) = a_i w+_ij / sum_k a_k w+_kj (only excitatory connections, w+ = max(w, 0)), i.e.
for a linear layer y = W x the signal P at its output becomes

    P' = x (.) (W+^T (P (/) (W+ x + 1e-20)))     (no bias; 1e-20 as in the authors' Caffe code)

which is computed here as a standard backward pass through a surrogate of each layer:
- convolutions and linear layers: the rule above (the surrogate runs the layer with W+);
- average pooling (windowed or adaptive): the same rule with the pooling as the linear map;
- batch norm: passes the signal unchanged (TorchRay's choice; EBP leaves normalization open);
- residual sums (wsl_bench.models.layers.ResidualSum modules; torchvision's ResNet blocks are
  given one for the pass): each term gets its share term / sum of the signal. Where the sum is
  exactly 0 (after the ReLU no signal arrives there), param `zero_sum` says what the share is:
  `zero` (no signal passes), or `torchray`: term / sum as TorchRay computes it, 0 / 0 = NaN,
  which makes the map NaN around that position (TorchRay's pointing game then points at the
  first NaN pixel; wsl_bench records the map as non-finite);
- ReLU, max pooling, dropout, reshapes: their ordinary backward (max pooling routes to the winner).
Every rule is linear in the top-down signal for a fixed forward pass.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from typing import Any, Iterator

import torch
from torch import nn

from ...errors import ConfigError
from ...models.base import resolve_layer
from ...models.layers import ResidualSum
from ..core import Pass, backward_per_target, capture_output, forward_hooks, frozen_for_explanation, grads_per_target, register_method, with_gradient_of

EPS = 1e-20
ZERO_SUM_RULES = ("zero", "torchray")
CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
AVERAGE_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def linear_map(module: nn.Module, x: torch.Tensor, sign: float = 1.0) -> torch.Tensor:
    """The layer's linear map with excitatory weights only, no bias: conv(x, (sign W)+) or
    linear(x, (sign W)+) for convolutions and linear layers, the pooling itself for average
    pools. sign=-1 is the contrastive dual (negated classifier weights)."""
    if isinstance(module, CONVOLUTIONS):
        return module._conv_forward(x, (sign * module.weight).clamp(min=0), None)
    if isinstance(module, nn.Linear):
        return nn.functional.linear(x, (sign * module.weight).clamp(min=0))
    return module.forward(x)  # average pooling (forward() bypasses this module's hooks)


def excitation_surrogate(module: nn.Module, x: torch.Tensor, output: torch.Tensor, sign: float = 1.0) -> torch.Tensor:
    """`output` in the forward; in the backward the MWP rule P' = x (.) f+^T (P / (f+(x) + eps))."""
    scaled = x.view_as(x)
    scaled.register_hook(lambda grad: grad * x.detach())
    activation = linear_map(module, scaled, sign)
    return with_gradient_of(output, activation / (activation.detach() + EPS))


def _rule_hook(module: nn.Module, inputs: Any, output: torch.Tensor, zero_sum: str = "zero") -> torch.Tensor | None:
    if not any(isinstance(x, torch.Tensor) and x.requires_grad for x in inputs):  # before the saliency layer
        return None
    x = inputs[0]
    if isinstance(module, NORMS):
        return with_gradient_of(output, x)
    if isinstance(module, ResidualSum):
        total = output.detach()
        routed = []
        for term in inputs:
            if not term.requires_grad:
                routed.append(term.detach())
                continue
            share = term.detach() / total
            if zero_sum == "zero":
                share = torch.where(total != 0, share, torch.zeros_like(total))
            path = term.view_as(term)
            path.register_hook(lambda grad, share=share: grad * share)
            routed.append(path)
        return with_gradient_of(output, routed[0] + routed[1])
    return excitation_surrogate(module, x, output)


def _bottleneck_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision's Bottleneck.forward with the residual sum through `block.residual_sum`."""
    identity = x if block.downsample is None else block.downsample(x)
    out = block.relu(block.bn1(block.conv1(x)))
    out = block.relu(block.bn2(block.conv2(out)))
    return block.relu(block.residual_sum(block.bn3(block.conv3(out)), identity))


def _basic_block_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision's BasicBlock.forward with the residual sum through `block.residual_sum`."""
    identity = x if block.downsample is None else block.downsample(x)
    out = block.relu(block.bn1(block.conv1(x)))
    return block.relu(block.residual_sum(block.bn2(block.conv2(out)), identity))


@contextmanager
def residual_sums_as_modules(model: nn.Module) -> Iterator[None]:
    """torchvision's ResNet blocks add their residuals with `+=`, which no hook sees: for the
    duration, each block's forward routes the sum through a ResidualSum module (what TorchRay's
    `update_resnet` does for its benchmark); restored on exit, also on an exception."""
    from torchvision.models.resnet import BasicBlock, Bottleneck

    blocks = [(m, _bottleneck_forward if isinstance(m, Bottleneck) else _basic_block_forward)
              for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    try:
        for block, forward in blocks:
            block.residual_sum = ResidualSum()
            block.forward = forward.__get__(block)
        yield
    finally:
        for block, _ in blocks:
            block.__dict__.pop("forward", None)
            if "residual_sum" in block._modules:
                del block._modules["residual_sum"]


@contextmanager
def excitation_rules(model: nn.Module, exclude: nn.Module | None = None, zero_sum: str = "zero") -> Iterator[None]:
    """The MWP backward at every convolution, linear layer, average pooling, batch norm and
    residual sum of `model` (except `exclude`; torchvision's ResNet blocks get their sums as
    modules meanwhile); `zero_sum`: the residual rule where a sum is 0 (module docstring); hooks
    removed on exit, also on an exception."""
    if zero_sum not in ZERO_SUM_RULES:
        raise ConfigError(f"excitation backprop: zero_sum must be one of {', '.join(ZERO_SUM_RULES)}, got {zero_sum!r}")
    kinds = CONVOLUTIONS + (nn.Linear,) + AVERAGE_POOLS + NORMS + (ResidualSum,)
    with residual_sums_as_modules(model):
        modules = [m for m in model.modules() if isinstance(m, kinds) and m is not exclude]
        with forward_hooks(modules, partial(_rule_hook, zero_sum=zero_sum)):
            yield


def classifier_layer(model: nn.Module, name: str) -> nn.Module:
    """The layer whose weights the contrastive dual negates: `name`, or the last convolution or
    linear layer of the model (TorchRay's `_get_classifier_layer`)."""
    if name:
        layer = resolve_layer(model, name)
    else:
        candidates = [m for m in model.modules() if isinstance(m, CONVOLUTIONS + (nn.Linear,))]
        if not candidates:
            raise ConfigError(f"excitation backprop: {type(model).__name__} has no convolution or linear layer")
        layer = candidates[-1]
    if not isinstance(layer, CONVOLUTIONS + (nn.Linear,)):
        raise ConfigError(f"excitation backprop: classifier {name!r} is a {type(layer).__name__}, not a convolution or linear layer")
    return layer


class ExcitationPass:
    """One forward of the batch with the MWP rules from the saliency layer up, split at the
    classifier: the seed at the classifier's output, its input x_c (in the graph from the saliency
    layer) and the saliency layer's output (a leaf, so the backward stops there)."""

    def __init__(self, p: Pass, saliency_layer: str, classifier: str, zero_sum: str = "zero") -> None:
        model = p.model
        layer = resolve_layer(model, saliency_layer) if saliency_layer else p.layer
        self.classifier = classifier_layer(model, classifier)
        split: dict[str, torch.Tensor] = {}

        def split_at_classifier(_module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
            if "output" in split:
                raise ConfigError("excitation backprop: the classifier layer runs more than once per forward; name another with classifier=")
            split["input"] = inputs[0]
            split["output"] = output.detach().requires_grad_(True)
            return split["output"]

        with frozen_for_explanation(model), torch.no_grad(), excitation_rules(model, exclude=self.classifier, zero_sum=zero_sum):
            with capture_output(layer, detach=True, grad_after=True) as store, forward_hooks([self.classifier], split_at_classifier):
                logits = model(p.images.detach())
        if "activations" not in store:
            raise ConfigError("excitation backprop: the saliency layer was not run in the forward pass; choose another saliency_layer")
        if "output" not in split or not split["input"].requires_grad:
            raise ConfigError("excitation backprop: the classifier layer must come after the saliency layer; set saliency_layer= / classifier=")
        self.saliency = store["activations"]
        self.classifier_input = split["input"]
        with torch.enable_grad():
            # The top-down seed at the classifier's output: for TorchRay's models, whose logits are
            # log-sum-exp over positions, exactly its pointing-game seed exp(s) / sum exp(s).
            (self.seed,) = grads_per_target(logits.gather(1, p.targets), [split["output"]])
        self.cache: dict[float, torch.Tensor] = {}

    def at_classifier_input(self, sign: float) -> torch.Tensor:
        """MWP of the classifier's input [B, T, ...] under weights sign x W (sign -1: the dual)."""
        if sign not in self.cache:
            with torch.enable_grad():
                x = self.classifier_input.detach().requires_grad_(True)
                activation = linear_map(self.classifier, x, sign)  # f+(x): [B, K, ...]
                normalized = self.seed / (activation.detach().unsqueeze(1) + EPS)  # P / f+(x): [B, T, K, ...]
                (grads,) = backward_per_target(activation, [x], normalized)
            self.cache[sign] = x.detach().unsqueeze(1) * grads  # x (.) f+^T (P / f+(x))
        return self.cache[sign]

    def at_saliency_layer(self, signal: torch.Tensor) -> torch.Tensor:
        """The signal [B, T, ...] at the classifier's input brought down to the saliency layer."""
        with torch.enable_grad():
            (grads,) = backward_per_target(self.classifier_input, [self.saliency], signal)
        return grads


def _excitation_pass(p: Pass, saliency_layer: str, classifier: str, zero_sum: str) -> ExcitationPass:
    key = ("excitation_backprop", saliency_layer, classifier, zero_sum)
    if key not in p.cache:  # shared by both variants in one run
        p.cache[key] = ExcitationPass(p, saliency_layer, classifier, zero_sum)
    return p.cache[key]


@register_method("excitation_backprop")
def excitation_backprop(p: Pass, saliency_layer: str = "", classifier: str = "", zero_sum: str = "zero") -> torch.Tensor:
    """The MWP of the target class brought down to `saliency_layer` ("" = the model's target
    layer; TorchRay: VGG16 features.23 = pool4, ResNet-50 layer3), summed over its channels (no
    clamp, as TorchRay). The seed at the output is the gradient of the target's logit (1 for a
    plain classifier; the exp-normalized score map for TorchRay's models). zero_sum: zero |
    torchray, the residual rule where a sum is 0 (module docstring). One forward of its own
    with the MWP rules, one backward batched over targets. Returns [B, T, h, w] on the saliency
    layer's grid."""
    ebp = _excitation_pass(p, saliency_layer, classifier, zero_sum)
    return ebp.at_saliency_layer(ebp.at_classifier_input(1.0)).sum(dim=2)


@register_method("contrastive_excitation_backprop")
def contrastive_excitation_backprop(p: Pass, saliency_layer: str = "", classifier: str = "", zero_sum: str = "zero") -> torch.Tensor:
    """Contrastive MWP (Sec. 3.3): the target unit's MWP minus that of its dual, the same unit
    with negated classifier weights (the dual's MWP runs the classifier's rule with (-W)+ on the
    same forward and seed, as TorchRay's weight flip does), brought down to `saliency_layer`,
    summed over channels and clamped at 0. TorchRay subtracts at a "contrast layer" (VGG16 relu7,
    ResNet-50 avgpool), which feeds the classifier directly; since every rule is linear in the
    signal, the subtraction is done at the classifier's input, with the same result. classifier:
    the layer negated ("" = the last convolution / linear layer). zero_sum: as excitation_backprop.
    Returns [B, T, h, w]."""
    ebp = _excitation_pass(p, saliency_layer, classifier, zero_sum)
    contrast = ebp.at_classifier_input(1.0) - ebp.at_classifier_input(-1.0)
    return ebp.at_saliency_layer(contrast).sum(dim=2).clamp(min=0)
