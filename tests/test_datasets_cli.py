"""Every dataset layout, bad input and layout error through the real CLI, on tiny fixtures written
in the datasets' real on-disk formats. All CLI runs of this module start together (a few at a
time) in one module fixture, then each test checks its own run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from PIL import Image

from dataset_fixtures import (
    ilsvrc_xml, photo, run_cli_batch, write_coco, write_cub, write_image, write_loc_solution, write_voc,
)

TENCH, GOLDFISH, TOILET_TISSUE = "n01440764", "n01443537", "n15075141"  # ImageNet classes 0, 1, 999
CHEAP = ["targets.topk=1", "transform.size=64", "loader.batch_size=4", "progress=false"]


def _head(num_classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=num_classes)


def voc_fixture(tmp: Path) -> list[str]:
    """VOC 2007 test: 2 good images, 1 with an extra object of unknown class, 1 of unknown class
    only, 1 listed in the split without an annotation file, 1 annotated without its JPEG."""
    voc = write_voc(tmp, {
        "000001": ((40, 48), [("dog", 5, 5, 20, 20), ("person", 20, 10, 40, 38, 1)]),
        "000002": ((48, 40), [("cat", 1, 1, 40, 48)]),
        "000003": ((40, 48), [("unicorn", 1, 1, 10, 10)]),
        "000004": ((40, 48), [("dog", 3, 4, 30, 35), ("unicorn", 1, 1, 10, 10)]),
        "000006": ((40, 48), [("dog", 3, 4, 30, 35)]),
    }, split_ids=["000001", "000002", "000003", "000004", "000005", "000006"])
    (voc / "JPEGImages" / "000006.jpg").unlink()
    # DataParallel checkpoint inside a training wrapper dict
    model = _head(20)
    torch.save({"epoch": 7, "state_dict": {"module." + k: v for k, v in model.state_dict().items()}}, tmp / "voc20.pth")
    return ["dataset=voc", f"dataset.root={tmp / 'VOCdevkit'}", "model=torchvision", "model.name=resnet18",
            f"model.checkpoint={tmp / 'voc20.pth'}", "model.num_classes=20", "model.multilabel=true",
            "transform=shorter_side", *CHEAP]


def imagenet_bad_fixture(tmp: Path) -> tuple[list[str], dict[str, str], set[str], set[str]]:
    """ILSVRC val, flat layout + one bbox XML per image (val_bbox/), one image per bad-input kind.
    Returns overrides, expected skip reasons (regex) and the expected repaired / clean ids."""
    val, xml = tmp / "ILSVRC2012" / "val", tmp / "ILSVRC2012" / "val_bbox"
    val.mkdir(parents=True)
    xml.mkdir(parents=True)
    size = (40, 48)

    def name(i: int) -> str:
        return f"ILSVRC2012_val_{i:08d}"

    def annotate(i: int, objects: list[tuple]) -> None:
        (xml / f"{name(i)}.xml").write_text(ilsvrc_xml(name(i), size, objects))

    tench_box = [(TENCH, 5, 5, 30, 30)]
    write_image(val / f"{name(1)}.JPEG", *size)                                      # clean
    (val / f"{name(2)}.JPEG").write_bytes(b"this is not an image file at all" * 10)  # unreadable
    write_image(val / f"{name(3)}.JPEG", 200, 240, seed=3)                           # truncated
    data = (val / f"{name(3)}.JPEG").read_bytes()
    (val / f"{name(3)}.JPEG").write_bytes(data[: len(data) // 2])
    (val / f"{name(4)}.JPEG").write_bytes(b"")                                       # zero-byte
    write_image(val / f"{name(5)}.JPEG", *size, mode="CMYK")                          # CMYK JPEG
    write_image(val / f"{name(6)}.JPEG", *size, mode="L")                             # grayscale JPEG
    Image.fromarray((photo(*size)[..., 0].astype(np.uint16) * 257)).save(val / f"{name(7)}.png")  # 16-bit PNG
    Image.fromarray(np.dstack([photo(*size), np.full(size, 128, np.uint8)])).save(val / f"{name(8)}.png")  # RGBA
    write_image(val / f"{name(9)}.JPEG", 4, 5)                                       # tiny
    for i in range(10, 17):
        write_image(val / f"{name(i)}.JPEG", *size, seed=i)
    for i in range(1, 10):
        annotate(i, tench_box)
    # 10: annotation file missing
    annotate(11, [("n99999999", 1, 1, 10, 10)])                                       # unknown class only
    annotate(12, [(GOLDFISH, 2, 2, 20, 20), ("n99999999", 1, 1, 10, 10)])             # one unknown object
    annotate(13, [(TENCH, 10, 10, 60, 30)])                                           # box partly outside
    annotate(14, [(TENCH, 1, 1, 20, 20), (TENCH, 100, 100, 120, 120)])                # one box wholly outside
    annotate(15, [(TENCH, 100, 100, 120, 120)])                                       # every box outside
    (xml / f"{name(16)}.xml").write_text("<annotation><object><name>n01440764")      # malformed XML
    reasons = {
        name(2): r"^unreadable image \(UnidentifiedImageError",
        name(3): r"^unreadable image \(OSError: image file is truncated",
        name(4): r"^zero-byte file$",
        name(9): r"^image too small \(5x4 px, need >= 8\)$",
        name(10): rf"^annotation file missing: {name(10)}\.xml$",
        name(11): r"^no boxes of known classes \(unknown: 'n99999999'\)$",
        name(15): r"^all ground-truth boxes lie outside the image$",
        name(16): rf"^annotation file unreadable: {name(16)}\.xml",
    }
    repaired = {
        name(5): "converted CMYK to RGB",
        name(6): "converted L to RGB",
        name(7): "converted I;16 to RGB",
        name(8): "converted RGBA to RGB (alpha dropped)",
        name(12): "ignored 1 box(es) of unknown class 'n99999999'",
        name(13): "clipped 1 box(es) to the image",
        name(14): "dropped 1 box(es) outside the image",
    }
    overrides = ["dataset=imagenet", f"dataset.root={tmp / 'ILSVRC2012'}", *CHEAP]
    return overrides, reasons, repaired, {name(1)}


def imagenet_kaggle_fixture(tmp: Path) -> list[str]:
    """Kaggle layout: ILSVRC/Data/CLS-LOC/val/<wnid>/ class folders + LOC_val_solution.csv."""
    val = tmp / "kaggle" / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    for i, wnid in enumerate([TENCH, GOLDFISH, TOILET_TISSUE], 1):
        write_image(val / wnid / f"ILSVRC2012_val_{i:08d}.JPEG", 40, 48, seed=i)
    write_loc_solution(tmp / "kaggle" / "LOC_val_solution.csv", {
        "ILSVRC2012_val_00000001": [(TENCH, 1, 2, 30, 33), (TENCH, 20, 20, 40, 38)],
        "ILSVRC2012_val_00000002": [(GOLDFISH, 0, 0, 47, 39)],
        "ILSVRC2012_val_00000003": [(TOILET_TISSUE, 4, 4, 9, 9)],
    })
    (tmp / "kaggle" / "LOC_synset_mapping.txt").write_text(f"{TENCH} tench, Tinca tinca\n{GOLDFISH} goldfish\n")
    return ["dataset=imagenet", f"dataset.root={tmp / 'kaggle'}", "transform=resize_crop", "transform.resize=72", *CHEAP]


def wsol_fixture(tmp: Path) -> list[str]:
    """wsolevaluation metadata (ImageNetV2-style): image_ids.txt, class_labels.txt, localization.txt."""
    root, meta = tmp / "wsol" / "ILSVRC", tmp / "wsol" / "metadata" / "ILSVRC" / "test"
    meta.mkdir(parents=True)
    ids = ["val2/0/a.jpeg", "val2/1/b.jpeg", "val2/999/c.jpeg"]
    for i, image in enumerate(ids):
        write_image(root / image, 40, 48, seed=i)
    (meta / "image_ids.txt").write_text("\n".join(ids) + "\n")
    (meta / "class_labels.txt").write_text("\n".join(f"{p},{c}" for p, c in zip(ids, (0, 1, 999))) + "\n")
    (meta / "localization.txt").write_text(f"{ids[0]},1,2,30,33\n{ids[0]},20,20,40,38\n{ids[1]},0,0,47,39\n{ids[2]},4,4,9,9\n")
    (meta / "image_sizes.txt").write_text("\n".join(f"{p},48,40" for p in ids) + "\n")
    return ["dataset=imagenet", f"dataset.root={root}", f"dataset.metadata={meta}", "transform=wsol", *CHEAP]


COCO_CATEGORIES = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 18, "name": "dog"}]


def coco_fixture(tmp: Path) -> list[str]:
    """COCO 2014 val: 3 images (one without annotations), polygons, a crowd RLE, a category id
    not in the category list."""
    images = [
        {"id": 42, "file_name": "COCO_val2014_000000000042.jpg", "height": 40, "width": 48},
        {"id": 73, "file_name": "COCO_val2014_000000000073.jpg", "height": 48, "width": 40},
        {"id": 74, "file_name": "COCO_val2014_000000000074.jpg", "height": 40, "width": 40},
    ]
    crowd = {"counts": [48 * 10, 48 * 5, 48 * 25], "size": [48, 40]}  # column-major: columns 10..14 set
    annotations = [
        {"image_id": 42, "category_id": 1, "bbox": [4.0, 5.0, 10.0, 20.0], "segmentation": [[4, 5, 14, 5, 14, 25, 4, 25]]},
        {"image_id": 42, "category_id": 18, "bbox": [20.5, 10.0, 15.0, 10.0], "segmentation": [[20.5, 10, 35.5, 10, 35.5, 20, 20.5, 20]]},
        {"image_id": 42, "category_id": 1, "bbox": [30.0, 30.0, 8.0, 8.0], "segmentation": [[30, 30, 38, 30, 38, 38, 30, 38]]},
        {"image_id": 73, "category_id": 3, "bbox": [0.0, 0.0, 40.0, 48.0], "segmentation": [[0, 0, 40, 0, 40, 48, 0, 48]]},
        {"image_id": 73, "category_id": 1, "bbox": [10.0, 0.0, 5.0, 40.0], "segmentation": crowd, "iscrowd": 1},
        {"image_id": 73, "category_id": 99, "bbox": [1.0, 1.0, 5.0, 5.0], "segmentation": [[1, 1, 6, 1, 6, 6, 1, 6]]},
    ]
    write_coco(tmp / "coco", 2014, images, annotations, COCO_CATEGORIES)
    model = _head(3)
    torch.save({"model": {"_orig_mod." + k: v for k, v in model.state_dict().items()}}, tmp / "coco3.pt")
    return ["dataset=coco14", f"dataset.root={tmp / 'coco'}", "model=torchvision", "model.name=resnet18",
            f"model.checkpoint={tmp / 'coco3.pt'}", "model.num_classes=3", "model.multilabel=true",
            "transform=resize_crop", "transform.resize=80", "transform.evaluate_at=input", *CHEAP]


def cub_fixture(tmp: Path) -> list[str]:
    """CUB-200-2011: 4 images, 3 in the test split (one with class id 1, one 200, one unknown 201)."""
    write_cub(tmp, [
        ("001.Bird_1/a.jpg", 1, (60.0, 27.0, 325.0, 304.0), 1),   # train: not in the test split
        ("001.Bird_1/b.jpg", 1, (3.0, 4.5, 20.0, 10.0), 0),
        ("200.Bird_200/c.jpg", 200, (0.0, 0.0, 48.0, 40.0), 0),
        ("200.Bird_200/d.jpg", 201, (0.0, 0.0, 8.0, 8.0), 0),
    ])
    from safetensors.torch import save_file

    save_file(_head(200).state_dict(), str(tmp / "cub200.safetensors"))
    return ["dataset=cub", f"dataset.root={tmp}", "model=torchvision", "model.name=resnet18",
            f"model.checkpoint={tmp / 'cub200.safetensors'}", "model.num_classes=200", *CHEAP]


def error_cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """Runs that must stop before compute: overrides and the expected error line (regex)."""
    empty_split = tmp / "empty_split"
    write_voc(empty_split, {"000001": ((40, 48), [("dog", 5, 5, 20, 20)])})
    (empty_split / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main" / "test.txt").write_text("\n")
    no_xml = tmp / "no_xml"
    write_voc(no_xml, {"000001": ((40, 48), [])}, write_xml=False)
    no_anns = tmp / "no_anns"
    write_coco(no_anns, 2017, [{"id": 1, "file_name": "000000000001.jpg", "height": 40, "width": 48}], [], COCO_CATEGORIES)
    no_boxes = tmp / "no_boxes"
    write_image(no_boxes / "val" / "ILSVRC2012_val_00000001.JPEG")
    no_images = tmp / "cub_no_images"
    no_images.mkdir()
    (no_images / "images.txt").write_text("1 001.Bird_1/a.jpg\n")
    return {
        "empty_split": (["dataset=voc", f"dataset.root={empty_split / 'VOCdevkit'}"],
                        r"^error: dataset=voc: split file ImageSets/Main/test.txt .*test.txt is empty; set dataset.root="),
        "no_xml": (["dataset=voc", f"dataset.root={no_xml / 'VOCdevkit'}"],
                   r"^error: dataset=voc: no annotation files \(\*.xml\) in .*Annotations; set dataset.root="),
        "no_annotations": (["dataset=coco17", f"dataset.root={no_anns}"],
                           r"^error: dataset=coco17: .*instances_val2017.json has no annotations; set dataset.root="),
        "no_boxes": (["dataset=imagenet", f"dataset.root={no_boxes}"],
                     r"^error: dataset=imagenet: no box annotations in .*LOC_val_solution.csv.*; set dataset.boxes="),
        "cub_table": (["dataset=cub", f"dataset.root={no_images}"],
                      r"^error: dataset=cub: images/ not found at .*; set dataset.root=/path/to/CUB_200_2011$"),
        "classes_mismatch": (["dataset=voc", f"dataset.root={tmp / 'VOCdevkit'}"],
                             r"^error: model efficientnet_lite0 scores 1000 classes but dataset=voc has 20; .*model.num_classes=20$"),
        "bad_layer": (["model.target_layer=blocks.99"],
                      r"^error: target layer 'blocks.99' not found in EfficientNet; set model.target_layer= to one of: .*blocks.6.*bn2"),
        "offline_weights": (["model=resnet50", "model.download=false"],
                            r"^error: model resnet50: weights ResNet50_Weights.IMAGENET1K_V1 are not in the local cache "
                            r"\(.*/hub/checkpoints/resnet50-0676ba61.pth\) and model.download=false; .*model.checkpoint="),
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs in their own `python -m wsl_bench` processes (the bad-input run and a layout
    error: what a user's shell sees), started in the background; meanwhile every other layout
    runs through the same CLI entry point in this process, which saves a process start each."""
    import threading

    tmp = tmp_path_factory.mktemp("cli")
    missing = tmp / "does_not_exist"
    processes = {
        "bad": (imagenet_bad_fixture(tmp)[0], tmp / "bad_run", None),
        "missing_folder": (["dataset=voc07", f"dataset.root={missing}"], tmp / "missing_run", None),
    }
    results: dict = {}
    background = threading.Thread(target=lambda: results.update(run_cli_batch(processes, parallel=2)))
    background.start()
    in_process = {
        "voc": voc_fixture(tmp),
        "kaggle": imagenet_kaggle_fixture(tmp),
        "wsol": wsol_fixture(tmp),
        "coco": coco_fixture(tmp),
        "cub": cub_fixture(tmp),
        "synthetic": ["dataset=synthetic", "dataset.size=3", *CHEAP],
    }
    for name, overrides in in_process.items():
        run_dir = tmp / f"{name}_run" / "run"
        code, err = cli_in_process(overrides, run_dir)
        results[name] = subprocess.CompletedProcess(["wsl_bench", *overrides, f"hydra.run.dir={run_dir}"], code, "", err)
    background.join()
    return tmp, results


def cli_in_process(overrides: list[str], run_dir: Path) -> tuple[int, str]:
    """The real CLI entry point (`wsl_bench.cli.main`, what `python -m wsl_bench` runs) in this
    process: returns the exit code and what it printed to stderr."""
    import contextlib
    import io
    import sys

    from wsl_bench import cli

    argv, err = sys.argv, io.StringIO()
    sys.argv = ["wsl_bench", *overrides, f"hydra.run.dir={run_dir}"]
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = argv
    return code, err.getvalue()


def boxes(cell) -> list[list[int]]:
    return [[int(v) for v in box] for box in cell]


def _ok(result) -> tuple[pd.DataFrame, pd.DataFrame]:
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = Path(result.args[-1].split("=", 1)[1])
    return pd.read_parquet(run_dir / "records.parquet"), pd.read_csv(run_dir / "summary.csv")


def test_voc07_test_through_cli(runs):
    _, results = runs
    records, summary = _ok(results["voc"])
    scored = records[records["skip_reason"].isna()]
    skipped = records[records["skip_reason"].notna()].set_index("image_id")["skip_reason"].to_dict()
    assert skipped == {"000003": "no objects of known classes (unknown: 'unicorn')",
                       "000005": "annotation file missing: Annotations/000005.xml",
                       "000006": "file not found: 000006.jpg"}
    assert sorted(scored["image_id"].unique()) == ["000001", "000002", "000004"]
    gt = scored[scored["target_source"] == "gt"].set_index(["image_id", "target"])
    # dog = 11, person = 14, cat = 7; boxes 0-based inclusive; dog's 16x16 box < 1/4 of 40x48 -> difficult
    assert sorted(gt.index) == [("000001", 11), ("000001", 14), ("000002", 7), ("000004", 11)]
    assert boxes(gt.loc[("000001", 11), "gt_boxes"]) == [[4, 4, 19, 19]]
    assert boxes(gt.loc[("000001", 14), "gt_boxes"]) == [[19, 9, 39, 37]]
    assert boxes(gt.loc[("000002", 7), "gt_boxes"]) == [[0, 0, 39, 47]]
    assert gt["pointing_difficult"].to_dict() == {("000001", 11): True, ("000001", 14): False, ("000002", 7): False, ("000004", 11): False}
    assert gt.loc[("000004", 11), "notes"] == "ignored 1 object(s) of unknown class 'unicorn'"
    assert len(scored[scored["target_source"] == "top1"]) == 3
    assert (scored["prob"].between(0, 1)).all()
    assert summary.loc[0, "n_images"] == 3 and summary.loc[0, "n_skipped"] == 3 and summary.loc[0, "n_repaired"] == 1


def test_every_bad_input_kind_in_one_run(runs):
    _, results = runs
    reasons, repaired, clean = imagenet_bad_expectations()
    records, summary = _ok(results["bad"])
    skipped = records[records["skip_reason"].notna()].set_index("image_id")["skip_reason"].to_dict()
    assert set(skipped) == set(reasons)
    for image_id, pattern in reasons.items():
        assert pd.Series([skipped[image_id]]).str.match(pattern).all(), (image_id, skipped[image_id])
    scored = records[records["skip_reason"].isna()]
    assert set(scored["image_id"]) == set(repaired) | clean
    notes = scored.groupby("image_id")["notes"].first().to_dict()
    assert {k: v for k, v in notes.items() if pd.notna(v)} == repaired
    assert len(scored) == 2 * len(set(repaired) | clean)  # gt + top-1 row per image
    gt = scored[scored["target_source"] == "gt"].set_index("image_id")
    assert boxes(gt.loc["ILSVRC2012_val_00000013", "gt_boxes"]) == [[10, 10, 47, 30]]   # clipped to width 48
    assert boxes(gt.loc["ILSVRC2012_val_00000014", "gt_boxes"]) == [[1, 1, 20, 20]]     # outside box dropped
    assert gt.loc["ILSVRC2012_val_00000012", "target"] == 1                                # goldfish
    assert summary.loc[0, "n_images"] == 8 and summary.loc[0, "n_skipped"] == 8 and summary.loc[0, "n_repaired"] == 7


def imagenet_bad_expectations():
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        _, reasons, repaired, clean = imagenet_bad_fixture(Path(scratch))
    return reasons, repaired, clean


def test_imagenet_kaggle_layout_and_class_order(runs):
    _, results = runs
    records, summary = _ok(results["kaggle"])
    gt = records[records["target_source"] == "gt"].set_index("image_id")
    assert gt["target"].to_dict() == {"ILSVRC2012_val_00000001": 0, "ILSVRC2012_val_00000002": 1, "ILSVRC2012_val_00000003": 999}
    assert gt.loc["ILSVRC2012_val_00000003", "target_name"] == "toilet tissue"
    assert boxes(gt.loc["ILSVRC2012_val_00000001", "gt_boxes"]) == [[1, 2, 30, 33], [20, 20, 40, 38]]
    assert gt["notes"].isna().all()  # (47, 39) on a 48x40 image is inside: nothing repaired
    assert summary.loc[0, "n_images"] == 3 and summary.loc[0, "n_skipped"] == 0


def test_wsolevaluation_metadata_on_the_network_grid(runs):
    _, results = runs
    records, summary = _ok(results["wsol"])
    gt = records[records["target_source"] == "gt"].set_index("image_id")
    assert gt["target"].to_dict() == {"val2/0/a.jpeg": 0, "val2/1/b.jpeg": 1, "val2/999/c.jpeg": 999}
    # transform=wsol: squash to 64x64 (size override) and score there; boxes rescaled as
    # wsolevaluation's resize_bbox does (transform.gt_to_grid=wsolevaluation): int(x*64/48), int(y*64/40)
    assert (gt["width"] == 64).all() and (gt["height"] == 64).all()
    assert boxes(gt.loc["val2/1/b.jpeg", "gt_boxes"]) == [[0, 0, 62, 62]]  # 47 -> 62.67, 39 -> 62.4
    assert boxes(gt.loc["val2/999/c.jpeg", "gt_boxes"]) == [[5, 6, 12, 14]]  # (4, 4, 9, 9) -> (5.3, 6.4, 12, 14.4)
    assert summary.loc[0, "n_images"] == 3


def test_coco14_through_cli_on_the_input_grid(runs):
    _, results = runs
    records, summary = _ok(results["coco"])
    skipped = records[records["skip_reason"].notna()].set_index("image_id")["skip_reason"].to_dict()
    assert skipped == {"COCO_val2014_000000000074.jpg": "no object annotations for the image"}
    gt = records[records["target_source"] == "gt"].set_index(["image_id", "target"])
    # category ids 1, 3, 18 -> indices 0, 1, 2; person on 73 is a crowd region only, still labelled
    assert sorted(gt.index) == [("COCO_val2014_000000000042.jpg", 0), ("COCO_val2014_000000000042.jpg", 2),
                                ("COCO_val2014_000000000073.jpg", 0), ("COCO_val2014_000000000073.jpg", 1)]
    assert gt.loc[("COCO_val2014_000000000042.jpg", 2), "target_name"] == "dog"
    # resize_crop 80 -> 64 on the 40x48 image: scale 2, crop offset (x 16, y 8); evaluated on the 64x64 grid
    assert (gt["width"] == 64).all() and (gt["height"] == 64).all()
    # person boxes [4,5,13,24] and [30,30,37,37] -> [8..27, 10..49] - (16, 8) and [60..75, 60..75] - (16, 8)
    assert boxes(gt.loc[("COCO_val2014_000000000042.jpg", 0), "gt_boxes"]) == [[0, 2, 11, 41], [44, 52, 59, 63]]
    assert gt.loc[("COCO_val2014_000000000073.jpg", 1), "notes"] == "ignored 1 annotation(s) of unknown category or without bbox"
    assert summary.loc[0, "n_images"] == 2 and summary.loc[0, "n_skipped"] == 1


def test_cub_test_split_through_cli(runs):
    _, results = runs
    records, summary = _ok(results["cub"])
    skipped = records[records["skip_reason"].notna()].set_index("image_id")["skip_reason"].to_dict()
    assert skipped == {"200.Bird_200/d.jpg": "unknown class id 201 in image_class_labels.txt"}
    gt = records[records["target_source"] == "gt"].set_index("image_id")
    assert gt["target"].to_dict() == {"001.Bird_1/b.jpg": 0, "200.Bird_200/c.jpg": 199}
    assert gt.loc["001.Bird_1/b.jpg", "target_name"] == "001.Bird_1"
    # [x, y, w, h] = [3, 4.5, 20, 10] -> x 3..22, y 4..14
    assert boxes(gt.loc["001.Bird_1/b.jpg", "gt_boxes"]) == [[3, 4, 22, 14]]
    assert boxes(gt.loc["200.Bird_200/c.jpg", "gt_boxes"]) == [[0, 0, 47, 39]]
    assert summary.loc[0, "n_images"] == 2 and summary.loc[0, "n_skipped"] == 1


def test_synthetic_through_cli(runs):
    _, results = runs
    records, summary = _ok(results["synthetic"])
    assert sorted(records["image_id"].unique()) == ["synthetic_00000000", "synthetic_00000001", "synthetic_00000002"]
    assert records["skip_reason"].isna().all() and summary.loc[0, "n_images"] == 3


def test_missing_dataset_folder_stops_the_process_with_one_line(runs):
    tmp, results = runs
    result = results["missing_folder"]
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: dataset=voc07: folder {tmp / 'does_not_exist'} not found; set dataset.root=/path/to/VOCdevkit/VOC2007"
    )
    assert not (tmp / "missing_run" / "run" / "records.parquet").exists()


def test_layout_and_config_errors_stop_with_one_line(runs, monkeypatch):
    import re

    tmp, _ = runs
    empty_cache = tmp / "empty_torch_home"
    empty_cache.mkdir(exist_ok=True)
    monkeypatch.setenv("TORCH_HOME", str(empty_cache))
    for name, (overrides, pattern) in error_cases(tmp).items():
        run_dir = tmp / f"error_{name}"
        code, err = cli_in_process(overrides, run_dir)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, (name, err[-2000:])
        assert re.match(pattern, lines[0]), (name, lines[0])
        assert not (run_dir / "records.parquet").exists()
