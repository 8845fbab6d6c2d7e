"""Paper tables (wsl_bench.report.paper_tables): the published CSVs against the reference
(../shared/reference/published_tables.md, hand-copied here), every preset's mapping checked
against its CSV, cells filled from a hand-made summary, the paper-shaped Markdown, the assembly
of several runs, and dataset subsets. No model runs here (see test_paper_presets.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from conftest import REPO
from wsl_bench.data.base import AnnotatedImages
from wsl_bench.data.sample import ImageEntry
from wsl_bench.data.subsets import select_subset
from wsl_bench.errors import ConfigError, UserError
from wsl_bench.report.paper_tables import (
    PAPER_COLUMNS, PUBLISHED_DIR, assemble_and_write, fill_paper_table, format_cell, format_tables, main, parse_paper_table,
    read_paper_cells, read_published, write_paper_table,
)

CONF = REPO / "conf"
PRESETS = [
    "gradcam_ilsvrc_loc", "gradcampp_drop_increase", "scorecam_tables", "rise_insertion_deletion", "wsol_maxboxacc",
    "gradcam_occlusion_faithfulness", "pointing_voc07", "pointing_coco14",
]

# (csv, table, row, column) -> (published as written, status), copied by hand from published_tables.md
REFERENCE = {
    ("gradcam.csv", "Table 1", "VGG-16: Grad-CAM", "top-1 loc err"): ("56.51", "secondary source"),
    ("gradcam.csv", "Table 1", "VGG-16-GAP: CAM", "top-1 cls err"): ("33.4", "secondary source"),
    ("gradcam.csv", "Table 1", "VGG-16-GAP: CAM", "top-5 cls err"): ("", "secondary source"),
    ("gradcam.csv", "Table 1", "VGG-16: Backprop", "top-5 loc err"): ("51.46", "unverified"),
    ("gradcam.csv", "Table 1", "VGG-16: c-MWP", "top-1 loc err"): ("70.92", "unverified"),
    ("gradcam.csv", "Table 1", "GoogLeNet: Grad-CAM", "top-5 cls err"): ("11.3", "secondary source"),
    ("gradcam.csv", "Table 1, torchvision re-run", "AlexNet: Grad-CAM", "top-5 cls err"): ("21.69", "unverified"),
    ("gradcam.csv", "Sec. 5.2, faithfulness", "c-MWP", "rank correlation with occlusion"): ("0.220", "verified"),
    ("gradcampp.csv", "Table 1 (VGG-16, ImageNet val)", "Win %", "Grad-CAM++"): ("70.72", "verified"),
    ("gradcampp.csv", "Table 9 (AlexNet, VOC07 val)", "Average drop %", "Grad-CAM"): ("45.82", "verified"),
    ("gradcampp.csv", "Table 11 (ResNet-50, VOC07 val)", "Increase in confidence %", "Grad-CAM"): ("21.99", "verified"),
    ("gradcampp.csv", "Table 3 (VGG-16, VOC12 val)", "Loc (delta = 0.25)", "Grad-CAM++"): ("0.38", "verified"),
    ("scorecam.csv", "Table 1 (2000 images)", "Average increase %", "Mask"): ("5.29", "verified"),
    ("scorecam.csv", "Table 2 (500 images)", "Energy pointing %", "IntegratedGrad"): ("44.7", "verified"),
    ("scorecam.csv", "Table 3 (2000 images)", "Deletion", "Score-CAM"): ("0.077", "verified"),
    ("rise.csv", "Deletion / insertion (ResNet50, ImageNet val)", "LIME", "Insertion"): ("0.6940", "unverified"),
    ("rise.csv", "Deletion / insertion (ResNet50, ImageNet val)", "RISE", "Deletion"): ("0.1076", "unverified"),
    ("wsol.csv", "MaxBoxAccV2 and PxAP", "CAM (Inception)", "CUB MaxBoxAccV2"): ("56.7", "verified"),
    ("wsol.csv", "MaxBoxAccV2 and PxAP", "Center baseline", "ImageNet MaxBoxAccV2"): ("52.5", "verified"),
    ("pointing.csv", "VOC07 test", "contrastive EBP", "ResNet50 all"): ("90.7", "verified"),
    ("pointing.csv", "COCO14 val", "extremal perturbation", "VGG16 difficult"): ("45.9", "verified"),
    ("pointing.csv", "COCO14 val", "center", "ResNet50 all"): ("27.8", "verified"),
}
# cells per table (rows x columns of the paper, holes excluded)
SHAPES = {
    "gradcam.csv": {"Table 1": 24, "Table 1, torchvision re-run": 12, "Sec. 5.2, faithfulness": 5},
    "gradcampp.csv": {**{t: 6 for t in ("Table 1 (VGG-16, ImageNet val)", "Table 2 (VGG-16, VOC07 val)", "Table 8 (AlexNet, ImageNet val)",
                                        "Table 9 (AlexNet, VOC07 val)", "Table 10 (ResNet-50, ImageNet val)", "Table 11 (ResNet-50, VOC07 val)",
                                        "Table 3 (VGG-16, VOC12 val)")}},
    "scorecam.csv": {"Table 1 (2000 images)": 10, "Table 2 (500 images)": 8, "Table 3 (2000 images)": 6},
    "rise.csv": {"Deletion / insertion (ResNet50, ImageNet val)": 8},
    "wsol.csv": {"MaxBoxAccV2 and PxAP": 11},
    "pointing.csv": {"VOC07 test": 36, "COCO14 val": 36},
}


def test_published_csvs_hold_the_reference_figures_with_their_status():
    assert sorted(p.name for p in PUBLISHED_DIR.glob("*.csv")) == sorted(SHAPES)
    for name, shape in SHAPES.items():
        table = read_published(name)
        assert table.groupby("table", sort=False).size().to_dict() == shape, name
        assert table["source"].str.len().min() > 20
    for (name, table, row, column), (value, status) in REFERENCE.items():
        published = read_published(name)
        cell = published[(published["table"] == table) & (published["row"] == row) & (published["column"] == column)]
        assert cell[["published", "status"]].values.tolist() == [[value, status]], (table, row, column)
    # every figure of the TorchRay table, row by row (section 5 of the reference)
    voc = read_published("pointing.csv").query("table == 'VOC07 test' and row == 'Grad-CAM'")["published"].tolist()
    assert voc == ["86.6", "74.0", "90.4", "82.3"]


@pytest.mark.parametrize("content, message", [
    ("paper,table,row,column,published,status\n", "missing column"),
    ("paper,table,row,column,published,status,source\np,t,r,c,1.0,maybe,s\n", "unknown status 'maybe'"),
    ("paper,table,row,column,published,status,source\np,t,r,c,n/a,verified,s\n", "'n/a' is not a number"),
    ("paper,table,row,column,published,status,source\np,t,r,c,1,verified,s\np,t,r,c,2,verified,s\n", "p / t / r / c is listed twice"),
])
def test_a_bad_published_csv_is_one_clear_error(tmp_path, content, message):
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(ConfigError, match=message):
        read_published(str(tmp_path / "bad.csv"))
    with pytest.raises(ConfigError, match="no such file; use one of gradcam.csv"):
        read_published("nosuch.csv")


def compose_preset(name: str, tmp_path: Path, *overrides: str):
    """The preset as Hydra composes it. Options a preset names that this branch lacks yet (methods,
    models, metrics or transforms other work adds) get placeholder yamls on a search path, so the
    mapping of every preset is checked now; the real ones shadow them once they land."""
    import yaml

    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    text = (CONF / "experiment" / f"{name}.yaml").read_text()
    parts = [CONF / "experiment" / name / p.name for p in (CONF / "experiment" / name).glob("*.yaml")] if (CONF / "experiment" / name).is_dir() else []
    for source in [text] + [p.read_text() for p in parts]:
        for entry in yaml.safe_load(source).get("defaults", []):
            if not isinstance(entry, dict):
                continue
            for key, value in entry.items():
                group = key.removeprefix("override /")
                for option in value if isinstance(value, list) else [value]:
                    if group in ("method", "model", "metric", "transform") and not (CONF / group / f"{option}.yaml").is_file():
                        header = {"method": f"# @package method.{option}\nname: {option}\nparams: {{}}\n",
                                  "metric": f"# @package metric.{option}\nenabled: true\n"}
                        (stubs / group).mkdir(parents=True, exist_ok=True)
                        (stubs / group / f"{option}.yaml").write_text(header.get(group, f"name: {option}\n"))
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[f"+experiment={name}", f"hydra.searchpath=[file://{stubs}]", *overrides])


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_maps_cells_of_its_published_tables_to_its_methods(name, tmp_path):
    cfg = compose_preset(name, tmp_path)
    table = parse_paper_table(cfg.paper_table)
    assert table.cells and set(table.published["table"]) == {c.table for c in table.cells}
    # every method a cell names is a method of conf/method/ (or one that other work adds); the
    # preset runs those of the cells it fills (CAM and the center baseline: runs of other models)
    assert all((CONF / "method" / f"{c.method}.yaml").is_file() or (tmp_path / "stubs" / "method" / f"{c.method}.yaml").is_file() for c in table.cells)
    assert table.filled(), f"{name} as configured fills no cell"
    for cell in table.filled().values():
        assert cell.method in cfg.method


def test_the_scorecam_parts_select_images_methods_and_tables(tmp_path):
    base = compose_preset("scorecam_tables", tmp_path)
    energy = compose_preset("scorecam_tables", tmp_path, "experiment/scorecam_tables@_global_=table_2")
    assert base.dataset.subset.n == 2000 and base.dataset.subset.rule is None and list(base.metric) == ["avg_drop", "insertion_deletion"]
    assert energy.dataset.subset.n == 500 and energy.dataset.subset.rule == "one_box" and list(energy.metric) == ["energy_pointing"]
    assert {"smoothgrad", "integrated_gradients", "gradient"} <= set(energy.method) and "smoothgrad" not in base.method
    filled = {t: {c.table for c in parse_paper_table(cfg.paper_table).filled().values()} for t, cfg in (("1_3", base), ("2", energy))}
    assert filled == {"1_3": {"Table 1 (2000 images)", "Table 3 (2000 images)"}, "2": {"Table 2 (500 images)"}}


def hand_table(tmp_path: Path) -> dict:
    """A published CSV of two tables and a paper_table node over it."""
    (tmp_path / "paper.csv").write_text(
        "paper,table,row,column,published,status,source\n"
        "P,T1,gc,acc,50.5,verified,src one\n"
        "P,T1,gc,err,,verified,src one\n"
        "P,T1,gp,acc,60.25,secondary source,src one\n"
        "P,T1,gp,err,0.125,unverified,src one\n"
        "P,T2,win,gc,40,verified,src two\n"
    )
    return {
        "published": str(tmp_path / "paper.csv"),
        "run": {"model": "m1", "data": "d"},
        "tables": [
            {"table": "T1", "when": {"data": "d"},
             "rows": {"gc": {"method": "gradcam", "when": {"model": "m1"}}, "gp": {"method": "gradcampp", "when": {"model": ["m2", "m3"]}}},
             "columns": {"acc": {"statistic": "acc"}, "err": {"statistic": "err"}}},
            {"table": "T2", "rows": {"win": {"statistic": "drop", "paired": "win_pct"}}, "columns": {"gc": {"method": "gradcam", "versus": "gradcampp"}}},
        ],
    }


def hand_summary() -> pd.DataFrame:
    return pd.DataFrame([
        {"method": "gradcam", "n_images": 7, "acc": 55.0, "acc_lo": 50.0, "acc_hi": 60.0, "err": 0.25, "err_lo": 0.125, "err_hi": 0.5},
        {"method": "gradcampp", "n_images": 7, "acc": 65.0, "acc_lo": 61.0, "acc_hi": 69.0, "err": np.nan, "err_lo": np.nan, "err_hi": np.nan},
    ])


def test_cells_take_the_summary_values_of_the_runs_that_fill_them(tmp_path):
    node = hand_table(tmp_path)
    table = parse_paper_table(node)
    calls = []

    def compare_cell(method, versus, statistic):
        calls.append((method, versus, statistic))
        return {"win_pct": 42.5, "n_images": 6}

    cells = fill_paper_table(table, hand_summary(), compare_cell).cells
    assert list(cells.columns) == PAPER_COLUMNS and len(cells) == 5
    by = {(r["table"], r["row"], r["column"]): r for _, r in cells.iterrows()}
    gc_acc = by[("T1", "gc", "acc")]
    assert (gc_acc["ours"], gc_acc["ours_lo"], gc_acc["ours_hi"], gc_acc["diff"], gc_acc["n_images"]) == (55.0, 50.0, 60.0, 55.0 - 50.5, 7)
    assert by[("T1", "gc", "err")]["ours"] == 0.25 and math.isnan(by[("T1", "gc", "err")]["diff"])  # no published figure: no difference
    assert by[("T1", "gp", "acc")]["ours"] != by[("T1", "gp", "acc")]["ours"]  # model m1 is not one of m2, m3: not filled
    assert (by[("T2", "win", "gc")]["ours"], by[("T2", "win", "gc")]["diff"], by[("T2", "win", "gc")]["n_images"]) == (42.5, 2.5, 6)
    assert calls == [("gradcam", "gradcampp", "drop")]
    assert cells["published"].tolist() == ["50.5", "", "60.25", "0.125", "40"] and cells["status"].iloc[2] == "secondary source"

    node["run"]["model"] = "m3"  # now the gp row is this run's; its err is NaN in the summary
    result = fill_paper_table(parse_paper_table(node), hand_summary(), compare_cell)
    gp = result.cells[result.cells["row"] == "gp"]
    assert gp["ours"].tolist()[0] == 65.0 and gp["diff"].tolist()[0] == pytest.approx(4.75) and np.isnan(gp["ours"].tolist()[1])
    assert any("gradcampp err" in n for n in result.notes)
    node["run"]["data"] = "other"  # the table's own condition fails: T1 stays empty
    empty = fill_paper_table(parse_paper_table(node), hand_summary(), compare_cell).cells
    assert empty.loc[empty["table"] == "T1", "ours"].isna().all()
    notes = fill_paper_table(parse_paper_table(node), hand_summary().iloc[1:], compare_cell).notes
    assert any("lacks: gradcam" in n for n in notes)


@pytest.mark.parametrize("edit, message", [
    (lambda n: n["tables"][0]["rows"].update({"gx": {"method": "x"}}), r"'gx' is not a row of 'T1'; its rows: gc, gp"),
    (lambda n: n["tables"][0].update(table="T9"), r"table='T9' is not in .*; its tables: T1, T2"),
    (lambda n: n["tables"][0]["columns"]["acc"].update(method="cam"), "method is set by both the row .gradcam. and the column .cam."),
    (lambda n: n["tables"][0]["columns"]["acc"].pop("statistic"), "'gc' / 'acc': no statistic"),
    (lambda n: n["tables"][1]["columns"]["gc"].pop("versus"), "paired=win_pct needs versus"),
    (lambda n: n["tables"][0].update(when={"split": "val"}), "when: names split, not a key of paper_table.run .model, data."),
    (lambda n: n["tables"][0]["rows"]["gc"].update(colour="red"), "unknown key.s. colour"),
    (lambda n: n["tables"].append(dict(n["tables"][0])), "fills T1 / gc / acc twice"),  # one cell mapped twice for this run
])
def test_a_bad_mapping_is_one_clear_error(tmp_path, edit, message):
    node = hand_table(tmp_path)
    edit(node)
    with pytest.raises(ConfigError, match=message):
        parse_paper_table(node).filled()


def test_cells_print_as_ours_interval_published_and_difference():
    row = {"published": "56.51", "status": "secondary source", "ours": 55.123, "ours_lo": 53.0, "ours_hi": 57.25, "diff": 55.123 - 56.51}
    assert format_cell(row) == "55.12 [53.00, 57.25] / 56.51† (-1.39)"
    no_interval = {**row, "published": "0.1232", "status": "unverified", "ours": 0.13, "ours_lo": np.nan, "ours_hi": np.nan, "diff": 0.13 - 0.1232}
    assert format_cell(no_interval) == "0.1300 / 0.1232? (+0.0068)"
    assert format_cell({**row, "published": "", "status": "verified", "ours": np.nan, "diff": np.nan}) == "– / –"
    assert format_cell({**row, "published": "33.4", "status": "verified", "ours": np.nan, "diff": np.nan}) == "– / 33.4"


def test_markdown_keeps_the_papers_rows_and_columns(tmp_path):
    cells = fill_paper_table(parse_paper_table(hand_table(tmp_path)), hand_summary(), lambda *a: {"win_pct": 42.5, "n_images": 6}).cells
    text = format_tables(cells, ["a note"])
    t1 = text.split("## P: T1")[1].split("## P: T2")[0]
    assert "| | acc | err |" in t1 and t1.index("| gc |") < t1.index("| gp |")
    assert "| gc | 55.00 [50.00, 60.00] / 50.5 (+4.50) | 0.250 [0.125, 0.500] / – |" in t1
    assert "Source: src one." in t1 and "Images scored: 7." in t1 and text.rstrip().endswith("- a note")


def write_run(directory: Path, cells: pd.DataFrame) -> Path:
    directory.mkdir(parents=True)
    (directory / "summary.csv").write_text("method\n")
    cells.to_csv(directory / "table.csv", index=False)
    return directory


def test_assembly_takes_each_cell_from_the_run_that_filled_it(tmp_path, capsys):
    node = hand_table(tmp_path)
    runs = {}
    for model in ("m1", "m2"):
        node["run"]["model"] = model
        runs[model] = fill_paper_table(parse_paper_table(node), hand_summary(), lambda *a: {"win_pct": 42.5, "n_images": 6})
    runs["m2"].cells = runs["m2"].cells[runs["m2"].cells["table"] == "T1"]  # m2's run filled the gp row and nothing of T2
    write_run(tmp_path / "sweep" / "0", runs["m1"].cells)
    write_run(tmp_path / "sweep" / "1", runs["m2"].cells)
    assert main([str(tmp_path / "sweep")]) == 0
    assert "written:" in capsys.readouterr().out
    merged = read_paper_cells(tmp_path / "sweep" / "table.csv")
    assert merged[["table", "row", "column"]].values.tolist() == [
        ["T1", "gc", "acc"], ["T1", "gc", "err"], ["T1", "gp", "acc"], ["T1", "gp", "err"], ["T2", "win", "gc"]]
    assert merged["ours"].tolist()[:3] == [55.0, 0.25, 65.0] and merged["ours"].tolist()[4] == 42.5
    assert merged["published"].tolist() == ["50.5", "", "60.25", "0.125", "40"]
    assert "Assembled from 2 run(s), 4 of 5 cells filled" in (tmp_path / "sweep" / "table.md").read_text()

    write_run(tmp_path / "again" / "0", runs["m1"].cells)
    with pytest.raises(UserError, match="T1 / gc / acc is filled by both"):
        assemble_and_write([tmp_path / "sweep" / "0", tmp_path / "again" / "0"], tmp_path / "out")
    with pytest.raises(UserError, match="give --out DIR"):
        assemble_and_write([tmp_path / "sweep" / "0"])
    assert main([str(tmp_path / "stubs_nowhere")]) == 2 and "not a directory" in capsys.readouterr().err


def entry(image_id: str, labels, boxes, size=(100, 100)) -> ImageEntry:
    boxes = np.array(boxes, dtype=np.int64).reshape(-1, 5)
    return ImageEntry(image_id, Path(image_id), tuple(labels), boxes[:, 1:], boxes[:, 0], np.zeros(len(boxes), dtype=bool), size_hint=size)


def test_subsets_draw_seeded_images_and_keep_one_small_box_images():
    # 100 x 100 images: a 70 x 70 box covers 49% (kept), 71 x 71 50.4% (not)
    data = AnnotatedImages("d", [
        entry("small", [3], [[3, 0, 0, 69, 69]]),
        entry("large", [3], [[3, 0, 0, 70, 70]]),
        entry("two_boxes", [3], [[3, 0, 0, 9, 9], [3, 20, 20, 29, 29]]),
        entry("two_classes", [3, 4], [[3, 0, 0, 9, 9], [4, 20, 20, 29, 29]]),
        entry("tall", [1], [[1, 0, 0, 9, 98]], size=(200, 10)),  # 10 x 99 of 10 x 200: 49.5%
    ], ["c"] * 5, [("rejected", "why")])
    kept = select_subset(data, {"rule": "one_box", "max_box_fraction": 0.5})
    assert [e.image_id for e in kept.entries] == ["small", "tall"] and kept.rejected == []
    assert select_subset(data, None) is data
    many = AnnotatedImages("d", [entry(f"i{k}", [0], [[0, 0, 0, 1, 1]]) for k in range(50)], ["c"], [])
    draws = [[e.image_id for e in select_subset(many, {"n": 10, "seed": s}).entries] for s in (0, 0, 1)]
    assert draws[0] == draws[1] != draws[2] and len(set(draws[0])) == 10
    assert draws[0] == sorted(draws[0], key=lambda i: int(i[1:]))  # in the split's order
    assert len(select_subset(many, {"n": 80}).entries) == 50
    with pytest.raises(ConfigError, match="dataset.subset.n=0 must be >= 1"):
        select_subset(many, {"n": 0})
    with pytest.raises(ConfigError, match="dataset.subset: unknown key.s. size"):
        select_subset(many, {"size": 3})
