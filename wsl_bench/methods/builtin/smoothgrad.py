"""SmoothGrad: Smilkov et al., "SmoothGrad: removing noise by adding noise", ICML workshop on
visualization for deep learning 2017 (arXiv 1706.03825), Sec. 3, Eq. 3."""

from __future__ import annotations

import torch

from ...errors import ConfigError
from ..core import Pass, reduce_channels, register_method
from ..perturbation import input_grads_of, score_reader

PER_SAMPLE = {"raw": lambda g: g, "abs": torch.abs, "square": lambda g: g * g}


@register_method("smoothgrad")
def smoothgrad(
    p: Pass,
    samples: int = 50,
    noise_level: float = 0.15,
    seed: int = 0,
    per_sample: str = "raw",
    score: str = "logit",
    channel_reduce: str = "abs_sum",
    batch_size: int = 32,
) -> torch.Tensor:
    """M^_c(x) = 1/n sum_{i=1..n} M_c(x + N(0, sigma^2)) (Eq. 3), M_c = dS_c/dx the gradient
    of the class score S_c (score=logit, the paper's class activation function; probability
    reads p.probabilities instead), with sigma = noise_level * (max(x) - min(x)) per image (the
    paper's noise level: 10-20% of the input range; 15% is the default of the authors' PAIR
    `saliency` library) and n = samples (the paper: about 50). per_sample=raw averages the
    gradients as Eq. 3; square averages their squares (the authors' library's magnitude=True,
    "SmoothGrad-Squared"); abs their absolute values (captum Saliency's default). The map sums
    |.| over colour channels (channel_reduce=abs_sum, the paper's and the authors' grayscale
    visualization; max_abs / sum also possible).

    Noise is drawn from a generator seeded with `seed`, one [3, H, W] draw per sample shared by
    the images of the batch (scaled by each image's sigma), so an image's map does not depend
    on its batch. The noisy copies of all images run batched, batch_size inputs per forward and
    one backward per chunk for all targets. Input resolution: returns [B, T, H, W]."""
    if samples < 1:
        raise ConfigError("smoothgrad: samples must be >= 1")
    if per_sample not in PER_SAMPLE:
        raise ConfigError(f"smoothgrad: per_sample must be one of {', '.join(PER_SAMPLE)}, got {per_sample!r}")
    read = score_reader(score, p.probabilities, "smoothgrad")
    images = p.images
    batch = len(images)
    generator = torch.Generator(device=images.device).manual_seed(seed)
    noise = torch.randn((samples, *images.shape[1:]), generator=generator, device=images.device, dtype=images.dtype)
    flat = images.flatten(1)
    sigma = (noise_level * (flat.amax(dim=1) - flat.amin(dim=1))).view(-1, 1, 1, 1)
    total = torch.zeros(batch, p.targets.shape[1], *images.shape[1:], device=images.device, dtype=images.dtype)
    for start in range(0, batch * samples, batch_size):  # chunks of (image, sample) pairs
        pair = torch.arange(start, min(start + batch_size, batch * samples), device=images.device)
        image, sample = pair // samples, pair % samples
        grads = input_grads_of(p.model, images[image] + sigma[image] * noise[sample], p.targets[image], read)
        total.index_add_(0, image, PER_SAMPLE[per_sample](grads))
    return reduce_channels(total / samples, channel_reduce)
