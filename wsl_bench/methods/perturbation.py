"""Shared machinery of perturbation methods: scoring many perturbed copies of a batch with
batched forward passes under inference mode, in chunks of bounded size; gradients of the target
scores at other inputs (noisy copies, points on a path); a Gaussian blur."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError
from .core import Scoring, grads_per_target


def score_reader(score: str, probabilities: Scoring, method: str) -> Scoring:
    """What a method reads off the logits [N, K]: score=probability -> the model's class
    probabilities (Pass.probabilities: softmax over classes, sigmoids for a multi-label head);
    score=logit -> the raw logits."""
    if score == "probability":
        return probabilities
    if score == "logit":
        return _identity
    raise ConfigError(f"{method}: score must be 'probability' (the model's class probabilities) or 'logit', got {score!r}")


def _identity(logits: torch.Tensor) -> torch.Tensor:
    return logits


def target_scores_of(
    model: nn.Module,
    make_inputs: Callable[[int, int], torch.Tensor],
    n_inputs: int,
    image_index: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Target scores of `n_inputs` perturbed images, computed `chunk_size` at a time.

    make_inputs(start, stop) -> [stop - start, 3, H, W]: the perturbed inputs start..stop-1.
    image_index [n_inputs]: which original image each perturbed input comes from.
    targets [B, T]: classes to read off for each original image.
    transform: applied to logits before reading (e.g. softmax); None keeps the logits.
    Returns [n_inputs, T]."""
    out = []
    with torch.inference_mode():
        for start in range(0, n_inputs, chunk_size):
            stop = min(start + chunk_size, n_inputs)
            logits = model(make_inputs(start, stop))
            if transform is not None:
                logits = transform(logits)
            out.append(logits.gather(1, targets[image_index[start:stop]]))
    return torch.cat(out) if out else targets.new_zeros((0, targets.shape[1]), dtype=torch.float32)


def occlusion_maps(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    patch: int = 45,
    stride: int = 1,
    fill: float | torch.Tensor = 0.0,
    chunk_size: int = 64,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Sliding-window occlusion (Zeiler & Fergus, ECCV 2014): for each window position, the drop
    in the target's logit when a patch x patch square of the input is replaced by `fill`.

    images [B, 3, H, W] (normalized), targets [B, T]. `fill` is in the normalized input space
    (0.0 = the dataset mean, i.e. "gray", for mean/std-normalized inputs); a [3] tensor gives a
    per-channel value. Windows start at 0, stride, ... while they fit inside the image.
    transform: applied to the logits before reading the target's score (e.g. softmax over
    classes, the paper's class probability); None keeps the logits.
    Returns the occlusion grid [B, T, n_y, n_x], value = score(original) - score(occluded)."""
    batch, _, height, width = images.shape
    if patch > min(height, width):
        raise ValueError(f"occlusion patch {patch} is larger than the input {height}x{width}")
    ys = torch.arange(0, height - patch + 1, stride, device=images.device)
    xs = torch.arange(0, width - patch + 1, stride, device=images.device)
    n_pos = len(ys) * len(xs)
    fill_value = torch.as_tensor(fill, dtype=images.dtype, device=images.device).reshape(-1, 1, 1)
    with torch.inference_mode():
        logits = model(images)
        base = (logits if transform is None else transform(logits)).gather(1, targets)  # [B, T]
    rows = torch.arange(height, device=images.device)
    cols = torch.arange(width, device=images.device)

    def make_inputs(start: int, stop: int) -> torch.Tensor:
        index = torch.arange(start, stop, device=images.device)
        image_of, pos = index // n_pos, index % n_pos
        y0, x0 = ys[pos // len(xs)], xs[pos % len(xs)]
        inside_y = (rows[None, :] >= y0[:, None]) & (rows[None, :] < y0[:, None] + patch)
        inside_x = (cols[None, :] >= x0[:, None]) & (cols[None, :] < x0[:, None] + patch)
        window = (inside_y[:, :, None] & inside_x[:, None, :])[:, None]  # [n, 1, H, W]
        return torch.where(window, fill_value, images[image_of])

    image_index = torch.arange(batch * n_pos, device=images.device) // n_pos
    occluded = target_scores_of(model, make_inputs, batch * n_pos, image_index, targets, chunk_size, transform)
    drop = base[:, None, :] - occluded.view(batch, n_pos, -1)  # [B, n_pos, T]
    return drop.permute(0, 2, 1).reshape(batch, targets.shape[1], len(ys), len(xs))


def image_scores(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The image-level class scores [N, K] a perturbation method reads: the model's
    `image_scores(inputs)` when it defines one (TorchRay's fully convolutional models: the score
    TorchRay's RISE and extremal perturbation read), else its logits."""
    scores = getattr(model, "image_scores", None)
    return scores(inputs) if callable(scores) else model(inputs)


def input_grads_of(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, read: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """d read(model(x))[target] / dx at each input: one forward of the chunk and one backward
    batched over its targets. inputs [n, 3, H, W], targets [n, T]; returns [n, T, 3, H, W]."""
    x = inputs.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = read(model(x)).gather(1, targets)
        (grads,) = grads_per_target(scores, [x])
    return grads


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [N, C, H, W] per channel, kernel radius ceil(4 sigma) (scipy's
    truncate=4), borders extended by replicating the edge pixels (as PIL's GaussianBlur does).
    Applied as two small matrix products (rows, then columns): fast forward and backward for
    the wide kernels used here (sigma 5-10)."""
    if sigma <= 0:
        return images
    height, width = images.shape[-2:]
    return blur_matrix(height, sigma, images) @ images @ blur_matrix(width, sigma, images).T


def blur_matrix(n: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """[n, n] matrix of the 1-D Gaussian blur with replicated borders: row i holds the kernel
    centered at i, taps falling outside the signal added to its first / last sample."""
    radius = max(1, math.ceil(4 * sigma))
    offsets = torch.arange(-radius, radius + 1, device=like.device)
    kernel = torch.exp(-(offsets.to(like.dtype) ** 2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    columns = (torch.arange(n, device=like.device)[:, None] + offsets[None, :]).clamp(0, n - 1)
    return torch.zeros(n, n, dtype=like.dtype, device=like.device).scatter_add_(1, columns, kernel.expand(n, -1).contiguous())
