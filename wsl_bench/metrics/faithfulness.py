"""Faithfulness metrics: how well a map predicts what the model does when the image changes.
Each needs model forwards, run batched and in inference mode.

- Occlusion correlation, Selvaraju et al., "Grad-CAM", ICCV 2017, Sec. 5.2: Spearman rank
  correlation between the method's map and an occlusion map (Zeiler & Fergus 2014) of the same
  (image, class). Compared on the occlusion grid: the map, upsampled to the input, is averaged
  over each occluder window. Occlusion maps come from wsl_bench.methods.perturbation and are
  cached on disk (OcclusionCache), keyed by everything they depend on.
- Average drop % and increase in confidence %, Chattopadhyay et al., "Grad-CAM++", WACV 2018,
  Sec. 6.1.1: explanation E = L * I (L: the map upsampled to the input and scaled to [0, 1]);
  Y = confidence on I, O = confidence on E, for the predicted class.
- Insertion and deletion AUC, Petsiuk et al., "RISE", BMVC 2018, Sec. 4.1: pixels in descending
  saliency, `step` per step; deletion sets them to 0 (in normalized input space), insertion puts
  them back into a blurred copy (Gaussian kernel 11, sigma 5); AUC of the probability curve by
  the trapezoid rule over [0, 1].
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.stats import rankdata
from torch import nn

from ..methods.perturbation import occlusion_maps, target_scores_of

Probabilities = Callable[[torch.Tensor], torch.Tensor]


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, dim=-1)


def finite_maps(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(maps with non-finite values zeroed, [N] bool: the map is usable: finite, not constant)."""
    flat = maps.flatten(1)
    ok = torch.isfinite(flat).all(dim=1)
    safe = torch.where(torch.isfinite(flat), flat, torch.zeros((), dtype=flat.dtype, device=flat.device))
    ok &= safe.amax(dim=1) > safe.amin(dim=1)
    return safe.view_as(maps), ok


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
    """Bilinear upsampling of maps [N, h, w] to the input grid [N, H, W]."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps.float()
    return F.interpolate(maps.float()[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


# ---------------------------------------------------------------- occlusion correlation


def spearman(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each row pair of a, b [N, P] (average ranks for ties) -> [N];
    NaN where either row is constant."""
    a = np.asarray(a.cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b.cpu() if isinstance(b, torch.Tensor) else b, dtype=np.float64).reshape(len(b), -1)
    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    denom = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (ra * rb).sum(axis=1) / np.where(denom > 0, denom, 1), np.nan)


def map_on_occlusion_grid(maps: torch.Tensor, input_size: tuple[int, int], patch: int, stride: int) -> torch.Tensor:
    """Maps [N, h, w] -> [N, n_y, n_x]: the map upsampled to the input, averaged over each
    occluder window (windows start at 0, stride, ... while they fit, as occlusion_maps)."""
    full = upsample(maps, input_size)
    return F.avg_pool2d(full[:, None], kernel_size=patch, stride=stride)[:, 0]


def occlusion_correlation(maps: torch.Tensor, occlusion: torch.Tensor, input_size: tuple[int, int], patch: int, stride: int) -> np.ndarray:
    """Per pair: Spearman correlation of the map (on the occlusion grid) with the occlusion map
    [N, n_y, n_x]. A map that cannot be scored (non-finite, constant) scores 0 (no agreement);
    a constant occlusion map (the model ignores every window) gives NaN, excluded and counted."""
    _, ok = finite_maps(maps.float())
    grid = map_on_occlusion_grid(torch.nan_to_num(maps.float(), nan=0.0, posinf=0.0, neginf=0.0), input_size, patch, stride)
    rho = spearman(grid.flatten(1), occlusion.flatten(1))
    occlusion_constant = (occlusion.flatten(1).amax(dim=1) == occlusion.flatten(1).amin(dim=1)).cpu().numpy()
    rho[~ok.cpu().numpy()] = 0.0
    rho[occlusion_constant] = np.nan
    return rho


@dataclass(frozen=True)
class OcclusionSettings:
    """Occluder size and stride in input pixels; fill in normalized input space (0 = the mean,
    i.e. gray for mean/std-normalized inputs)."""

    patch: int = 45
    stride: int = 1
    fill: float = 0.0
    chunk_size: int = 64


class OcclusionCache:
    """Occlusion maps on disk, one .npz per (model, input image, settings), one array per class.

    The key hashes the model identity (name and weights), the exact network input tensor (so the
    image and the transform), and patch / stride / fill; chunk_size does not change the result
    and is not part of it. root=None disables the cache."""

    def __init__(self, root: Path | str | None, model_id: str, settings: OcclusionSettings) -> None:
        self.root = Path(root) / "occlusion" if root else None
        self.model_id = model_id
        self.settings = settings

    def key(self, image: torch.Tensor) -> str:
        digest = hashlib.sha256()
        s = self.settings
        digest.update(json.dumps({"model": self.model_id, "patch": s.patch, "stride": s.stride, "fill": s.fill}, sort_keys=True).encode())
        digest.update(str(tuple(image.shape)).encode())
        digest.update(image.detach().float().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:40]

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.npz"

    def load(self, key: str) -> dict[int, np.ndarray]:
        if self.root is None or not self._path(key).is_file():
            return {}
        with np.load(self._path(key)) as data:
            return {int(name[1:]): data[name] for name in data.files}

    def store(self, key: str, grids: dict[int, np.ndarray]) -> None:
        if self.root is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        merged = {**self.load(key), **grids}
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
        os.close(fd)
        np.savez(tmp, **{f"c{c}": g for c, g in merged.items()})
        os.replace(tmp, path)  # atomic: concurrent runs never read a half-written file

    def grids(self, model: nn.Module, images: torch.Tensor, classes: list[list[int]]) -> tuple[list[dict[int, torch.Tensor]], int]:
        """Occlusion grids {class: [n_y, n_x]} per image for the wanted classes; the missing
        ones are computed in one batched occlusion_maps call and stored. Returns the grids and
        the number of (image, class) grids computed (0 when everything came from the cache)."""
        keys = [self.key(img) for img in images]
        found = [self.load(k) for k in keys]
        missing = [[c for c in dict.fromkeys(cls) if c not in f] for cls, f in zip(classes, found)]
        todo = [i for i, m in enumerate(missing) if m]
        computed = 0
        if todo:
            width = max(len(missing[i]) for i in todo)
            targets = torch.tensor([missing[i] + [missing[i][0]] * (width - len(missing[i])) for i in todo], device=images.device)
            s = self.settings
            occ = occlusion_maps(model, images[todo], targets, s.patch, s.stride, s.fill, s.chunk_size).cpu().numpy()
            for row, i in enumerate(todo):
                new = {c: occ[row, j] for j, c in enumerate(missing[i])}
                computed += len(new)
                found[i].update(new)
                self.store(keys[i], new)
        return [{c: torch.from_numpy(np.asarray(f[c])) for c in dict.fromkeys(cls)} for cls, f in zip(classes, found)], computed


# ---------------------------------------------------------------- average drop / increase


@dataclass(frozen=True)
class ConfidenceSettings:
    """space="pixel": E = L * I on the [0, 1] RGB image (Grad-CAM++), renormalized for the
    model; "normalized": E = L * x on the normalized input. normalize: how L is scaled to [0, 1]."""

    space: str = "pixel"
    normalize: str = "minmax"
    chunk_size: int = 64


def explanation_confidence(
    model: nn.Module,
    images: torch.Tensor,
    image_index: torch.Tensor,
    maps: torch.Tensor,
    classes: torch.Tensor,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    settings: ConfidenceSettings = ConfidenceSettings(),
    probabilities: Probabilities = _softmax,
) -> np.ndarray:
    """O: the probability of classes[n] on the explanation map of maps[n] (image images[image_index[n]])
    -> [N]. Y, the probability on the image, is the pipeline's own forward."""
    if settings.space not in ("pixel", "normalized"):
        raise ValueError(f"confidence space must be 'pixel' or 'normalized', got {settings.space!r}")
    size = tuple(images.shape[-2:])
    m = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(3, 1, 1)
    s = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(3, 1, 1)

    def make_inputs(start: int, stop: int) -> torch.Tensor:
        weight = scale_unit(upsample(maps[start:stop], size), settings.normalize).to(images.dtype)[:, None]
        x = images[image_index[start:stop]]
        if settings.space == "pixel":
            return ((x * s + m) * weight - m) / s
        return x * weight

    n = len(classes)
    scores = target_scores_of(
        model, make_inputs, n, torch.arange(n, device=images.device), classes.view(-1, 1), settings.chunk_size, probabilities
    )
    return scores[:, 0].double().cpu().numpy()


def average_drop(y: np.ndarray, o: np.ndarray) -> float:
    """Grad-CAM++ Average Drop %: mean of max(0, Y - O) / Y, times 100."""
    return float(100.0 * np.mean(np.maximum(0.0, y - o) / y))


def increase_in_confidence(y: np.ndarray, o: np.ndarray) -> float:
    """Grad-CAM++ Increase in Confidence %: share of images with Y < O, times 100."""
    return float(100.0 * np.mean(y < o))


# ---------------------------------------------------------------- insertion / deletion


@dataclass(frozen=True)
class InsertionDeletionSettings:
    """RISE: `step` pixels per step (an int, or a fraction of the image in (0, 1)); deletion
    substrate 0 in normalized space; insertion from a Gaussian blur (kernel 11, sigma 5)."""

    step: float = 224
    blur_kernel: int = 11
    blur_sigma: float = 5.0
    chunk_size: int = 64


def gaussian_kernel(size: int = 11, sigma: float = 5.0) -> np.ndarray:
    """RISE's gkern: a unit impulse filtered by scipy's gaussian_filter (sum 1)."""
    impulse = np.zeros((size, size))
    impulse[size // 2, size // 2] = 1.0
    return ndimage.gaussian_filter(impulse, sigma)


def blur(images: torch.Tensor, size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """Per-channel Gaussian blur with zero padding (RISE's conv2d substrate)."""
    kernel = torch.as_tensor(gaussian_kernel(size, sigma), dtype=images.dtype, device=images.device)
    weight = kernel.expand(images.shape[1], 1, size, size).contiguous()
    return F.conv2d(images, weight, padding=size // 2, groups=images.shape[1])


def trapezoid_auc(curve: np.ndarray) -> np.ndarray:
    """Area under curves [..., S + 1] sampled at 0, 1/S, ..., 1 (RISE's auc)."""
    return (curve.sum(axis=-1) - curve[..., 0] / 2 - curve[..., -1] / 2) / (curve.shape[-1] - 1)


def insertion_deletion(
    model: nn.Module,
    images: torch.Tensor,
    image_index: torch.Tensor,
    maps: torch.Tensor,
    classes: torch.Tensor,
    settings: InsertionDeletionSettings = InsertionDeletionSettings(),
    probabilities: Probabilities = _softmax,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(insertion AUC [N], deletion AUC [N], insertion curves [N, S+1], deletion curves [N, S+1])
    for maps [N, h, w] of classes [N] on images[image_index]. Pixels are taken in descending map
    value (upsampled to the input; ties in raster order). A map that cannot be scored (non-finite,
    constant) gets NaN AUCs: its pixel order would be raster order, a number computed from no
    explanation; its record's map_status says why and the summary counts it."""
    n = len(classes)
    height, width = images.shape[-2:]
    n_pixels = height * width
    step = int(round(settings.step * n_pixels)) if 0 < settings.step < 1 else int(settings.step)
    if step < 1:
        raise ValueError(f"insertion/deletion step must be >= 1 pixel, got {settings.step}")
    n_steps = -(-n_pixels // step)
    safe, ok = finite_maps(upsample(maps, (height, width)))
    values = torch.where(ok[:, None], safe.flatten(1), torch.zeros_like(safe.flatten(1)))
    order = torch.argsort(values, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n_pixels, device=order.device).expand(n, -1).contiguous())
    blurred = blur(images, settings.blur_kernel, settings.blur_sigma)
    curves = {}
    for mode in ("insertion", "deletion"):
        per_pair = n_steps + 1

        def make_inputs(start: int, stop: int, mode: str = mode) -> torch.Tensor:
            index = torch.arange(start, stop, device=images.device)
            pair, k = index // per_pair, index % per_pair
            shown = (rank[pair] < (k * step)[:, None]).view(-1, 1, height, width)  # top k * step pixels
            x = images[image_index[pair]]
            if mode == "deletion":
                return torch.where(shown, torch.zeros_like(x), x)
            return torch.where(shown, x, blurred[image_index[pair]])

        pair_of = torch.arange(n * per_pair, device=images.device) // per_pair
        scores = target_scores_of(model, make_inputs, n * per_pair, pair_of, classes.view(-1, 1), settings.chunk_size, probabilities)
        curves[mode] = scores[:, 0].double().cpu().numpy().reshape(n, per_pair)
    unusable = ~ok.cpu().numpy()
    insertion_auc, deletion_auc = trapezoid_auc(curves["insertion"]), trapezoid_auc(curves["deletion"])
    insertion_auc[unusable] = np.nan
    deletion_auc[unusable] = np.nan
    return insertion_auc, deletion_auc, curves["insertion"], curves["deletion"]


def settings_dict(*settings: object) -> dict:
    return {type(s).__name__: asdict(s) for s in settings}  # type: ignore[arg-type]
