"""Each defect the fuzz tests (test_datasets_fuzz.py) found in the original parsers, pinned as a
fixed example through the same writers and the same property, with the exact reason or note it
must now give. Before the fix, each of these ended the run with a traceback (ValueError,
OverflowError, TypeError, UnicodeDecodeError, AttributeError), stopped it for every image, or
scored changed ground truth without a note (see the comment per case)."""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from fuzz_formats import FORMATS, Corruption, Img, Obj, check, load

IMAGES = [Img(40, 48, (Obj(0, (5, 5, 20, 20)),)), Img(40, 48, (Obj(1, (10, 10, 30, 30)),))]
J = "instances_val2014.json annotation 1"
CASES = [
    # format, corruption(s) of image 0, what image 0 becomes (a skip reason, or "NOTE: " + its notes); before the fix:
    ("coco_json", Corruption(0, "obj0.x", "nan", float("nan")), f"{J} bbox x nan is not a finite number"),  # ValueError
    ("coco_json", Corruption(0, "obj0.width", "inf", float("inf")), f"{J} bbox width inf is not a finite number"),  # OverflowError
    ("coco_json", Corruption(0, "obj0.width", "null", None), f"{J} bbox width is missing"),  # TypeError
    ("coco_json", Corruption(0, "obj0.bbox", "bad_bbox", [1, 2, 3]), f"{J} bbox [1, 2, 3] is not [x, y, width, height]"),  # ValueError
    ("coco_json", Corruption(0, "obj0.width", "huge", 10**30), "NOTE: clipped 1 box(es) to the image"),  # OverflowError (int64)
    ("coco_json", Corruption(0, "obj0.height", "huge_literal", "RAW:" + "9" * 5000),
     f"{J} bbox height inf is not a finite number"),  # the whole JSON refused (int digit limit)
    ("coco_json", Corruption(0, "obj0.segmentation", "bad_segmentation", "partial_rle"),
     f"{J} segmentation RLE runs cover 7 pixels, not 40x48 = 1920 (a partial mask)"),  # ValueError in pycocotools, while scoring
    ("coco_json", Corruption(0, "obj0.iscrowd", "bad_flag", 2), f"{J} iscrowd 2 is not 0 or 1"),  # scored as a crowd, no note
    ("coco_json", Corruption(0, "obj0.segmentation", "segmentation_fallback", "absent"),
     "NOTE: 1 instance(s) without segmentation: their boxes serve as masks"),  # pointing silently not scored
    ("coco_json", Corruption(0, "entry", "duplicate_different"),
     "instances_val2014.json lists image id 1 2 times with different entries (COCO_val2014_000000000001.jpg, other_0.jpg)"),  # a row lost
    ("cub_tables", Corruption(0, "obj0.width", "huge", "-1e300"), "bounding_boxes.txt line 1: width '-1e300' is not positive"),  # a 1-px box, no note
    ("cub_tables", Corruption(0, "obj0.width", "inf", "inf"), "bounding_boxes.txt line 1: width 'inf' is not a finite number"),  # OverflowError
    ("cub_tables", Corruption(0, "obj0.width", "huge", "1" + "0" * 30), "NOTE: clipped 1 box(es) to the image"),  # OverflowError
    ("cub_tables", Corruption(0, "obj0.y", "missing", None), "bounding_boxes.txt line 1: expected 5 fields, got '1 5  16 16'"),  # every image refused
    ("cub_tables", Corruption(0, "split", "absent"), "no line for image id 1 in train_test_split.txt"),  # vanished without a row
    ("cub_tables", Corruption(0, "listing", "duplicate", expect="hint"), "NOTE: listed 2 times in images.txt; scored once"),  # deduped silently (soak)
    ("cub_tables", [Corruption(0, "boxes", "duplicate_same", expect="hint"), Corruption(0, "listing", "same_path_other_id", expect="hint")],
     "NOTE: listed under image ids 1, 100 in images.txt; scored once"),  # a repeated box line read as another annotation (soak)
    ("imagenet_loc_csv", Corruption(0, "obj0.xmin", "non_utf8", b"1\xff"),
     "LOC_val_solution.csv line 2 box 1 (n01440764) xmin '1\ufffd' is not a number"),  # UnicodeDecodeError
    ("imagenet_loc_csv", Corruption(0, "row", "token_dropped"),
     "LOC_val_solution.csv line 2: PredictionString has 4 values, not groups of 5 (wnid xmin ymin xmax ymax)"),  # a box dropped silently, or a ValueError
    ("imagenet_loc_csv", Corruption(0, "row", "duplicate_different"), "LOC_val_solution.csv lines 2, 3 give the image different values"),  # last row won
    ("imagenet_loc_csv", Corruption(0, "obj0.xmax", "huge", "9" * 400),
     "LOC_val_solution.csv line 2 box 1 (n01440764) xmax '" + "9" * 36 + "... is out of range"),  # OverflowError
    ("imagenet_xml", Corruption(0, "obj0.box", "swapped"), "NOTE: swapped the corners of 1 box(es) given max-first in ILSVRC2012_val_00000001.xml"),  # kept reversed
    ("imagenet_xml", Corruption(0, "obj0.xmin", "missing", None), "ILSVRC2012_val_00000001.xml object 1 (n01440764) xmin is missing"),  # no field named
    ("imagenet_xml", Corruption(0, "obj0.ymax", "huge", "1e300"), "NOTE: clipped 1 box(es) to the image"),  # OverflowError
    ("voc_xml", Corruption(0, "obj0.xmin", "huge", "1e400"), "Annotations/000001.xml object 1 (aeroplane) xmin '1e400' is out of range"),  # OverflowError
    ("voc_xml", Corruption(0, "obj0.xmin", "wrong_type", "\u0661\u0662"),
     "Annotations/000001.xml object 1 (aeroplane) xmin '\u0661\u0662' is not a number"),  # read as 12 (float() takes any Unicode digit)
    ("voc_xml", Corruption(0, "listing", "duplicate", expect="hint"), "NOTE: listed 2 times in ImageSets/Main/test.txt; scored once"),  # scored twice
    ("wsol_metadata", Corruption(0, "obj0.x0", "empty", ""), "localization.txt line 1 x0 is empty"),  # ValueError
    ("wsol_metadata", Corruption(0, "label", "bad_label", "abc"), "class_labels.txt line 1: class label 'abc' is not an integer"),  # ValueError
    ("wsol_metadata", Corruption(0, "label", "malformed_line"), "class_labels.txt line 1: expected 2 fields, got 'val2/0/img0.jpeg,0,7'"),  # every image refused
    ("wsol_metadata", Corruption(0, "label", "duplicate_different"), "class_labels.txt lines 1, 2 give the image different values"),  # last line won
    ("demo_csv", Corruption(0, "obj0.x_min", "nan", "nan"), "annotations.csv line 2 x_min 'nan' is not a finite number"),  # ValueError
    ("openimages_masks", Corruption(0, "jpeg", "absent", label="file not found"),
     "file not found: img0.jpg"),  # refused when the split was read, "image not found: <absolute path>", unlike every other dataset
    ("openimages_masks", Corruption(0, "obj0.mask", "path_nul", label="mask PNG"),
     "localization.txt line 1: mask PNG 'test/c0/a\\x00b.png' not found"),  # a raw NUL byte in the reason, no line named
    ("openimages_masks", Corruption(0, "jpeg", "exif_rotated", expect="free"),
     "NOTE: applied EXIF orientation 6 (rotated 90 degrees clockwise); 2 mask PNGs of another size (first: mask img0_mc0_0.png is 48x40), "
     "image 40x48: resized (nearest) (the image's size transposed: set dataset.exif_orientation=ignore if drawn on the stored pixels)"),
    # one note per PNG (1,500 with many objects), no hint that the masks fit the stored pixels
]


def _name(case: tuple) -> str:
    name, corruptions, _ = case
    return "-".join([name, *(f"{c.target}-{c.kind}" for c in (corruptions if isinstance(corruptions, list) else [corruptions]))])


@pytest.mark.parametrize("name, corruptions, expected", CASES, ids=[_name(c) for c in CASES])
def test_defect_found_by_the_fuzz_stays_fixed(name, corruptions, expected):
    fmt = FORMATS[name]
    corruptions = corruptions if isinstance(corruptions, list) else [corruptions]
    images = list(fmt.shipped()[:2]) if name == "demo_csv" else IMAGES
    options = {"flags": False} if name == "voc_xml" else {}
    with tempfile.TemporaryDirectory() as scratch:
        clean_cfg, clean_ids = fmt.write(Path(scratch) / "clean", images, [], options)
        bad_cfg, listed = fmt.write(Path(scratch) / "bad", images, corruptions, options)
        clean, bad = load(clean_cfg), load(bad_cfg)
    check(fmt, images, corruptions, clean, clean_ids, bad, listed, defaultdict(Counter))
    for image_id, i in listed.items():
        if i == 0:
            sample = bad.samples.get(image_id)
            got = bad.rejected.get(image_id) or (sample.skip_reason if sample is not None else None) or "NOTE: " + sample.notes
            assert got == expected
