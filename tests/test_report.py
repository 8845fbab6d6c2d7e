"""Summary metrics on hand-built records, bootstrap intervals recomputing each metric exactly as
defined, and paired comparisons between methods."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wsl_bench.config import ReportSettings
from wsl_bench.metrics import RunInfo, default_metrics
from wsl_bench.metrics.avg_drop import win_rate
from wsl_bench.records import RECORD_COLUMNS
from wsl_bench.report import compare, format_summary, summarize
from wsl_bench.report.stats import resample_weights

K = np.arange(100)


def row(image: str, method: str = "gradcam", **values) -> dict:
    base = {c: None for c in RECORD_COLUMNS}
    base.update(image_id=image, method=method, dataset="d", model="m", map_status="ok", target_source="gt", pred_rank=0,
                class_in_gt=True, loc_correct=False, prob=0.5, pointing_difficult=False)
    base.update(values)
    return base


def hand_records(method: str = "gradcam") -> pd.DataFrame:
    rows = [
        # image a: class 1 (hit, loc ok), class 2 (miss, difficult); top-1 right and localized
        row("a", method, target=1, point_hit=True, loc_correct=True, energy=0.8, boxacc_v1_hits=(K >= 51).tolist(),
            boxacc_v2_hits=np.concatenate([K >= 1] * 3).tolist()),
        row("a", method, target=2, point_hit=False, pointing_difficult=True, energy=0.2, map_status="all_zero",
            boxacc_v1_hits=[False] * 100, boxacc_v2_hits=[False] * 300),
        row("a", method, target=1, target_source="top1", pred_rank=1, loc_correct=True, prob=0.8, expl_prob=0.4,
            insertion_auc=0.6, deletion_auc=0.1, occlusion_corr=0.3),
        # image b: class 1 (hit, loc wrong); top-1 wrong class, top-2 right and localized
        row("b", method, target=1, point_hit=True, energy=0.5, boxacc_v1_hits=(K <= 30).tolist(),
            boxacc_v2_hits=np.concatenate([K <= 30] * 3).tolist()),
        row("b", method, target=5, target_source="top1", pred_rank=1, class_in_gt=False, prob=0.5, expl_prob=0.6,
            insertion_auc=0.4, deletion_auc=0.3, occlusion_corr=0.1),
        row("b", method, target=1, target_source="top5", pred_rank=2, loc_correct=True),
        row("c", method, skip_reason="unreadable"),
    ]
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def test_hand_computed_summary():
    s = summarize(hand_records(), settings=ReportSettings(bootstrap=200)).iloc[0]
    assert (s.n_images, s.n_skipped, s.n_degenerate_maps) == (2, 1, 1)
    assert s.top1_loc_err == 50 and s.top5_loc_err == 0 and s.top1_cls_err == 50 and s.top5_cls_err == 0
    assert s.gtk_loc_err == pytest.approx(100 - 100 / 3)
    assert s.pointing_acc == 50  # class 1: 2/2, class 2: 0/1 -> mean of classes, not 2/3
    assert s.pointing_acc_difficult == 0
    assert s.energy_pointing == pytest.approx(100 * 1.5 / 3)
    # per-threshold accuracy over the 3 GT maps, maximized over the threshold for the dataset
    assert s.maxboxacc == pytest.approx(100 / 3)  # never two maps at one threshold
    assert s.maxboxacc_v2 == pytest.approx(200 / 3)  # k in 1..30: a and b hit at every IoU level
    assert s.avg_drop == pytest.approx(25.0) and s.increase_conf == 50.0
    assert s.insertion_auc == pytest.approx(0.5) and s.deletion_auc == pytest.approx(0.2) and s.occlusion_corr == pytest.approx(0.2)
    for name in ("top1_loc_err", "pointing_acc", "maxboxacc", "avg_drop", "insertion_auc"):
        assert s[f"{name}_lo"] <= s[name] + 1e-9 and s[name] <= s[f"{name}_hi"] + 1e-9


def test_topk_below_five_leaves_top5_metrics_out():
    s = summarize(hand_records(), default_metrics(RunInfo(topk=1)), ReportSettings(bootstrap=10)).iloc[0]
    assert np.isnan(s.top5_loc_err) and np.isnan(s.top5_cls_err) and s.top1_loc_err == 50


def many_images(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        for c in rng.choice(5, size=rng.integers(1, 4), replace=False):
            rows.append(row(f"i{i}", target=int(c), point_hit=bool(rng.random() < 0.3 + 0.1 * c),
                            boxacc_v1_hits=(K >= rng.integers(0, 100)).tolist(), boxacc_v2_hits=[False] * 300))
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def pointing_by_definition(records: pd.DataFrame) -> float:
    scored = records[records["point_hit"].notna()]
    return 100 * scored.groupby("target")["point_hit"].mean().mean()


def test_bootstrap_recomputes_the_metric_exactly_on_resampled_images():
    records = many_images()
    images = pd.Index(pd.unique(records["image_id"]))
    defs = {s.name: s for s, _ in default_metrics().statistics()}
    pointing = defs["pointing_acc"].build(records, images)
    boxacc = defs["maxboxacc"].build(records, images)
    weights = next(resample_weights(len(images), 5, seed=3))
    for w, p_vec, b_vec in zip(weights, pointing.values(weights), boxacc.values(weights)):
        # build the resampled dataset literally: each image repeated by its multiplicity
        parts = [records[records["image_id"] == img] for img, times in zip(images, w.astype(int)) for _ in range(times)]
        resampled = pd.concat(parts)
        assert p_vec == pytest.approx(pointing_by_definition(resampled))
        hits = np.stack(resampled["boxacc_v1_hits"].map(np.asarray))
        assert b_vec == pytest.approx(100 * hits.mean(axis=0).max())


def test_bootstrap_is_seeded_and_narrows_with_more_images():
    a = summarize(many_images(40), settings=ReportSettings(seed=1)).iloc[0]
    b = summarize(many_images(40), settings=ReportSettings(seed=1)).iloc[0]
    assert (a.pointing_acc_lo, a.pointing_acc_hi) == (b.pointing_acc_lo, b.pointing_acc_hi)
    big = summarize(many_images(400), settings=ReportSettings(seed=1)).iloc[0]
    assert big.pointing_acc_hi - big.pointing_acc_lo < a.pointing_acc_hi - a.pointing_acc_lo


def two_methods() -> pd.DataFrame:
    base = many_images(60)
    better = base.copy()
    better["method"] = "mycam"
    better["point_hit"] = better["point_hit"].map(lambda v: True if v is not None else None)
    return pd.concat([base, better], ignore_index=True)


def test_paired_comparison_sees_a_real_improvement_and_no_difference():
    records = two_methods()
    res = compare(records, "mycam", "gradcam", "pointing_acc")
    assert res["diff"] == pytest.approx(100 - pointing_by_definition(records[records["method"] == "gradcam"]))
    assert res["significant"] and res["p_better"] == 1.0 and res["lo"] > 0
    same = records[records["method"] == "gradcam"].assign(method="copy")
    res = compare(pd.concat([records, same]), "copy", "gradcam", "pointing_acc")
    assert res["diff"] == 0 and res["lo"] == 0 and res["hi"] == 0 and not res["significant"]
    with pytest.raises(ValueError):
        compare(records, "mycam", "gradcam", "no_such_metric")


def test_win_rate_hand_computed():
    rows = []
    for img, (ya, oa), (yb, ob) in [("a", (1.0, 0.9), (1.0, 0.8)), ("b", (1.0, 0.5), (1.0, 0.6)), ("c", (0.5, 0.4), (0.5, 0.4))]:
        rows.append(row(img, "mine", target_source="top1", pred_rank=1, prob=ya, expl_prob=oa))
        rows.append(row(img, "gradcam", target_source="top1", pred_rank=1, prob=yb, expl_prob=ob))
    records = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    assert win_rate(records, "mine", "gradcam") == pytest.approx(100 / 3)  # a wins, b loses, c ties
    assert win_rate(records, "gradcam", "mine") == pytest.approx(100 / 3)
    assert compare(records, "mine", "gradcam", "avg_drop")["win_pct"] == pytest.approx(100 / 3)


def test_summary_shows_intervals_and_comparisons_with_several_methods():
    records = two_methods()
    summary = summarize(records, settings=ReportSettings(bootstrap=100))
    text = format_summary(summary)
    assert "pointing_acc" in text and "[" in text and "Paired comparison" in text
    assert "| mycam | gradcam | pointing_acc |" in text
    one = format_summary(summarize(many_images(10), settings=ReportSettings(bootstrap=50)))
    assert "Paired comparison" not in one and "energy_pointing" not in one  # metrics nobody has are left out
