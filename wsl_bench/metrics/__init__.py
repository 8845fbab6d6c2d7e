"""Stage 4, metrics: maps scored against ground truth. Each metric is a unit (metrics.base):
one module here, one `conf/metric/<name>.yaml`. Map-only metrics (localization, pointing game,
energy pointing, MaxBoxAcc) need the map and the annotations; faithfulness metrics (average drop,
insertion / deletion, occlusion correlation) also need the model. The functions below score
your own maps (numpy arrays or torch tensors)."""

from .base import (
    METRICS, ImageTruth, MapChunk, MapMetric, Metric, MetricSettings, MetricSuite, ModelBatch, ModelMetric, RunInfo, Statistic,
    create_metrics, default_metrics, metric_from_config, register_metric,
)
from .energy_pointing import energy_in_boxes
from .localization import box_iou, box_iou_matrix, largest_component_box, largest_component_boxes
from .maps import argmax_points, binarize, map_status, to_original_size
from .maxboxacc import MaxBoxAccSettings, boxacc_hits, max_box_acc, threshold_components
from .pointing import distance_to_boxes, distance_to_mask, pointing_hit

__all__ = [
    "METRICS", "ImageTruth", "MapChunk", "MapMetric", "MaxBoxAccSettings", "Metric", "MetricSettings", "MetricSuite",
    "ModelBatch", "ModelMetric", "RunInfo", "Statistic", "argmax_points", "binarize", "box_iou", "box_iou_matrix",
    "boxacc_hits", "create_metrics", "default_metrics", "distance_to_boxes", "distance_to_mask", "energy_in_boxes",
    "largest_component_box", "largest_component_boxes", "map_status", "max_box_acc", "metric_from_config", "pointing_hit",
    "register_metric", "threshold_components", "to_original_size",
]
