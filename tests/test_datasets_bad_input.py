"""Bad input found by trying the loaders as a new user would (issue 12 item 6, issue 13), each in
the datasets' real on-disk layout, and the parsing rules they share (wsl_bench.data.annotations)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from omegaconf import OmegaConf
from PIL import Image, ImageOps

from dataset_fixtures import ilsvrc_xml, write_image, write_voc
from wsl_bench.data import DecodedImages, ProtocolTransform, build_dataset
from wsl_bench.data.annotations import AnnotationError, corner_box, edge_box, flag, integer, number
from wsl_bench.data.datasets.coco import rle_mask, rle_string_counts
from wsl_bench.data.decode import DecodeOptions, decode_rgb, orient, reduction_factor
from wsl_bench.errors import ConfigError

CONF = Path(__file__).resolve().parent.parent / "conf"
TENCH = "n01440764"


def dataset_cfg(name: str, **overrides):
    return OmegaConf.merge(OmegaConf.load(CONF / "dataset" / f"{name}.yaml"), overrides)


def decoded(entries, kind: str = "squash", evaluate_at: str = "original", size: int = 32):
    transform = ProtocolTransform(kind, size, (0.5,) * 3, (0.5,) * 3, resize=max(size, 40), evaluate_at=evaluate_at)
    images = DecodedImages(entries, transform)
    return [images[i] for i in range(len(images))]


# --- the shared value rules --------------------------------------------------------------------

@pytest.mark.parametrize("value, message", [
    (None, "x is missing"), ("", "x is empty"), ("  ", "x is empty"), ("nan", "x 'nan' is not a finite number"),
    ("-inf", "x '-inf' is not a finite number"), ("1e400", "x '1e400' is out of range"), ("abc", "x 'abc' is not a number"),
    ("1_0", "x '1_0' is not a number"), ("0x1A", "x '0x1A' is not a number"), ("\u0661\u0662", "x '\u0661\u0662' is not a number"),
    (float("nan"), "x nan is not a finite number"), (10**400, "x " + "1" + "0" * 36 + "... is out of range"),
    (True, "x True is not a number"), ([1], "x [1] is not a number"),
])
def test_number_names_the_field_and_the_value(value, message):
    with pytest.raises(AnnotationError) as info:
        number(value, "x")
    assert str(info.value) == message


def test_numbers_integers_and_flags_that_are_accepted():
    assert number(" 12.5 ", "x") == 12.5 and number("-3", "x") == -3 and number("1e3", "x") == 1000 and number(7, "x") == 7
    with pytest.raises(AnnotationError, match="x '12' is not a number"):
        number("12", "x", text=False)  # a JSON string where a number belongs
    assert integer("42", "c") == 42 and integer(42.0, "c") == 42
    for bad in ("4.5", "1_0", 4.5, True, "", None):
        with pytest.raises(AnnotationError):
            integer(bad, "c")
    assert flag(None, "d", default=False) is False and flag("1", "d") is True and flag(0, "d") is False
    with pytest.raises(AnnotationError, match="d '2' is not 0 or 1"):
        flag("2", "d")


def test_corner_boxes_swap_reversed_corners_and_clamp_huge_ones():
    assert corner_box(["30", "5", "5", "20"], "b") == ([5, 5, 30, 20], True)
    assert corner_box(["1", "1", "1", "9"], "b", offset=1) == ([0, 0, 0, 8], False)  # 1 px wide, inclusive: as written
    box, swapped = corner_box(["-1e300", "0", "1e300", "5"], "b")
    assert box == [-(2**31), 0, 2**31, 5] and not swapped  # clipped to the image (with a note) once its size is known


def test_edge_boxes_refuse_empty_extents_instead_of_a_1px_box():
    assert edge_box([3, 4.5, 20, 10], "bbox") == [3, 4, 22, 14]
    assert edge_box([3.2, 4, 0.5, 0.5], "bbox") == [3, 4, 3, 4]  # covers part of one pixel: that pixel
    for values, field in (([3, 4, 0, 10], "width 0"), ([3, 4, 10, -2], "height -2")):
        with pytest.raises(AnnotationError, match=f"bbox {field} is not positive"):
            edge_box(values, "bbox")


def test_compressed_rle_strings_decode_as_pycocotools_encodes_them():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    for _ in range(50):
        h, w = rng.integers(1, 30, 2)
        mask = rng.random((h, w)) < rng.random()
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        counts = rle_string_counts(rle["counts"].decode())
        assert sum(counts) == h * w and np.array_equal(rle_mask(counts, h, w), mask)
    with pytest.raises(ValueError, match="ends inside a run"):
        rle_string_counts("a")  # 0x31: more characters announced, none follow


# --- issue 12 item 6 --------------------------------------------------------------------------

def _voc20(tmp: Path) -> list[str]:
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=20).state_dict(), tmp / "voc20.pth")
    return ["model=torchvision", "model.name=resnet18", f"model.checkpoint={tmp / 'voc20.pth'}", "model.num_classes=20",
            "model.multilabel=true"]


def test_an_image_listed_twice_in_a_split_file_is_scored_once(tmp_path):
    """`a, a, a, b` used to score a three times (gtk_loc_err 50 -> 25): now once, with a note, and
    the summary equals the one of `a, b`."""
    from hydra import compose, initialize_config_dir

    from wsl_bench.pipeline import run

    images = {"a": ((48, 48), [("dog", 1, 1, 48, 48)]), "b": ((48, 48), [("cat", 1, 1, 6, 6)])}  # center baseline: hit / miss
    summaries = {}
    for name, split in (("repeated", ["a", "a", "a", "b"]), ("once", ["a", "b"])):
        write_voc(tmp_path / name, images, split_ids=split)
        overrides = ["dataset=voc", f"dataset.root={tmp_path / name / 'VOCdevkit'}", *_voc20(tmp_path), "method=center",
                     "targets.topk=0", "transform.size=48", "progress=false", "report.bootstrap=0"]
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            result = run(compose("config", overrides=overrides), tmp_path / f"{name}_run")
        summaries[name] = result.summary
        assert result.records.groupby("image_id").size().to_dict() == {"a": 1, "b": 1}
        if name == "repeated":
            assert result.records.set_index("image_id").loc["a", "notes"] == "listed 3 times in ImageSets/Main/test.txt; scored once"
    assert summaries["repeated"].loc[0, "gtk_loc_err"] == 50.0
    metrics = [c for c in summaries["once"].columns if c not in ("n_repaired",)]
    assert summaries["repeated"][metrics].equals(summaries["once"][metrics])
    assert summaries["repeated"].loc[0, "n_repaired"] == 1 and summaries["once"].loc[0, "n_repaired"] == 0


def test_voc_ids_with_spaces_and_per_class_split_lines(tmp_path):
    voc = write_voc(tmp_path, {"2008 000003": ((40, 48), [("dog", 5, 5, 20, 20)]), "000001": ((40, 48), [("cat", 1, 1, 9, 9)])},
                    split_ids=["2008 000003", "000001 1"])
    data = build_dataset(dataset_cfg("voc", root=str(tmp_path / "VOCdevkit")))
    assert [e.image_id for e in data.entries] == ["2008 000003", "000001"] and not data.rejected
    assert data.entries[0].path == voc / "JPEGImages" / "2008 000003.jpg"


def test_imagenet_listing_symlink_loops_clashing_stems_and_folders(tmp_path, caplog):
    val, xml = tmp_path / "val", tmp_path / "val_bbox"
    xml.mkdir()
    for i in (1, 2, 5):
        write_image(val / f"ILSVRC2012_val_0000000{i}.JPEG", seed=i)
        (xml / f"ILSVRC2012_val_0000000{i}.xml").write_text(ilsvrc_xml(f"ILSVRC2012_val_0000000{i}", (40, 48), [(TENCH, 1, 1, 20, 20)]))
    write_image(val / "ILSVRC2012_val_00000002.png", seed=9)                  # the same id as a JPEG
    os.symlink("ILSVRC2012_val_00000003.JPEG", val / "ILSVRC2012_val_00000003.JPEG")  # a link to itself
    os.symlink("n01443537", val / "n01443537")                                # a class folder that is a loop
    os.symlink("elsewhere", val / "elsewhere")                                # neither image nor class: a log line
    (val / "ILSVRC2012_val_00000004.JPEG").mkdir()                             # a folder named like an image
    os.symlink(".", val / "again")                                            # the same files once more: one image each
    with caplog.at_level(logging.WARNING, logger="wsl_bench"):
        data = build_dataset(dataset_cfg("imagenet", root=str(tmp_path)))
    assert [e.image_id for e in data.entries] == ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000005"]
    assert data.entries[0].path == val / "ILSVRC2012_val_00000001.JPEG"
    share = ("2 image files share the image id ILSVRC2012_val_00000002 (ILSVRC2012_val_00000002.JPEG, "
             "ILSVRC2012_val_00000002.png): which one its annotation describes is ambiguous; keep one")
    assert dict(data.rejected) == {
        "ILSVRC2012_val_00000002.JPEG": share,
        "ILSVRC2012_val_00000002.png": share,
        "ILSVRC2012_val_00000003.JPEG": "ILSVRC2012_val_00000003.JPEG cannot be read (Too many levels of symbolic links)",
        "ILSVRC2012_val_00000004.JPEG": "ILSVRC2012_val_00000004.JPEG is a folder, not an image file",
        "n01443537/": "n01443537 cannot be read (Too many levels of symbolic links)",
    }
    assert "val/elsewhere cannot be read (Too many levels of symbolic links); ignored" in caplog.text
    assert len(build_dataset(dataset_cfg("imagenet", root=str(tmp_path), limit=3)).entries) == 1  # the limit counts rows


def test_exif_orientation_matches_what_viewers_show():
    """orient() against PIL's exif_transpose, the reference, for all eight values."""
    stored = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    for orientation in range(1, 9):
        img = Image.fromarray(stored)
        exif = img.getexif()
        exif[0x0112] = orientation
        img.info["exif"] = exif.tobytes()
        assert np.array_equal(orient(stored, orientation), np.asarray(ImageOps.exif_transpose(img))), orientation


def test_exif_orientation_followed_noted_and_configurable(tmp_path):
    path = write_image(tmp_path / "rotated.jpg", 48, 40, exif_orientation=6)  # stored 40 wide x 48 high
    shown, note, size = decode_rgb(path)
    with Image.open(path) as img:
        reference = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    assert size == (40, 48) and np.array_equal(shown.permute(1, 2, 0).numpy(), reference)
    assert note == "applied EXIF orientation 6 (rotated 90 degrees clockwise)"
    stored, note, size = decode_rgb(path, DecodeOptions(exif_orientation="ignore"))
    assert size == (48, 40) and tuple(stored.shape) == (3, 48, 40) and note == ""
    with pytest.raises(ConfigError, match="dataset.exif_orientation='rotate' is not supported; use follow or ignore"):
        DecodeOptions.from_config(OmegaConf.create({"exif_orientation": "rotate"}))
    # an annotation sized like the stored pixels says which setting the boxes need
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "image_ids.txt").write_text("rotated.jpg\n")
    (tmp_path / "meta" / "class_labels.txt").write_text("rotated.jpg,0\n")
    (tmp_path / "meta" / "localization.txt").write_text("rotated.jpg,1,1,30,30\n")
    (tmp_path / "meta" / "image_sizes.txt").write_text("rotated.jpg,40,48\n")
    (sample,) = decoded(build_dataset(dataset_cfg("imagenet", root=str(tmp_path), metadata=str(tmp_path / "meta"))).entries)
    assert sample.orig_size == (40, 48) and sample.notes == (
        "applied EXIF orientation 6 (rotated 90 degrees clockwise); annotation size 40x48 differs from image 48x40 "
        "(it matches the stored pixels: set dataset.exif_orientation=ignore if the boxes were drawn on them)")
    (sample,) = decoded(build_dataset(dataset_cfg("imagenet", root=str(tmp_path), metadata=str(tmp_path / "meta"),
                                                  exif_orientation="ignore")).entries)
    assert sample.orig_size == (48, 40) and sample.notes == ""


def test_reduction_factor_bounds_pixels_and_keeps_min_side():
    assert reduction_factor(9000, 12000, 4096 * 4096) == 4 and reduction_factor(375, 500, 4096 * 4096) == 1
    assert reduction_factor(9000, 12000, None) == 1
    assert reduction_factor(16, 100000, 1000) == 2  # 8 x 50000 is as far as MIN_SIDE allows


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_large_images_decode_reduced_with_ground_truth_on_the_original_grid(tmp_path, suffix):
    """JPEG: libjpeg's 1/4 DCT scaling; PNG: decoded, then box-reduced. Either way the sample's
    grid, boxes and view are the original image's, so records stay in its pixel coordinates."""
    path = write_image(tmp_path / f"big{suffix}", 400, 600)
    small, note, size = decode_rgb(path, DecodeOptions(max_pixels=30000))
    full, _, _ = decode_rgb(path, DecodeOptions(max_pixels=None))
    assert size == (400, 600) and tuple(small.shape) == (3, 100, 150)
    assert note == ("decoded at 1/4 scale (150x100 of 600x400 px, over dataset.max_pixels=30000); "
                    "ground truth and scores stay on the 600x400 grid")
    # the network sees nearly the same picture (both are antialiased down to the input size)
    transform = ProtocolTransform("squash", 64, (0.5,) * 3, (0.5,) * 3)
    assert (transform(small)[0] - transform(full)[0]).abs().mean() < 0.05
    (tmp_path / "meta").mkdir()
    for name, text in (("image_ids", f"big{suffix}"), ("class_labels", f"big{suffix},0"), ("localization", f"big{suffix},100,50,449,349")):
        (tmp_path / "meta" / f"{name}.txt").write_text(text + "\n")
    for kind, evaluate_at in (("resize_crop", "original"), ("shorter_side", "input"), ("resize_crop", "input")):
        samples = {}
        for max_pixels in (30000, None):
            cfg = dataset_cfg("imagenet", root=str(tmp_path), metadata=str(tmp_path / "meta"), max_pixels=max_pixels)
            (samples[max_pixels],) = decoded(build_dataset(cfg).entries, kind, evaluate_at, size=64)
        reduced, reference = samples[30000], samples[None]
        assert reduced.source_size == (400, 600) and reduced.orig_size == reference.orig_size
        assert reduced.view == reference.view and reduced.entry.boxes.tolist() == reference.entry.boxes.tolist()
        if evaluate_at == "original":
            assert reduced.orig_size == (400, 600) and reduced.entry.boxes.tolist() == [[100, 50, 449, 349]]


@pytest.mark.parametrize("limit", [-1, 0, 1.5, "ten", True])
def test_dataset_limit_must_be_a_positive_integer(limit):
    with pytest.raises(ConfigError, match=r"^dataset.limit=.* must be a positive number of images, or null for all$"):
        build_dataset(dataset_cfg("demo", limit=limit))


def test_dataset_limit_minus_one_is_one_line_before_any_compute(tmp_path):
    from test_datasets_cli import cli_in_process

    code, err = cli_in_process(["dataset.limit=-1"], tmp_path / "run")
    assert code == 2 and err.strip() == "error: dataset.limit=-1 must be a positive number of images, or null for all"
    assert not (tmp_path / "run" / "records.parquet").exists()


def test_a_split_where_no_image_can_be_scored_is_one_line_naming_the_first_reason(tmp_path):
    write_voc(tmp_path, {"000001": ((40, 48), [("unicorn", 5, 5, 20, 20)])})
    with pytest.raises(Exception) as info:
        build_dataset(dataset_cfg("voc", root=str(tmp_path / "VOCdevkit")))
    assert str(info.value) == ("dataset=voc: none of the 1 listed image(s) can be scored (1 distinct reason(s); first: "
                               "000001: no objects of known classes (unknown: 'unicorn'))")


def test_coco_masks_on_the_decoded_grid_and_boxes_for_missing_segmentations(tmp_path):
    """Before: an instance without segmentation left its class without a mask, so the pointing game
    silently skipped it, and masks were rasterized at the JSON's size even when the file differs."""
    from dataset_fixtures import write_coco

    images = [{"id": 1, "file_name": "a.jpg", "height": 40, "width": 48}, {"id": 2, "file_name": "b.jpg", "height": 40, "width": 48}]
    anns = [{"image_id": 1, "category_id": 1, "bbox": [4.0, 5.0, 10.0, 20.0]},                                    # no segmentation
            {"image_id": 1, "category_id": 3, "bbox": [20.0, 10.0, 8.0, 8.0], "segmentation": [[20, 10, 28, 10, 28, 18, 20, 18]]},
            {"image_id": 2, "category_id": 3, "bbox": [20.0, 10.0, 8.0, 8.0], "segmentation": [[20, 10, 28, 10, 28, 18, 20, 18]]}]
    write_coco(tmp_path, 2017, images, anns, [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}])
    import json

    path = tmp_path / "annotations" / "instances_val2017.json"
    doc = json.loads(path.read_text())
    doc["images"][1]["height"] = 50  # the file is 40 high
    path.write_text(json.dumps(doc))
    a, b = decoded(build_dataset(dataset_cfg("coco17", root=str(tmp_path))).entries)
    masks = a.entry.masks()
    assert a.notes == "1 instance(s) without segmentation: their boxes serve as masks"
    assert masks[0].sum() == 10 * 20 and masks[0][5:25, 4:14].all() and masks[1].sum() == 64
    assert b.notes == "annotation size 48x50 differs from image 48x40" and b.entry.masks()[1].shape == (40, 48)
