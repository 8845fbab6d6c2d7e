"""Metrics as units: an out-of-tree metric scored by the real CLI, registry collisions, the one
settings schema (defaults from one place, one-line errors before any compute), rank labels,
TorchRay's class average, and a poisoned image that costs only itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import REPO, run_cli
from dataset_fixtures import write_voc
from wsl_bench.cli import check_overrides, moved_key_error
from wsl_bench.config import LoaderSettings, TargetSettings
from wsl_bench.data.sample import ImageEntry, Sample
from wsl_bench.errors import ConfigError
from wsl_bench.methods import METHODS, register_method
from wsl_bench.methods.targets import choose_targets
from wsl_bench.metrics import METRICS, MapMetric, RunInfo, register_metric
from wsl_bench.metrics.pointing import Pointing, PointingSettings
from wsl_bench.pipeline import build_run_spec, run
from wsl_bench.records import RECORD_COLUMNS

CONF = REPO / "conf"
EXAMPLES = REPO / "docs" / "examples"


def compose_run(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=["device=cpu", "progress=false", *overrides])


def test_out_of_tree_metric_is_scored_by_the_cli_with_an_interval(tmp_path):
    """The README's example metric, run exactly as the README says, from its own folder."""
    shutil.copy(EXAMPLES / "my_metrics.py", tmp_path)
    shutil.copytree(EXAMPLES / "my_conf", tmp_path / "my_conf")
    result = run_cli("+metric=[box_coverage]", f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]", "dataset.limit=3",
                     "report.bootstrap=200", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = pd.read_csv(tmp_path / "run" / "summary.csv")
    records = pd.read_parquet(tmp_path / "run" / "records.parquet")
    gt = records[records["target_source"] == "gt"]
    assert gt["box_coverage"].between(0, 1).all() and records.loc[records["target_source"] != "gt", "box_coverage"].isna().all()
    assert summary.loc[0, "box_coverage"] == pytest.approx(100 * gt["box_coverage"].mean())
    assert summary.loc[0, "box_coverage_lo"] <= summary.loc[0, "box_coverage"] <= summary.loc[0, "box_coverage_hi"]
    assert "| box_coverage |" in result.stdout
    assert list(records.columns) == RECORD_COLUMNS[:-2] + ["box_coverage"] + RECORD_COLUMNS[-2:]
    bad = run_cli("+metric=[box_coverage]", f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]", "metric.box_coverage.threshold=2", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: metric.box_coverage.threshold=2 must be <= 1"


def test_a_name_taken_by_a_builtin_is_an_error_unless_replaced_deliberately():
    original = METHODS.get("gradcam")
    with pytest.raises(ConfigError, match="method 'gradcam' is already registered .*builtin.gradcam.*replace=True"):
        register_method("gradcam", layer_grads=True)(lambda p: p.activations.sum(1, keepdim=True))
    assert METHODS.get("gradcam") is original

    def mine(p):
        return torch.zeros(1)

    try:
        register_method("gradcam", replace=True)(mine)
        assert METHODS.get("gradcam").fn is mine
    finally:
        METHODS.register("gradcam", original, replace=True)
    with pytest.raises(ConfigError, match="metric 'pointing' is already registered"):
        register_metric("pointing")(type("MyPointing", (MapMetric,), {}))
    assert METRICS.get("pointing") is Pointing


def test_defaults_live_in_the_schema_only():
    """conf/metric/<name>.yaml selects a unit (enabled) and extends its schema; it sets no value."""
    cfg = compose_run()
    for name in cfg.metric:
        yaml = OmegaConf.load(CONF / "metric" / f"{name}.yaml")
        assert set(yaml) == {"defaults", "enabled"}, name
        assert {k: v for k, v in cfg.metric[name].items() if k != "enabled"} == METRICS.get(name).Settings().to_dict(), name
    assert cfg.metric.localization.threshold == 0.15 and cfg.loader.batch_size == LoaderSettings().batch_size


@pytest.mark.parametrize("override, message", [
    ("loader.batch_size=0", "loader.batch_size=0 must be >= 1"),
    ("targets.topk=-1", "targets.topk=-1 must be >= 0"),
    ("report.ci=95", "report.ci=95 must be < 1"),
    ("metric.localization.threshold=1.5", "metric.localization.threshold=1.5 must be <= 1"),
    ("metric.localization.threshold=-1", "metric.localization.threshold=-1 must be >= 0"),
    ("metric.localization.iou=50", "metric.localization.iou=50 must be <= 1"),
    ("metric.maxboxacc.iou_thresholds=[0.5,70]", "metric.maxboxacc.iou_thresholds=[0.5, 70.0] must be a non-empty list of values in (0, 1]"),
    ("metric.pointing.skip_all_difficult=maybe", "metric.pointing.skip_all_difficult='maybe' must be true or false"),
    ("metric.avg_drop.target=top3", "metric.avg_drop.target='top3' is not supported; use one of 'top1', 'gt', 'all'"),
    ("progress=sometimes", "progress='sometimes' is not valid; use true, false or 'auto'"),
])
def test_bad_values_are_one_line_errors_before_any_compute(override, message):
    with pytest.raises(ConfigError) as err:
        build_run_spec(compose_run(override))
    assert str(err.value) == message


def test_the_cli_rejects_moved_and_unknown_keys_in_one_line(tmp_path):
    assert moved_key_error(["localization.threshold=0.2"]) == (
        "localization.threshold is now metric.localization.threshold (metric settings live under metric.<name>); "
        "use metric.localization.threshold=0.2"
    )
    assert "use metric.occlusion_corr.enabled=true" in moved_key_error(["faithfulness.occlusion.enabled=true"])
    with pytest.raises(ConfigError, match=r"^metric.localization.thrshold: metric.localization has no setting 'thrshold'; valid keys of metric.localization: threshold, comparison"):
        check_overrides(["metric.localization.thrshold=0.2"])
    with pytest.raises(ConfigError, match=r"^method=nosuch is unknown; available: ablationcam, cam,"):
        check_overrides(["method=nosuch"])
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"^cannot create the run directory .*file/run: .*file is not a directory; set hydra.run.dir="):
        check_overrides([f"hydra.run.dir={blocker / 'run'}"])
    check_overrides(["metric.localization.threshold=0.2", "method=[gradcam,gradcampp]"])  # fine: no error
    result = run_cli("localization.threshold=0.2", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and result.stderr.startswith("error: localization.threshold is now")
    assert not (tmp_path / "run").exists()  # stopped before the run directory was made


def test_the_class_count_error_suggests_a_fix_that_works_as_printed(tmp_path):
    """The fix printed for a 20-class dataset with the default model is accepted as printed: the
    run then stops at the next real problem (the placeholder checkpoint), not at the suggestion."""
    voc = write_voc(tmp_path, {"a": ((40, 48), [("cat", 5, 5, 30, 30), ("dog", 2, 2, 10, 10)])})
    data = ["dataset=voc", f"dataset.root={voc}"]
    with pytest.raises(ConfigError) as err:
        build_run_spec(compose_run(*data))
    suggested = str(err.value).split("e.g. ", 1)[1].split()
    assert suggested[0] == "model=torchvision" and "model.multilabel=true" in suggested and suggested[-1] == "model.num_classes=20"
    check_overrides([*data, *suggested])
    with pytest.raises(ConfigError, match="^model.checkpoint=/path/to/weights.pth not found"):
        build_run_spec(compose_run(*data, *suggested))


def test_rank_labels_follow_the_prediction_rank():
    logits = torch.arange(12.0).flip(0)[None]  # class 0 highest
    sample = Sample(ImageEntry("a", Path("a.jpg"), labels=(3,)), None, (10, 10))
    targets = choose_targets(logits, [sample], TargetSettings(gt=True, topk=10))
    assert targets.classes[0].tolist() == [3, *range(10)]
    assert targets.sources[0] == [("gt", 0)] + [(f"top{r}", r) for r in range(1, 11)]
    assert choose_targets(logits[:, :4], [sample], TargetSettings(gt=False, topk=10)).sources[0][-1] == ("top4", 4)  # k > classes


def pointing_rows(hits: dict[tuple[str, int], bool]) -> pd.DataFrame:
    return pd.DataFrame([
        {"image_id": img, "target": c, "target_source": "gt", "point_hit": h, "pointing_difficult": False} for (img, c), h in hits.items()
    ])


def test_torchray_class_average_counts_classes_never_seen_as_zero():
    rows = pointing_rows({("a", 0): True, ("a", 1): False, ("b", 0): True, ("b", 1): True})
    images = pd.Index(["a", "b"])
    present = Pointing(PointingSettings(), RunInfo(num_classes=3)).statistics()[0].build(rows, images)
    every = Pointing(PointingSettings(class_average="all"), RunInfo(num_classes=3)).statistics()[0].build(rows, images)
    assert present.value() == pytest.approx(100 * (1 + 0.5) / 2)  # classes 0 and 1
    assert every.value() == pytest.approx(100 * (1 + 0.5 + 0) / 3)  # class 2 never seen: 0, as TorchRay
    # a resample holding only image a: class 1 has 0/1, class 0 1/1
    assert every.values(np.array([[2.0, 0.0]]))[0] == pytest.approx(100 * (1 + 0 + 0) / 3)
    with pytest.raises(ConfigError, match="class_average=all needs"):
        Pointing(PointingSettings(class_average="all"), RunInfo())


POISONED = "camera"


@register_metric("test_poison")
class Poison(MapMetric):
    """Fails on one image only: a defect of one image's scoring (as a corrupt annotation would be)."""

    def score(self, chunk, truth):
        if truth.entry.image_id == POISONED:
            raise ValueError("poisoned annotation")
        return {}


def test_a_failing_image_costs_only_itself_not_its_batch(tmp_path):
    base = ["dataset.limit=4", "report.bootstrap=50", "metric.avg_drop.enabled=false"]
    clean = run(compose_run(*base, "loader.batch_size=1"), tmp_path / "clean").records
    cfg = compose_run(*base, "loader.batch_size=4")
    OmegaConf.set_struct(cfg, False)
    cfg.metric.test_poison = {"enabled": True}
    records = run(cfg, tmp_path / "poisoned").records
    skipped = records[records["skip_reason"].notna()]
    assert set(skipped["image_id"]) == {POISONED} and len(skipped) == 1
    assert skipped["skip_reason"].iloc[0] == "error: ValueError: poisoned annotation"
    good = records[records["skip_reason"].isna()].drop(columns=["notes", "skip_reason"]).reset_index(drop=True)
    expected = clean[clean["image_id"] != POISONED].drop(columns=["notes", "skip_reason"]).reset_index(drop=True)
    assert good["image_id"].nunique() == 3
    pd.testing.assert_frame_equal(good, expected[good.columns], check_dtype=False)  # a skipped row makes ints nullable


@register_method("test_always_fails")
def always_fails(p):
    raise RuntimeError("broken method")


def test_a_failure_of_every_image_is_raised_not_recorded(tmp_path):
    cfg = compose_run("dataset.limit=2")
    OmegaConf.set_struct(cfg, False)
    cfg.method = {"test_always_fails": {"name": "test_always_fails"}}
    with pytest.raises(RuntimeError, match="broken method"):
        run(cfg, tmp_path / "r")


def test_a_target_layer_without_feature_maps_is_one_line_naming_candidates(tmp_path):
    with pytest.raises(ConfigError, match=r"^method gradcam: target layer Linear outputs \[1, 1000\], not feature maps \[B, C, h, w\]; set model.target_layer= to a convolutional layer, e.g. one of: .*bn2"):
        run(compose_run("dataset.limit=1", "model.target_layer=classifier", "targets.topk=0"), tmp_path / "r")
