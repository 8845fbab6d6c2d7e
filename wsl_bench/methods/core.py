"""Stage 3, methods: one forward (and at most one batched backward) shared by every requested
method and every target, then each method's rule turns what that pass produced into maps.

A method is a function `fn(p: Pass, **params) -> Tensor[B, T, h, w]` registered by name with
what it needs from the pass (`layer_grads`, `input_grads`, `guided_input_grads`). Gradient methods
requested together share one backward; several targets per image share one forward, and the
backward is batched over targets with `torch.autograd.grad(..., is_grads_batched=True)`.
Guided backpropagation needs a modified backward (the ReLU rule), so the guided family
(guided_backprop, guided_gradcam) shares one extra forward/backward of its own; other modified
backward rules (deconvnet, excitation backprop) run their own pass the same way, with every hook
removed on exit.

A method may also declare a step applied once its maps are resized to the image they are scored
on (`at_image_size`): TorchRay blurs saliency at that size, so the blur cannot come earlier; and
its own point for the pointing game (`point_at_image_size`), where its point is not its map's
maximum (TorchRay's center baseline points at (W / 2, H / 2), between pixels on odd sides).
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterator, Mapping, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..models.base import layer_candidates, resolve_layer
from ..registry import Registry, user_target


Scoring = Callable[[torch.Tensor], torch.Tensor]
# (maps [N, H, W] at image size, the method of each map) -> (maps, own points [N, 2] | None)
ImageSizeSteps = Callable[[torch.Tensor, Sequence[str]], tuple[torch.Tensor, torch.Tensor | None]]


def class_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over classes (the last dim): the scoring of a single-label classifier."""
    return torch.softmax(logits, dim=-1)


@dataclass
class Pass:
    """What one forward/backward produced, for a batch of B images and T targets per image.

    images: [B, 3, H, W] network input. logits: [B, K]. targets: [B, T] class indices.
    activations: [B, C, h, w] output of the target layer.
    layer_grads: [B, T, C, h, w] d logit[target] / d activations (None if no method needs it).
    input_grads: [B, T, 3, H, W] d logit[target] / d images (None if no method needs it).
    guided_input_grads: [B, T, 3, H, W] the same through guided backpropagation's ReLU rule.
    model / layer: for methods that run their own (perturbation) forwards.
    probabilities: the model's scoring function, logits [N, K] -> class probabilities [N, K]
    (softmax over classes, or independent sigmoids for a multi-label head); methods whose rule
    reads a class probability (Score-CAM, RISE, occlusion, ...) read it through this.
    """

    model: nn.Module
    layer: nn.Module
    images: torch.Tensor
    logits: torch.Tensor
    targets: torch.Tensor
    activations: torch.Tensor
    layer_grads: torch.Tensor | None = None
    input_grads: torch.Tensor | None = None
    guided_input_grads: torch.Tensor | None = None
    probabilities: Scoring = class_softmax
    cache: dict[Any, Any] = field(default_factory=dict)  # shared derived tensors, per pass

    @property
    def target_scores(self) -> torch.Tensor:
        """[B, T] logits of the targets."""
        return self.logits.gather(1, self.targets)


MethodFn = Callable[..., torch.Tensor]


def weighted_channels(weights: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """sum_k weights[b, t, k] * activations[b, k] -> [B, T, h, w] (the CAM linear combination).

    Multiply, then sum over channels, as TorchRay, pytorch-grad-cam and torchcam do: the same
    float32 operations give TorchRay's Grad-CAM map bit for bit (an einsum's matrix product
    rounds differently, which decides exact ties of the resized map, e.g. at its border)."""
    if activations.dim() != 4:  # Explainer.maps turns this into a one-line error naming layers with feature maps
        raise ValueError(f"weighted_channels needs feature maps [B, C, h, w], got {list(activations.shape)}")
    return (weights[..., None, None] * activations[:, None]).sum(dim=2)


def reduce_channels(grads: torch.Tensor, how: str) -> torch.Tensor:
    """Input-space attributions [B, T, 3, H, W] -> maps [B, T, H, W].

    max_abs: max over colour channels of |g| (Simonyan et al. 2014, Sec. 3.1; TorchRay).
    abs_sum: sum of |g| over channels. sum: plain sum over channels."""
    if how == "max_abs":
        return grads.abs().amax(dim=2)
    if how == "abs_sum":
        return grads.abs().sum(dim=2)
    if how == "sum":
        return grads.sum(dim=2)
    raise ConfigError(f"channel_reduce must be max_abs, abs_sum or sum, got {how!r}")


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its rule and what it needs from the shared pass.

    needs_layer_grads / needs_input_grads: served by the one shared backward.
    needs_guided_input_grads: served by the guided pass (one extra forward/backward with the
    guided-backpropagation ReLU rule), shared by every method of the guided family.
    at_image_size: `step(maps [N, H, W], **params) -> [N, H, W]`, applied to the maps once they
    are resized to the image they are scored on (e.g. a blur relative to the image size).
    point_at_image_size: `point(maps [N, H, W], **params) -> [N, 2] float (x, y) | None`, the
    method's own point on that grid for the pointing game (None: its maps' maximum)."""

    name: str
    fn: MethodFn
    needs_layer_grads: bool = False
    needs_input_grads: bool = False
    needs_guided_input_grads: bool = False
    at_image_size: MethodFn | None = None
    point_at_image_size: MethodFn | None = None


METHODS: Registry[MethodSpec] = Registry("method", "wsl_bench.methods.builtin")


def register_method(
    name: str,
    *,
    layer_grads: bool = False,
    input_grads: bool = False,
    guided_input_grads: bool = False,
    at_image_size: MethodFn | None = None,
    point_at_image_size: MethodFn | None = None,
    replace: bool = False,
) -> Callable[[MethodFn], MethodFn]:
    """Register `fn(p: Pass, **params) -> Tensor[B, T, h, w]` as method `name`.

    at_image_size: optional `step(maps [N, H, W], **params)` run on the maps once they are at the
    size of the image they are scored on; point_at_image_size: optional `point(maps [N, H, W],
    **params) -> [N, 2] | None`, the method's own point there (pointing game) instead of its
    maps' maximum. The method's params go to whichever of fn and steps name them in their
    signatures.
    Usable from the user's own module: decorate, import the module (or name it in the method
    yaml's `module:`), and the method is available to `explain()` and the CLI. A name already
    taken (a built-in such as `gradcam`) is a ConfigError unless replace=True replaces it deliberately."""

    def wrap(fn: MethodFn) -> MethodFn:
        spec = MethodSpec(name, fn, layer_grads, input_grads, guided_input_grads, at_image_size, point_at_image_size)
        METHODS.register(name, spec, replace=replace)
        fn.method_spec = spec  # type: ignore[attr-defined]  # lets a yaml `_target_` reuse the flags
        return fn

    return wrap


def method_from_config(key: str, node: Mapping[str, Any]) -> str:
    """Make the method a `conf/method/*.yaml` node describes available; returns its name.

    `module:` (dotted name or .py path) is imported first, so a `@register_method` in it takes
    effect. `_target_:` ("pkg.module.fn") registers that function under `name`; its needs come
    from its `@register_method` flags or from the yaml's `layer_grads` / `input_grads` /
    `guided_input_grads` booleans."""
    name = str(node.get("name", key))
    fn = user_target(node, "method", name)
    if fn is not None:
        if not callable(fn):
            raise ConfigError(f"method {name}: {node['_target_']!r} is not a function")
        flags = getattr(fn, "method_spec", None)
        METHODS.register(
            name,
            MethodSpec(
                name,
                fn,
                bool(node.get("layer_grads", flags.needs_layer_grads if flags else False)),
                bool(node.get("input_grads", flags.needs_input_grads if flags else False)),
                bool(node.get("guided_input_grads", flags.needs_guided_input_grads if flags else False)),
                flags.at_image_size if flags else None,
                flags.point_at_image_size if flags else None,
            ),
        )
    METHODS.get(name)  # unknown name: one clear error listing the available methods
    return name


@contextmanager
def frozen_for_explanation(model: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients for the duration; every module's mode and every
    parameter's requires_grad flag are restored exactly afterwards, also on an exception.
    Only what needs changing is touched, so nesting (the pipeline freezes once per run) is cheap."""
    training = [m for m in model.modules() if m.training]
    trainable = [p for p in model.parameters() if p.requires_grad]
    try:
        for module in training:
            module.training = False
        for p in trainable:
            p.requires_grad_(False)
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)
        for module in training:
            module.training = True


@contextmanager
def capture_output(layer: nn.Module, detach: bool, grad_after: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hook storing the layer's output under "activations" (hook always removed).

    detach=True makes the stored tensor a fresh leaf, so the autograd graph (and the backward)
    covers only the layers after the target layer. A clone goes on down the network so that an
    in-place op after the layer (e.g. ReLU(inplace=True)) cannot modify the stored activations.
    grad_after=True switches gradient recording on at the layer: the caller runs the forward
    under no_grad, so the layers before the target layer run (and free memory) as in inference,
    and the caller's no_grad context restores the mode when the forward ends."""
    store: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        if not isinstance(output, torch.Tensor):
            raise ConfigError(f"target layer {type(_module).__name__} returns {type(output).__name__}, not a tensor; choose another model.target_layer")
        if grad_after:
            torch.set_grad_enabled(True)  # called as a function: stays on for the rest of the forward
        activations = output.detach().requires_grad_(True) if detach else output
        store["activations"] = activations
        return activations.clone()

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


# Rectifiers the guided-backpropagation and deconvnet rules apply to (ReLU6 = min(ReLU, 6)).
RECTIFIERS = (nn.ReLU, nn.ReLU6)


def rectifier_modules(model: nn.Module, method: str) -> list[nn.Module]:
    """The model's nn.ReLU / nn.ReLU6 modules; a clear error when it has none (functional relu or
    other activations cannot be given a modified backward by module hooks)."""
    rectifiers = [m for m in model.modules() if isinstance(m, RECTIFIERS)]
    if not rectifiers:
        raise ConfigError(
            f"{method} needs nn.ReLU / nn.ReLU6 modules; {type(model).__name__} has none "
            "(functional relu or other activations); use method=gradient instead"
        )
    return rectifiers


@contextmanager
def forward_hooks(modules: Sequence[nn.Module], hook: Callable[..., Any], out_of_place: bool = False) -> Iterator[None]:
    """`hook(module, inputs, output)` as a forward hook on each module (returning a tensor replaces
    the module's output). out_of_place=True switches `inplace` off on the modules for the duration,
    so a hook sees the module's input intact. Everything is restored on exit, also on an exception."""
    inplace = [(m, m.inplace) for m in modules if out_of_place and getattr(m, "inplace", False)]
    handles = []
    try:
        for m, _ in inplace:
            m.inplace = False
        handles = [m.register_forward_hook(hook) for m in modules]
        yield
    finally:
        for handle in handles:
            handle.remove()
        for m, flag in inplace:
            m.inplace = flag


def with_gradient_of(value: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """A tensor equal to `value` whose gradient flows through `surrogate` instead: value + (s - s),
    where s - s is exactly 0 for finite s. How a modified backward rule is written with standard
    autograd ops only, so it also works batched over targets (vmap)."""
    return value.detach() + (surrogate - surrogate.detach())


@contextmanager
def guided_relu_rule(model: nn.Module) -> Iterator[int]:
    """Guided backpropagation's backward rule at every nn.ReLU / nn.ReLU6 module (Springenberg
    et al. 2015, Eq. for R^l): the gradient arriving at a rectifier's output is clamped to its
    positive part, then the rectifier's own backward keeps it only where the forward passed
    (x > 0, and x < 6 for ReLU6). Forward hooks add a tensor hook on each output; all hooks are
    removed on exit, also on an exception. Functional relu calls are not seen: the rectifiers
    must be modules (as in torchvision and timm models); yields how many were found."""
    rectifiers = rectifier_modules(model, "guided backpropagation")

    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(lambda grad: grad.clamp(min=0))

    with forward_hooks(rectifiers, hook):
        yield len(rectifiers)


@contextmanager
def deconvnet_relu_rule(model: nn.Module) -> Iterator[int]:
    """The deconvnet's backward rule at every nn.ReLU / nn.ReLU6 module (Zeiler & Fergus, ECCV
    2014, Sec. 2.1 "Rectification"): the signal passes back through a rectifier where it is
    positive, whatever the forward input was, R^l = max(R^{l+1}, 0) (TorchRay's DeConvNetReLU).
    Rectifiers run out of place meanwhile (the rule needs their input); yields how many."""
    rectifiers = rectifier_modules(model, "deconvnet")

    def hook(_module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
        x = inputs[0]
        if not (isinstance(x, torch.Tensor) and x.requires_grad):
            return None
        passed = with_gradient_of(output, x)  # identity backward to the input ...
        passed.register_hook(lambda grad: grad.clamp(min=0))  # ... of the positive part only
        return passed

    with forward_hooks(rectifiers, hook, out_of_place=True):
        yield len(rectifiers)


def input_grads_under(
    rule: Callable[[nn.Module], Any], model: nn.Module, images: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """[B, T, 3, H, W] gradients of the target logits w.r.t. the input under a modified backward
    `rule` (a context manager, e.g. guided_relu_rule): one forward and one backward batched over
    targets."""
    inputs = images.detach().clone().requires_grad_(True)
    with frozen_for_explanation(model), torch.enable_grad(), rule(model):
        logits = model(inputs)
        (grads,) = grads_per_target(logits.gather(1, targets), [inputs])
    return grads


def guided_input_grads(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[B, T, 3, H, W] guided-backpropagation gradients of the target logits w.r.t. the input."""
    return input_grads_under(guided_relu_rule, model, images, targets)


def layer_grads_of(
    model: nn.Module, layer: nn.Module, images: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One more forward/backward at `layer` for other inputs (e.g. noisy copies): returns
    (logits [B, K], activations [B, C, h, w], layer grads [B, T, C, h, w])."""
    with frozen_for_explanation(model), torch.no_grad():
        with capture_output(layer, detach=True, grad_after=True) as store:
            logits = model(images.detach())
    if "activations" not in store:
        raise ConfigError("the target layer was not run in the forward pass; choose another model.target_layer")
    activations = store["activations"]
    (grads,) = grads_per_target(logits.gather(1, targets), [activations])
    return logits.detach(), activations.detach(), grads


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


def backward_per_target(
    outputs: torch.Tensor, inputs: Sequence[torch.Tensor], signal: torch.Tensor, retain_graph: bool = True
) -> list[torch.Tensor]:
    """Vector-Jacobian products of `outputs` [B, ...] for a signal [B, T, ...] (one per target),
    w.r.t. each input [B, ...], in one backward batched over targets: returns [B, T, ...] each."""
    if signal.shape[1] == 1:
        grads = torch.autograd.grad(outputs, inputs, grad_outputs=signal[:, 0], retain_graph=retain_graph)
        return [g.unsqueeze(1) for g in grads]
    grads = torch.autograd.grad(
        outputs, inputs, grad_outputs=signal.transpose(0, 1), retain_graph=retain_graph, is_grads_batched=True
    )
    return [g.transpose(0, 1) for g in grads]


def _param_names(fn: Callable[..., Any]) -> list[str] | None:
    """Names of fn's params after the first (the Pass or the maps); None when it takes **kwargs."""
    parameters = list(inspect.signature(fn).parameters.values())
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters[1:]]


def params_for(fn: Callable[..., Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of a method's params that fn names in its signature (all of them for **kwargs)."""
    names = _param_names(fn)
    return dict(params) if names is None else {k: v for k, v in params.items() if k in names}


def accepted_params(spec: MethodSpec) -> list[str] | None:
    """The params a method accepts: those of its function and of its at-image-size steps (None
    when one takes **kwargs)."""
    accepted: list[str] = []
    for fn in (spec.fn, spec.at_image_size, spec.point_at_image_size):
        if fn is None:
            continue
        names = _param_names(fn)
        if names is None:
            return None
        accepted += [n for n in names if n not in accepted]
    return accepted


def check_params(spec: MethodSpec, params: Mapping[str, Any]) -> None:
    """A misspelled method param fails here, before any compute, naming the accepted ones."""
    accepted = accepted_params(spec)
    if accepted is None:
        return
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(
            f"method {spec.name}: unknown param(s) {', '.join(unknown)}; accepted: {', '.join(accepted) or 'none'}"
        )


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
        probabilities: Scoring = class_softmax,
        rule_timer: Callable[[], ContextManager[Any]] = nullcontext,
    ) -> None:
        """probabilities: the model's scoring of logits (LoadedModel.probabilities: softmax, or
        sigmoids for a multi-label head), handed to the methods as Pass.probabilities.
        rule_timer: a context each method's rule runs in (the pipeline's clock of the CAM math)."""
        if not methods:
            raise ConfigError("no method requested; pass e.g. method=gradcam")
        self.model = model
        self.probabilities = probabilities
        self.rule_timer = rule_timer
        self.layer = resolve_layer(model, target_layer)
        self.specs = [METHODS.get(name) for name in methods]
        self.params = {name: dict((params or {}).get(name, {})) for name in methods}
        for spec in self.specs:
            check_params(spec, self.params[spec.name])
        self.needs_layer_grads = any(s.needs_layer_grads for s in self.specs)
        self.needs_input_grads = any(s.needs_input_grads for s in self.specs)
        self.needs_guided_input_grads = any(s.needs_guided_input_grads for s in self.specs)
        self._state: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Run the shared forward; returns detached logits [B, K]."""
        images = images.detach()
        if self.needs_input_grads:
            images = images.clone().requires_grad_(True)
        # Input gradients need the whole graph; layer gradients only the part after the layer,
        # so the layers before it run without recording (inference speed and memory).
        layer_only = self.needs_layer_grads and not self.needs_input_grads
        with frozen_for_explanation(self.model), torch.set_grad_enabled(self.needs_input_grads):
            with capture_output(self.layer, detach=not self.needs_input_grads, grad_after=layer_only) as store:
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
        p = Pass(
            self.model, self.layer, images.detach(), logits.detach(), targets, activations.detach(), probabilities=self.probabilities
        )
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
        if self.needs_guided_input_grads:
            p.guided_input_grads = guided_input_grads(self.model, p.images, targets)
        out = {}
        with frozen_for_explanation(self.model):
            for spec in self.specs:
                try:
                    with self.rule_timer():
                        out[spec.name] = spec.fn(p, **params_for(spec.fn, self.params[spec.name])).detach()
                except (RuntimeError, ValueError, IndexError) as exc:
                    if activations.dim() == 4:
                        raise
                    raise ConfigError(  # a CAM method met a layer without feature maps
                        f"method {spec.name}: target layer {type(self.layer).__name__} outputs {list(activations.shape)}, not feature "
                        f"maps [B, C, h, w]; set model.target_layer= to a convolutional layer, e.g. one of: {', '.join(layer_candidates(self.model))}"
                    ) from exc
        return out

    @property
    def image_size_steps(self) -> ImageSizeSteps | None:
        """`steps_at_image_size` when a requested method has a step or its own point at image
        size, else None (the scoring then skips the call)."""
        if any(spec.at_image_size is not None or spec.point_at_image_size is not None for spec in self.specs):
            return self.steps_at_image_size
        return None

    def steps_at_image_size(self, maps: torch.Tensor, methods: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(at_image_size(maps, methods), points_at_image_size(maps, methods))."""
        return self.at_image_size(maps, methods), self.points_at_image_size(maps, methods)

    def _steps(self, kind: str, methods: Sequence[str], device: torch.device) -> Iterator[tuple[Callable[..., Any], dict[str, Any], torch.Tensor]]:
        """Per requested method with a step `kind` (a MethodSpec field): the step, its params and
        the rows [k] of `methods` (the method of each map) it applies to."""
        specs = {spec.name: spec for spec in self.specs}
        for name in dict.fromkeys(methods):
            step = getattr(specs[name], kind) if name in specs else None
            if step is not None:
                rows = torch.tensor([i for i, m in enumerate(methods) if m == name], device=device)
                yield step, params_for(step, self.params[name]), rows

    def points_at_image_size(self, maps: torch.Tensor, methods: Sequence[str]) -> torch.Tensor | None:
        """The methods' own points [N, 2] float64 (x, y) for maps [N, H, W] at image size, NaN in
        the rows whose method points at its map's maximum; None when no row has its own point."""
        out = None
        for step, params, rows in self._steps("point_at_image_size", methods, maps.device):
            points = step(maps[rows], **params)
            if points is None:
                continue
            if out is None:
                out = torch.full((len(maps), 2), float("nan"), dtype=torch.float64, device=maps.device)
            out[rows] = points.to(out)
        return out

    def at_image_size(self, maps: torch.Tensor, methods: Sequence[str]) -> torch.Tensor:
        """Each method's at-image-size step applied to its maps: maps [N, H, W] at the size of the
        image they are scored on, methods[i] the method of map i. Maps of methods without a step
        are returned unchanged."""
        out = maps
        for step, params, rows in self._steps("at_image_size", methods, maps.device):
            if out is maps:
                out = maps.clone()
            out[rows] = step(maps[rows], **params).to(maps.dtype)
        return out


def explain(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    methods: Sequence[str] = ("gradcam",),
    target_layer: str | nn.Module = "",
    params: Mapping[str, Mapping[str, Any]] | None = None,
    probabilities: Scoring = class_softmax,
) -> dict[str, torch.Tensor]:
    """Saliency maps of `model` for `targets`, one tensor per method name.

    images: normalized batch [B, 3, H, W]. targets: LongTensor [B] (maps [B, h, w]) or [B, T]
    (maps [B, T, h, w]). target_layer: a module or a dotted module name ("layer4", "features.29").
    Maps come at the method's natural resolution (the target layer's grid for CAMs, the input
    grid for pixel methods), not normalized; a method's at-image-size step (e.g. TorchRay's blur
    of gradient saliency, `smooth`) is not applied here: resize the maps to the image, then call
    `Explainer.at_image_size`, as the pipeline does. probabilities: how the model scores classes
    (default softmax; torch.sigmoid for a multi-label head), for the methods that read class
    probabilities. The model's parameters, requires_grad flags and train/eval mode are
    unchanged afterwards; hooks are removed, also on an exception."""
    if not target_layer:
        raise ConfigError("explain() needs target_layer= (a module or its dotted name, e.g. 'layer4')")
    single = targets.dim() == 1
    targets = targets.view(-1, 1) if single else targets
    if targets.shape[0] != images.shape[0]:
        raise ValueError(f"targets has {targets.shape[0]} rows for {images.shape[0]} images")
    explainer = Explainer(model, target_layer, methods, params, probabilities)
    explainer.forward(images)
    maps = explainer.maps(targets.long())
    return {name: m[:, 0] if single else m for name, m in maps.items()}
