"""Which classes each image's maps explain: its ground-truth classes and its top-k predictions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..config import TargetSettings
from ..data.sample import Sample
from ..errors import ConfigError


@dataclass
class Targets:
    """Per batch: classes to explain [B, T], and per image the (source, rank) of each of its
    columns: ("gt", 0) for a ground-truth class, ("top<r>", r) for the r-th prediction. Rows with
    fewer columns are padded by repeating a class; padded columns get no records."""

    classes: torch.Tensor
    sources: list[list[tuple[str, int]]]


def choose_targets(logits: torch.Tensor, samples: Sequence[Sample], settings: TargetSettings) -> Targets:
    """GT classes first (when settings.gt), then the top-k predictions in rank order."""
    topk = min(settings.topk, logits.shape[1])
    top = logits.topk(topk, dim=1).indices.cpu() if topk else torch.zeros(len(samples), 0, dtype=torch.long)
    gt_lists = [list(s.entry.labels) if settings.gt else [] for s in samples]
    width = max(len(g) for g in gt_lists) + topk
    if width == 0:
        raise ConfigError("nothing to explain: set targets.gt=true or targets.topk>0")
    classes = torch.zeros(len(samples), width, dtype=torch.long)
    sources = []
    for i, gt in enumerate(gt_lists):
        row = gt + top[i].tolist()
        sources.append([("gt", 0)] * len(gt) + [(f"top{r + 1}", r + 1) for r in range(topk)])
        classes[i] = torch.tensor(row + [row[0]] * (width - len(row)))
    return Targets(classes, sources)
