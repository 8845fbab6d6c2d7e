"""One benchmark run: data -> model -> methods -> metrics -> records -> report.

Everything that can fail on the user's layout or configuration (dataset files, model, target
layer, method names) is checked before the first forward pass."""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from .data import AnnotatedImages, Batch, DecodedImages, ProtocolTransform, Sample, build_dataset, collate_samples
from .errors import ConfigError, UserError
from .methods import Explainer
from .metrics.maps import to_original_size
from .metrics.protocol import LocalizationProtocol, PointingProtocol, score_maps
from .models import LoadedModel, create_model
from .records import RecordWriter, read_records
from .report import format_summary, summarize

log = logging.getLogger("wsl_bench")

# Keeps maps at original size for at most this many (method, target) pairs at once per image.
MAPS_PER_CHUNK = 16


@dataclass
class RunResult:
    out_dir: Path
    records: pd.DataFrame
    summary: pd.DataFrame
    wall_time_s: float


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but CUDA is not available here; use device=cpu or device=auto")
    return torch.device(name)


def method_settings(cfg: DictConfig) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Method names in the order given and each method's params, from the `method` group."""
    if not cfg.get("method"):
        raise ConfigError("no method selected; add e.g. method=gradcam")
    names, params = [], {}
    for key, node in cfg.method.items():
        name = node.get("name", key)
        names.append(name)
        node_params = node.get("params")
        params[name] = OmegaConf.to_container(node_params, resolve=True) if node_params else {}
    return names, params


@dataclass
class Targets:
    """Per batch: classes to explain [B, T], and per image the (source, rank) of each column."""

    classes: torch.Tensor
    sources: list[list[tuple[str, int]]]


def choose_targets(logits: torch.Tensor, samples: list[Sample], use_gt: bool, topk: int) -> Targets:
    """GT classes first (source "gt", rank 0), then the top-k predictions ("top1", "top5").
    Rows with fewer GT classes are padded by repeating a class; padded columns get no records."""
    top = logits.topk(topk, dim=1).indices.cpu() if topk else torch.zeros(len(samples), 0, dtype=torch.long)
    gt_lists = [list(s.entry.labels) if use_gt else [] for s in samples]
    width = max(len(g) for g in gt_lists) + topk
    if width == 0:
        raise ConfigError("nothing to explain: set targets.gt=true or targets.topk>0")
    classes = torch.zeros(len(samples), width, dtype=torch.long)
    sources = []
    for i, gt in enumerate(gt_lists):
        row = gt + top[i].tolist()
        source = [("gt", 0)] * len(gt) + [("top1" if r == 0 else "top5", r + 1) for r in range(topk)]
        classes[i] = torch.tensor(row + [row[0]] * (width - len(row)))
        sources.append(source)
    return Targets(classes, sources)


def build_rows(
    sample: Sample,
    maps: Mapping[str, torch.Tensor],
    targets: torch.Tensor,
    sources: list[tuple[str, int]],
    probs: torch.Tensor,
    context: dict[str, Any],
) -> list[dict[str, Any]]:
    """Score one image's maps ({method: [T, h, w]}) and return its records."""
    entry = sample.entry
    height, width = sample.orig_size
    labels = set(entry.labels)
    pairs = [(method, t) for method in maps for t in range(len(sources))]
    class_boxes = [entry.boxes[entry.box_labels == int(targets[t])] for _, t in pairs]
    rows = []
    for start in range(0, len(pairs), MAPS_PER_CHUNK):
        chunk = pairs[start : start + MAPS_PER_CHUNK]
        stacked = torch.stack([maps[method][t] for method, t in chunk])
        full = to_original_size(stacked, sample.orig_size, sample.view)
        scores = score_maps(full, class_boxes[start : start + len(chunk)], context["loc"], context["pointing"])
        for j, (method, t) in enumerate(chunk):
            target = int(targets[t])
            source, rank = sources[t]
            in_gt = target in labels
            box = scores.boxes[j]
            rows.append(
                {
                    "image_id": entry.image_id,
                    "dataset": context["dataset"],
                    "model": context["model"],
                    "method": method,
                    "target": target,
                    "target_name": context["class_names"][target] if target < len(context["class_names"]) else str(target),
                    "target_source": source,
                    "pred_rank": rank,
                    "class_in_gt": in_gt,
                    "prob": float(probs[t]),
                    "pointing_difficult": target in entry.difficult_classes,
                    "width": width,
                    "height": height,
                    "map_status": scores.status[j],
                    "pred_box": None if box[0] < 0 else box.tolist(),
                    "gt_boxes": class_boxes[start + j].tolist(),
                    "iou": None if np.isnan(scores.iou[j]) else float(scores.iou[j]),
                    "loc_correct": bool(scores.loc_correct[j]),
                    "point_x": int(scores.points[j, 0]),
                    "point_y": int(scores.points[j, 1]),
                    "point_hit": bool(scores.point_hit[j]) if in_gt else None,
                    "notes": sample.notes or None,
                    "skip_reason": None,
                }
            )
    return rows


def skipped_rows(image_id: str, reason: str, methods: list[str], context: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"image_id": image_id, "dataset": context["dataset"], "model": context["model"], "method": m, "skip_reason": reason}
        for m in methods
    ]


def provenance(cfg: DictConfig, device: torch.device, loaded: LoadedModel, data: AnnotatedImages) -> dict[str, Any]:
    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "wsl_bench": version("wsl_bench"),
        "git_commit": commit,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {p: version(p) for p in ("torch", "torchvision", "timm", "numpy", "scipy", "pandas", "hydra-core")},
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "model_weights": loaded.weights,
        "target_layer": loaded.target_layer,
        "dataset_images": len(data.entries),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def run(cfg: DictConfig, out_dir: Path) -> RunResult:
    """Run the benchmark described by `cfg`, writing records, summary and provenance to out_dir."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    # Layout and configuration checks, before any compute.
    data = build_dataset(cfg.dataset)
    if not data.entries:
        raise UserError(f"dataset={cfg.dataset.name}: no images to evaluate")
    loaded = create_model(cfg.model)
    methods, params = method_settings(cfg)
    device = pick_device(cfg.device)
    explainer = Explainer(loaded.module, loaded.target_layer, methods, params)
    if loaded.num_classes != len(data.class_names):
        raise ConfigError(
            f"model {loaded.name} scores {loaded.num_classes} classes but dataset={cfg.dataset.name} has {len(data.class_names)}; "
            f"use a model trained on it: model.checkpoint=/path/to/weights.pth model.num_classes={len(data.class_names)}"
        )
    transform = ProtocolTransform(
        cfg.transform.kind, cfg.transform.size, loaded.mean, loaded.std, cfg.transform.get("resize", 256),
        cfg.transform.get("evaluate_at", "original"),
    )
    context = {
        "dataset": cfg.dataset.name,
        "model": loaded.name,
        "class_names": data.class_names,
        "probabilities": loaded.probabilities,
        "loc": LocalizationProtocol(**cfg.localization),
        "pointing": PointingProtocol(**cfg.pointing),
    }
    loaded.module.to(device)
    loader = DataLoader(
        DecodedImages(data.entries, transform),
        batch_size=cfg.loader.batch_size,
        num_workers=cfg.loader.num_workers,
        collate_fn=collate_samples,
        pin_memory=device.type == "cuda",
    )
    writer = RecordWriter(out_dir, cfg.records.shard_images)
    for image_id, reason in data.rejected:
        writer.add(skipped_rows(image_id, reason, methods, context))
    progress = _progress(cfg.get("progress", "auto"), total=len(data.entries))
    scored_batches = 0
    for batches, skipped in loader:
        for sample in skipped:
            writer.add(skipped_rows(sample.entry.image_id, sample.skip_reason, methods, context))
        for batch in batches:
            try:
                writer.add(_explain_batch(explainer, batch, device, cfg, context))
                scored_batches += 1
            except (UserError, KeyboardInterrupt, torch.cuda.OutOfMemoryError):
                raise
            except Exception as exc:  # one bad batch must not end a long run; its rows say why
                if scored_batches == 0:
                    raise
                reason = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                log.warning("batch of %d images skipped: %s", len(batch.samples), reason)
                for sample in batch.samples:
                    writer.add(skipped_rows(sample.entry.image_id, reason, methods, context))
        progress.update(sum(len(b.samples) for b in batches) + len(skipped))
    progress.close()
    records = read_records(writer.close())
    summary = summarize(records, topk=cfg.targets.topk)
    wall = time.perf_counter() - start
    summary.to_csv(out_dir / "summary.csv", index=False)
    (out_dir / "summary.md").write_text(format_summary(summary) + "\n")
    info = provenance(cfg, device, loaded, data)
    info["wall_time_s"] = round(wall, 3)
    (out_dir / "provenance.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    return RunResult(out_dir, records, summary, wall)


def _explain_batch(
    explainer: Explainer, batch: Batch, device: torch.device, cfg: DictConfig, context: dict[str, Any]
) -> list[dict[str, Any]]:
    images = batch.images.to(device, non_blocking=True)
    logits = explainer.forward(images)
    targets = choose_targets(logits, batch.samples, cfg.targets.gt, cfg.targets.topk)
    classes = targets.classes.to(device)
    maps = explainer.maps(classes)
    probs = context["probabilities"](logits).gather(1, classes).cpu()
    rows = []
    for i, sample in enumerate(batch.samples):
        n = len(targets.sources[i])
        per_image = {method: m[i, :n] for method, m in maps.items()}
        rows.extend(build_rows(sample, per_image, targets.classes[i, :n], targets.sources[i], probs[i, :n], context))
    return rows


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(setting: Any, total: int) -> Any:
    enabled = sys.stderr.isatty() if setting == "auto" else bool(setting)
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="wsl_bench")
