"""The configuration schema: every setting is a field of a frozen `Settings` dataclass, which holds
its type, its default and its allowed values (the one place for each). `settings_from` turns a
config node into such an object, rejecting unknown keys and bad values with one line that names
the key and the fix; `register_config_schemas` gives Hydra the same defaults, so the yaml files
under conf/ select and document but never repeat them.

Run-level settings (loader, targets, report, records) live here; each metric's own settings live
in its module (wsl_bench/metrics/<name>.py)."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping

from .errors import ConfigError

# The config tree lives at the repository top (conf/), beside the package.
CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"


def setting(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None) -> Any:
    """A settings field with its default and, for numbers, its allowed range (checked on construction)."""
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    if isinstance(default, (list, dict)):
        raise TypeError("settings defaults must be immutable (use a tuple)")
    return field(default=default, metadata={"bounds": bounds})


_BOUND_TEXT = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_BOUND_TEST = {"ge": lambda v, b: v >= b, "gt": lambda v, b: v > b, "le": lambda v, b: v <= b, "lt": lambda v, b: v < b}


def _show(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, str) else str(value)


def _describe(kind: Any) -> str:
    if typing.get_origin(kind) is Literal:
        return ", ".join(_show(a) for a in typing.get_args(kind))
    return {bool: "true, false", int: "a whole number", float: "a number", str: "a string"}.get(kind, str(kind))


def _coerce(value: Any, kind: Any, key: str) -> Any:
    """`value` as type `kind` (bool, int, float, str, Literal, tuple[X, ...], X | None), or a ConfigError."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            try:
                return _coerce(value, option, key)
            except ConfigError as exc:
                error = exc
        if len(options) == 1:
            raise error
        raise ConfigError(f"{key}={_show(value)} is not valid; use {' or '.join(_describe(a) for a in options)}")
    if origin is Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        raise ConfigError(f"{key}={_show(value)} is not supported; use one of {', '.join(_show(a) for a in args)}")
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, typing.Sequence):
            raise ConfigError(f"{key}={_show(value)} must be a list, e.g. {key}=[...]")
        item = args[0]
        return tuple(_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={_show(value)} must be true or false")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise ConfigError(f"{key}={_show(value)} must be a whole number")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}={_show(value)} must be a number")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}={_show(value)} must be a string")
        return value
    if kind is Any:
        return value
    raise TypeError(f"unsupported settings type {kind!r} for {key}")


@dataclass(frozen=True)
class Settings:
    """Base of every settings dataclass: on construction each field is coerced to its declared
    type and checked against its range, so a bad value fails where it is made, naming its key
    (`config_path` + field name)."""

    config_path: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            key = f"{self.config_path}.{f.name}" if self.config_path else f.name
            given = getattr(self, f.name)
            value = _coerce(given, hints[f.name], key)
            for bound, limit in f.metadata.get("bounds", {}).items():
                # (numbers only: "auto" and other literal choices have no bounds)
                if isinstance(value, (int, float)) and not isinstance(value, bool) and not _BOUND_TEST[bound](value, limit):
                    raise ConfigError(f"{key}={_show(given)} must be {_BOUND_TEXT[bound]} {limit}")
            object.__setattr__(self, f.name, value)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (tuples as lists), as recorded in provenance.json and given to Hydra."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


S = typing.TypeVar("S", bound=Settings)


def settings_from(cls: type[S], node: Mapping[str, Any] | None, path: str | None = None) -> S:
    """`cls` built from a config node (at `path`, default `cls.config_path`): unknown keys and bad
    values are one-line ConfigErrors naming the key."""
    values = dict(plain(node) or {})
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"{path or cls.config_path}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(names)}")
    return cls(**values)


def plain(node: Any) -> Any:
    """A config node (DictConfig / ListConfig, resolved) as plain Python containers."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


# ---------------------------------------------------------------- run-level settings


@dataclass(frozen=True)
class LoaderSettings(Settings):
    """Batching and decoding: `num_workers` DataLoader processes decode images while the model
    runs (`auto`: half the spare CPU cores, see pipeline.worker_counts; none for a run of a
    single batch)."""

    config_path: ClassVar[str] = "loader"
    batch_size: int = setting(16, ge=1)
    num_workers: int | Literal["auto"] = setting("auto", ge=0)


@dataclass(frozen=True)
class ScoringSettings(Settings):
    """Where the map metrics run: `workers` processes score one batch's maps while the model runs
    the next (`auto`: the spare CPU cores the decoding workers leave, see pipeline.worker_counts;
    none for a run of a single batch; 0: in the run's own process). `device_measure`: the units' device part
    (upsampling, thresholds, points, energy, normalization) runs where the maps are and only the
    CPU-only part (connected components) in the workers; `auto`: on a GPU. Records are the same
    whatever these are."""

    config_path: ClassVar[str] = "scoring"
    workers: int | Literal["auto"] = setting("auto", ge=0)
    device_measure: bool | Literal["auto"] = "auto"


@dataclass(frozen=True)
class TargetSettings(Settings):
    """Which classes get maps: each ground-truth class (`gt`; GT-known localization, pointing game,
    MaxBoxAcc) and the top-k predictions (`topk`; top-1 / top-5 localization error)."""

    config_path: ClassVar[str] = "targets"
    gt: bool = True
    topk: int = setting(5, ge=0)


@dataclass(frozen=True)
class ReportSettings(Settings):
    """Percentile bootstrap over images for every interval and paired comparison; `html`: the
    run's report.html at its end, its gallery showing up to `gallery` images (their maps kept in
    maps.npz; 0 = none)."""

    config_path: ClassVar[str] = "report"
    bootstrap: int = setting(1000, ge=0)
    seed: int = 0
    ci: float = setting(0.95, gt=0, lt=1)
    html: bool = True
    gallery: int = setting(48, ge=0)


@dataclass(frozen=True)
class RecordSettings(Settings):
    """Records are written to a new part file every `flush_images` images or `flush_seconds`
    seconds, whichever comes first: a killed run loses at most that much and resumes from there.
    `save_maps` keeps every image's maps (float16, native grid, all targets) in maps.npz for
    re-scoring later."""

    config_path: ClassVar[str] = "records"
    flush_images: int = setting(256, ge=1)
    flush_seconds: float = setting(30.0, gt=0)
    save_maps: bool = False


@dataclass(frozen=True)
class RunSettings(Settings):
    """Top-level scalars: `device` auto (cuda when available) / cpu / cuda[:i]; `progress` auto
    (a bar only on an interactive terminal) / true / false; `precision` fp32, or bf16 / fp16 to
    run the network passes under torch.autocast; `shard` i/n: score data shard i of n (whole
    loader batches; `python -m wsl_bench.merge` joins the shards)."""

    device: str = "auto"
    progress: bool | Literal["auto"] = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    shard: str | None = None


RUN_SECTIONS: dict[str, type[Settings]] = {
    "loader": LoaderSettings, "scoring": ScoringSettings, "targets": TargetSettings, "report": ReportSettings, "records": RecordSettings,
}


def run_defaults() -> dict[str, Any]:
    """The run-level defaults as one config node (what `conf/config.yaml` extends)."""
    return {**RunSettings().to_dict(), **{name: cls().to_dict() for name, cls in RUN_SECTIONS.items()}}


def register_config_schemas() -> None:
    """Give Hydra the defaults of the run settings (`schema/run`) and of every built-in metric
    (`schema/metric/<name>`), which conf/config.yaml and conf/metric/<name>.yaml extend."""
    from hydra.core.config_store import ConfigStore

    from .metrics.base import METRICS

    store = ConfigStore.instance()
    store.store(group="schema", name="run", node=run_defaults())
    for name in METRICS.names():
        store.store(group="schema/metric", name=name, node=METRICS.get(name).Settings().to_dict())
