"""The real CLI in a subprocess: the demo run's outputs, and clean failures."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from conftest import run_cli
from wsl_bench.records import RECORD_COLUMNS
from wsl_bench.report import SUMMARY_COLUMNS


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("demo")
    result = run_cli("loader.batch_size=4", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd / "run", result


def test_demo_prints_summary_over_seven_images(demo_run):
    out_dir, result = demo_run
    rows = {
        cells[0]: cells[1:]
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in result.stdout.splitlines() if line.startswith("| "))
    }
    assert rows["metric"] == ["gradcam"]
    assert rows["n_images"] == ["7"] and rows["n_skipped"] == ["0"]
    summary = pd.read_csv(out_dir / "summary.csv")
    assert rows["top1_loc_err"][0].startswith(f"{summary.loc[0, 'top1_loc_err']:.2f} [")
    assert "Traceback" not in result.stderr


def test_records_schema_and_content(demo_run):
    out_dir, _ = demo_run
    records = pd.read_parquet(out_dir / "records.parquet")
    assert list(records.columns) == RECORD_COLUMNS
    # 7 images x (1 gt + top-5) targets x 1 method
    assert len(records) == 7 * 6
    assert set(records["target_source"]) == {"gt", "top1", "top2", "top3", "top4", "top5"}  # each rank labelled
    gt = records[records.target_source == "gt"].set_index("image_id")
    assert gt.loc["chelsea", "target"] == 285 and gt.loc["chelsea", "target_name"] == "Egyptian cat"
    assert list(gt.loc["coffee", "gt_boxes"][0]) == [172, 18, 415, 300]
    assert (gt["width"].to_dict()["camera"], gt["height"].to_dict()["camera"]) == (512, 512)
    # every box lies inside its image; points too
    for row in records.itertuples():
        x0, y0, x1, y1 = row.pred_box
        assert 0 <= x0 <= x1 < row.width and 0 <= y0 <= y1 < row.height
        assert 0 <= row.point_x < row.width and 0 <= row.point_y < row.height
        assert row.loc_correct == (row.iou is not None and row.iou >= 0.5)
    top1 = records[records.pred_rank == 1].set_index("image_id")["target"]
    assert top1["chelsea"] == 285 and top1["camera"] == 872
    assert records.loc[records.pred_rank > 0, "pred_rank"].max() == 5


def test_summary_files_agree_with_records(demo_run):
    out_dir, _ = demo_run
    summary = pd.read_csv(out_dir / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    records = pd.read_parquet(out_dir / "records.parquet")
    top1 = records[records.pred_rank == 1]
    expected_top1_loc_err = 100 * (1 - (top1.class_in_gt & top1.loc_correct).mean())
    assert summary.loc[0, "top1_loc_err"] == pytest.approx(expected_top1_loc_err)
    assert summary.loc[0, "top1_cls_err"] == pytest.approx(100 * (1 - top1.class_in_gt.mean()))
    assert (out_dir / "summary.md").read_text().startswith("| method |")
    prov = json.loads((out_dir / "provenance.json").read_text())
    assert prov["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert prov["wall_time_s"] > 0 and prov["packages"]["torch"]
    assert (out_dir / ".hydra" / "config.yaml").is_file()


def test_missing_dataset_fails_with_one_line_naming_path_and_fix(tmp_path):
    result = run_cli("dataset=voc", f"dataset.root={tmp_path / 'nowhere'}", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and str(tmp_path / "nowhere") in lines[0]
    assert "dataset.root=" in lines[0]
    assert not (tmp_path / "run" / "records.parquet").exists()


def test_unknown_method_and_layer_fail_cleanly_before_compute(tmp_path):
    result = run_cli("+method.nosuch.name=nosuch", "model.target_layer=blocks.99", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "blocks.99" in lines[0] and "conv_head" in lines[0]  # names the candidates
    result = run_cli("+method.nosuch.name=nosuch", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "'nosuch' is unknown" in result.stderr and "gradcam" in result.stderr
