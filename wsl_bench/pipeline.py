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
from dataclasses import asdict, dataclass
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
from .methods import Explainer, method_from_config
from .methods.core import frozen_for_explanation
from .metrics.faithfulness import (
    ConfidenceSettings, InsertionDeletionSettings, OcclusionCache, OcclusionSettings, explanation_confidence,
    insertion_deletion, occlusion_correlation,
)
from .metrics.maps import to_original_size, view_mask
from .metrics.maxboxacc import sweep_thresholds
from .metrics.protocol import (
    EnergyProtocol, LocalizationProtocol, MetricProtocols, PointingProtocol, boxacc_protocol, pointing_region, score_maps,
)
from .models import LoadedModel, create_model
from .records import RecordWriter, read_records
from .report import SummarySettings, boxacc_curves, format_summary, summarize

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
    """Method names in the order given and each method's params, from the `method` group.
    A yaml's `module:` / `_target_:` (an out-of-tree method) is imported and registered here."""
    if not cfg.get("method"):
        raise ConfigError("no method selected; add e.g. method=gradcam")
    names, params = [], {}
    for key, node in cfg.method.items():
        name = method_from_config(key, node)
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
    extra: Mapping[tuple[str, int], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Score one image's maps ({method: [T, h, w]}; methods may differ in grid size) and return
    its records. `extra` holds the model-based metrics' columns per (method, target column)."""
    entry = sample.entry
    height, width = sample.orig_size
    labels = set(entry.labels)
    protocols: MetricProtocols = context["metrics"]
    # Ground truth per target, decoded once per image and shared by every method.
    masks = entry.masks() if entry.masks is not None else None
    class_boxes = [entry.boxes[entry.box_labels == int(target)] for target in targets]
    regions = [pointing_region(entry, int(target), protocols.pointing, masks) for target in targets]
    valid = view_mask(sample.orig_size, sample.view)
    # Maps are stacked per chunk, so a chunk holds methods of one grid size only.
    by_shape: dict[tuple[int, ...], list[str]] = {}
    for method, m in maps.items():
        by_shape.setdefault(tuple(m.shape[1:]), []).append(method)
    chunks = [
        pairs[start : start + MAPS_PER_CHUNK]
        for pairs in ([(method, t) for method in group for t in range(len(sources))] for group in by_shape.values())
        for start in range(0, len(pairs), MAPS_PER_CHUNK)
    ]
    rows = []
    for chunk in chunks:
        stacked = torch.stack([maps[method][t] for method, t in chunk])
        full = to_original_size(stacked, sample.orig_size, sample.view)
        if "at_image_size" in context:  # issue 9 hook: methods' steps at image size (TorchRay's blurs)
            full = context["at_image_size"](full, [method for method, _ in chunk])
        scores = score_maps(
            full, [class_boxes[t] for _, t in chunk], protocols.loc, protocols.pointing,
            regions=[regions[t] for _, t in chunk], energy=protocols.energy, boxacc=protocols.boxacc,
            gt_only=[sources[t][0] == "gt" for _, t in chunk], valid=valid,
        )
        for j, (method, t) in enumerate(chunk):
            target = int(targets[t])
            source, rank = sources[t]
            in_gt = target in labels
            box = scores.boxes[j]
            v1, v2 = scores.boxacc_v1[j], scores.boxacc_v2[j]
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
                    "gt_boxes": class_boxes[t].tolist(),
                    "iou": None if np.isnan(scores.iou[j]) else float(scores.iou[j]),
                    "loc_correct": bool(scores.loc_correct[j]),
                    "point_x": int(scores.points[j, 0]),
                    "point_y": int(scores.points[j, 1]),
                    "point_hit": scores.point_hit[j],
                    "energy": None if np.isnan(scores.energy[j]) else float(scores.energy[j]),
                    "boxacc_v1_hits": None if v1 is None else v1.tolist(),
                    "boxacc_v2_hits": None if v2 is None else v2.tolist(),
                    **((extra or {}).get((method, t), {})),
                    "notes": sample.notes or None,
                    "skip_reason": None,
                }
            )
    return rows


@dataclass(frozen=True)
class FaithfulnessSettings:
    """Model-based metrics (see metrics.faithfulness); each None when disabled. `targets`: per
    metric, which target columns it scores: top1 (the prediction), gt, or all."""

    occlusion: OcclusionSettings | None
    confidence: ConfidenceSettings | None
    insertion_deletion: InsertionDeletionSettings | None
    targets: dict[str, str]
    cache_dir: str | None

    def to_dict(self) -> dict[str, Any]:
        def node(x: Any) -> Any:
            return None if x is None else asdict(x)

        return {
            "occlusion": node(self.occlusion), "confidence": node(self.confidence),
            "insertion_deletion": node(self.insertion_deletion), "targets": self.targets, "cache_dir": self.cache_dir,
        }


def faithfulness_settings(cfg: Any) -> FaithfulnessSettings:
    """From the `faithfulness` config node (absent = only the cheap confidence metric)."""
    cfg = cfg or {}

    def section(name: str, cls: type, default_enabled: bool) -> tuple[Any, str]:
        node = dict(cfg.get(name) or {})
        enabled = node.pop("enabled", default_enabled)
        target = node.pop("target", "top1")
        node.pop("cache_dir", None)
        if target not in ("top1", "gt", "all"):
            raise ConfigError(f"faithfulness.{name}.target={target!r} is not supported; use top1, gt or all")
        try:
            return (cls(**node) if enabled else None), target
        except TypeError as exc:
            raise ConfigError(f"faithfulness.{name}: {exc}") from None

    occlusion, t_occ = section("occlusion", OcclusionSettings, False)
    confidence, t_conf = section("confidence", ConfidenceSettings, True)
    ins_del, t_ins = section("insertion_deletion", InsertionDeletionSettings, False)
    if confidence is not None and confidence.space not in ("pixel", "normalized"):
        raise ConfigError(f"faithfulness.confidence.space={confidence.space!r} is not supported; use pixel or normalized")
    cache = (cfg.get("occlusion") or {}).get("cache_dir", "results/cache")
    return FaithfulnessSettings(occlusion, confidence, ins_del, {"occlusion": t_occ, "confidence": t_conf, "insertion_deletion": t_ins}, cache)


def faithfulness_columns(
    model: torch.nn.Module,
    images: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    targets: "Targets",
    context: dict[str, Any],
) -> dict[tuple[int, str, int], dict[str, Any]]:
    """The model-based metrics of a batch, every method in one batched call per metric:
    {(image row, method, target column): {column: value}}."""
    f: FaithfulnessSettings = context["faithfulness"]
    out: dict[tuple[int, str, int], dict[str, Any]] = {}
    methods = list(maps)

    def pairs_for(kind: str) -> list[tuple[int, int]]:
        want = f.targets[kind]
        return [
            (i, t) for i, src in enumerate(targets.sources) for t, (source, rank) in enumerate(src)
            if want == "all" or (want == "gt" and source == "gt") or (want == "top1" and rank == 1)
        ]

    def gathered(pairs: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = torch.tensor([i for i, _ in pairs] * len(methods), device=images.device)
        cols = torch.tensor([t for _, t in pairs] * len(methods), device=images.device)
        stacked = torch.cat([maps[m][rows[: len(pairs)], cols[: len(pairs)]] for m in methods])
        return rows, stacked, targets.classes.to(images.device)[rows, cols]

    def put(pairs: list[tuple[int, int]], column: str, values: np.ndarray) -> None:
        for k, (m, (i, t)) in enumerate((m, p) for m in methods for p in pairs):
            v = float(values[k])
            out.setdefault((i, m, t), {})[column] = None if np.isnan(v) else v

    if f.confidence is not None and (pairs := pairs_for("confidence")):
        rows, stacked, classes = gathered(pairs)
        o = explanation_confidence(model, images, rows, stacked, classes, context["mean"], context["std"], f.confidence, context["probabilities"])
        put(pairs, "expl_prob", o)
    if f.insertion_deletion is not None and (pairs := pairs_for("insertion_deletion")):
        rows, stacked, classes = gathered(pairs)
        ins, dele, _, _ = insertion_deletion(model, images, rows, stacked, classes, f.insertion_deletion, context["probabilities"])
        put(pairs, "insertion_auc", ins)
        put(pairs, "deletion_auc", dele)
    if f.occlusion is not None and (pairs := pairs_for("occlusion")):
        cache: OcclusionCache = context["occlusion_cache"]
        wanted = [[int(targets.classes[i, t]) for (i2, t) in pairs if i2 == i] for i in range(len(targets.sources))]
        grids, computed = cache.grids(model, images, wanted)
        context["occlusion_computed"] = context.get("occlusion_computed", 0) + computed
        occ = torch.stack([grids[i][int(targets.classes[i, t])] for i, t in pairs] * len(methods)).to(images.device)
        _, stacked, _ = gathered(pairs)
        s = f.occlusion
        put(pairs, "occlusion_corr", occlusion_correlation(stacked, occ, tuple(images.shape[-2:]), s.patch, s.stride))
    return out


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
    protocols = MetricProtocols(
        _protocol(LocalizationProtocol, cfg.localization, "localization"),
        _protocol(PointingProtocol, cfg.pointing, "pointing"),
        _protocol(EnergyProtocol, cfg.get("energy") or {}, "energy"),
        boxacc_protocol(cfg.get("maxboxacc")),
    )
    faithfulness = faithfulness_settings(cfg.get("faithfulness"))
    report_cfg = cfg.get("report") or {}
    summary_settings = SummarySettings(
        topk=cfg.targets.topk,
        iou_thresholds=protocols.boxacc.iou_thresholds if protocols.boxacc else (0.3, 0.5, 0.7),
        n_bootstrap=int(report_cfg.get("bootstrap", 1000)),
        seed=int(report_cfg.get("seed", 0)),
        level=float(report_cfg.get("ci", 0.95)),
    )
    context = {
        "dataset": cfg.dataset.name,
        "model": loaded.name,
        "class_names": data.class_names,
        "probabilities": loaded.probabilities,
        "mean": loaded.mean,
        "std": loaded.std,
        "metrics": protocols,
        "at_image_size": explainer.at_image_size,  # issue 9 hook (see build_rows)
        "faithfulness": faithfulness,
        "occlusion_cache": OcclusionCache(faithfulness.cache_dir, f"{loaded.name}|{loaded.weights}", faithfulness.occlusion)
        if faithfulness.occlusion is not None else None,
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
    with frozen_for_explanation(loaded.module):  # eval mode, no parameter grads: once for the run
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
    summary = summarize(records, settings=summary_settings)
    wall = time.perf_counter() - start
    write_summary(out_dir, records, summary, protocols, faithfulness, summary_settings, context)
    info = provenance(cfg, device, loaded, data)
    info["wall_time_s"] = round(wall, 3)
    info["metric_settings"] = metric_settings(protocols, faithfulness, summary_settings, context)
    (out_dir / "provenance.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    return RunResult(out_dir, records, summary, wall)


def _protocol(cls: type, node: Any, name: str) -> Any:
    """A metric's settings dataclass from its config node; an unknown key is a ConfigError."""
    try:
        return cls(**node)
    except TypeError as exc:
        raise ConfigError(f"{name}: {exc}; valid keys: {', '.join(cls.__dataclass_fields__)}") from None


def metric_settings(
    protocols: MetricProtocols, faithfulness: FaithfulnessSettings, summary: SummarySettings, context: dict[str, Any]
) -> dict[str, Any]:
    """Every metric choice of the run, as scored (provenance.json "metric_settings")."""
    return {
        **protocols.to_dict(),
        "faithfulness": faithfulness.to_dict(),
        "occlusion_maps_computed": context.get("occlusion_computed", 0),
        "bootstrap": {"resamples": summary.n_bootstrap, "seed": summary.seed, "level": summary.level, "unit": "image"},
    }


def write_summary(
    out_dir: Path, records: pd.DataFrame, summary: pd.DataFrame, protocols: MetricProtocols,
    faithfulness: FaithfulnessSettings, settings: SummarySettings, context: dict[str, Any],
) -> None:
    """summary.csv (+ comparisons.csv with several methods), summary.md, boxacc_curves.csv."""
    summary.to_csv(out_dir / "summary.csv", index=False)
    comparisons = summary.attrs.get("comparisons")
    if comparisons is not None:
        comparisons.to_csv(out_dir / "comparisons.csv", index=False)
    if protocols.boxacc is not None:
        curves = boxacc_curves(records, sweep_thresholds(protocols.boxacc.step), protocols.boxacc.iou_thresholds, protocols.boxacc.v1_iou)
        if len(curves):
            curves.to_csv(out_dir / "boxacc_curves.csv", index=False)
    settings_line = json.dumps(metric_settings(protocols, faithfulness, settings, context), default=str)
    (out_dir / "summary.md").write_text(format_summary(summary) + "\n\nMetric settings: `" + settings_line + "`\n")


def _explain_batch(
    explainer: Explainer, batch: Batch, device: torch.device, cfg: DictConfig, context: dict[str, Any]
) -> list[dict[str, Any]]:
    images = batch.images.to(device, non_blocking=True)
    logits = explainer.forward(images)
    targets = choose_targets(logits, batch.samples, cfg.targets.gt, cfg.targets.topk)
    classes = targets.classes.to(device)
    maps = explainer.maps(classes)
    probs = context["probabilities"](logits).gather(1, classes).cpu()
    # Methods differ in resolution (layer grid vs input pixels); the model-based metrics batch
    # the maps of one resolution together.
    by_shape: dict[tuple[int, ...], list[str]] = {}
    for method, m in maps.items():
        by_shape.setdefault(tuple(m.shape[2:]), []).append(method)
    extra_by_image: dict[int, dict[tuple[str, int], dict[str, Any]]] = {}
    for group in by_shape.values():
        columns = faithfulness_columns(explainer.model, images, {m: maps[m] for m in group}, targets, context)
        for (row, method, t), values in columns.items():
            extra_by_image.setdefault(row, {})[(method, t)] = values
    rows = []
    for i, sample in enumerate(batch.samples):
        n = len(targets.sources[i])
        per_image = {method: m[i, :n] for method, m in maps.items()}
        rows.extend(
            build_rows(sample, per_image, targets.classes[i, :n], targets.sources[i], probs[i, :n], context, extra_by_image.get(i))
        )
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
