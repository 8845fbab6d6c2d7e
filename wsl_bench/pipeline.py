"""One benchmark run: data -> model -> methods (maps) -> metrics -> records -> report.

`build_run_spec` turns the configuration into a frozen `RunSpec`, checking everything that can
fail on the user's layout or configuration (dataset files, model, target layer, methods, metric
settings, class counts) before any compute; `execute` connects the stages. Nothing here knows a
metric, a method or a dataset by name.

The stages overlap so that the device never waits: DataLoader workers decode batch k + 2 while
the model explains batch k + 1 and scoring workers score batch k's maps (wsl_bench.scoring).
Records go to part files as batches finish (wsl_bench.records.store); a run restarted in its
directory scores only the batches it has not (wsl_bench.resume), torchrun ranks and data shards
score disjoint batches, and the parts are joined at the end (wsl_bench.merge)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from . import distributed
from .config import (
    RUN_SECTIONS, LoaderSettings, RecordSettings, ReportSettings, RunSettings, ScoringSettings, TargetSettings, settings_from,
)
from .data import AnnotatedImages, Batch, DecodedImages, ProtocolTransform, build_dataset
from .data.batches import BatchedImages, LoadedBatch, as_is
from .distributed import Ranks
from .errors import ConfigError, UserError
from .merge import write_report, write_results
from .methods import Explainer, method_from_config
from .methods.core import frozen_for_explanation
from .methods.targets import choose_targets
from .metrics import MetricSuite, ModelBatch, ModelMetric, RunInfo, create_metrics
from .models import LoadedModel, create_model
from .provenance import run_provenance
from .records import RowLabels, error_reason, read_records, record_schema
from .map_feed import HeldImage, MapFeed, discard_keeper_state, restored_keeper
from .records.maps import MapKeeper
from .records.store import RECORDS_FILE, RecordStore, done_batches, list_parts, replace_atomically
from .report.html import write_run_report
from .report.outputs import check_outputs
from .resume import RunState, Shard, batch_plan, check_resumable, exclusive_run_dir
from .scoring import BatchJob, ImageMaps, ScoredBatch, ScoringContext, ScoringPool, SkippedImage, chunks_to_numpy, light, quiet_worker, to_numpy
from .stopping import RunInterrupted, StopRequest
from .threads import torch_threads
from .timing import StageClock

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
    scoring: ScoringSettings = ScoringSettings()
    run_info: RunInfo = RunInfo()
    precision: str = "fp32"
    shard: Shard = Shard()
    ranks: Ranks = Ranks()

    @property
    def labels(self) -> RowLabels:
        return RowLabels(self.dataset.name, self.model.name, self.dataset.class_names)


@dataclass
class RunResult:
    """records / summary: None for a shard or a torchrun rank other than 0 (merged elsewhere)."""

    out_dir: Path
    records: pd.DataFrame | None
    summary: pd.DataFrame | None
    wall_time_s: float
    stage_seconds: dict[str, float] = dataclasses.field(default_factory=dict)


def pick_device(name: str, ranks: Ranks = Ranks()) -> torch.device:
    """The run's device; under torchrun, `auto` and `cuda` mean this rank's GPU (cuda:LOCAL_RANK)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but CUDA is not available here; use device=cpu or device=auto")
    if name == "cuda" and ranks.world > 1:
        name = f"cuda:{ranks.local_rank}"
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
    run = settings_from(RunSettings, {k: cfg.get(k) for k in ("device", "progress", "precision", "shard") if k in cfg})
    shard, ranks = Shard.parse(run.shard), distributed.ranks_from_env()
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
    run_info = RunInfo(topk=targets.topk, model_id=f"{model.name}|{model.weights}", num_classes=len(data.class_names))
    metrics = create_metrics(cfg.get("metric"), run_info)
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
        pick_device(run.device, ranks), run.progress, OmegaConf.to_container(cfg, resolve=True),
        sections["scoring"], run_info, run.precision, shard, ranks,
    )


def run(cfg: DictConfig, out_dir: Path) -> RunResult:
    """Run the benchmark described by `cfg`, writing records, summary and provenance to out_dir."""
    start = time.perf_counter()
    return execute(build_run_spec(cfg), Path(out_dir), start)


# Upsampled maps measured on a GPU before their statuses are read back at once (float32 pixels).
PIXEL_BUDGET = 1 << 26


def execute(spec: RunSpec, out_dir: Path, start: float | None = None, clock: StageClock | None = None) -> RunResult:
    """The stages, connected: decoded batches -> maps -> metric columns -> record rows -> summary.
    In a directory holding part of this run, only the batches not done yet are scored; a stop
    signal ends the run after saving every finished batch (RunInterrupted)."""
    start = time.perf_counter() if start is None else start
    clock = clock or StageClock()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = _open_state(spec, out_dir)
    with exclusive_run_dir(out_dir, spec.ranks.rank):
        return _execute_in(spec, out_dir, state, start, clock)


def _execute_in(spec: RunSpec, out_dir: Path, state: RunState, start: float, clock: StageClock) -> RunResult:
    """execute, once this process holds the run directory."""
    schema = record_schema(spec.metrics.columns())
    if state.complete:  # a finished run started again: its outputs again, from its records
        return _finish(spec, out_dir, state, schema, start, clock, scored=0)
    store = RecordStore(out_dir, schema, f"r{spec.ranks.rank}", spec.records.flush_images, spec.records.flush_seconds)
    plan = batch_plan(
        len(spec.dataset.entries), spec.loader.batch_size, spec.shard, spec.ranks.rank, spec.ranks.world, rejects=bool(spec.dataset.rejected)
    )
    todo = [b for b in plan if b not in store.done]
    keeper = _new_keeper(spec, out_dir)
    if spec.ranks.is_main:  # the other ranks never touch the gallery's saved state (rank 0 may be reading it)
        keeper = restored_keeper(keeper, out_dir, resumed=bool(store.done))
    feed = MapFeed(keeper, todo, out_dir)
    store.before_write = feed.save  # the gallery's state covers every stored batch (map_feed: resume)
    total, done_before = _images_in(spec, plan), _images_in(spec, [b for b in plan if b in store.done])
    progress = _progress(spec.progress, total=total, initial=done_before)
    scored = 0

    def count(done: ScoredBatch) -> None:
        nonlocal scored
        scored += done.n_images
        progress.update(done.n_images)

    stopped_at_once = False
    with StopRequest() as stop:
        try:
            _score_batches(spec, todo, store, feed, clock, stop, count)
        except KeyboardInterrupt:  # a second Ctrl-C: what is finished is saved all the same
            stopped_at_once = True
        finally:
            progress.close()
            with clock.time("write"):
                store.flush()
        if stop.requested or stopped_at_once:
            signum = stop.signum or signal.SIGINT
            raise RunInterrupted(out_dir, signum, done_before + scored, total, stop.previous.get(signum))
    return _finish(spec, out_dir, state, schema, start, clock, scored=scored, feed=feed)


def _new_keeper(spec: RunSpec, out_dir: Path) -> MapKeeper:
    """The gallery's MapKeeper (records.maps): report.gallery images of a run that makes its own
    report; none in a data shard (the merge makes the report) or a torchrun rank other than 0
    (the gallery is chosen among rank 0's images)."""
    if spec.shard.count > 1 or not spec.ranks.is_main:  # decided before building one: save_maps opens maps.npz.tmp
        return MapKeeper(out_dir, spec.methods, gallery=0)
    return MapKeeper.from_settings(spec.report, spec.records, out_dir, spec.methods, spec.model.mean, spec.model.std)


def _open_state(spec: RunSpec, out_dir: Path) -> RunState:
    """The run's state in out_dir: checked against this configuration, or written for a new run."""
    state = check_resumable(out_dir, spec.config)
    if state is None:
        state = RunState(
            spec.config, str(spec.shard), len(spec.dataset.entries), spec.loader.batch_size, len(spec.dataset.rejected), dataclasses.asdict(spec.run_info)
        )
        if spec.ranks.is_main:
            state.write(out_dir)
    distributed.barrier(spec.ranks)  # every rank has checked before any writes a part
    return state


def _images_in(spec: RunSpec, batches: Iterable[int]) -> int:
    n, size = len(spec.dataset.entries), spec.loader.batch_size
    return sum(len(spec.dataset.rejected) if b < 0 else min(size, n - b * size) for b in batches)


def worker_counts(spec: RunSpec, n_batches: int) -> tuple[int, int]:
    """(decoding workers, scoring workers): as configured, or `auto`: the CPU cores of this
    process's share (torchrun's LOCAL_WORLD_SIZE processes share a machine) that the network does
    not use: all but one on a GPU; on the CPU those torch's threads leave free, none when they take
    every core (a busy worker beside them stalls every parallel region of the network, see
    README, Scale). None for a run of a single batch."""
    cores = max(1, len(os.sched_getaffinity(0)) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    free = cores - 1 if spec.device.type != "cpu" else max(0, cores - torch.get_num_threads())
    auto_decode = 0 if n_batches <= 1 or free == 0 else max(1, free // 2)
    auto_scoring = 0 if n_batches <= 1 or free == 0 else max(1, free - auto_decode)
    decode = spec.loader.num_workers if isinstance(spec.loader.num_workers, int) else auto_decode
    scoring = spec.scoring.workers if isinstance(spec.scoring.workers, int) else auto_scoring
    return decode, scoring


def _score_batches(
    spec: RunSpec, todo: list[int], store: RecordStore, feed: MapFeed, clock: StageClock, stop: StopRequest, on_done: Callable[[ScoredBatch], Any]
) -> None:
    """Explain and score the batches `todo` (in order), storing each as it finishes (in order
    when the gallery keeps maps: `feed` offers their images first)."""
    batches = [b for b in todo if b >= 0]
    model = spec.model.module.to(spec.device) if batches else spec.model.module
    explainer = Explainer(
        model, spec.model.target_layer, spec.methods, spec.method_params, spec.model.probabilities,
        rule_timer=lambda: clock.time("CAM math"),  # the methods' rules clocked apart from the pass they read
    )
    # the methods' at-image-size steps run where the maps are upsampled (a scoring worker; forked, so nothing is pickled)
    context = ScoringContext(spec.metrics, spec.methods, spec.labels, store.schema, spec.transform.upsample, explainer.image_size_steps)

    def keep(scored: ScoredBatch) -> None:
        with clock.time("gallery"):
            due = feed.ready(scored)
        for done in due:
            for warning in done.warnings:
                log.warning(warning)
            clock.merge(done.seconds)
            with clock.time("write"):
                store.add(done.batch, done.rows, done.n_images)
            on_done(done)

    decode_workers, scoring_workers = worker_counts(spec, len(batches))
    device_measure = spec.scoring.device_measure is True or (spec.scoring.device_measure == "auto" and spec.device.type == "cuda")
    with ScoringPool(context, scoring_workers if batches else 0, clock) as pool:
        if -1 in todo:  # the rows of images rejected while reading the annotations
            pool.submit(BatchJob(-1, [SkippedImage(image_id, reason) for image_id, reason in spec.dataset.rejected]))
        if not batches:
            for done in pool.drain():
                keep(done)
            return
        loader = DataLoader(
            BatchedImages(DecodedImages(spec.dataset.entries, spec.transform), spec.loader.batch_size), batch_size=None, sampler=batches,
            num_workers=decode_workers, collate_fn=as_is, pin_memory=spec.device.type == "cuda",
            worker_init_fn=_quiet_loader_worker if decode_workers else None,
        )
        loaded_batches = iter(loader)
        waiting: tuple[BatchJob, Any] | None = None  # a job whose device results are still on their way to the host
        try:
            with frozen_for_explanation(model):  # eval mode, no parameter grads: once for the run
                first = True
                while not stop.requested:
                    with clock.time("wait for data"):
                        loaded = next(loaded_batches, None)
                    if loaded is None:
                        break
                    clock.add("decode", loaded.decode_seconds)
                    job = _explain_batch(spec, explainer, loaded, clock, first, device_measure, feed)
                    first = False
                    if waiting is not None:  # queued after this batch's device work: the copies overlap it
                        pool.submit(_on_host(*waiting))
                    waiting = job
                    for done in pool.collect():
                        keep(done)
            if waiting is not None:
                pool.submit(_on_host(*waiting))
            for done in pool.drain():
                keep(done)
        except KeyboardInterrupt:
            for done in pool.collect():
                keep(done)
            raise
        finally:
            del loaded_batches  # stops the decoding workers


def _quiet_loader_worker(_worker_id: int) -> None:
    quiet_worker()


def _autocast(spec: RunSpec) -> ContextManager[Any]:
    if spec.precision == "fp32":
        return nullcontext()
    return torch.autocast(spec.device.type, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[spec.precision])


def _explain_batch(
    spec: RunSpec, explainer: Explainer, loaded: LoadedBatch, clock: StageClock, first: bool, device_measure: bool, feed: MapFeed,
) -> tuple[BatchJob, Any]:
    """A loaded batch through the network (one pass per input shape) -> its scoring job, and the
    CUDA event after which its device results are on the host (None on the CPU). The gallery's
    maps and photos stay here (feed.hold) until the batch's rows are back."""
    items: list[ImageMaps | SkippedImage] = [SkippedImage(s.entry.image_id, s.skip_reason or "") for s in loaded.skipped]
    scored_any = False
    for batch in loaded.batches:
        group, scored = _isolating_failures(
            lambda b: _explain_group(spec, explainer, b, clock, device_measure, feed), batch, spec, raise_all=first and not scored_any
        )
        items.extend(group)
        scored_any |= scored
    held = []
    for item in items:
        if isinstance(item, ImageMaps) and item.held is not None:
            held.append(item.held)
            item.held = None  # not sent to the scoring workers
    feed.hold(loaded.index, held)
    event = None
    if device_measure and spec.device.type == "cuda":
        event = torch.cuda.Event()
        event.record()
    return BatchJob(loaded.index, items, raise_all=first), event


def _on_host(job: BatchJob, event: Any) -> BatchJob:
    """The job, once its device results have arrived (numpy, for the scoring workers)."""
    if event is not None:
        event.synchronize()
    for item in job.items:
        if isinstance(item, ImageMaps) and item.measured is not None:
            item.measured = chunks_to_numpy(item.measured)
    return job


def _explain_group(
    spec: RunSpec, explainer: Explainer, batch: Batch, clock: StageClock, device_measure: bool, feed: MapFeed | None = None,
) -> list[ImageMaps]:
    """One batch of one input shape through the model, the methods and the model metrics: per
    image what its scoring needs (maps for the workers, or the device part of scoring done) and,
    for the gallery, its maps on the host (ImageMaps.held)."""
    keeping = feed is not None and feed.active
    with clock.time("copy to device"):
        images = batch.images.to(spec.device, non_blocking=True)
    with _autocast(spec), clock.time("forward"):
        logits = explainer.forward(images)
    with clock.time("targets"):
        targets = choose_targets(logits, batch.samples, spec.targets)
        classes = targets.classes.to(spec.device)
    with _autocast(spec), clock.time("backward + CAM math"):
        maps = explainer.maps(classes)
    with clock.time("targets"):
        probs = spec.model.probabilities(logits.float()).gather(1, classes).cpu()
    with _autocast(spec):
        model_columns = spec.metrics.score_models(
            ModelBatch(explainer.model, images, classes, targets.sources, spec.model.probabilities, spec.model.mean, spec.model.std), maps, clock,
        )
    per_image: list[dict[tuple[str, int], dict[str, Any]]] = [{} for _ in batch.samples]
    for (i, method, t), values in model_columns.items():
        per_image[i][(method, t)] = values
    items = []
    for i, sample in enumerate(batch.samples):
        n = len(targets.sources[i])  # this image's target columns (the rest is padding)
        items.append(ImageMaps(light(sample), targets.classes[i, :n].tolist(), targets.sources[i], probs[i, :n].tolist(), per_image[i]))
    if device_measure:
        with torch_threads(1):  # as in the scoring workers (on a GPU this only concerns host-side work)
            measured = spec.metrics.measure_images(
                [(item.sample, {m: v[i, : len(item.classes)] for m, v in maps.items()}, item.classes, item.sources) for i, item in enumerate(items)],
                pixel_budget=PIXEL_BUDGET, upsample=spec.transform.upsample, at_image_size=explainer.image_size_steps, clock=clock,
            )
        for item, chunks in zip(items, measured):
            item.measured = [c.to_host(non_blocking=True) for c in chunks]
        # the gallery's copies: read once the batch's event has passed (its rows come back later)
        host_maps = {m: v.to("cpu", non_blocking=True) for m, v in maps.items()} if keeping else {}
    else:
        with clock.time("copy maps to host"):
            host = to_numpy(maps)
        for i, item in enumerate(items):
            item.maps = {m: v[i, : len(item.classes)] for m, v in host.items()}
        host_maps = {m: torch.from_numpy(v) for m, v in host.items()} if keeping else {}
    if feed is not None and keeping:
        with clock.time("gallery"):
            for i, (sample, item) in enumerate(zip(batch.samples, items)):
                maps_i = {m: v[i, : len(item.classes)] for m, v in host_maps.items()}
                item.held = HeldImage(item.sample, feed.keeper.photo_of(sample), maps_i, item.classes, item.sources)
    return items


def _isolating_failures(
    explain: Callable[[Batch], list[ImageMaps]], batch: Batch, spec: RunSpec, raise_all: bool
) -> tuple[list[ImageMaps | SkippedImage], bool]:
    """explain(batch), and whether any image was explained. A failure on one image must not end
    a long run nor cost its batch-mates: a failing batch is explained again image by image, and
    each image that still fails becomes skipped rows naming the error. When nothing could be
    explained and `raise_all` (no image of the run scored yet), the error is raised: it is the setup's."""
    try:
        return list(explain(batch)), True
    except (UserError, KeyboardInterrupt, torch.cuda.OutOfMemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - one bad image must not end a long run
        error = exc
    if len(batch.samples) > 1:
        parts = [_isolating_failures(explain, Batch(batch.images[i : i + 1], [s]), spec, False) for i, s in enumerate(batch.samples)]
        if not raise_all or any(scored for _, scored in parts):
            return [item for items, _ in parts for item in items], any(scored for _, scored in parts)
    if raise_all:
        raise error
    image_id = batch.samples[0].entry.image_id
    reason = error_reason(error)
    log.warning("image %s skipped: %s", image_id, reason)
    return [SkippedImage(image_id, reason)], False


def _finish(
    spec: RunSpec, out_dir: Path, state: RunState, schema: Any, start: float, clock: StageClock, scored: int, feed: MapFeed | None = None,
) -> RunResult:
    """After the last batch: rank 0 (when every rank is done) joins the parts into records.parquet
    and writes the summary, maps.npz and the report; a data shard keeps its parts for
    `python -m wsl_bench.merge`."""
    distributed.barrier(spec.ranks)
    if not spec.ranks.is_main:
        return RunResult(out_dir, None, None, time.perf_counter() - start, clock.as_dict())
    parts = list_parts(out_dir)
    if not state.complete:
        missing = state.all_batches() - done_batches(parts)
        if missing:
            raise UserError(f"{out_dir}: {len(missing)} batches have no records (a rank failed?); run the same command again to score them")
    if feed is not None and spec.shard.count == 1:
        with clock.time("gallery"):
            feed.close()  # maps.npz; the gallery's saved state stays until the run is marked complete
    wall = time.perf_counter() - start
    state.sessions.append({"wall_time_s": round(wall, 3), "images_scored": scored, "ranks": spec.ranks.world})
    provenance = {**run_provenance(spec, wall), "stage_seconds": {k: round(v, 3) for k, v in clock.as_dict().items()}, "sessions": state.sessions}
    if spec.shard.count > 1:  # a shard: the merge command makes the records and the summary
        text = json.dumps(provenance, indent=2, default=str) + "\n"  # the merge reads it: never a partial file
        replace_atomically(out_dir / "provenance.json", lambda tmp: tmp.write_text(text), "provenance.json", len(text))
        state.complete = True
        state.write(out_dir)
        return RunResult(out_dir, None, None, wall, clock.as_dict())
    with clock.time("summary"):
        if state.complete:
            records = read_records(out_dir / RECORDS_FILE)
            summary = write_report(out_dir, records, spec.metrics, spec.report, provenance)
        else:
            records, summary = write_results(out_dir, parts, schema, spec.metrics, spec.report, provenance)
    state.complete = True
    state.write(out_dir)
    discard_keeper_state(out_dir)  # a restart from here on only rewrites the outputs
    for part in parts:  # records.parquet holds them now
        part.unlink(missing_ok=True)
    if parts and not any(parts[0].parent.iterdir()):
        parts[0].parent.rmdir()
    wall = time.perf_counter() - start
    if spec.report.html:  # report.html, figures/, report_tables.md / .tex
        with clock.time("report"):
            write_run_report(out_dir)
    return RunResult(out_dir, records, summary, wall, clock.as_dict())


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(setting: bool | str, total: int, initial: int = 0) -> Any:
    enabled = sys.stderr.isatty() if setting == "auto" else bool(setting)
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="img", desc="wsl_bench")
