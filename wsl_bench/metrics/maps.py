"""Preparing maps for scoring: back to original image size, degenerate-map detection,
normalization and binarization, batched on the maps' device."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data.sample import View

# Status codes of a map. Each metric decides what it can score: a map without a peak (NO_PEAK)
# fails every metric; a non-positive one fails only thresholds taken as a fraction of the max.
OK, NONFINITE, ALL_ZERO, CONSTANT, NON_POSITIVE = "ok", "nonfinite", "all_zero", "constant", "non_positive"
NO_PEAK = (NONFINITE, ALL_ZERO, CONSTANT)


# How maps are resized onto the evaluation grid (transform.upsample): torch's bilinear / bicubic
# (a = -0.75) with half-pixel centres and clamped borders. Bicubic is computed in float64 and
# rounded to float32: cv2.resize(INTER_CUBIC) on float64, what wsolevaluation runs, to float32
# rounding, and a constant map stays constant (its float32 weights would not sum to one exactly).
UPSAMPLE_MODES = ("bilinear", "bicubic")


def to_original_size(maps: torch.Tensor, orig_size: tuple[int, int], view: View | None = None, mode: str = "bilinear") -> torch.Tensor:
    """Upsample maps [N, h, w] onto the original image [N, H0, W0], bilinearly or bicubically
    (`mode`, one of UPSAMPLE_MODES).

    With a view covering only part of the image (center crop), the map fills that rectangle and
    the rest of the image gets the map's minimum: it never holds the peak of a non-constant map
    and leaves the min-max normalization unchanged, but it can reach a cut (e.g. 15% of the max
    when the whole map lies above it), so the metrics take boxes within `view_mask` only."""
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"upsample mode must be one of {', '.join(UPSAMPLE_MODES)}, got {mode!r}")
    height, width = orig_size
    maps = maps.float()

    def resized(size: tuple[int, int]) -> torch.Tensor:
        if mode == "bicubic":
            return F.interpolate(maps.double()[:, None], size=size, mode=mode, align_corners=False)[:, 0].float()
        return F.interpolate(maps[:, None], size=size, mode=mode, align_corners=False)[:, 0]

    if view is None or view.is_full(height, width):
        return resized((height, width))
    x0, y0, x1, y1 = _view_rect(orig_size, view)
    inner = resized((y1 - y0, x1 - x0))
    floor = inner.flatten(1).amin(dim=1)
    out = floor[:, None, None].expand(-1, height, width).clone()
    out[:, y0:y1, x0:x1] = inner
    return out


def _view_rect(orig_size: tuple[int, int], view: View) -> tuple[int, int, int, int]:
    height, width = orig_size
    return max(0, round(view.x0)), max(0, round(view.y0)), min(width, round(view.x1)), min(height, round(view.y1))


def view_mask(orig_size: tuple[int, int], view: View | None = None) -> torch.Tensor | None:
    """[H0, W0] bool: the pixels of the original image the map covers (to_original_size's
    rectangle), or None when it covers the whole image."""
    height, width = orig_size
    if view is None or view.is_full(height, width):
        return None
    x0, y0, x1, y1 = _view_rect(orig_size, view)
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _extremes(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per map [N, ...]: (all values finite [N], the maps with non-finite values zeroed,
    max and min of those finite-ized maps [N])."""
    flat = maps.flatten(1)
    finite_values = torch.isfinite(flat)
    safe = torch.where(finite_values, flat, torch.zeros((), dtype=flat.dtype, device=flat.device))
    return finite_values.all(dim=1), safe.view_as(maps), safe.amax(dim=1), safe.amin(dim=1)


def map_extremes(maps: torch.Tensor) -> torch.Tensor:
    """Per map [N, ...]: (max, min) [N, 2], on the maps' device, without the masked copy of
    _extremes. A non-finite value shows in them (NaN propagates, +-inf is the max or the min), so
    a map is finite exactly when both are; for a finite map they are _extremes' values.
    (amax and amin, not aminmax: on the CPU the fused op is two orders of magnitude slower.)"""
    if len(maps) == 0:
        return maps.new_zeros((0, 2))
    flat = maps.flatten(1)
    return torch.stack([flat.amax(dim=1), flat.amin(dim=1)], dim=1)


def status_codes(extremes: np.ndarray, normalize: str = "max") -> list[str]:
    """map_status from map_extremes' [N, 2] (max, min), as host values."""
    hi, lo = extremes[:, 0], extremes[:, 1]
    finite = np.isfinite(hi) & np.isfinite(lo)
    codes = np.select(
        [~finite, (hi == 0) & (lo == 0), hi == lo, (hi <= 0) & (normalize == "max")],
        [NONFINITE, ALL_ZERO, CONSTANT, NON_POSITIVE], OK,
    )
    return codes.tolist()


def map_status(maps: torch.Tensor, normalize: str = "max") -> list[str]:
    """Per map [N, H, W]: OK, or why it cannot be scored (non-finite values, all zero,
    constant, or - with max normalization - no positive value to take a fraction of)."""
    return status_codes(map_extremes(maps).cpu().numpy(), normalize) if len(maps) else []


def finite_maps(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(maps with non-finite values zeroed, [N] bool: the map is usable: finite, not constant)."""
    finite, safe, hi, lo = _extremes(maps)
    return safe, finite & (hi > lo)


def scale_unit(maps: torch.Tensor, normalize: str = "minmax") -> torch.Tensor:
    """Maps [N, H, W] scaled to [0, 1]: (L - min) / (max - min) or max(L, 0) / max. A map that
    cannot be scaled (non-finite, constant, no positive value) becomes all zero."""
    safe, ok = finite_maps(maps.float())
    flat = safe.flatten(1)
    hi = flat.amax(dim=1, keepdim=True)
    if normalize == "minmax":
        lo = flat.amin(dim=1, keepdim=True)
        out = (flat - lo) / (hi - lo).clamp_min(1e-30)
    elif normalize == "max":
        ok &= hi[:, 0] > 0
        out = flat.clamp_min(0) / hi.clamp_min(1e-30)
    else:
        raise ValueError(f"normalize must be 'minmax' or 'max', got {normalize!r}")
    return torch.where(ok[:, None], out, torch.zeros_like(out)).view_as(maps)


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of maps [N, h, w] to the network input grid [N, H, W]."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps.float()
    return F.interpolate(maps.float()[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def binarize(
    maps: torch.Tensor, threshold: float = 0.15, comparison: str = "ge", normalize: str = "max"
) -> torch.Tensor:
    """Binary masks [N, H, W] of the pixels at or above (`ge`) / above (`gt`) a fraction of each map.

    normalize="max": cut at threshold * max (Grad-CAM paper). "minmax": cut at
    min + threshold * (max - min), i.e. on the min-max normalized map (Choe et al. 2020)."""
    flat = maps.flatten(1)
    hi = flat.amax(dim=1)
    if normalize == "max":
        cut = threshold * hi
    elif normalize == "minmax":
        lo = flat.amin(dim=1)
        cut = lo + threshold * (hi - lo)
    else:
        raise ValueError(f"normalize must be 'max' or 'minmax', got {normalize!r}")
    cut = cut[:, None, None]
    if comparison == "ge":
        return maps >= cut
    if comparison == "gt":
        return maps > cut
    raise ValueError(f"comparison must be 'ge' or 'gt', got {comparison!r}")


def argmax_points(maps: torch.Tensor) -> torch.Tensor:
    """(x, y) of each map's maximum [N, 2] (first in raster order on ties)."""
    width = maps.shape[-1]
    index = maps.flatten(1).argmax(dim=1)
    return torch.stack([index % width, torch.div(index, width, rounding_mode="floor")], dim=1)
