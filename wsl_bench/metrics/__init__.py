"""Stage 4, metrics: maps scored against ground truth, for numpy or torch inputs."""

from .localization import box_iou, box_iou_matrix, largest_component_box, largest_component_boxes
from .maps import argmax_points, binarize, map_status, to_original_size
from .pointing import distance_to_boxes, distance_to_mask, pointing_hit

__all__ = [
    "argmax_points", "binarize", "box_iou", "box_iou_matrix", "distance_to_boxes", "distance_to_mask",
    "largest_component_box", "largest_component_boxes", "map_status", "pointing_hit", "to_original_size",
]
