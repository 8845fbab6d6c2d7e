"""What a run records about itself in provenance.json: code and package versions, device,
weights, dataset size, the resolved configuration and the wall time."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .pipeline import RunSpec


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_provenance(spec: "RunSpec", wall_time_s: float) -> dict[str, Any]:
    device = spec.device
    return {
        "wsl_bench": _version("wsl_bench"),
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {p: _version(p) for p in ("torch", "torchvision", "timm", "numpy", "scipy", "pandas", "hydra-core")},
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "model_weights": spec.model.weights,
        "target_layer": spec.model.target_layer,
        "dataset_images": len(spec.dataset.entries),
        "config": spec.config,
        "bootstrap": {"resamples": spec.report.bootstrap, "seed": spec.report.seed, "level": spec.report.ci, "unit": "image"},
        "wall_time_s": round(wall_time_s, 3),
    }
