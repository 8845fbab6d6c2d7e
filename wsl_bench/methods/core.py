"""Stage 3, methods: one forward (and at most one batched backward) shared by every requested
method and every target, then each method's rule turns what that pass produced into maps.

A method is a function `fn(p: Pass, **params) -> Tensor[B, T, h, w]` registered by name with
what it needs from the pass (`layer_grads`, `input_grads`). Gradient methods requested together
share one backward; several targets per image share one forward, and the backward is batched over
targets with `torch.autograd.grad(..., is_grads_batched=True)`.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..models.base import resolve_layer
from ..registry import Registry


@dataclass
class Pass:
    """What one forward/backward produced, for a batch of B images and T targets per image.

    images: [B, 3, H, W] network input. logits: [B, K]. targets: [B, T] class indices.
    activations: [B, C, h, w] output of the target layer.
    layer_grads: [B, T, C, h, w] d logit[target] / d activations (None if no method needs it).
    input_grads: [B, T, 3, H, W] d logit[target] / d images (None if no method needs it).
    model / layer: for methods that run their own (perturbation) forwards.
    """

    model: nn.Module
    layer: nn.Module
    images: torch.Tensor
    logits: torch.Tensor
    targets: torch.Tensor
    activations: torch.Tensor
    layer_grads: torch.Tensor | None = None
    input_grads: torch.Tensor | None = None
    cache: dict[str, Any] = field(default_factory=dict)  # shared derived tensors, per pass

    @property
    def target_scores(self) -> torch.Tensor:
        """[B, T] logits of the targets."""
        return self.logits.gather(1, self.targets)


MethodFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its rule and what it needs from the shared pass."""

    name: str
    fn: MethodFn
    needs_layer_grads: bool = False
    needs_input_grads: bool = False


METHODS: Registry[MethodSpec] = Registry("method", "wsl_bench.methods.builtin")


def register_method(
    name: str, *, layer_grads: bool = False, input_grads: bool = False
) -> Callable[[MethodFn], MethodFn]:
    """Register `fn(p: Pass, **params) -> Tensor[B, T, h, w]` as method `name`.

    Usable from the user's own module: decorate, import the module (or name it in the method
    yaml's `module:`), and the method is available to `explain()` and the CLI."""

    def wrap(fn: MethodFn) -> MethodFn:
        METHODS.register(name, MethodSpec(name, fn, layer_grads, input_grads))
        return fn

    return wrap


@contextmanager
def frozen_for_explanation(model: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients for the duration; the model's mode and every
    parameter's requires_grad flag are restored afterwards, also on an exception."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


@contextmanager
def capture_output(layer: nn.Module, detach: bool) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hook storing the layer's output under "activations" (hook always removed).

    detach=True makes the stored tensor a fresh leaf, so the autograd graph (and the backward)
    covers only the layers after the target layer. A clone goes on down the network so that an
    in-place op after the layer (e.g. ReLU(inplace=True)) cannot modify the stored activations."""
    store: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        if not isinstance(output, torch.Tensor):
            raise ConfigError(f"target layer {type(_module).__name__} returns {type(output).__name__}, not a tensor; choose another model.target_layer")
        activations = output.detach().requires_grad_(True) if detach else output
        store["activations"] = activations
        return activations.clone()

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def grads_per_target(
    target_scores: torch.Tensor, inputs: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """d target_scores[:, t] / d input for every target t, in one batched backward.

    target_scores: [B, T]. Images in a batch are independent (eval mode), so differentiating the
    batch sum gives per-image gradients. Returns, per input [B, ...], a tensor [B, T, ...]."""
    batch, n_targets = target_scores.shape
    if n_targets == 1:
        grads = torch.autograd.grad(target_scores.sum(), inputs)
        return [g.unsqueeze(1) for g in grads]
    # grad_outputs[t] selects target t for every image: one vmapped backward for all T.
    selector = torch.eye(n_targets, dtype=target_scores.dtype, device=target_scores.device)
    grad_outputs = selector[:, None, :].expand(n_targets, batch, n_targets)
    grads = torch.autograd.grad(target_scores, inputs, grad_outputs=grad_outputs, is_grads_batched=True)
    return [g.transpose(0, 1) for g in grads]


class Explainer:
    """Explains a model at one target layer with several methods at once.

    `forward(images)` runs the single shared forward and returns the logits (so targets can be
    chosen from predictions); `maps(targets)` then runs the one batched backward the requested
    methods need and applies each method's rule."""

    def __init__(
        self,
        model: nn.Module,
        target_layer: str | nn.Module,
        methods: Sequence[str],
        params: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if not methods:
            raise ConfigError("no method requested; pass e.g. method=gradcam")
        self.model = model
        self.layer = resolve_layer(model, target_layer)
        self.specs = [METHODS.get(name) for name in methods]
        self.params = {name: dict((params or {}).get(name, {})) for name in methods}
        self.needs_layer_grads = any(s.needs_layer_grads for s in self.specs)
        self.needs_input_grads = any(s.needs_input_grads for s in self.specs)
        self._state: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Run the shared forward; returns detached logits [B, K]."""
        images = images.detach()
        if self.needs_input_grads:
            images = images.clone().requires_grad_(True)
        needs_graph = self.needs_layer_grads or self.needs_input_grads
        with frozen_for_explanation(self.model), torch.set_grad_enabled(needs_graph):
            with capture_output(self.layer, detach=not self.needs_input_grads) as store:
                logits = self.model(images)
        if "activations" not in store:
            raise ConfigError("the target layer was not run in the forward pass; choose another model.target_layer")
        self._state = (images, logits, store["activations"])
        return logits.detach()

    def maps(self, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Maps [B, T, h, w] per method for targets [B, T] of the last forward."""
        if self._state is None:
            raise RuntimeError("Explainer.maps() needs a forward() first")
        images, logits, activations = self._state
        self._state = None  # the graph is used once; free it with the maps
        targets = targets.to(logits.device)
        p = Pass(self.model, self.layer, images.detach(), logits.detach(), targets, activations.detach())
        wanted = []
        if self.needs_layer_grads:
            wanted.append(activations)
        if self.needs_input_grads:
            wanted.append(images)
        if wanted:
            with frozen_for_explanation(self.model):
                grads = grads_per_target(logits.gather(1, targets), wanted)
            if self.needs_layer_grads:
                p.layer_grads = grads.pop(0)
            if self.needs_input_grads:
                p.input_grads = grads.pop(0)
        out = {}
        with frozen_for_explanation(self.model):
            for spec in self.specs:
                out[spec.name] = spec.fn(p, **self.params[spec.name]).detach()
        return out


def explain(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    methods: Sequence[str] = ("gradcam",),
    target_layer: str | nn.Module = "",
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, torch.Tensor]:
    """Saliency maps of `model` for `targets`, one tensor per method name.

    images: normalized batch [B, 3, H, W]. targets: LongTensor [B] (maps [B, h, w]) or [B, T]
    (maps [B, T, h, w]). target_layer: a module or a dotted module name ("layer4", "features.29").
    Maps come at the method's natural resolution (the target layer's grid for CAMs, the input
    grid for pixel methods), not normalized. The model's parameters, requires_grad flags and
    train/eval mode are unchanged afterwards; hooks are removed, also on an exception."""
    if not target_layer:
        raise ConfigError("explain() needs target_layer= (a module or its dotted name, e.g. 'layer4')")
    single = targets.dim() == 1
    targets = targets.view(-1, 1) if single else targets
    if targets.shape[0] != images.shape[0]:
        raise ValueError(f"targets has {targets.shape[0]} rows for {images.shape[0]} images")
    explainer = Explainer(model, target_layer, methods, params)
    explainer.forward(images)
    maps = explainer.maps(targets.long())
    return {name: m[:, 0] if single else m for name, m in maps.items()}
