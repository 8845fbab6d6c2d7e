"""Classification error of the explained model (Grad-CAM Table 1's "cls" columns, ILSVRC rule):
an image is correctly classified at top-k when one of its top-k predictions is a ground-truth
class. Read from the records' `class_in_gt` of the predicted targets; no map is scored."""

from __future__ import annotations

import pandas as pd

from .aggregate import MetricData, mean_over_rows, per_image_any
from .base import Metric, Statistic, register_metric
from .localization import predicted_rows


@register_metric("classification")
class Classification(Metric):
    def statistics(self) -> list[Statistic]:
        return [Statistic(f"top{k}_cls_err", self._topk_error(k), lower_is_better=True) for k in (1, 5)]

    def _topk_error(self, rank: int):
        def build(rows: pd.DataFrame, images: pd.Index) -> MetricData | None:
            if self.run.topk < rank:
                return None
            pred = predicted_rows(rows, rank)
            per = per_image_any(pred, pred["class_in_gt"])
            return mean_over_rows(per, per["flag"], images, -100.0, 100.0)

        return build
