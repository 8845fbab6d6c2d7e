"""RISE: Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of Black-box Models",
BMVC 2018, Sec. 3 (the saliency estimate and the mask generation procedure)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..core import Pass, register_method
from ..perturbation import image_scores, score_reader


def rise_masks(n_masks: int, cells: int, prob: float, size: tuple[int, int], seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The seeded low-resolution binary grids [N, 1, s, s] (1 with probability p) and shifts
    [N, 2]; upsample_masks turns a slice of them into masks. Cheap: kept for the whole run."""
    generator = torch.Generator().manual_seed(seed)
    grids = (torch.rand(n_masks, 1, cells, cells, generator=generator) < prob).float()
    cell_h, cell_w = math.ceil(size[0] / cells), math.ceil(size[1] / cells)
    shifts = torch.stack(
        [torch.randint(0, cell_h, (n_masks,), generator=generator), torch.randint(0, cell_w, (n_masks,), generator=generator)], dim=1
    )
    return grids.to(device), shifts.to(device)


def upsample_masks(grids: torch.Tensor, shifts: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of s x s grids to (s + 1) C_H x (s + 1) C_W, then an H x W crop at each
    mask's shift (0 <= shift < C). C = ceil(H / s): the paper writes floor, with which a shifted
    crop need not fit; the authors' code uses ceil. Returns [n, 1, H, W]."""
    cells = grids.shape[-1]
    cell_h, cell_w = math.ceil(size[0] / cells), math.ceil(size[1] / cells)
    up = F.interpolate(grids, size=((cells + 1) * cell_h, (cells + 1) * cell_w), mode="bilinear", align_corners=False)
    rows = shifts[:, 0, None] + torch.arange(size[0], device=grids.device)  # [n, H]
    cols = shifts[:, 1, None] + torch.arange(size[1], device=grids.device)  # [n, W]
    index = torch.arange(len(grids), device=grids.device)[:, None, None]
    return up[index, 0, rows[:, :, None], cols[:, None, :]][:, None]


@register_method("rise")
def rise(
    p: Pass, n_masks: int = 1000, cells: int = 7, prob: float = 0.5, seed: int = 0, batch_size: int = 64,
    score: str = "probability", input_size: int | None = None,
) -> torch.Tensor:
    """S_{I,f}(lambda) = 1 / (E[M] N) sum_i f(I (.) M_i) M_i(lambda), E[M] = prob, with N
    random masks: s x s binary grids (s = cells, 1 with probability prob) bilinearly upsampled
    and randomly shifted. f = the target's class probability (score=probability:
    p.probabilities, the paper's softmax, or sigmoids for a multi-label head; score=logit: the
    raw score). The paper uses N = 4000 (and 8000 for VGG); the default 1000 keeps CPU runs short. Masks are seeded (the same for every
    image), multiply the normalized input (masked pixels become the dataset mean, as in the
    authors' code), and run batched under inference mode, batch_size inputs at a time, one
    forward serving all targets. f is read from the model's image-level scores
    (perturbation.image_scores). input_size: the network sees the image resized to
    input_size x input_size (bilinear, no antialiasing) and the map is on that grid, as TorchRay's
    pointing game runs RISE at 224 x 224 while the other methods keep the aspect ratio (its
    masks are square grids and its fully convolutional models give one score at 224 x 224);
    the map still covers the whole image, so it is resized to the image like any other.
    None: the network input as given. Returns [B, T, H, W] (H = W = input_size when set)."""
    read = score_reader(score, p.probabilities, "rise")
    images = p.images
    if input_size:
        images = F.interpolate(images, size=(int(input_size), int(input_size)), mode="bilinear", align_corners=False)
    batch, _, height, width = images.shape
    grids, shifts = rise_masks(n_masks, cells, prob, (height, width), seed, images.device)
    saliency = torch.zeros(batch, p.targets.shape[1], height, width, device=images.device)
    per_chunk = max(1, batch_size // batch)  # masks per chunk: batch * per_chunk inputs
    with torch.inference_mode():
        for start in range(0, n_masks, per_chunk):
            masks = upsample_masks(grids[start : start + per_chunk], shifts[start : start + per_chunk], (height, width))
            inputs = (images[:, None] * masks[None]).flatten(0, 1)  # [B * m, 3, H, W], image-major
            probs = read(image_scores(p.model, inputs)).view(batch, len(masks), -1)  # [B, m, K]
            scores = probs.gather(2, p.targets[:, None, :].expand(-1, len(masks), -1))  # [B, m, T]
            saliency += torch.einsum("bmt,mhw->bthw", scores, masks[:, 0])
    return saliency / (n_masks * prob)
