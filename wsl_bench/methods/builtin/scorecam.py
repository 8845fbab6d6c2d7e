"""Score-CAM: Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional
Neural Networks", CVPR workshops 2020 (arXiv 1910.01279), Sec. 3 and Algorithm 1.

Both rules score the input masked by each channel's upsampled, min-max normalized activation,
X (.) H^k with H^k = s(Up(A^k)), and differ in how those scores become channel weights:

- `scorecam`: the authors' code (github.com/haofanwang/Score-CAM, cam/scorecam.py). The
  target's post-softmax probability on the masked input is itself the weight, with no baseline
  and no softmax over channels; constant channels are skipped; the weighted sum of the
  upsampled activations is rectified at the input resolution.
- `scorecam_channel_softmax`: Algorithm 1 as pytorch-grad-cam (ScoreCAM) and torchcam (ScoreCAM)
  read it: alpha^c = softmax over channels of the target logit on the masked input (minus the
  baseline's, which cancels in the softmax); constant channels get an all-zero mask and stay in
  the softmax; the map is rectified on the layer grid.

The masked forwards are shared: requested together in one run, both rules read the same
forwards (target logits and probabilities are kept from each)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ..core import Pass, register_method, weighted_channels
from ..perturbation import target_scores_of

CONSTANT_CHANNELS = ("skip", "zero_mask")
MAP_GRIDS = ("input", "layer")


def channel_masks(
    activations: torch.Tensor, image_index: torch.Tensor, channel_index: torch.Tensor, size: tuple[int, int], align_corners: bool
) -> torch.Tensor:
    """H^k = s(Up(A^k)) for the listed (image, channel) pairs: bilinear upsampling to the input
    (align_corners=False as in the authors' code and torchcam, True as pytorch-grad-cam's
    UpsamplingBilinear2d), then min-max normalization to [0, 1] after the upsampling (the
    authors' code and pytorch-grad-cam; a constant map gives 0). Returns [n, 1, H, W]."""
    up = F.interpolate(activations[image_index, channel_index][:, None], size=size, mode="bilinear", align_corners=align_corners)
    low = up.amin(dim=(-2, -1), keepdim=True)
    span = up.amax(dim=(-2, -1), keepdim=True) - low
    return torch.where(span > 0, (up - low) / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(up))


def masked_input_scores(
    p: Pass, batch_size: int, constant_channels: str, align_corners: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Target logits and target probabilities (p.probabilities) on X (.) H^k for every channel k:
    ([B, T, C], [B, T, C], scored [B, C]). A constant channel is scored (on the all-zero input
    X (.) 0, one forward per image shared by all its constant channels) only with
    constant_channels=zero_mask; unscored entries are 0. One masked forward serves every
    target and both rules: the scores are kept in p.cache for the other rule of the same pass."""
    if constant_channels not in CONSTANT_CHANNELS:
        raise ConfigError(f"scorecam: constant_channels must be one of {', '.join(CONSTANT_CHANNELS)}, got {constant_channels!r}")
    n_targets = p.targets.shape[1]
    scores, scored = _varying_channel_scores(p, batch_size, align_corners)
    if constant_channels == "zero_mask" and not bool(scored.all()):
        scores = torch.where(scored[:, None, :], scores, _zero_input_scores(p, batch_size)[:, :, None])
        scored = torch.ones_like(scored)
    return scores[:, :n_targets], scores[:, n_targets:], scored


def _both_reads(p: Pass) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """Targets [B, 2T] and a transform so that one forward yields each target's logit (first T)
    and probability (last T)."""
    n_classes = p.logits.shape[1]
    return torch.cat([p.targets, p.targets + n_classes], dim=1), lambda logits: torch.cat([logits, p.probabilities(logits)], dim=1)


def _varying_channel_scores(p: Pass, batch_size: int, align_corners: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, 2T, C] scores (_both_reads) on X (.) H^k for the non-constant channels (0 elsewhere)
    and which channels vary [B, C]; cached per pass and align_corners. The forwards run batched
    under inference mode, batch_size inputs at a time; masks are built per chunk, so memory is
    bounded by batch_size, not by C."""
    key = ("scorecam_varying_channel_scores", bool(align_corners))
    if key not in p.cache:
        acts = p.activations
        batch, channels = acts.shape[:2]
        flat = acts.flatten(2)
        varying = flat.amax(dim=2) > flat.amin(dim=2)  # [B, C]
        image_index, channel_index = varying.nonzero(as_tuple=True)
        size = tuple(p.images.shape[-2:])

        def make_inputs(start: int, stop: int) -> torch.Tensor:
            masks = channel_masks(acts, image_index[start:stop], channel_index[start:stop], size, align_corners)
            return p.images[image_index[start:stop]] * masks

        read_targets, read = _both_reads(p)
        scores = target_scores_of(p.model, make_inputs, len(image_index), image_index, read_targets, batch_size, read)
        out = torch.zeros(batch, read_targets.shape[1], channels, device=acts.device, dtype=scores.dtype)
        out[image_index, :, channel_index] = scores
        p.cache[key] = (out, varying)
    return p.cache[key]


def _zero_input_scores(p: Pass, batch_size: int) -> torch.Tensor:
    """[B, 2T] scores (_both_reads) of the all-zero input X (.) 0, one forward per image; cached."""
    key = "scorecam_zero_input_scores"
    if key not in p.cache:
        read_targets, read = _both_reads(p)
        everyone = torch.arange(len(p.images), device=p.images.device)
        p.cache[key] = target_scores_of(p.model, lambda a, b: torch.zeros_like(p.images[a:b]), len(p.images), everyone, read_targets, batch_size, read)
    return p.cache[key]


def score_weighted_map(p: Pass, weights: torch.Tensor, map_grid: str, align_corners: bool) -> torch.Tensor:
    """ReLU(sum_k w_k A^k) on the layer grid (map_grid=layer), or with the weighted sum upsampled
    to the input before the ReLU (map_grid=input): sum_k w_k Up(A^k), as the authors' code adds
    the upsampled channels (bilinear upsampling is linear, so this is Up of the sum exactly).
    The two differ only where the sum changes sign, i.e. for target layers with negative values.
    Returns [B, T, h, w] or [B, T, H, W]."""
    if map_grid not in MAP_GRIDS:
        raise ConfigError(f"scorecam: map_grid must be one of {', '.join(MAP_GRIDS)}, got {map_grid!r}")
    cam = weighted_channels(weights, p.activations)
    if map_grid == "input":
        cam = F.interpolate(cam, size=tuple(p.images.shape[-2:]), mode="bilinear", align_corners=align_corners)
    return torch.relu(cam)


@register_method("scorecam")
def scorecam(
    p: Pass, batch_size: int = 64, constant_channels: str = "skip", align_corners: bool = False, map_grid: str = "input"
) -> torch.Tensor:
    """Score-CAM as the authors' code computes it: L^c = ReLU(sum_k w_k^c Up(A^k)) with
    w_k^c = P^c(X (.) H^k), the target's class probability (p.probabilities: softmax over
    classes, sigmoid for a multi-label head) on the input masked by H^k = s(Up(A^k)) (Sec. 3:
    "we represent weight as post-softmax value"). No baseline is subtracted and no softmax is
    taken over channels. X is the normalized network input, as in the authors' code, so a
    masked-out pixel becomes the dataset mean. constant_channels=skip (their code: a channel
    whose upsampled map is constant is left out, weight 0) or zero_mask (scored on X (.) 0);
    constancy is tested on the layer grid, where their code tests the upsampled map (the same
    but for interpolation rounding, which can make a constant channel vary by 1e-7).
    map_grid=input rectifies at the input resolution, as their code does; layer on the layer
    grid. Their code then min-max normalizes the map (and returns None for a constant one); maps
    here stay unnormalized (the metrics normalize; a constant map is scored as degenerate).
    Returns [B, T, H, W] (map_grid=input) or [B, T, h, w]."""
    _, probabilities, scored = masked_input_scores(p, batch_size, constant_channels, align_corners)
    return score_weighted_map(p, probabilities * scored[:, None, :], map_grid, align_corners)


@register_method("scorecam_channel_softmax")
def scorecam_channel_softmax(
    p: Pass, batch_size: int = 64, constant_channels: str = "zero_mask", align_corners: bool = False, map_grid: str = "layer"
) -> torch.Tensor:
    """Score-CAM's Algorithm 1 as pytorch-grad-cam and torchcam read it: L^c = ReLU(sum_k
    alpha_k^c A^k), alpha^c = softmax_k(S_k^c), S_k^c = Y^c(X (.) H^k) - Y^c(X_b) with Y^c the
    target logit. The baseline term is the same for every k and cancels in the softmax, so it
    is not computed. constant_channels=zero_mask (both peers: a constant channel normalizes to
    an all-zero mask and stays in the softmax) or skip (left out of the softmax).
    align_corners=True upsamples the masks as pytorch-grad-cam does (UpsamplingBilinear2d);
    False as torchcam (which min-max normalizes on the layer grid before upsampling, a
    difference of interpolation rounding only). map_grid=layer: rectified on the layer grid,
    as both peers. Returns [B, T, h, w] (map_grid=layer) or [B, T, H, W]."""
    logits, _, scored = masked_input_scores(p, batch_size, constant_channels, align_corners)
    weights = torch.softmax(logits.masked_fill(~scored[:, None, :], float("-inf")), dim=-1).nan_to_num(0.0)
    return score_weighted_map(p, weights, map_grid, align_corners)
