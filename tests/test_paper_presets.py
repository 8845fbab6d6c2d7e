"""Every paper preset (conf/experiment/) run end to end on a tiny fixture in its dataset's real
layout, writing its paper-shaped table: the published figures read exactly from the CSV, ours
equal to the run's own summary, the table in the paper's rows and columns. The photos are the
demo's real ones, laid out as ILSVRC / wsolevaluation / VOC / COCO; the weights are the shipped
EfficientNet-Lite0 (ImageNet) or a seeded random ResNet-18 head (VOC, COCO), standing in for the
paper's model through `paper_table.run.model=...` (the paper's VGG-16 / ResNet-50 / Caffe files
would take hundreds of MB and minutes on 2 cores). Sizes (images, input side, masks, iterations)
are cut where the full protocol would be too slow; the presets keep the paper's.

A preset whose methods, models or metrics another branch adds skips, naming what is missing, and
runs by itself once they land."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from conftest import REPO, run_cli
from dataset_fixtures import ilsvrc_xml, write_cub, write_voc
from wsl_bench.data.imagenet_classes import imagenet_wnids
from wsl_bench.errors import ConfigError
from wsl_bench.metrics.avg_drop import win_rate
from wsl_bench.pipeline import build_run_spec, run
from wsl_bench.report.paper_tables import PAPER_COLUMNS, parse_paper_table, read_paper_cells, read_published

CONF = REPO / "conf"
DEMO = REPO / "wsl_bench" / "data" / "demo_annotations.csv"
VOC_OF_DEMO = {"chelsea": "cat", "motorcycle": "motorbike", "grace_hopper": "person"}
COCO_OF_DEMO = {"chelsea": 17, "motorcycle": 4, "grace_hopper": 1}  # COCO category ids: cat, motorcycle, person


# ---------------------------------------------------------------- what other branches add


def missing(*needs: str) -> list[str]:
    """The needs not on this branch: `group=option` (a conf/ yaml), `metric.<name>.<key>` (a
    metric setting), `method.<name>.<param>` (a method parameter)."""
    from wsl_bench.methods import METHODS
    from wsl_bench.methods.core import accepted_params
    from wsl_bench.metrics import METRICS

    out = []
    for need in needs:
        if "=" in need:
            group, option = need.split("=")
            ok = (CONF / group / f"{option}.yaml").is_file()
        else:
            kind, name, key = need.split(".")
            if kind == "metric":
                ok = METRICS.get_or_none(name) is not None and key in METRICS.get(name).Settings.__dataclass_fields__
            else:
                ok = METHODS.get_or_none(name) is not None and key in (accepted_params(METHODS.get(name)) or [key])
        if not ok:
            out.append(need)
    return out


def require(*needs: str) -> None:
    lacking = missing(*needs)
    if lacking:
        pytest.skip("needs " + ", ".join(lacking) + " (added by another branch; this test runs once it is on main)")


# ---------------------------------------------------------------- fixtures: real photos, real layouts


def demo_photos(side: int = 128) -> list[tuple[dict, Image.Image, float]]:
    """The demo photos (annotation row, RGB image with shorter side `side`, scale)."""
    rows = list(csv.DictReader(line for line in DEMO.open() if not line.startswith("#")))
    out = []
    for row in rows:
        image = Image.open(Path(importlib.util.find_spec(row["package"]).origin).parent / row["file"]).convert("RGB")
        scale = side / min(image.size)
        out.append((row, image.resize((round(image.width * scale), round(image.height * scale))), scale))
    return out


def scaled_box(row: dict, scale: float, image: Image.Image) -> list[int]:
    x0, y0, x1, y1 = (round(int(row[k]) * scale) for k in ("x_min", "y_min", "x_max", "y_max"))
    return [x0, y0, min(x1, image.width - 1), min(y1, image.height - 1)]


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory) -> Path:
    """ILSVRC2012 val layout (val/*.JPEG, val_bbox/*.xml) and wsolevaluation metadata of 4 demo photos."""
    root = tmp_path_factory.mktemp("ILSVRC2012")
    meta = root / "metadata" / "ILSVRC" / "test"
    meta.mkdir(parents=True)
    ids, labels, boxes = [], [], []
    for i, (row, image, scale) in enumerate(demo_photos()[:4], 1):
        image_id = f"ILSVRC2012_val_{i:08d}"
        (root / "val").mkdir(exist_ok=True)
        (root / "val_bbox").mkdir(exist_ok=True)
        image.save(root / "val" / f"{image_id}.JPEG", quality=90)
        box = scaled_box(row, scale, image)
        wnid = imagenet_wnids()[int(row["class_index"])]
        (root / "val_bbox" / f"{image_id}.xml").write_text(ilsvrc_xml(image_id, (image.height, image.width), [(wnid, *box)]))
        ids.append(f"val/{image_id}.JPEG")
        labels.append(f"val/{image_id}.JPEG,{row['class_index']}")
        boxes.append(f"val/{image_id}.JPEG," + ",".join(map(str, box)))
    (meta / "image_ids.txt").write_text("\n".join(ids) + "\n")
    (meta / "class_labels.txt").write_text("\n".join(labels) + "\n")
    (meta / "localization.txt").write_text("\n".join(boxes) + "\n")
    return root


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    """VOCdevkit/VOC2007 with the cat, motorbike and person photos in both the val and test splits."""
    root = tmp_path_factory.mktemp("voc")
    photos = {row["image_id"]: (row, image, scale) for row, image, scale in demo_photos()}
    objects = {}
    for name, cls in VOC_OF_DEMO.items():
        row, image, scale = photos[name]
        x0, y0, x1, y1 = scaled_box(row, scale, image)
        objects[name] = ((image.height, image.width), [(cls, x0 + 1, y0 + 1, x1 + 1, y1 + 1)])
    voc = write_voc(root, objects, split="val")
    (voc / "ImageSets" / "Main" / "test.txt").write_text("\n".join(objects) + "\n")
    for name, (_, image, _) in ((n, photos[n]) for n in objects):  # the real photos over write_voc's drawn ones
        image.save(voc / "JPEGImages" / f"{name}.jpg", quality=90)
    return voc


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> Path:
    """coco/val2014 + annotations/instances_val2014.json (80 categories) of the same three photos."""
    import json

    root = tmp_path_factory.mktemp("coco")
    (root / "val2014").mkdir()
    (root / "annotations").mkdir()
    photos = {row["image_id"]: (row, image, scale) for row, image, scale in demo_photos()}
    images, annotations = [], []
    for i, (name, category) in enumerate(COCO_OF_DEMO.items(), 1):
        row, image, scale = photos[name]
        file_name = f"COCO_val2014_{i:012d}.jpg"
        image.save(root / "val2014" / file_name, quality=90)
        x0, y0, x1, y1 = scaled_box(row, scale, image)
        images.append({"id": i, "file_name": file_name, "height": image.height, "width": image.width})
        annotations.append({"id": i, "image_id": i, "category_id": category, "iscrowd": 0, "area": float((x1 - x0) * (y1 - y0)),
                            "bbox": [x0, y0, x1 - x0 + 1, y1 - y0 + 1], "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]})
    categories = [{"id": c, "name": f"category_{c}", "supercategory": "thing"} for c in range(1, 81)]
    doc = {"info": {"year": 2014}, "licenses": [], "images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / "instances_val2014.json").write_text(json.dumps(doc))
    return root


@pytest.fixture(scope="module")
def random_heads(tmp_path_factory) -> dict[int, Path]:
    """Seeded random ResNet-18 checkpoints with a 20-class (VOC) and an 80-class (COCO) head."""
    from torchvision.models import resnet18

    out = {}
    for classes in (20, 80):
        torch.manual_seed(classes)
        path = tmp_path_factory.mktemp("weights") / f"resnet18_{classes}.pth"
        torch.save(resnet18(num_classes=classes).state_dict(), path)
        out[classes] = path
    return out


def stand_in(checkpoint: Path, classes: int) -> list[str]:
    return ["model=torchvision", "model.name=resnet18", f"model.checkpoint={checkpoint}", f"model.num_classes={classes}", "model.multilabel=true"]


# ---------------------------------------------------------------- running a preset and checking its table


def compose_preset(name: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[f"+experiment={name}", "device=cpu", "progress=false", "report.bootstrap=200", *overrides])


def run_preset(name: str, out: Path, *overrides: str):
    cfg = compose_preset(name, *overrides)
    return cfg, run(cfg, out)


def check_table(cfg, out: Path) -> pd.DataFrame:
    """The run's table.csv / table.md against the preset's published CSV and the run's summary."""
    table = parse_paper_table(cfg.paper_table)
    written = read_paper_cells(out / "table.csv")
    assert list(written.columns) == PAPER_COLUMNS
    published = read_published(cfg.paper_table.published)
    published = published[published["table"].isin(set(table.published["table"]))].reset_index(drop=True)
    # every published cell of the preset's tables, in the CSV's order, figure, status and source as written
    assert written[["paper", "table", "row", "column", "published", "status", "source"]].equals(published)
    summary = pd.read_csv(out / "summary.csv").set_index("method")
    filled = table.filled()
    for _, row in written.iterrows():
        cell = filled.get((row["table"], row["row"], row["column"]))
        if cell is None:
            assert pd.isna(row["ours"])
        elif cell.paired is None:  # exactly the summary's (NaN where it has none, e.g. no difficult pair)
            ours = summary.loc[cell.method, [cell.statistic, cell.statistic + "_lo", cell.statistic + "_hi", "n_images"]].astype(float)
            np.testing.assert_array_equal(row[["ours", "ours_lo", "ours_hi", "n_images"]].astype(float).to_numpy(), ours.to_numpy())
        if pd.notna(row["ours"]) and row["published"]:
            assert row["diff"] == pytest.approx(row["ours"] - float(row["published"]))
    text = (out / "table.md").read_text()
    for (paper, name), group in written.groupby(["paper", "table"], sort=False):
        section = text.split(f"## {paper}: {name}\n", 1)[1].split("\n## ", 1)[0]
        assert "| | " + " | ".join(dict.fromkeys(group["column"])) + " |" in section
        lines = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| |")]
        assert [line.split(" | ")[0][2:] for line in lines] == list(dict.fromkeys(group["row"]))
    return written


# ---------------------------------------------------------------- the presets


def test_gradcam_ilsvrc_loc_multirun_assembles_the_models_columns(imagenet, tmp_path):
    """The real CLI, as the README says: a multirun over the table's models (the shipped weights
    standing in for VGG-16 and AlexNet), each job's table, and the assembled one."""
    result = run_cli("-m", "+experiment=gradcam_ilsvrc_loc", f"dataset.root={imagenet}", "dataset.limit=3", "model=efficientnet_lite0",
                     "paper_table.run.model=vgg16,alexnet", "transform.size=96", "device=cpu", "report.bootstrap=200",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [compose_preset("gradcam_ilsvrc_loc", f"paper_table.run.model={m}") for m in ("vgg16", "alexnet")]
    tables = [check_table(cfg, tmp_path / "sweep" / str(i)) for i, cfg in enumerate(jobs)]
    assert [int(t["ours"].notna().sum()) for t in tables] == [12, 8]  # VGG-16: Grad-CAM + Backprop in both tables; AlexNet: Grad-CAM
    merged = read_paper_cells(tmp_path / "sweep" / "table.csv")
    assert merged[["table", "row", "column", "published"]].equals(tables[0][["table", "row", "column", "published"]])
    union = tables[0]["ours"].fillna(tables[1]["ours"])
    assert merged["ours"].equals(union) and int(merged["ours"].notna().sum()) == 20
    assert "paper table of the multirun" in result.stdout and "## Grad-CAM (Selvaraju et al. 2017): Table 1" in result.stdout
    summary = pd.read_csv(tmp_path / "sweep" / "0" / "summary.csv")
    assert summary["n_images"].tolist() == [3, 3] and summary["top5_loc_err"].notna().all()


def test_gradcampp_drop_increase_imagenet_with_win_rates_both_ways(imagenet, tmp_path):
    cfg, result = run_preset("gradcampp_drop_increase", tmp_path, f"dataset.root={imagenet}", "model=efficientnet_lite0",
                             "paper_table.run.model=vgg16", "transform.size=96")
    table = check_table(cfg, tmp_path)
    first = table[table["table"] == "Table 1 (VGG-16, ImageNet val)"].set_index(["row", "column"])
    assert first["ours"].notna().all() and table["ours"].notna().sum() == 6
    comparisons = pd.read_csv(tmp_path / "comparisons.csv").set_index(["method", "metric"])
    assert first.loc[("Win %", "Grad-CAM++"), "ours"] == comparisons.loc[("gradcampp", "avg_drop"), "win_pct"]
    assert first.loc[("Win %", "Grad-CAM"), "ours"] == win_rate(result.records, "gradcam", "gradcampp")
    assert result.records["target_source"].unique().tolist() == ["top1"]  # the predicted class only


def test_gradcampp_drop_increase_voc07_val_with_a_voc_head(voc, random_heads, tmp_path):
    cfg, result = run_preset("gradcampp_drop_increase", tmp_path, "dataset=voc07", "dataset.split=val", f"dataset.root={voc}",
                             *stand_in(random_heads[20], 20), "paper_table.run.model=torchray_vgg16", "transform.size=64")
    table = check_table(cfg, tmp_path)
    assert set(table.loc[table["ours"].notna(), "table"]) == {"Table 2 (VGG-16, VOC07 val)"}
    assert (result.records["prob"].between(0, 1)).all() and len(pd.unique(result.records["image_id"])) == 3


def test_rise_insertion_deletion(imagenet, tmp_path):
    cfg, result = run_preset("rise_insertion_deletion", tmp_path, f"dataset.root={imagenet}", "dataset.limit=2", "model=efficientnet_lite0",
                             "paper_table.run.model=resnet50", "transform.size=64", "method.rise.params.n_masks=32",
                             "method.occlusion.params.patch=16", "method.occlusion.params.stride=16")
    table = check_table(cfg, tmp_path)
    assert table["ours"].notna().sum() == 6 and table.loc[table["row"] == "LIME", "ours"].isna().all()
    assert table["ours"].dropna().between(0, 1).all()


def test_scorecam_tables_both_parts(imagenet, tmp_path):
    require("method=smoothgrad", "method=integrated_gradients", "method=meaningful_perturbation")
    # Score-CAM's masked forwards per channel: a 192-channel layer of the shipped model, not its 1280-channel last one
    fast = ["model=efficientnet_lite0", "model.target_layer=blocks.5", "paper_table.run.model=vgg16", "transform.size=64",
            f"dataset.root={imagenet}", "method.rise.params.n_masks=32", "method.meaningful_perturbation.params.iterations=3"]
    cfg, first = run_preset("scorecam_tables", tmp_path / "1_3", *fast, "dataset.subset.n=2", "metric.insertion_deletion.step=0.1")
    table = check_table(cfg, tmp_path / "1_3")
    assert set(table.loc[table["ours"].notna(), "table"]) == {"Table 1 (2000 images)", "Table 3 (2000 images)"}
    assert len(pd.unique(first.records["image_id"])) == 2  # 2 of the 4 images, seeded
    cfg, second = run_preset("scorecam_tables", tmp_path / "2", *fast, "experiment/scorecam_tables@_global_=table_2",
                             "method.smoothgrad.params.samples=2", "method.integrated_gradients.params.steps=2")
    table = check_table(cfg, tmp_path / "2")
    assert set(table.loc[table["ours"].notna(), "table"]) == {"Table 2 (500 images)"} and table["ours"].notna().sum() == 8
    assert sorted(pd.unique(second.records["image_id"])) == ["ILSVRC2012_val_00000002", "ILSVRC2012_val_00000003"]


def test_score_cam_subsets_on_the_ilsvrc_layout(imagenet):
    """Table 2's rule on real annotations: the espresso (29% of its photo) and the tripod (26%)
    qualify, the cat (88%) and the moped (57%) do not; Table 1's seeded draw is a subset."""
    from omegaconf import OmegaConf

    from wsl_bench.data import build_dataset

    def ids(**subset):
        node = OmegaConf.create({"name": "imagenet", "root": str(imagenet), "split": "val", "subset": subset})
        return [e.image_id for e in build_dataset(node).entries]

    assert ids(rule="one_box", max_box_fraction=0.5, n=500) == ["ILSVRC2012_val_00000002", "ILSVRC2012_val_00000003"]
    assert ids(rule="one_box", max_box_fraction=0.27) == ["ILSVRC2012_val_00000003"]
    drawn = ids(n=2, seed=0)
    assert len(drawn) == 2 and drawn == ids(n=2, seed=0) and set(drawn) < set(ids())


def test_wsol_maxboxacc_cam_and_the_center_baseline_without_a_model(imagenet, tmp_path):
    require("metric=pxap", "metric.maxboxacc.mode")
    meta = ["dataset.metadata=" + str(imagenet / "metadata" / "ILSVRC" / "test"), f"dataset.root={imagenet}"]
    cfg, _ = run_preset("wsol_maxboxacc", tmp_path / "cam", *meta, "model=efficientnet_lite0", "paper_table.run.model=resnet50")
    cam = check_table(cfg, tmp_path / "cam")
    assert cam.loc[cam["ours"].notna(), ["row", "column"]].values.tolist() == [["CAM (ResNet)", "ImageNet MaxBoxAccV2"]]
    cfg, center = run_preset("wsol_maxboxacc", tmp_path / "center", *meta, "model=none", "method=center")
    table = check_table(cfg, tmp_path / "center")
    assert table.loc[table["ours"].notna(), ["row", "column"]].values.tolist() == [["Center baseline", "ImageNet MaxBoxAccV2"]]
    assert center.records["model"].unique().tolist() == ["none"]


def test_gradcam_occlusion_faithfulness_voc07_val(voc, random_heads, tmp_path):
    require("method=contrastive_excitation_backprop", "model=torchray_vgg16")
    cfg, _ = run_preset("gradcam_occlusion_faithfulness", tmp_path, f"dataset.root={voc}", *stand_in(random_heads[20], 20),
                        "paper_table.run.model=torchray_vgg16", "transform.size=64", "metric.occlusion_corr.patch=16",
                        "metric.occlusion_corr.stride=16", "metric.occlusion_corr.cache_dir=null")
    table = check_table(cfg, tmp_path)
    assert table["ours"].notna().sum() == 4 and table.loc[table["row"] == "CAM", "ours"].isna().all()


POINTING_NEEDS = ("method=deconvnet", "method=excitation_backprop", "method=contrastive_excitation_backprop", "method=extremal_perturbation",
                  "model=torchray_vgg16", "model=torchray_resnet50", "transform=torchray", "method.center.origin", "method.gradient.smooth",
                  "method.guided_backprop.smooth", "method.rise.input_size")


@pytest.mark.parametrize("preset, data", [("pointing_voc07", "voc"), ("pointing_coco14", "coco")])
def test_pointing_presets(preset, data, request, random_heads, tmp_path):
    require(*POINTING_NEEDS)
    root, classes = (request.getfixturevalue("voc"), 20) if data == "voc" else (request.getfixturevalue("coco"), 80)
    flags = []
    if data == "voc":  # the difficult subset from a flag file in TorchRay's 'image_id class' form
        (tmp_path / "difficult.txt").write_text("motorcycle motorbike\n")
        flags = [f"dataset.difficult_flags={tmp_path / 'difficult.txt'}"]
    cfg, result = run_preset(preset, tmp_path, f"dataset.root={root}", *flags, *stand_in(random_heads[classes], classes),
                             "paper_table.run.model=torchray_resnet50", "transform.size=64", "method.rise.params.n_masks=32",
                             "method.rise.params.input_size=64", "method.extremal_perturbation.params.max_iter=3")
    table = check_table(cfg, tmp_path)
    filled = sorted(set(table.loc[table["ours"].notna(), "column"]))
    assert filled == (["ResNet50 all", "ResNet50 difficult"] if data == "voc" else ["ResNet50 all"])  # the COCO photos: no difficult pair
    assert table.loc[table["column"] == "ResNet50 all", "ours"].notna().sum() == 9
    assert result.records["target_source"].unique().tolist() == ["gt"]


# ---------------------------------------------------------------- model=none


def test_model_none_runs_the_center_baseline_and_says_no_model_was_used(tmp_path):
    cub = write_cub(tmp_path, [("001.Bird_1/a.jpg", 1, (4.0, 6.0, 20.0, 16.0), 0), ("002.Bird_2/b.jpg", 2, (10.0, 8.0, 30.0, 24.0), 0)])
    base = ["dataset=cub", f"dataset.root={cub}", "model=none", "method=center", "transform=wsol", "metric=[maxboxacc]", "targets.topk=0"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["device=cpu", "progress=false", "report.bootstrap=50", *base])
        result = run(cfg, tmp_path / "run")
        provenance = (tmp_path / "run" / "provenance.json").read_text()
        assert '"model_weights": "none: no network, no weights' in provenance
        assert result.records["model"].unique().tolist() == ["none"] and result.records["prob"].isna().all()
        assert result.summary.loc[0, "maxboxacc_v2"] >= 0
        for bad, message in (("targets.topk=5", r"model=none makes no predictions.*targets.topk=5"),
                             ("metric=[maxboxacc,avg_drop]", r"model=none makes no predictions.*metric.avg_drop")):
            with pytest.raises(ConfigError, match=message):
                build_run_spec(compose("config", overrides=[*base, bad]))
        with pytest.raises(ConfigError, match="model=none has no network to differentiate"):
            run(compose("config", overrides=["device=cpu", *base, "method=gradcam"]), tmp_path / "grad")
