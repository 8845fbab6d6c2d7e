"""Meaningful perturbation ("Mask"): Fong & Vedaldi, "Interpretable Explanations of Black Boxes by
Meaningful Perturbation", ICCV 2017 (arXiv 1704.03296), Sec. 3-4 (Eq. 3 and 4); settings of the
authors' released code (github.com/ruthcfong/perturb_explanations, code/caffe/python/
optimize_mask.py: generate_learned_mask / optimize_mask / test_circular_masks)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ..core import Pass, Scoring, register_method
from ..perturbation import gaussian_blur, score_reader, target_scores_of

UPSAMPLING = ("nearest", "bilinear")
# test_circular_masks: deletion circles of radius 0, 5, ..., 170 px, blurred with sigma 10; the
# smallest whose deletion brings the score within 1% of the largest one's starts the mask.
CIRCLE_RADII = tuple(range(0, 175, 5))
CIRCLE_SIGMA = 10.0
CIRCLE_THRESHOLD = 1e-2


def total_variation(masks: torch.Tensor, beta: float) -> torch.Tensor:
    """TV_beta(m) = sum_u (|m(u + e_y) - m(u)|^2 + |m(u + e_x) - m(u)|^2)^(beta / 2) per mask
    (forward differences, 0 past the last row / column, as the authors' tv()). [N, 1, h, w] -> [N]."""
    dy = F.pad(masks[..., 1:, :] - masks[..., :-1, :], (0, 0, 0, 1))
    dx = F.pad(masks[..., :, 1:] - masks[..., :, :-1], (0, 1, 0, 0))
    # clamped: the gradient of t^(beta/2) at t = 0 is finite only for beta >= 2
    return (dy * dy + dx * dx).clamp(min=1e-12).pow(beta / 2).flatten(1).sum(1)


def upsample_mask(masks: torch.Tensor, size: tuple[int, int], upsampling: str, mask_blur: float) -> torch.Tensor:
    """The low-resolution mask [N, 1, h, w] at the input size: nearest-neighbour (the authors'
    resize) or bilinear upsampling, then a Gaussian blur with sigma mask_blur (their
    blur_mask = 5; 0 = none). Returns [N, 1, H, W]."""
    if upsampling == "nearest":
        up = F.interpolate(masks, size=size, mode="nearest")
    else:
        up = F.interpolate(masks, size=size, mode="bilinear", align_corners=False)
    return gaussian_blur(up, mask_blur)


def circle_init(p: Pass, blurred: torch.Tensor, read: Scoring, low_size: tuple[int, int], batch_size: int) -> torch.Tensor:
    """The authors' initial mask (test_circular_masks + create_blurred_circular_mask): for each
    (image, target), the smallest centered circle whose blurred deletion (image inside replaced
    by the blurred image) brings the target score within 1% of deleting the largest circle,
    relative to the unperturbed score; the mask 1 - circle is brought to the low resolution
    (nearest) and min-max normalized (their imresize to uint8). Returns [B * T, 1, h, w]."""
    images = p.images
    batch, n_targets = p.targets.shape
    height, width = images.shape[-2:]
    ys = torch.arange(height, device=images.device) - height // 2
    xs = torch.arange(width, device=images.device) - width // 2
    radii = torch.tensor(CIRCLE_RADII, device=images.device, dtype=images.dtype)
    inside = (ys[None, :, None] ** 2 + xs[None, None, :] ** 2 <= radii[:, None, None] ** 2).to(images.dtype)
    keep = 1 - gaussian_blur(inside[:, None], CIRCLE_SIGMA)  # [R, 1, H, W]: 1 keeps the image
    n_radii = len(radii)
    image_index = torch.arange(batch * n_radii, device=images.device) // n_radii

    def make_inputs(start: int, stop: int) -> torch.Tensor:
        index = torch.arange(start, stop, device=images.device)
        image, radius = index // n_radii, index % n_radii
        return images[image] * keep[radius] + blurred[image] * (1 - keep[radius])

    scores = target_scores_of(p.model, make_inputs, batch * n_radii, image_index, p.targets, batch_size, read).view(batch, n_radii, n_targets)
    with torch.inference_mode():
        original = read(p.model(images)).gather(1, p.targets)  # [B, T]
    largest = scores[:, -1]
    relative = (scores - largest[:, None]) / (original - largest)[:, None]
    below = relative < CIRCLE_THRESHOLD  # [B, R, T]
    first = torch.where(below.any(dim=1), below.float().argmax(dim=1), torch.full_like(original, n_radii - 1, dtype=torch.long))
    chosen = keep[first.flatten()]  # [B * T, 1, H, W]
    low = F.interpolate(chosen, size=low_size, mode="nearest-exact")
    span = low.amax(dim=(-2, -1), keepdim=True) - low.amin(dim=(-2, -1), keepdim=True)
    return torch.where(span > 0, (low - low.amin(dim=(-2, -1), keepdim=True)) / span.clamp(min=1e-12), torch.ones_like(low))


@register_method("meaningful_perturbation")
def meaningful_perturbation(
    p: Pass,
    iterations: int = 300,
    lr: float = 0.1,
    l1_coeff: float = 1e-4,
    tv_coeff: float = 1e-2,
    tv_beta: float = 3.0,
    mask_scale: int = 8,
    upsampling: str = "nearest",
    mask_blur: float = 5.0,
    blur_sigma: float = 10.0,
    jitter: int = 4,
    init: str | float = "circle",
    seed: int = 0,
    score: str = "probability",
    batch_size: int = 16,
) -> torch.Tensor:
    """The deletion game with the paper's regularizers (Eq. 4): find the mask m in [0, 1]
    minimizing  l1_coeff ||1 - m||_1 + tv_coeff TV_beta(m) + E_tau[f_c(Phi(x0(. - tau); m))]
    where Phi(x0; m) = x0 m + blur(x0) (1 - m) (the blur perturbation, Gaussian sigma
    blur_sigma = 10 on the image) and f_c the target's class probability (score=probability:
    p.probabilities, the authors' softmax `prob` layer). m lives on a grid mask_scale times
    coarser than the input (28 x 28 at 224: the authors' mask_scale = 8), is upsampled
    (upsampling: nearest as their resize, or bilinear) and blurred (mask_blur = 5) before use;
    the L1 and TV terms are taken on the low-resolution mask, as in their code. Jitter: each
    iteration the image and its blurred copy are shifted by (dy, dx) drawn uniformly from
    0..jitter-1 under the fixed mask (their code crops a 224 window of the image resized to
    224 + jitter; here the input is shifted with its edge replicated). Adam (lr 0.1, betas
    0.9 / 0.999, eps 1e-8) for `iterations` steps (300), m clipped to [0, 1] after each step.
    init: circle (the authors' circular initialization, see circle_init) or a number (a
    constant mask; 1 keeps the whole image). Their exact gradient skips the mask blur; autograd
    here differentiates through it.

    The saliency map is the deletion 1 - m, upsampled and blurred as used, at the input
    resolution. All (image, target) masks are optimized together, batch_size masks per
    forward/backward (each mask's loss is its own, so the chunking changes nothing); the
    jitter offsets come from a generator seeded with `seed`, the same for every chunk, so a
    map does not depend on its batch. Returns [B, T, H, W]."""
    if upsampling not in UPSAMPLING:
        raise ConfigError(f"meaningful_perturbation: upsampling must be one of {', '.join(UPSAMPLING)}, got {upsampling!r}")
    if init != "circle" and not (isinstance(init, (int, float)) and 0 <= init <= 1):
        raise ConfigError(f"meaningful_perturbation: init must be 'circle' or a number in [0, 1], got {init!r}")
    if iterations < 0 or jitter < 0 or mask_scale < 1:
        raise ConfigError("meaningful_perturbation: iterations and jitter must be >= 0 and mask_scale >= 1")
    read = score_reader(score, p.probabilities, "meaningful_perturbation")
    images = p.images
    batch, n_targets = p.targets.shape
    size = tuple(images.shape[-2:])
    low_size = (math.ceil(size[0] / mask_scale), math.ceil(size[1] / mask_scale))
    blurred = gaussian_blur(images, blur_sigma)
    if init == "circle":
        start_masks = circle_init(p, blurred, read, low_size, batch_size)
    else:
        start_masks = torch.full((batch * n_targets, 1, *low_size), float(init), device=images.device, dtype=images.dtype)
    image_of = torch.arange(batch * n_targets, device=images.device) // n_targets
    target_of = p.targets.flatten()
    pad = (0, jitter, 0, jitter)
    padded = F.pad(torch.cat([images, blurred]), pad, mode="replicate") if jitter else torch.cat([images, blurred])
    deletion = torch.empty(batch * n_targets, 1, *size, device=images.device, dtype=images.dtype)
    for start in range(0, batch * n_targets, batch_size):
        rows = torch.arange(start, min(start + batch_size, batch * n_targets), device=images.device)
        masks = start_masks[rows].clone().requires_grad_(True)
        optimizer = torch.optim.Adam([masks], lr=lr, betas=(0.9, 0.999), eps=1e-8)
        generator = torch.Generator().manual_seed(seed)
        for _ in range(iterations):
            dy, dx = torch.randint(0, jitter, (2,), generator=generator).tolist() if jitter else (0, 0)
            shifted = padded[..., dy : dy + size[0], dx : dx + size[1]]
            x0, x_blur = shifted[:batch][image_of[rows]], shifted[batch:][image_of[rows]]
            with torch.enable_grad():
                up = upsample_mask(masks, size, upsampling, mask_blur)
                scores = read(p.model(x0 * up + x_blur * (1 - up))).gather(1, target_of[rows, None])[:, 0]
                loss = l1_coeff * (1 - masks).abs().flatten(1).sum(1) + tv_coeff * total_variation(masks, tv_beta) + scores
                optimizer.zero_grad()
                loss.sum().backward()
            optimizer.step()
            with torch.no_grad():
                masks.clamp_(0, 1)
        with torch.no_grad():
            deletion[rows] = 1 - upsample_mask(masks, size, upsampling, mask_blur)
    return deletion.view(batch, n_targets, *size)
