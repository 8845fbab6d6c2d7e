"""Score-CAM: Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional
Neural Networks", CVPR workshops 2020 (arXiv 1910.01279), Sec. 3, Algorithm 1."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core import Pass, register_method, weighted_channels
from ..perturbation import target_scores_of


def channel_masks(activations: torch.Tensor, image_index: torch.Tensor, channel_index: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """H^k = s(Up(A^k)) for the listed (image, channel) pairs: bilinear upsampling to the input,
    then min-max normalization to [0, 1] (a constant map gives 0). Returns [n, 1, H, W]."""
    up = F.interpolate(activations[image_index, channel_index][:, None], size=size, mode="bilinear", align_corners=False)
    low = up.amin(dim=(-2, -1), keepdim=True)
    span = up.amax(dim=(-2, -1), keepdim=True) - low
    return torch.where(span > 0, (up - low) / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(up))


@register_method("scorecam")
def scorecam(p: Pass, batch_size: int = 64, constant_channels: str = "skip", score: str = "softmax") -> torch.Tensor:
    """L^c = ReLU(sum_k alpha_k^c A^k) with alpha^c = softmax over channels k of
    S_k^c = f^c(X (.) H^k) - f^c(X_b), H^k = s(Up(A^k)) (Algorithm 1). f^c is the target's
    post-softmax probability (score=softmax, the paper's Sec. 3: "we represent weight as
    post-softmax value"); score=logit uses the raw logit instead (as pytorch-grad-cam does).
    The baseline term is the same for every k, so it cancels in the softmax over channels. X is the network
    input (normalized, as in the authors' code), so a masked-out pixel becomes the dataset mean.

    The C masked forward passes per image run batched under inference mode, `batch_size`
    inputs at a time; masks are built per chunk, so memory is bounded by batch_size, not by C.
    One masked forward serves all T targets. A constant channel gives a constant mask:
    constant_channels=skip leaves it out of the softmax entirely (the authors' code skips it)
    and costs no forward; zero_mask gives it the all-zero mask (input X (.) 0), scored once per
    image and shared by every constant channel. Returns [B, T, h, w]."""
    transforms = {"softmax": lambda x: torch.softmax(x, dim=1), "logit": None}
    if score not in transforms:
        raise ValueError(f"scorecam: score must be 'softmax' or 'logit', got {score!r}")
    acts = p.activations
    batch, channels = acts.shape[:2]
    height, width = p.images.shape[-2:]
    flat = acts.flatten(2)
    varying = flat.amax(dim=2) > flat.amin(dim=2)  # [B, C]
    image_index, channel_index = varying.nonzero(as_tuple=True)

    def make_inputs(start: int, stop: int) -> torch.Tensor:
        masks = channel_masks(acts, image_index[start:stop], channel_index[start:stop], (height, width))
        return p.images[image_index[start:stop]] * masks

    scores = target_scores_of(p.model, make_inputs, len(image_index), image_index, p.targets, batch_size, transforms[score])
    logits = torch.full((batch, p.targets.shape[1], channels), float("-inf"), device=acts.device, dtype=scores.dtype)
    logits[image_index, :, channel_index] = scores
    if constant_channels == "zero_mask":
        if not bool(varying.all()):
            everyone = torch.arange(batch, device=acts.device)
            zero_scores = target_scores_of(p.model, lambda a, b: torch.zeros_like(p.images[a:b]), batch, everyone, p.targets, batch_size, transforms[score])
            logits = torch.where(varying[:, None, :], logits, zero_scores[:, :, None])
    elif constant_channels != "skip":
        raise ValueError(f"scorecam: constant_channels must be 'skip' or 'zero_mask', got {constant_channels!r}")
    weights = torch.softmax(logits, dim=-1).nan_to_num(0.0)  # an image with no varying channel: all 0
    return torch.relu(weighted_channels(weights, acts))
