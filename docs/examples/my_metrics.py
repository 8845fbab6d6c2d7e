"""An out-of-tree metric for wsl_bench: the share of the ground-truth boxes' pixels where the map
is at least `threshold` of its max. Score it with
python -m wsl_bench '+metric=[box_coverage]' "hydra.searchpath=[file://$PWD/my_conf]" (run from this folder)."""

from dataclasses import dataclass

import pyarrow as pa
import torch

from wsl_bench.config import setting
from wsl_bench.metrics import MapMetric, MetricSettings, Statistic, register_metric
from wsl_bench.metrics.aggregate import gt_rows, mean_over_rows, with_values
from wsl_bench.metrics.energy_pointing import union_box_masks
from wsl_bench.metrics.maps import binarize


@dataclass(frozen=True)
class BoxCoverageSettings(MetricSettings):
    threshold: float = setting(0.5, ge=0, le=1)  # fraction of the map's max


@register_metric("box_coverage")
class BoxCoverage(MapMetric):
    Settings = BoxCoverageSettings
    columns = (("box_coverage", pa.float64()),)  # record column: share of GT-box pixels covered

    def score(self, chunk, truth):
        above = binarize(torch.nan_to_num(chunk.maps), self.settings.threshold)
        boxes = [truth.boxes_of(int(c)) for c in chunk.classes]
        inside = union_box_masks(boxes, *truth.size, device=above.device)
        share = (above & inside).flatten(1).sum(1) / inside.flatten(1).sum(1).clamp_min(1)
        return {"box_coverage": [float(v) if gt and len(b) else None for v, b, gt in zip(share, boxes, chunk.is_gt)]}

    def statistics(self):
        def build(rows, images):  # mean over the GT-class maps, in %; bootstrapped by the report
            picked = with_values(gt_rows(rows), "box_coverage")
            return mean_over_rows(picked, picked["box_coverage"], images, 100.0)

        return [Statistic("box_coverage", build, lower_is_better=False)]
