"""Stage 4, metrics: maps scored against ground truth, for numpy or torch inputs.

Map-only metrics (localization, pointing game, energy pointing, MaxBoxAcc) need the map and the
annotations; faithfulness metrics (metrics.faithfulness) also need the model."""

from .energy import energy_in_boxes
from .localization import box_iou, box_iou_matrix, largest_component_box, largest_component_boxes
from .maps import argmax_points, binarize, map_status, to_original_size
from .maxboxacc import BoxAccProtocol, boxacc_hits, max_box_acc, threshold_components
from .pointing import distance_to_boxes, distance_to_mask, pointing_hit

__all__ = [
    "BoxAccProtocol", "argmax_points", "binarize", "box_iou", "box_iou_matrix", "boxacc_hits", "distance_to_boxes",
    "distance_to_mask", "energy_in_boxes", "largest_component_box", "largest_component_boxes", "map_status",
    "max_box_acc", "pointing_hit", "threshold_components", "to_original_size",
]
