"""Command line: `python -m wsl_bench [hydra overrides]` (also installed as `wsl-bench`)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .errors import UserError

# The config tree lives at the repository top (conf/), beside the package.
CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"
log = logging.getLogger("wsl_bench")


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from .pipeline import run  # heavy imports after argument parsing, so --help is fast
    from .report.terminal import format_for_terminal

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        result = run(cfg, out_dir)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(format_for_terminal(result.summary))
    print(f"\n{len(result.records)} records, {result.wall_time_s:.1f} s; outputs in {out_dir}")


def main() -> None:
    if not CONFIG_DIR.is_dir():
        print(f"error: config directory {CONFIG_DIR} not found; install wsl_bench from its repository with pip install -e .", file=sys.stderr)
        sys.exit(2)
    _main()
