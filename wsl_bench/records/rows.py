"""Building record rows: the core columns of each (image, target, method) from the sample and its
targets, merged with the columns the metrics scored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..data.sample import Sample


@dataclass(frozen=True)
class RowLabels:
    """Run-wide labels of every row."""

    dataset: str
    model: str
    class_names: Sequence[str]

    def class_name(self, target: int) -> str:
        return self.class_names[target] if 0 <= target < len(self.class_names) else str(target)


def scored_rows(
    sample: Sample,
    methods: Sequence[str],
    classes: Sequence[int],
    sources: Sequence[tuple[str, int]],
    probs: Sequence[float],
    metric_columns: Mapping[tuple[str, int], Mapping[str, Any]],
    labels: RowLabels,
) -> list[dict[str, Any]]:
    """One row per method and target column of one image; metric_columns[(method, t)] holds what
    the metrics scored (map metrics and model metrics merged)."""
    entry = sample.entry
    height, width = sample.orig_size
    present = set(entry.labels)
    rows = []
    for method in methods:
        for t, (target, (source, rank), prob) in enumerate(zip(classes, sources, probs)):
            target = int(target)
            rows.append({
                "image_id": entry.image_id, "dataset": labels.dataset, "model": labels.model, "method": method,
                "target": target, "target_name": labels.class_name(target), "target_source": source, "pred_rank": rank,
                "class_in_gt": target in present, "prob": float(prob), "width": width, "height": height,
                "gt_boxes": entry.boxes[entry.box_labels == target].tolist(),
                **metric_columns.get((method, t), {}),
                "notes": sample.notes or None, "skip_reason": None,
            })
    return rows


def error_reason(error: BaseException) -> str:
    """The skip reason of an image whose explaining or scoring failed: the error's type and
    first line (at most 200 characters)."""
    message = str(error).splitlines()[0][:200] if str(error) else ""
    return f"error: {type(error).__name__}: {message}"


def skipped_rows(image_id: str, reason: str, methods: Sequence[str], labels: RowLabels) -> list[dict[str, Any]]:
    """The rows of an image that could not be scored: one per method, with the reason."""
    return [{"image_id": image_id, "dataset": labels.dataset, "model": labels.model, "method": m, "skip_reason": reason} for m in methods]
