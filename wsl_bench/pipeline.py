"""One benchmark run: data -> model -> methods (maps) -> metrics -> records -> report.

`build_run_spec` turns the configuration into a frozen `RunSpec`, checking everything that can
fail on the user's layout or configuration (dataset files, model, target layer, methods, metric
settings, class counts) before any compute; `execute` connects the stages. Nothing here knows a
metric, a method or a dataset by name."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from .config import RUN_SECTIONS, LoaderSettings, RecordSettings, ReportSettings, RunSettings, TargetSettings, settings_from
from .data import AnnotatedImages, Batch, DecodedImages, ProtocolTransform, build_dataset, collate_samples
from .errors import ConfigError, UserError
from .methods import Explainer, method_from_config
from .methods.core import frozen_for_explanation
from .methods.targets import choose_targets
from .metrics import MetricSuite, ModelBatch, ModelMetric, RunInfo, create_metrics
from .models import LoadedModel, create_model
from .provenance import run_provenance
from .records import RecordWriter, RowLabels, read_records, record_schema, scored_rows, skipped_rows
from .records.maps import MapKeeper
from .report import summarize
from .report.html import write_run_report
from .report.outputs import check_outputs, write_outputs

log = logging.getLogger("wsl_bench")


@dataclass(frozen=True)
class RunSpec:
    """Everything a run needs, built and checked from the configuration before any compute."""

    dataset: AnnotatedImages
    model: LoadedModel
    transform: ProtocolTransform
    methods: tuple[str, ...]
    method_params: dict[str, dict[str, Any]]
    metrics: MetricSuite
    targets: TargetSettings
    loader: LoaderSettings
    report: ReportSettings
    records: RecordSettings
    device: torch.device
    progress: bool | str
    config: dict[str, Any]  # the resolved configuration, for provenance

    @property
    def labels(self) -> RowLabels:
        return RowLabels(self.dataset.name, self.model.name, self.dataset.class_names)


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
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name!r} is not a device; use auto, cpu or cuda[:index]") from None


def method_settings(cfg: DictConfig) -> tuple[tuple[str, ...], dict[str, dict[str, Any]]]:
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
    return tuple(names), params


def build_run_spec(cfg: DictConfig) -> RunSpec:
    """The run `cfg` describes; every layout and configuration problem is a UserError here."""
    sections = {name: settings_from(cls, cfg.get(name)) for name, cls in RUN_SECTIONS.items()}
    run = settings_from(RunSettings, {k: cfg.get(k) for k in ("device", "progress") if k in cfg})
    data = build_dataset(cfg.dataset)
    if not data.entries:
        example = f" ({len(data.rejected)} rejected, e.g. {data.rejected[0][0]}: {data.rejected[0][1]})" if data.rejected else ""
        raise UserError(f"dataset={cfg.dataset.name}: no images to evaluate{example}")
    model = create_model(cfg.model, dataset_classes=len(data.class_names))
    if model.num_classes != len(data.class_names):
        n = len(data.class_names)
        multilabel = " model.multilabel=true" if any(len(e.labels) > 1 for e in data.entries) else ""
        raise ConfigError(
            f"model {model.name} scores {model.num_classes} classes but dataset={cfg.dataset.name} has {n}; use a model "
            f"trained on it, e.g. model=torchvision model.name=resnet50 model.checkpoint=/path/to/weights.pth{multilabel} model.num_classes={n}"
        )
    methods, params = method_settings(cfg)
    Explainer(model.module, model.target_layer, methods, params, model.probabilities)  # checks method names and params now
    targets = sections["targets"]
    metrics = create_metrics(cfg.get("metric"), RunInfo(topk=targets.topk, model_id=f"{model.name}|{model.weights}", num_classes=len(data.class_names)))
    if not model.predicts and (targets.topk or metrics.of_kind(ModelMetric)):
        needs = [f"targets.topk={targets.topk}"] * bool(targets.topk) + [f"metric.{u.name}" for u in metrics.of_kind(ModelMetric)]
        raise ConfigError(
            f"model={model.name} makes no predictions, which {' and '.join(needs)} need; set targets.topk=0 and leave model-based metrics out (metric=[...])"
        )
    check_outputs(cfg, metrics)
    transform = ProtocolTransform(
        cfg.transform.kind, cfg.transform.size, model.mean, model.std, cfg.transform.get("resize", 256), cfg.transform.get("evaluate_at", "original"),
        cfg.transform.get("upsample", "bilinear"), cfg.transform.get("gt_to_grid", "span"),
    )
    return RunSpec(
        data, model, transform, methods, params, metrics, targets, sections["loader"], sections["report"], sections["records"],
        pick_device(run.device), run.progress, OmegaConf.to_container(cfg, resolve=True),
    )


def run(cfg: DictConfig, out_dir: Path) -> RunResult:
    """Run the benchmark described by `cfg`, writing records, summary and provenance to out_dir."""
    start = time.perf_counter()
    return execute(build_run_spec(cfg), Path(out_dir), start)


def execute(spec: RunSpec, out_dir: Path, start: float | None = None) -> RunResult:
    """The stages, connected: decoded batches -> maps -> metric columns -> record rows -> summary."""
    start = time.perf_counter() if start is None else start
    model = spec.model.module.to(spec.device)
    explainer = Explainer(model, spec.model.target_layer, spec.methods, spec.method_params, spec.model.probabilities)
    loader = DataLoader(
        DecodedImages(spec.dataset.entries, spec.transform), batch_size=spec.loader.batch_size,
        num_workers=spec.loader.num_workers, collate_fn=collate_samples, pin_memory=spec.device.type == "cuda",
    )
    writer = RecordWriter(out_dir, record_schema(spec.metrics.columns()), spec.records.shard_images)
    keeper = MapKeeper.from_settings(spec.report, spec.records, out_dir, spec.methods, spec.model.mean, spec.model.std)
    for image_id, reason in spec.dataset.rejected:
        writer.add(skipped_rows(image_id, reason, spec.methods, spec.labels))
    progress = _progress(spec.progress, total=len(spec.dataset.entries))
    scored_any = False
    with frozen_for_explanation(model):  # eval mode, no parameter grads: once for the run
        for batches, skipped in loader:
            for sample in skipped:
                writer.add(skipped_rows(sample.entry.image_id, sample.skip_reason, spec.methods, spec.labels))
            for batch in batches:
                rows, scored = _isolating_failures(lambda b: score_batch(spec, explainer, b, keeper), batch, spec, raise_all=not scored_any)
                writer.add(rows)
                scored_any |= scored
            progress.update(sum(len(b.samples) for b in batches) + len(skipped))
    progress.close()
    keeper.close()  # maps.npz: the gallery's maps and photos
    records = read_records(writer.close())
    summary = summarize(records, spec.metrics, spec.report)
    wall = time.perf_counter() - start
    write_outputs(out_dir, records, summary, spec.metrics, run_provenance(spec, wall))
    if spec.report.html:  # report.html, figures/, report_tables.md / .tex
        write_run_report(out_dir)
    return RunResult(out_dir, records, summary, wall)


def score_batch(spec: RunSpec, explainer: Explainer, batch: Batch, keeper: MapKeeper | None = None) -> list[dict[str, Any]]:
    """One batch through the model, the methods and the metrics: its record rows."""
    images = batch.images.to(spec.device, non_blocking=True)
    logits = explainer.forward(images)
    targets = choose_targets(logits, batch.samples, spec.targets)
    classes = targets.classes.to(spec.device)
    maps = explainer.maps(classes)
    probs = spec.model.probabilities(logits).gather(1, classes).cpu()
    model_columns = spec.metrics.score_models(
        ModelBatch(explainer.model, images, classes, targets.sources, spec.model.probabilities, spec.model.mean, spec.model.std), maps,
    )
    rows = []
    for i, sample in enumerate(batch.samples):
        n = len(targets.sources[i])  # this image's target columns (the rest is padding)
        image_classes, image_sources = targets.classes[i, :n].tolist(), targets.sources[i]
        image_maps = {m: v[i, :n] for m, v in maps.items()}
        columns = spec.metrics.score_image(
            sample, image_maps, image_classes, image_sources, spec.transform.upsample, explainer.at_image_size  # issue 9 hook
        )
        for (method, t), values in columns.items():
            values.update(model_columns.get((i, method, t), {}))
        image_rows = scored_rows(sample, spec.methods, image_classes, image_sources, probs[i, :n].tolist(), columns, spec.labels)
        rows.extend(image_rows)
        if keeper is not None:  # keep this image's maps if the gallery may show it
            keeper.offer_sample(sample, image_maps, image_classes, image_sources, image_rows)
    return rows


def _isolating_failures(
    score: Callable[[Batch], list[dict[str, Any]]], batch: Batch, spec: RunSpec, raise_all: bool
) -> tuple[list[dict[str, Any]], bool]:
    """score(batch), and whether any image was scored. A failure on one image must not end a long
    run nor cost its batch-mates: a failing batch is scored again image by image, and each image
    that still fails becomes skipped rows naming the error. When nothing could be scored and
    `raise_all` (no image of the run scored yet), the error is raised: it is the setup's."""
    try:
        return score(batch), True
    except (UserError, KeyboardInterrupt, torch.cuda.OutOfMemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - one bad image must not end a long run
        error = exc
    if len(batch.samples) > 1:
        parts = [_isolating_failures(score, Batch(batch.images[i : i + 1], [s]), spec, False) for i, s in enumerate(batch.samples)]
        if not raise_all or any(scored for _, scored in parts):
            return [row for rows, _ in parts for row in rows], any(scored for _, scored in parts)
    if raise_all:
        raise error
    image_id = batch.samples[0].entry.image_id
    reason = f"error: {type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
    log.warning("image %s skipped: %s", image_id, reason)
    return skipped_rows(image_id, reason, spec.methods, spec.labels), False


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(setting: bool | str, total: int) -> Any:
    enabled = sys.stderr.isatty() if setting == "auto" else bool(setting)
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="wsl_bench")
