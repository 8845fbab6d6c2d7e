"""Command line: `python -m wsl_bench [hydra overrides]` (also installed as `wsl-bench`).

Before Hydra runs the job, the overrides are composed once here so that every configuration
problem Hydra would report as a multi-line exception (an unknown key, an unknown group option, a
renamed key, a run directory that cannot be made) is one `error:` line naming the fix."""

from __future__ import annotations

import logging
import os
import re
import shlex
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from . import distributed
from .config import CONFIG_DIR
from .errors import ConfigError, UserError
from .resume import check_resumable

log = logging.getLogger("wsl_bench")

# Keys that moved when metrics became units (metric.<name>.*), old prefix -> new.
MOVED_KEYS = {
    "localization": "metric.localization",
    "pointing": "metric.pointing",
    "energy": "metric.energy_pointing",
    "maxboxacc": "metric.maxboxacc",
    "faithfulness.confidence": "metric.avg_drop",
    "faithfulness.insertion_deletion": "metric.insertion_deletion",
    "faithfulness.occlusion": "metric.occlusion_corr",
    "records.shard_images": "records.flush_images",
}


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from .pipeline import run
    from .report.terminal import format_for_terminal
    from .stopping import RunInterrupted

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        result = run(cfg, out_dir)
    except UserError as exc:
        _fail(str(exc))
    except RunInterrupted as stop:
        print(f"{stop}\nresume with: {resume_command(out_dir)}", file=sys.stderr, flush=True)
        stop.forward_signal()  # e.g. submitit's requeue on a preemption notice
        sys.exit(128 + stop.signum)
    if result.summary is None:  # a data shard, or a torchrun rank other than 0
        if distributed.ranks_from_env().is_main:
            print(f"shard {cfg.get('shard')} done, its records in {out_dir}; join the shards with: python -m wsl_bench.merge {out_dir.parent}")
        return
    print(format_for_terminal(result.summary))
    if cfg.get("paper_table"):  # a paper preset: the paper's table beside ours (written by the report stage)
        print("\n" + (out_dir / "table.md").read_text().rstrip())
    print(f"\n{len(result.records)} records, {result.wall_time_s:.1f} s; outputs in {out_dir}")


def resume_command(out_dir: Path) -> str:
    """This process's command line, with the run directory made explicit."""
    args = [a for a in sys.argv[1:] if not a.startswith("hydra.run.dir=")]
    ranks = distributed.ranks_from_env()
    launcher = f"torchrun --nproc_per_node={ranks.world} -m wsl_bench" if ranks.world > 1 else "python -m wsl_bench"
    return " ".join([launcher, *(shlex.quote(a) for a in args), shlex.quote(f"hydra.run.dir={out_dir}")])


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def moved_key_error(overrides: list[str]) -> str | None:
    """The fix for an override of a key that moved (e.g. localization.threshold=0.2), or None."""
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        for old, new in MOVED_KEYS.items():
            if key == old or key.startswith(old + "."):
                why = " (metric settings live under metric.<name>)" if new.startswith("metric.") else ""
                return f"{key} is now {new + key[len(old):]}{why}; use {new + key[len(old):]}={value}"
    return None


def check_overrides(overrides: list[str]) -> list[str]:
    """Compose the configuration as Hydra will and raise a one-line ConfigError for what it
    rejects; returns the overrides to add (to protect a run directory the run will refuse)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException

    moved = moved_key_error(overrides)
    if moved:
        raise ConfigError(moved)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        try:
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
        except MissingConfigException as exc:
            raise ConfigError(_missing_option(str(exc))) from None
        except HydraException as exc:
            raise ConfigError(_override_error(str(exc), overrides, compose)) from None
        run_dir = OmegaConf.select(cfg, "hydra.run.dir")
        with open_dict(cfg):
            del cfg["hydra"]
        job = OmegaConf.to_container(cfg, resolve=True)
    if run_dir:
        check_run_dir(Path(str(run_dir)))
        try:
            check_resumable(Path(str(run_dir)), job)
        except ConfigError:
            # the run refuses this directory after checking the rest of the configuration (so
            # that errors come in their usual order); meanwhile Hydra must not write its
            # .hydra/ files over those of the run that is there
            return ["hydra.output_subdir=null"]
    return []


def _missing_option(message: str) -> str:
    found = re.search(r"Could not find '([^']+)/([^']+)'", message)
    options = re.search(r"Available options in '[^']+':\n((?:\t.*\n?)*)", message)
    if found and options:
        available = ", ".join(line.strip() for line in options.group(1).splitlines() if line.strip())
        return f"{found.group(1)}={found.group(2)} is unknown; available: {available}"
    return message.splitlines()[0]


def _override_error(message: str, overrides: list[str], compose) -> str:
    found = re.match(r"Could not override '([^']+)'", message)
    if not found:
        return message.splitlines()[0]
    key = found.group(1)
    parent, _, leaf = key.rpartition(".")
    try:
        node = OmegaConf.select(compose("config", overrides=[o for o in overrides if not o.startswith(key + "=")]), parent) if parent else None
    except Exception:  # noqa: BLE001 - the message below stays useful without the key list
        node = None
    valid = f"; valid keys of {parent}: {', '.join(str(k) for k in node)}" if isinstance(node, DictConfig) else ""
    return f"{key}: {parent or 'the configuration'} has no setting {leaf!r}{valid}"


def check_run_dir(path: Path) -> None:
    """The run directory must exist or be creatable, else a one-line error naming hydra.run.dir."""
    existing = path.resolve()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        why = "is not a directory" if not existing.is_dir() else "is not writable"
        raise ConfigError(f"cannot create the run directory {path}: {existing} {why}; set hydra.run.dir=/a/writable/folder")


def main() -> None:
    if not CONFIG_DIR.is_dir():
        _fail(f"config directory {CONFIG_DIR} not found; install wsl_bench from its repository with pip install -e .")
    ranks = distributed.ranks_from_env()
    if ranks.world > 1:
        sys.argv[1:] = torchrun_overrides(sys.argv[1:], ranks)
    args = sys.argv[1:]
    if not any(a.startswith("-") for a in args):  # flags (--multirun, --cfg, --help): Hydra's own handling
        try:
            sys.argv.extend(check_overrides(args))
        except UserError as exc:
            _fail(str(exc))
    elif moved := moved_key_error([a for a in args if not a.startswith("-")]):
        _fail(moved)
    _main()


def torchrun_overrides(args: list[str], ranks: distributed.Ranks) -> list[str]:
    """Under torchrun every rank runs in rank 0's run directory (the default one is named after
    the start time, which rank 0 gives the others); only rank 0 writes Hydra's files and log."""
    distributed.init(ranks)
    if not any(a.startswith("hydra.run.dir=") for a in args):
        stamp = distributed.broadcast(time.strftime("%Y-%m-%d_%H-%M-%S"), ranks)
        args = [*args, f"hydra.run.dir=results/runs/{stamp}_${{dataset.name}}_${{model.name}}"]
    if not ranks.is_main:
        args = [*args, "hydra.output_subdir=null", "hydra/job_logging=stdout"]
    return args
