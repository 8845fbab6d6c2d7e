"""Occlusion correlation, Selvaraju et al., "Grad-CAM", ICCV 2017, Sec. 5.2: Spearman rank
correlation between the method's map and an occlusion map (Zeiler & Fergus 2014) of the same
(image, class). Compared on the occlusion grid: the map, upsampled to the input, is averaged over
each occluder window. Occlusion maps come from wsl_bench.methods.perturbation and are cached on
disk (OcclusionCache), keyed by everything they depend on.

Unit `occlusion_corr`: one forward per occluder position per (image, class), shared by every
method and cached across runs."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from torch import nn

from ..config import setting
from ..methods.perturbation import occlusion_maps
from .aggregate import MetricData, mean_over_rows, with_values
from .base import BatchColumns, ModelBatch, ModelMetric, MetricSettings, Statistic, register_metric
from .maps import finite_maps, upsample


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
class OcclusionCorrSettings(MetricSettings):
    """Occluder size and stride in input pixels (not stated in the paper: recorded with every
    result); fill in normalized input space (0 = the mean, i.e. gray for mean/std-normalized
    inputs). target: which maps are scored. cache_dir: occlusion maps are cached under
    <cache_dir>/occlusion, reused across methods and runs (null: no cache)."""

    target: Literal["top1", "gt", "all"] = "top1"
    patch: int = setting(45, ge=1)
    stride: int = setting(1, ge=1)
    fill: float = 0.0
    chunk_size: int = setting(64, ge=1)
    cache_dir: str | None = "results/cache"


class OcclusionCache:
    """Occlusion maps on disk, one .npz per (model, input image, settings), one array per class.

    The key hashes the model identity (name and weights), the exact network input tensor (so the
    image and the transform), and patch / stride / fill; chunk_size does not change the result
    and is not part of it. root=None disables the cache. `computed` counts the maps it had to make."""

    def __init__(self, root: Path | str | None, model_id: str, settings: OcclusionCorrSettings) -> None:
        self.root = Path(root) / "occlusion" if root else None
        self.model_id = model_id
        self.settings = settings
        self.computed = 0  # (image, class) occlusion maps computed, not found in the cache

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
        how many (image, class) grids this call computed (0 when all came from the cache)."""
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
        self.computed += computed
        return [{c: torch.from_numpy(np.asarray(f[c])) for c in dict.fromkeys(cls)} for cls, f in zip(classes, found)], computed


@register_metric("occlusion_corr")
class OcclusionCorr(ModelMetric):
    Settings = OcclusionCorrSettings
    columns = (("occlusion_corr", pa.float64()),)  # Spearman correlation with the occlusion map

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache = OcclusionCache(self.settings.cache_dir, self.run.model_id, self.settings)

    def score_batch(self, batch: ModelBatch, maps: Mapping[str, torch.Tensor]) -> BatchColumns:
        pairs = batch.pairs(self.settings.target)
        if not pairs:
            return {}
        wanted = [[int(batch.classes[i, t]) for (i2, t) in pairs if i2 == i] for i in range(len(batch.sources))]
        grids, _ = self.cache.grids(batch.model, batch.images, wanted)
        occ = torch.stack([grids[i][int(batch.classes[i, t])] for i, t in pairs] * len(maps)).to(batch.images.device)
        _, stacked, _ = self.gather(batch, maps, pairs)
        s = self.settings
        rho = occlusion_correlation(stacked, occ, tuple(batch.images.shape[-2:]), s.patch, s.stride)
        return self.spread(maps, pairs, {"occlusion_corr": rho})

    def statistics(self) -> list[Statistic]:
        return [Statistic("occlusion_corr", self._mean, lower_is_better=False, digits=3)]

    @staticmethod
    def _mean(rows: pd.DataFrame, images: pd.Index) -> MetricData | None:
        picked = with_values(rows, "occlusion_corr")
        return mean_over_rows(picked, picked["occlusion_corr"].astype(float), images, 1.0)

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "maps_computed": self.cache.computed}
