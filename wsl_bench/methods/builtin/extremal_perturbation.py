"""Extremal perturbations: Fong, Patrick & Vedaldi, "Understanding Deep Networks via Extremal
Perturbations and Smooth Masks", ICCV 2019 (Sec. 3: the area-constrained objective, Eq. 3-5;
Sec. 3.1 smooth masks by max-convolution; Sec. 4 the perturbation pyramid and optimization).
Where the paper leaves a detail open (mask parametrization and kernel, the softmax temperature of
the smooth max, the optimizer, the jitter), the choices of its authors' code (TorchRay's
`extremal_perturbation`, with which the paper's pointing-game numbers were produced) are used.

For each target and each area a, the mask m_a in [0, 1]^{H x W} maximizes

    Phi(m (x) x) - lambda ||vecsort(m) - r_a||^2     (preserve: keep the masked region)

where m (x) x blurs the image where m is 0 (a Gaussian pyramid, sigma_l = (1 - l / (L-1)) sigma_max,
linearly interpolated), r_a is the sorted reference mask with a fraction a of ones, and lambda
(300) grows by 1.0035 per iteration; 800 iterations of SGD with momentum. The saliency map is the
sum of the masks over the areas, blurred at image size with sigma = smooth x the shorter side.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ..core import Pass, register_method
from ..perturbation import image_scores
from ..smoothing import gaussian_blur, smooth_maps

VARIANTS = ("preserve", "delete")
PERTURBATIONS = ("blur", "fade")
# TorchRay's optimizer and area-constraint schedule (attribution.extremal_perturbation).
LEARNING_RATE, MOMENTUM = 0.01, 0.9
REGULARIZER_START, REGULARIZER_GROWTH = 300.0, 1.0035
SMOOTH_MAX_TEMPERATURE = 20.0


class SmoothMasks:
    """Smooth masks from a low-resolution parameter m_bar (Sec. 3.1): m(u) = smax_v k(u - v) m_bar(v)
    over the parameter cells v of a neighbourhood of u, k a Gaussian-like bump of scale sigma,
    smax a softmax-weighted maximum (temperature 20), on a grid with a margin of sigma around the
    image. m_bar has one cell per `step` pixels; the result is clamped to [0, 1]."""

    def __init__(self, size: tuple[int, int], step: int, sigma: float, device: torch.device) -> None:
        self.size, self.step, self.sigma = size, step, sigma
        self.margin = sigma
        self.padding = 1 + math.ceil((self.margin + sigma) / step)
        self.radius = 1 + math.ceil(sigma / step)
        self.shape_in = [math.ceil(z / step) for z in size]
        taps = 2 * self.radius + 1
        self.shape_mid = [z + 2 * self.padding - taps + 1 for z in self.shape_in]
        self.shape_up = [step * z for z in self.shape_mid]
        self.shape_out = [z - step + 1 for z in self.shape_up]
        # Distance of every output pixel to each of the taps x taps parameter cells around it.
        uy = torch.arange(self.shape_out[0], dtype=torch.float32)[:, None]
        ux = torch.arange(self.shape_out[1], dtype=torch.float32)[None, :]
        ratio = [torch.tensor(m, dtype=torch.float32) / torch.tensor(u, dtype=torch.float32) for m, u in zip(self.shape_mid, self.shape_up)]
        offsets = torch.arange(taps, dtype=torch.float32)
        iy = torch.floor(ratio[0] * uy)[None, None] + offsets[:, None, None, None] - self.padding  # [taps, 1, H', 1]
        ix = torch.floor(ratio[1] * ux)[None, None] + offsets[None, :, None, None] - self.padding  # [1, taps, 1, W']
        delta = torch.sqrt((uy - (self.margin + step * iy)) ** 2 + (ux - (self.margin + step * ix)) ** 2)
        z = delta / sigma
        self.weight = torch.exp(-2 * (z - 0.5).clamp(min=0) ** 2).reshape(1, taps * taps, *self.shape_out).to(device)

    def __call__(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """params [N, 1, h, w] -> (mask on the image [N, 1, H, W], mask with margin [N, 1, H', W'])."""
        taps = 2 * self.radius + 1
        cells = F.unfold(params, (taps, taps), padding=(self.padding, self.padding))
        cells = cells.reshape(len(params), -1, *self.shape_mid)
        cells = F.interpolate(cells, size=self.shape_up, mode="nearest")
        cells = F.pad(cells, (0, -self.step + 1, 0, -self.step + 1))
        bumps = self.weight * cells
        full = (bumps * F.softmax(SMOOTH_MAX_TEMPERATURE * bumps, dim=1)).sum(dim=1, keepdim=True).clamp(0, 1)
        m = round(self.margin)
        return full[:, :, m : m + self.size[0], m : m + self.size[1]], full


def perturbation_pyramid(images: torch.Tensor, levels: int, max_blur: float, kind: str) -> torch.Tensor:
    """[B, L, 3, H, W]: level l is the image blurred with sigma (1 - l / (L - 1)) sigma_max (blur;
    zero padding: the dataset mean in normalized space) or scaled by l / (L - 1) (fade); the last
    level is the image itself."""
    out = []
    for t in torch.linspace(0, 1, levels):
        out.append(gaussian_blur(images, (1 - t) * max_blur) if kind == "blur" else images * t)
    return torch.stack(out, dim=1)


def perturb(pyramids: torch.Tensor, image_of: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Inputs [N, 3, H, W]: each pixel of mask n (in [0, 1]) indexes its image's pyramid level
    m (L - 1), linearly interpolated between the two nearest levels."""
    levels, channels = pyramids.shape[1], pyramids.shape[2]
    w = masks * (levels - 1)
    k = w.floor()
    w = w - k
    k = k.long()
    flat = pyramids.flatten(0, 1)  # [B * L, 3, H, W]: level l of image b at b * L + l
    first = image_of[:, None, None, None] * levels
    low = torch.gather(flat, 0, (first + k).expand(-1, channels, -1, -1))
    high = torch.gather(flat, 0, (first + (k + 1).clamp(max=levels - 1)).expand(-1, channels, -1, -1))
    return (1 - w) * low + w * high


def smooth_extremal_masks(maps: torch.Tensor, smooth: float = 0.09) -> torch.Tensor:
    """At image size: the blur TorchRay gives the summed masks, sigma = smooth x the shorter side,
    zero padding."""
    return smooth_maps(maps, smooth, "min", "constant")


@register_method("extremal_perturbation", at_image_size=smooth_extremal_masks)
def extremal_perturbation(
    p: Pass,
    areas: Sequence[float] = (0.025, 0.05, 0.1, 0.2),
    max_iter: int = 800,
    levels: int = 8,
    max_blur: float = 20.0,
    step: int = 7,
    sigma: float = 21.0,
    jitter: bool = True,
    variant: str = "preserve",
    perturbation: str = "blur",
    batch_size: int = 16,
) -> torch.Tensor:
    """The extremal masks of every (image, target, area), optimized together: `batch_size`
    perturbed inputs per forward/backward (each image-target pair brings one per area; the masks
    are independent, so any grouping gives the same masks). Phi is the target's image-level score
    (the model's `image_scores` when it defines one, as TorchRay's models do; else its logit).
    jitter flips the perturbed input horizontally every other iteration (TorchRay). Defaults are
    TorchRay's pointing-game settings for VOC07; its COCO14 areas are (0.018, 0.025, 0.05, 0.1).
    Param smooth (at image size, default 0.09). Input grid: returns [B, T, H, W], the sum of the
    masks over the areas."""
    if variant not in VARIANTS:
        raise ValueError(f"extremal_perturbation: variant must be one of {VARIANTS}, got {variant!r}")
    if perturbation not in PERTURBATIONS:
        raise ValueError(f"extremal_perturbation: perturbation must be one of {PERTURBATIONS}, got {perturbation!r}")
    areas = [float(a) for a in areas]
    if not areas or not all(0 < a < 1 for a in areas):
        raise ValueError(f"extremal_perturbation: areas must lie in (0, 1), got {areas}")
    images = p.images.detach()
    batch, n_targets = p.targets.shape
    size = tuple(images.shape[-2:])
    generator = SmoothMasks(size, int(step), float(sigma), images.device)
    pyramids = perturbation_pyramid(images, int(levels), float(max_blur), perturbation)
    # One mask per (image, target, area), image-major; chunks hold whole image-target pairs.
    pairs = [(b, t) for b in range(batch) for t in range(n_targets)]
    per_chunk = max(1, batch_size // len(areas))
    out = torch.zeros(batch, n_targets, *size, device=images.device)
    for start in range(0, len(pairs), per_chunk):
        chunk = pairs[start : start + per_chunk]
        image_of = torch.tensor([b for b, _ in chunk for _ in areas], device=images.device)
        classes = torch.tensor([int(p.targets[b, t]) for b, t in chunk for _ in areas], device=images.device)
        masks = optimize_masks(p.model, pyramids, image_of, classes, areas * len(chunk), generator, int(max_iter), jitter, variant)
        summed = masks.view(len(chunk), len(areas), *size).sum(dim=1)
        for i, (b, t) in enumerate(chunk):
            out[b, t] = summed[i]
    return out


def optimize_masks(
    model: torch.nn.Module,
    pyramids: torch.Tensor,
    image_of: torch.Tensor,
    classes: torch.Tensor,
    areas: Sequence[float],
    generator: SmoothMasks,
    max_iter: int,
    jitter: bool,
    variant: str,
) -> torch.Tensor:
    """The masks [N, H, W] of N (image, class, area) triples, by SGD on their parameters."""
    n = len(image_of)
    params = torch.ones(n, 1, *generator.shape_in, device=pyramids.device)
    cells = generator.shape_out[0] * generator.shape_out[1]
    reference = torch.ones(n, cells, device=pyramids.device)
    for i, a in enumerate(areas):
        reference[i, : int(cells * (1 - a))] = 0
    optimizer = torch.optim.SGD([params], lr=LEARNING_RATE, momentum=MOMENTUM, dampening=MOMENTUM)
    weight = REGULARIZER_START
    mask = params
    with torch.enable_grad():
        for it in range(max_iter):
            params.requires_grad_(True)
            mask, full = generator(params)
            inputs = perturb(pyramids, image_of, mask if variant == "preserve" else 1 - mask)
            if jitter and it % 2 == 0:
                inputs = torch.flip(inputs, dims=(3,))
            scores = image_scores(model, inputs).gather(1, classes[:, None])[:, 0]
            reward = scores if variant == "preserve" else -scores
            regularizer = -((full.reshape(n, -1).sort(dim=1)[0] - reference) ** 2).mean(dim=1) * weight
            energy = (reward + regularizer).sum()
            optimizer.zero_grad()
            (-energy).backward()
            optimizer.step()
            with torch.no_grad():
                params.clamp_(0, 1)
            weight *= REGULARIZER_GROWTH
    return mask.detach()[:, 0]
