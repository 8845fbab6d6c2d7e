"""Finished runs as the report reads them: a run directory holds summary.csv and the files beside
it (records.parquet, comparisons.csv, boxacc_curves.csv, provenance.json, .hydra/, maps.npz,
table.csv of a paper preset); a Hydra multirun directory holds one run per job."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import UserError
from ..records.maps import MAPS_FILE, KeptMaps, read_maps

# What the plots read from records.parquet (no boxes, no per-threshold hit vectors: a 50,000-image
# run stays light), and what the gallery reads for its images only.
RECORD_FIELDS = [
    "image_id", "method", "target", "target_name", "target_source", "pred_rank", "class_in_gt", "prob",
    "pointing_difficult", "map_status", "iou", "loc_correct", "point_hit", "energy", "occlusion_corr", "expl_prob",
    "insertion_auc", "deletion_auc", "skip_reason",
]
GALLERY_FIELDS = RECORD_FIELDS + ["width", "height", "pred_box", "gt_boxes", "point_x", "point_y", "notes"]
PAPER_COLUMNS = ["paper", "table", "row", "column", "published", "status", "ours", "ours_lo", "ours_hi", "diff", "n_images", "source"]
PAPER_STATUS = ("verified", "secondary source", "unverified")
# Mean insertion / deletion curves, when a run saves them: method, mode, fraction, prob.
CURVES_FILE = "insertion_deletion_curves.csv"


def _read_csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.is_file() else None


@dataclass
class Run:
    path: Path
    label: str = ""
    overrides: list[str] = field(default_factory=list)

    @cached_property
    def summary(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "summary.csv")

    @cached_property
    def comparisons(self) -> pd.DataFrame | None:
        return _read_csv(self.path / "comparisons.csv")

    @cached_property
    def boxacc_curves(self) -> pd.DataFrame | None:
        return _read_csv(self.path / "boxacc_curves.csv")

    @cached_property
    def insertion_deletion_curves(self) -> pd.DataFrame | None:
        return _read_csv(self.path / CURVES_FILE)

    @cached_property
    def paper_table(self) -> pd.DataFrame | None:
        table = _read_csv(self.path / "table.csv")
        if table is None:
            return None
        missing = [c for c in PAPER_COLUMNS if c not in table.columns]
        if missing:
            raise UserError(f"{self.path / 'table.csv'}: missing columns {', '.join(missing)}; a paper table has {', '.join(PAPER_COLUMNS)}")
        return table

    @cached_property
    def provenance(self) -> dict[str, Any]:
        path = self.path / "provenance.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @cached_property
    def config_text(self) -> str | None:
        path = self.path / ".hydra" / "config.yaml"
        return path.read_text() if path.is_file() else None

    def _read_records(self, fields: list[str], image_ids: list[str] | None = None) -> pd.DataFrame | None:
        path = self.path / "records.parquet"
        if not path.is_file():
            return None
        import pyarrow.parquet as pq

        present = set(pq.read_schema(path).names)
        filters = None if image_ids is None else [("image_id", "in", list(image_ids))]
        return pd.read_parquet(path, columns=[c for c in fields if c in present], filters=filters)

    @cached_property
    def records(self) -> pd.DataFrame | None:
        """Every record, without boxes and hit vectors (RECORD_FIELDS)."""
        return self._read_records(RECORD_FIELDS)

    def records_of(self, image_ids: list[str]) -> pd.DataFrame | None:
        """The records of these images, with boxes and points (GALLERY_FIELDS)."""
        return self._read_records(GALLERY_FIELDS, image_ids)

    @cached_property
    def kept_maps(self) -> KeptMaps | None:
        return read_maps(self.path / MAPS_FILE) if (self.path / MAPS_FILE).is_file() else None

    @property
    def methods(self) -> list[str]:
        return self.summary["method"].astype(str).tolist()

    @property
    def config(self) -> dict[str, Any]:
        return self.provenance.get("config") or {}

    def describe(self) -> str:
        """"demo · efficientnet_lite0 · 7 images"."""
        cfg = self.config
        n = int(self.summary["n_images"].max()) if len(self.summary) else 0
        parts = [str((cfg.get("dataset") or {}).get("name", "")), str((cfg.get("model") or {}).get("name", "")), f"{n:,} images"]
        return " · ".join(p for p in parts if p)


def _read_overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in (OmegaConf.load(path) or [])]


def _job_order(path: Path) -> tuple:
    # Hydra job folders are numbered 0, 1, ..., 10: sort numerically
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(path)))


def find_runs(paths: list[Path]) -> list[Run]:
    """Runs under the given paths: a run directory itself, or every run below a directory (a
    Hydra multirun: one per job, in job order). A path with no run is a UserError."""
    runs: list[Run] = []
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"{path}: no such directory; give a run directory (with summary.csv) or a multirun directory")
        if (path / "summary.csv").is_file():
            found = [path]
        else:
            found = sorted((p.parent for p in path.rglob("summary.csv")), key=_job_order)
        if not found:
            raise UserError(f"{path}: no run found (a run directory holds summary.csv); run python -m wsl_bench first")
        for run_dir in found:
            if all(r.path.resolve() != run_dir.resolve() for r in runs):
                runs.append(Run(run_dir, overrides=_read_overrides(run_dir)))
    _label(runs)
    return runs


def _label(runs: list[Run]) -> None:
    """Each run's label: its overrides that differ between the runs (the sweep's axes), else the
    folder name."""
    axes = sweep_axes(runs)
    for run in runs:
        values = override_values(run)
        run.label = ", ".join(f"{k}={values.get(k, '—')}" for k in axes) or run.path.name


def override_values(run: Run) -> dict[str, str]:
    return {k.lstrip("+~"): v for k, v in (o.split("=", 1) for o in run.overrides if "=" in o)}


def sweep_axes(runs: list[Run]) -> list[str]:
    """Override keys whose values differ between runs, in the order they are first given."""
    keys: list[str] = []
    for run in runs:
        for k in override_values(run):
            if k not in keys:
                keys.append(k)
    values = [override_values(r) for r in runs]
    return [k for k in keys if len({v.get(k) for v in values}) > 1]
