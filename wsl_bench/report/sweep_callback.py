"""Hydra callback (conf/config.yaml, hydra.callbacks.sweep_report): when a multirun ends
(`python -m wsl_bench -m ...`), the sweep's report.html in the multirun folder, beside the jobs'
own reports. Off with report.html=false."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not (config.get("report") or {}).get("html", True):
            return
        from .html import write_report_quietly

        write_report_quietly([Path(config.hydra.sweep.dir)], run_reports=False)
