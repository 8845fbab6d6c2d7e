"""The metric unit. A metric (or a family of metrics that share their work) is one class in one
module of this package, registered by name like a method:

- `Settings`: its typed settings (a frozen `wsl_bench.config.Settings` dataclass: types, defaults,
  ranges), configured from `conf/metric/<name>.yaml` as `metric.<name>.<key>`;
- `columns`: the record columns it adds (name, arrow type);
- how it scores: a `MapMetric` scores one image's maps at the evaluation grid against that
  image's ground truth (`score`); a `ModelMetric` runs its own batched forwards on a batch of
  network inputs (`score_batch`); a plain `Metric` only reads columns other stages wrote;
- `statistics()`: its summary values, each computed from the records as per-image sums so that the
  report can bootstrap it exactly (see metrics.aggregate); `tables()`: any per-run tables (curves);
- `provenance()`: the settings as scored, plus anything it counted.

Nothing outside this package knows a metric by name: the pipeline runs the configured units, the
records stage takes their columns, the report their statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch import nn

from ..config import Settings, plain, settings_from
from ..data.sample import ImageEntry, Sample
from ..errors import ConfigError
from ..methods.core import ImageSizeSteps
from ..registry import Registry, user_target
from .aggregate import MetricData
from ..timing import NoClock, StageClock
from .maps import map_extremes, status_codes, to_original_size, view_mask


@dataclass(frozen=True)
class MetricSettings(Settings):
    """Base of every metric's settings; `config_path` is set to `metric.<name>` on registration."""


@dataclass(frozen=True)
class RunInfo:
    """What a unit may need to know about the run beyond its own settings."""

    topk: int = 5  # predicted targets per image (top-k localization needs k >= 5)
    num_classes: int = 0  # classes of the dataset (0: unknown)
    model_id: str = ""  # model name and weights (keys caches of model outputs)


@dataclass(frozen=True)
class Statistic:
    """One summary value. `build(rows, images)` turns one method's scored records into per-image
    sums (MetricData over the image index) or None when nothing was scored; `paired(a, b)` adds
    columns to a paired comparison of two methods' rows (e.g. the Grad-CAM++ win %)."""

    name: str
    build: Callable[[pd.DataFrame, pd.Index], MetricData | None]
    lower_is_better: bool
    digits: int = 2
    paired: Callable[[pd.DataFrame, pd.DataFrame], dict[str, float]] | None = None


class Metric:
    """A metric unit that only reads record columns written by other stages (see module docstring)."""

    name: ClassVar[str] = ""
    Settings: ClassVar[type[MetricSettings]] = MetricSettings
    columns: ClassVar[tuple[tuple[str, pa.DataType], ...]] = ()

    def __init__(self, settings: MetricSettings | None = None, run: RunInfo = RunInfo()) -> None:
        self.settings = settings if settings is not None else self.Settings()
        self.run = run

    def statistics(self) -> list[Statistic]:
        return []

    def tables(self, records: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Extra per-run tables from the records, written as <key>.csv (e.g. accuracy curves)."""
        return {}

    def provenance(self) -> dict[str, Any]:
        """Every setting as scored, and anything the unit counted (recorded in provenance.json)."""
        return self.settings.to_dict()


class ImageTruth:
    """One image's ground truth on the evaluation grid, shared by every metric and every map of
    the image: instance masks are decoded at most once, boxes are grouped by class once."""

    def __init__(self, sample: Sample) -> None:
        self.entry: ImageEntry = sample.entry
        self.size: tuple[int, int] = sample.orig_size
        # [H, W] bool: the pixels the maps cover (a center crop covers part of the image); None: all
        self.valid: torch.Tensor | None = view_mask(sample.orig_size, sample.view)
        self._boxes: dict[int, np.ndarray] = {}

    def boxes_of(self, cls: int) -> np.ndarray:
        """Inclusive boxes [M, 4] of class `cls`."""
        if cls not in self._boxes:
            self._boxes[cls] = self.entry.boxes[self.entry.box_labels == cls]
        return self._boxes[cls]

    @cached_property
    def masks(self) -> dict[int, np.ndarray] | None:
        """Per-class ground-truth masks [H, W] when the dataset has them (COCO, OpenImages), else None."""
        return self.entry.masks() if self.entry.masks is not None else None

    @cached_property
    def ignore(self) -> np.ndarray | None:
        """[H, W] bool: pixels that pixel-level metrics leave out (OpenImages' ignore regions), or None."""
        return self.entry.ignore() if self.entry.ignore is not None else None


@dataclass
class MapChunk:
    """Maps of one image at the evaluation grid, scored together: maps [N, H, W] (float, as the
    methods made them), status [N] (metrics.maps.map_status), the class each explains [N], and
    whether it explains a ground-truth target (rather than a prediction) [N], and the methods'
    own points [N, 2] float (x, y) on that grid, NaN where a map's maximum is its point (None:
    no method of the chunk has its own; see methods.core.MethodSpec.point_at_image_size). In
    `MapMetric.finish` the maps are gone (None): what it needs, `measure` made."""

    maps: torch.Tensor | None
    status: list[str]
    classes: np.ndarray
    is_gt: np.ndarray
    points: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.classes)

    def without_maps(self) -> "MapChunk":
        return MapChunk(None, self.status, self.classes, self.is_gt)


# What `MapMetric.measure` hands to `finish`: named tensors (on the maps' device, then on the host).
Measured = dict[str, torch.Tensor]


class MapMetric(Metric):
    """A metric of one image's maps against its ground truth, at the evaluation grid.

    Implement `score`, or, to keep a GPU busy, the split into `measure` and `finish`:
    `measure(chunk, truth)` does the work on the full-size maps where they are (the GPU),
    batched over the chunk and without waiting for the device (no .cpu(), .item(), .tolist()
    or boolean-mask indexing); its tensors are copied to the host in one non-blocking transfer
    per batch, and `finish(measured, chunk, truth)` turns them into columns in a scoring worker
    process, off the critical path (the place for connected components and other CPU-only
    steps). A unit with the split gets `score` = finish(measure) for free; a unit with only
    `score` is run where the maps are, image by image."""

    def score(self, chunk: MapChunk, truth: ImageTruth) -> dict[str, Sequence[Any]]:
        """{column: [value per map of the chunk]} for this unit's columns (None = not scored)."""
        if not self.splits:
            raise NotImplementedError(f"metric {self.name}: implement score(), or measure() and finish()")
        return self.finish(self.measure(chunk, truth), chunk.without_maps(), truth)

    def measure(self, chunk: MapChunk, truth: ImageTruth) -> Measured:
        """The device part of scoring the chunk: named tensors for `finish`."""
        raise NotImplementedError

    def finish(self, measured: Measured, chunk: MapChunk, truth: ImageTruth) -> dict[str, Sequence[Any]]:
        """The host part: `measure`'s tensors (on the CPU) -> {column: [value per map]}."""
        raise NotImplementedError

    @property
    def splits(self) -> bool:
        return type(self).measure is not MapMetric.measure


@dataclass
class MeasuredChunk:
    """One chunk after the device part of scoring: which (method, target column) pairs it holds,
    the chunk without its maps, the columns already final (map_status, units without the split)
    and each split unit's measured tensors."""

    pairs: list[tuple[str, int]]
    chunk: MapChunk
    columns: dict[str, Sequence[Any]]
    measured: dict[str, Measured]

    def to_host(self, non_blocking: bool = False) -> "MeasuredChunk":
        """The same with every tensor on the CPU (one non-blocking copy each on a GPU: wait for
        the device, e.g. with an event, before reading them)."""
        measured = {u: {k: v.to("cpu", non_blocking=non_blocking) for k, v in m.items()} for u, m in self.measured.items()}
        return MeasuredChunk(self.pairs, self.chunk, self.columns, measured)


@dataclass
class ModelBatch:
    """What model-based metrics get for one batch: the network inputs [B, 3, H, W] and the model,
    the target classes [B, T] with each column's (source, rank) per image, the scores' transform
    (softmax, or sigmoid for multi-label heads) and the input normalization."""

    model: nn.Module
    images: torch.Tensor
    classes: torch.Tensor
    sources: list[list[tuple[str, int]]]
    probabilities: Callable[[torch.Tensor], torch.Tensor]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def pairs(self, which: str) -> list[tuple[int, int]]:
        """(image row, target column) pairs a model metric scores: `top1` (the prediction), `gt`
        (every ground-truth class) or `all`."""
        return [
            (i, t) for i, src in enumerate(self.sources) for t, (source, rank) in enumerate(src)
            if which == "all" or (which == "gt" and source == "gt") or (which == "top1" and rank == 1)
        ]


# Column values of a model metric per (image row, method, target column).
BatchColumns = dict[tuple[int, str, int], dict[str, Any]]


class ModelMetric(Metric):
    """A metric that runs its own batched forwards (faithfulness metrics). Its settings' `target`
    says which targets it scores (ModelBatch.pairs)."""

    def score_batch(self, batch: ModelBatch, maps: Mapping[str, torch.Tensor]) -> BatchColumns:
        """maps: {method: [B, T, h, w]} (methods of one grid size) -> column values per pair."""
        raise NotImplementedError

    @staticmethod
    def gather(batch: ModelBatch, maps: Mapping[str, torch.Tensor], pairs: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For every method (in order) and pair: (image row [N], map [N, h, w], class [N])."""
        methods = list(maps)
        rows = torch.tensor([i for i, _ in pairs] * len(methods), device=batch.images.device)
        cols = torch.tensor([t for _, t in pairs] * len(methods), device=batch.images.device)
        stacked = torch.cat([maps[m][rows[: len(pairs)], cols[: len(pairs)]] for m in methods])
        return rows, stacked, batch.classes.to(batch.images.device)[rows, cols]

    @staticmethod
    def spread(maps: Mapping[str, torch.Tensor], pairs: list[tuple[int, int]], columns: Mapping[str, np.ndarray]) -> BatchColumns:
        """Per-pair values in `gather`'s order -> {(row, method, column): {name: value}} (NaN -> None)."""
        out: BatchColumns = {}
        for k, (method, (i, t)) in enumerate((m, p) for m in maps for p in pairs):
            out[(i, method, t)] = {name: None if np.isnan(v := float(values[k])) else v for name, values in columns.items()}
        return out


# Built-ins: every module of this package (a module without @register_metric registers nothing).
METRICS: Registry[type[Metric]] = Registry("metric", "wsl_bench.metrics")


def register_metric(name: str, *, replace: bool = False) -> Callable[[type[Metric]], type[Metric]]:
    """Register a Metric subclass as `name` (its config node is `metric.<name>`). A name taken by
    another definition is an error unless replace=True (a deliberate replacement)."""

    def wrap(cls: type[Metric]) -> type[Metric]:
        cls.name = name
        cls.Settings.config_path = f"metric.{name}"
        METRICS.register(name, cls, replace=replace)
        return cls

    return wrap


# Keys of a metric's config node that select the unit rather than set it.
_UNIT_KEYS = ("name", "enabled", "module", "_target_")


def metric_from_config(key: str, node: Mapping[str, Any], run: RunInfo = RunInfo()) -> tuple[Metric, bool]:
    """The unit a `conf/metric/<key>.yaml` node describes and whether it is enabled. `module:` (a
    dotted module or a .py path) is imported first so its @register_metric takes effect;
    `_target_: pkg.module.Class` registers that class under the node's name."""
    node = dict(plain(node) or {})
    name = str(node.get("name", key))
    cls = user_target(node, "metric", name)
    if cls is not None:
        if not (isinstance(cls, type) and issubclass(cls, Metric)):
            raise ConfigError(f"metric {name}: {node['_target_']!r} is not a wsl_bench Metric subclass")
        if METRICS.get_or_none(name) is not cls:
            register_metric(name)(cls)
    cls = METRICS.get(name)
    enabled = node.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"metric.{name}.enabled={enabled!r} must be true or false")
    settings = settings_from(cls.Settings, {k: v for k, v in node.items() if k not in _UNIT_KEYS})
    return cls(settings, run), enabled


@dataclass(frozen=True)
class MetricSuite:
    """The run's metric units in configured order, each with its enabled flag. Disabled units keep
    their record columns and summary columns (empty), so a run's files have the same shape
    whichever metrics it computed."""

    units: tuple[Metric, ...]
    enabled: tuple[bool, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.enabled:
            object.__setattr__(self, "enabled", (True,) * len(self.units))
        names = [u.name for u in self.units]
        if len(set(names)) != len(names):
            raise ConfigError(f"metric: a metric is configured twice ({', '.join(names)})")

    @property
    def active(self) -> list[Metric]:
        return [u for u, on in zip(self.units, self.enabled) if on]

    def of_kind(self, kind: type) -> list[Any]:
        return [u for u in self.active if isinstance(u, kind)]

    def columns(self) -> list[tuple[str, pa.DataType]]:
        return [c for u in self.units for c in u.columns]

    def statistics(self) -> list[tuple[Statistic, bool]]:
        """Every unit's statistics in order, with whether it was computed."""
        return [(s, on) for u, on in zip(self.units, self.enabled) for s in u.statistics()]

    def provenance(self) -> dict[str, Any]:
        return {u.name: {"enabled": on, **u.provenance()} for u, on in zip(self.units, self.enabled)}

    def score_models(self, batch: ModelBatch, maps: Mapping[str, torch.Tensor], clock: StageClock = NoClock()) -> BatchColumns:
        """The model metrics of a batch ({method: [B, T, h, w]}), each in batched calls per grid size."""
        out: BatchColumns = {}
        for unit in self.of_kind(ModelMetric):
            with clock.time(f"metric {unit.name}"):
                for group in group_by_grid(maps):
                    for key, values in unit.score_batch(batch, {m: maps[m] for m in group}).items():
                        out.setdefault(key, {}).update(values)
        return out

    def score_image(
        self, sample: Sample, maps: Mapping[str, torch.Tensor], classes: Sequence[int], sources: Sequence[tuple[str, int]],
        upsample: str = "bilinear", at_image_size: ImageSizeSteps | None = None,
        clock: StageClock = NoClock(),
    ) -> dict[tuple[str, int], dict[str, Any]]:
        """The map metrics of one image: maps {method: [T, h, w]} for target classes [T] with their
        (source, rank), upsampled (`upsample`: transform.upsample) to the evaluation grid a chunk
        at a time (methods of one grid size per chunk) -> {(method, target column): {column: value}},
        `map_status` included. at_image_size(maps, methods) -> (maps, own points | None): the
        methods' steps at that size (Explainer.image_size_steps)."""
        measured = self.measure_images([(sample, maps, classes, sources)], upsample=upsample, at_image_size=at_image_size, clock=clock)
        return self.finish_image(sample, measured[0], clock)

    def measure_images(
        self, images: Sequence[tuple[Sample, Mapping[str, torch.Tensor], Sequence[int], Sequence[tuple[str, int]]]],
        pixel_budget: int = 0, upsample: str = "bilinear", at_image_size: ImageSizeSteps | None = None,
        clock: StageClock = NoClock(),
    ) -> list[list[MeasuredChunk]]:
        """The device part of score_image for several images (sample, maps, classes, sources): per
        image its chunks, upsampled, with their status and every split unit's `measure` (units
        without the split are scored here, with `score`). The status of all maps of up to
        `pixel_budget` upsampled pixels (at least one image) is read back at once, so the host
        waits for the device once per group of images, not once per chunk."""
        out: list[list[MeasuredChunk]] = []
        group: list[tuple[Sample, list[tuple[list[tuple[str, int]], torch.Tensor]], Sequence[int], Sequence[tuple[str, int]]]] = []
        pixels = 0
        for sample, maps, classes, sources in images:
            with clock.time("upsample"):
                chunks = []
                for grid in group_by_grid(maps, leading=1):
                    pairs = [(m, t) for m in grid for t in range(len(classes))]
                    for start in range(0, len(pairs), MAPS_PER_CHUNK):
                        chunk_pairs = pairs[start : start + MAPS_PER_CHUNK]
                        full = to_original_size(torch.stack([maps[m][t] for m, t in chunk_pairs]), sample.orig_size, sample.view, upsample)
                        points = None
                        if at_image_size is not None:  # methods' steps at image size (TorchRay's blurs, its center point)
                            full, points = at_image_size(full, [m for m, _ in chunk_pairs])
                        chunks.append((chunk_pairs, full, points))
            group.append((sample, chunks, classes, sources))
            pixels += sum(full.numel() for _, full, _ in chunks)
            if pixels >= pixel_budget:
                out.extend(self._measure_group(group, clock))
                group, pixels = [], 0
        if group:
            out.extend(self._measure_group(group, clock))
        return out

    def _measure_group(self, group: list, clock: StageClock) -> list[list[MeasuredChunk]]:
        with clock.time("map_status"):
            fulls = [full for _, chunks, _, _ in group for _, full, _ in chunks]
            extremes = torch.cat([map_extremes(full) for full in fulls]).cpu().numpy() if fulls else np.zeros((0, 2))
        units = self.of_kind(MapMetric)
        out, offset = [], 0
        for sample, chunks, classes, sources in group:
            truth = ImageTruth(sample)
            measured_chunks = []
            for chunk_pairs, full, points in chunks:
                status = status_codes(extremes[offset : offset + len(full)])
                offset += len(full)
                chunk = MapChunk(
                    full, status, np.array([classes[t] for _, t in chunk_pairs], dtype=np.int64),
                    np.array([sources[t][0] == "gt" for _, t in chunk_pairs]), points,
                )
                columns: dict[str, Sequence[Any]] = {"map_status": status}
                measured: dict[str, Measured] = {}
                for unit in units:
                    with clock.time(f"metric {unit.name}"):
                        if unit.splits:
                            measured[unit.name] = unit.measure(chunk, truth)
                        else:
                            columns.update(unit.score(chunk, truth))
                measured_chunks.append(MeasuredChunk(chunk_pairs, chunk.without_maps(), columns, measured))
            out.append(measured_chunks)
        return out

    def finish_image(self, sample: Sample, chunks: Sequence[MeasuredChunk], clock: StageClock = NoClock()) -> dict[tuple[str, int], dict[str, Any]]:
        """The host part of score_image: each split unit's `finish` on its measured tensors (on the
        CPU) -> {(method, target column): {column: value}}."""
        units = [u for u in self.of_kind(MapMetric) if u.splits]
        truth = ImageTruth(sample)
        out: dict[tuple[str, int], dict[str, Any]] = {}
        for measured in chunks:
            columns = dict(measured.columns)
            for unit in units:
                with clock.time(f"metric {unit.name}"):
                    columns.update(unit.finish(measured.measured[unit.name], measured.chunk, truth))
            for j, pair in enumerate(measured.pairs):
                out[pair] = {name: values[j] for name, values in columns.items()}
        return out


# An image's maps are scored at original size at most this many at a time (memory stays bounded).
MAPS_PER_CHUNK = 16


def group_by_grid(maps: Mapping[str, torch.Tensor], leading: int = 2) -> list[list[str]]:
    """Method names grouped by map grid size (the dims after `leading` batch dims), in order:
    layer-grid CAMs and input-grid pixel methods are batched apart."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for method, m in maps.items():
        groups.setdefault(tuple(m.shape[leading:]), []).append(method)
    return list(groups.values())


def create_metrics(node: Mapping[str, Any] | None, run: RunInfo = RunInfo()) -> MetricSuite:
    """The suite a `metric` config node (one entry per metric) describes."""
    built = [metric_from_config(key, sub, run) for key, sub in dict(node or {}).items()]
    return MetricSuite(tuple(u for u, _ in built), tuple(on for _, on in built))


def default_metrics(run: RunInfo = RunInfo()) -> MetricSuite:
    """The metrics the default configuration selects, with their default settings (for scoring
    records from Python, e.g. `summarize(records)`)."""
    return MetricSuite(tuple(METRICS.get(name)(None, run) for name in default_metric_names()))


def default_metric_names() -> list[str]:
    """The `metric:` list of conf/config.yaml's defaults, in order; all built-ins when the config
    tree is not there (a non-editable install)."""
    from omegaconf import OmegaConf

    from ..config import CONFIG_DIR

    path = CONFIG_DIR / "config.yaml"
    if path.is_file():
        for entry in OmegaConf.to_container(OmegaConf.load(path)).get("defaults", []):
            if isinstance(entry, dict) and "metric" in entry:
                return list(entry["metric"])
    return METRICS.names()
