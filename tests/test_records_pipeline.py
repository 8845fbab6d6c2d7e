"""The metrics through the real pipeline (real model, demo photos): the records schema, every
metric column filled, the summary with intervals and comparisons, the MaxBoxAcc curves file,
metric settings in provenance.json, and the occlusion cache reused by a second run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from wsl_bench.methods import register_method
from wsl_bench.pipeline import run
from wsl_bench.records import RECORD_COLUMNS, RECORD_SCHEMA
from wsl_bench.report import summary_columns

CONF = Path(__file__).resolve().parent.parent / "conf"


@register_method("test_scaled_gradcam", layer_grads=True)
def scaled_gradcam(p, factor: float = 3.0) -> torch.Tensor:
    """Grad-CAM times a positive factor: no localization or pointing result may change."""
    weights = p.layer_grads.mean(dim=(-2, -1), keepdim=True)
    return factor * torch.relu((weights * p.activations.unsqueeze(1)).sum(dim=2))


def config(tmp_path: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "dataset.limit=2", "device=cpu", "progress=false", "report.bootstrap=200",
            "metric.insertion_deletion.enabled=true", "metric.insertion_deletion.step=0.25",
            "metric.occlusion_corr.enabled=true", "metric.occlusion_corr.patch=112", "metric.occlusion_corr.stride=56",
            f"metric.occlusion_corr.cache_dir={tmp_path / 'cache'}", *overrides,
        ])
    OmegaConf.set_struct(cfg, False)
    cfg.method.test_scaled_gradcam = {"name": "test_scaled_gradcam", "params": {"factor": 3.0}}
    return cfg


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("metrics_run")
    return tmp, run(config(tmp), tmp / "run1")


def test_records_schema_and_metric_columns(first_run):
    tmp, result = first_run
    table = pq.read_table(result.out_dir / "records.parquet")
    assert table.schema.names == RECORD_COLUMNS and table.schema.equals(RECORD_SCHEMA)
    rec = result.records
    assert set(rec["method"]) == {"gradcam", "test_scaled_gradcam"} and rec["image_id"].nunique() == 2
    gt, top1 = rec[rec["target_source"] == "gt"], rec[rec["pred_rank"] == 1]
    assert gt["energy"].notna().all() and gt["boxacc_v1_hits"].map(len).eq(100).all() and gt["boxacc_v2_hits"].map(len).eq(300).all()
    assert rec.loc[rec["target_source"] != "gt", "boxacc_v1_hits"].isna().all()
    for col in ("expl_prob", "insertion_auc", "deletion_auc", "occlusion_corr"):
        assert top1[col].notna().all() and rec.loc[rec["pred_rank"] != 1, col].isna().all(), col
    assert top1["insertion_auc"].between(0, 1).all() and top1["occlusion_corr"].between(-1, 1).all()


def test_positive_scaling_of_a_method_changes_no_map_metric(first_run):
    _, result = first_run
    rec = result.records.sort_values(["image_id", "target_source", "pred_rank", "target"])
    a, b = rec[rec["method"] == "gradcam"], rec[rec["method"] == "test_scaled_gradcam"]
    for col in ("loc_correct", "point_x", "point_y", "point_hit", "iou", "occlusion_corr"):
        assert a[col].reset_index(drop=True).equals(b[col].reset_index(drop=True)), col
    assert np.allclose(a["energy"].dropna(), b["energy"].dropna())
    assert [list(v) for v in a["boxacc_v2_hits"].dropna()] == [list(v) for v in b["boxacc_v2_hits"].dropna()]
    assert np.allclose(a["expl_prob"].dropna(), b["expl_prob"].dropna(), atol=1e-5)


def test_summary_files_and_settings(first_run):
    _, result = first_run
    out = result.out_dir
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == summary_columns() and len(summary) == 2
    assert summary["n_images"].tolist() == [2, 2]
    for name in ("top1_loc_err", "pointing_acc", "maxboxacc_v2", "avg_drop", "insertion_auc", "occlusion_corr"):
        assert summary[name].notna().all() and (summary[f"{name}_lo"] <= summary[name] + 1e-9).all()
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert (comparisons["method"] == "test_scaled_gradcam").all() and (comparisons["baseline"] == "gradcam").all()
    assert comparisons.loc[comparisons["metric"] == "pointing_acc", "diff"].iloc[0] == 0
    assert "Paired comparison" in (out / "summary.md").read_text()
    curves = pd.read_csv(out / "boxacc_curves.csv")
    assert set(curves["version"]) == {"v1", "v2"} and len(curves) == 2 * (100 + 300)
    best = curves[(curves["method"] == "gradcam") & (curves["version"] == "v1")]["acc"].max()
    assert best == pytest.approx(summary.loc[summary["method"] == "gradcam", "maxboxacc"].iloc[0])
    settings = json.loads((out / "provenance.json").read_text())["metric_settings"]
    assert settings["pointing"]["tolerance"] == 15 and settings["maxboxacc"]["step"] == 0.01
    assert {k: settings["occlusion_corr"][k] for k in ("patch", "stride", "fill", "chunk_size")} == {"patch": 112, "stride": 56, "fill": 0.0, "chunk_size": 64}
    assert settings["occlusion_corr"]["maps_computed"] == 2  # one per image: both methods share it


def test_occlusion_maps_come_from_the_cache_on_a_second_run(first_run, tmp_path):
    tmp, result = first_run
    again = run(config(tmp, "metric.insertion_deletion.enabled=false"), tmp_path / "run2")
    settings = json.loads((again.out_dir / "provenance.json").read_text())["metric_settings"]
    assert settings["occlusion_corr"]["maps_computed"] == 0
    key = ["image_id", "method", "target_source", "pred_rank", "target"]
    a = result.records.sort_values(key)["occlusion_corr"].to_numpy()
    b = again.records.sort_values(key)["occlusion_corr"].to_numpy()
    assert np.array_equal(np.isnan(a.astype(float)), np.isnan(b.astype(float))) and np.allclose(np.nan_to_num(a.astype(float)), np.nan_to_num(b.astype(float)))


def test_insertion_deletion_curves_are_kept_and_averaged(first_run):
    """step=0.25: 5 points per curve (0, 1/4, ..., all pixels); the mean curve's trapezoid area is
    the mean of the rows' AUCs (the AUC is linear in the curve)."""
    _, result = first_run
    rec = result.records
    scored = rec[rec["insertion_auc"].notna()]
    assert scored["insertion_curve"].map(len).eq(5).all() and scored["deletion_curve"].map(len).eq(5).all()
    assert rec.loc[rec["insertion_auc"].isna(), "insertion_curve"].isna().all()
    first = scored.iloc[0]
    assert np.isclose(np.trapezoid(first["insertion_curve"], dx=0.25), first["insertion_auc"], atol=1e-6)
    curves = pd.read_csv(result.out_dir / "insertion_deletion_curves.csv")
    assert set(curves["method"]) == {"gradcam", "test_scaled_gradcam"} and set(curves["mode"]) == {"insertion", "deletion"}
    for (method, mode), rows in curves.groupby(["method", "mode"]):
        assert rows["fraction"].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
        aucs = scored.loc[scored["method"] == method, f"{mode}_auc"]
        assert rows["n_maps"].iloc[0] == len(aucs)
        assert np.isclose(np.trapezoid(rows["prob"], rows["fraction"]), aucs.mean(), atol=1e-6)
