"""Dataset loaders, the difficult-subset rule, ground truth under protocol transforms, synthetic
images, decoding edge cases: in-process, on hand-built cases and real-format fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from dataset_fixtures import write_coco, write_image, write_voc
from wsl_bench.data import DecodedImages, ImageEntry, ProtocolTransform, Sample, View, build_dataset
from wsl_bench.data.base import clip_boxes
from wsl_bench.data.annotations import edge_box
from wsl_bench.data.datasets.coco import CocoMasks
from wsl_bench.data.datasets.synthetic import SIZES, SyntheticImage
from wsl_bench.data.decode import ImageDecodeError, decode_rgb
from wsl_bench.data.difficult import box_area, ebp_difficult_classes
from wsl_bench.data.sample import Fixed
from wsl_bench.data.transforms import mask_on_grid, on_input_grid
from wsl_bench.errors import DatasetLayoutError

CONF = Path(__file__).resolve().parent.parent / "conf"


def dataset_cfg(name: str, **overrides):
    cfg = OmegaConf.load(CONF / "dataset" / f"{name}.yaml")
    return OmegaConf.merge(cfg, overrides)


# --- EBP difficult subset: area under 1/4 of the image and another class present -------------

def test_difficult_rule_at_exactly_a_quarter():
    boxes = np.array([[0, 0, 49, 49], [60, 60, 69, 69]])  # 2500 px = exactly 1/4 of 100x100; 100 px
    assert ebp_difficult_classes(boxes, np.array([3, 5]), 100, 100) == (5,)
    boxes = np.array([[0, 0, 48, 49], [60, 60, 69, 69]])  # 2450 px: under a quarter
    assert ebp_difficult_classes(boxes, np.array([3, 5]), 100, 100) == (3, 5)


def test_difficult_rule_needs_another_class():
    boxes = np.array([[0, 0, 4, 4], [10, 10, 14, 14]])  # two tiny boxes of one class only
    assert ebp_difficult_classes(boxes, np.array([2, 2]), 100, 100) == ()


def test_difficult_rule_union_versus_sum_of_box_areas():
    # two identical 40x40 boxes of class 1: union 1600 < 2500, sum 3200 >= 2500
    boxes = np.array([[0, 0, 39, 39], [0, 0, 39, 39], [90, 90, 99, 99]])
    labels = np.array([1, 1, 4])
    assert box_area(boxes[:2], 100, 100, "union") == 1600 and box_area(boxes[:2], 100, 100, "sum") == 3200
    assert ebp_difficult_classes(boxes, labels, 100, 100, "union") == (1, 4)
    assert ebp_difficult_classes(boxes, labels, 100, 100, "sum") == (4,)


def test_voc_difficult_subset_from_a_flag_file(tmp_path):
    write_voc(tmp_path, {
        "000001": ((40, 48), [("dog", 5, 5, 20, 20), ("person", 20, 10, 40, 38, 1)]),
        "000002": ((48, 40), [("cat", 1, 1, 40, 48)]),
    })
    root = tmp_path / "VOCdevkit"
    computed = build_dataset(dataset_cfg("voc", root=str(root)))
    assert [_decoded(e).entry.difficult_classes for e in computed.entries] == [(11,), ()]  # from the decoded image size
    flags = tmp_path / "difficult.txt"
    flags.write_text("# image class\n000001 person\n000002,7\n")
    loaded = build_dataset(dataset_cfg("voc", root=str(root), difficult_flags=str(flags)))
    assert [_decoded(e).entry.difficult_classes for e in loaded.entries] == [(14,), (7,)]
    # a malformed line concerns its image only; a file without one readable line is a layout error
    flags.write_text("000001 horse-drawn-cart\n000002 cat\n")
    partly = build_dataset(dataset_cfg("voc", root=str(root), difficult_flags=str(flags)))
    assert partly.rejected == [("000001", "difficult flag file difficult.txt line 1: unknown class 'horse-drawn-cart'")]
    flags.write_text("000001 horse-drawn-cart\n")
    with pytest.raises(DatasetLayoutError, match=r"difficult.txt has no readable line \(difficult flag file difficult.txt line 1: unknown class 'horse-drawn-cart'\)"):
        build_dataset(dataset_cfg("voc", root=str(root), difficult_flags=str(flags)))


def _decoded(entry: ImageEntry) -> Sample:
    return DecodedImages([entry], ProtocolTransform("squash", 32, (0.5,) * 3, (0.5,) * 3))[0]


def test_voc12_layout_counts_and_flags(tmp_path):
    write_voc(tmp_path, {
        "2008_000001": ((40, 48), [("car", 1, 1, 10, 10, 1), ("car", 12, 12, 30, 30), ("bus", 2, 2, 48, 40)]),
        "2008_000002": ((40, 48), [("tvmonitor", 273.5, 1, 300, 20)]),  # VOC12 has float corners
    }, split="val", year=2012)
    data = build_dataset(dataset_cfg("voc12", root=str(tmp_path / "VOCdevkit"), limit=None))
    assert len(data.class_names) == 20 and not data.rejected
    first, second = data.entries
    assert first.labels == (5, 6) and first.box_labels.tolist() == [6, 6, 5]
    assert first.box_difficult.tolist() == [True, False, False]
    assert first.boxes.tolist() == [[0, 0, 9, 9], [11, 11, 29, 29], [1, 1, 47, 39]]
    assert first.size_hint == (40, 48) and _decoded(first).entry.difficult_classes == (6,)
    assert second.boxes.tolist() == [[273, 0, 299, 19]]  # round(273.5) = 274 (banker's) -> 273
    assert build_dataset(dataset_cfg("voc12", root=str(tmp_path / "VOCdevkit"), limit=1)).entries[0].image_id == "2008_000001"


# --- boxes and masks follow the protocol transform ------------------------------------------

def _sample(height: int, width: int, transform: ProtocolTransform, boxes, masks=None) -> Sample:
    boxes = np.array(boxes, dtype=np.int64)
    entry = ImageEntry("x", Path("x"), (0,), boxes=boxes, box_labels=np.zeros(len(boxes), dtype=np.int64),
                       box_difficult=np.zeros(len(boxes), dtype=bool), masks=masks)
    image, view = transform(torch.zeros(3, height, width, dtype=torch.uint8))
    return Sample(entry, image, (height, width), view=view, source_size=(height, width))


def _transform(kind: str, size: int, resize: int = 256) -> ProtocolTransform:
    return ProtocolTransform(kind, size, (0.5,) * 3, (0.5,) * 3, resize, "input")


def test_boxes_on_squashed_grid():
    # 100 x 200 (h x w) -> 50 x 50: x scale 1/4, y scale 1/2. Box x 8..15 covers [8, 16) -> [2, 4) -> 2..3
    sample = on_input_grid(_sample(100, 200, _transform("squash", 50), [[8, 10, 15, 19], [0, 0, 199, 99], [9, 11, 9, 11]]))
    assert sample.entry.boxes.tolist() == [[2, 5, 3, 9], [0, 0, 49, 49], [2, 5, 2, 5]]
    assert sample.orig_size == (50, 50) and sample.source_size == (100, 200) and sample.view.is_full(50, 50)


def test_boxes_on_shorter_side_grid_and_identity():
    # 30 x 60 -> shorter side 60: scale 2, grid 60 x 120
    sample = on_input_grid(_sample(30, 60, _transform("shorter_side", 60), [[1, 2, 3, 4]]))
    assert sample.orig_size == (60, 120) and sample.entry.boxes.tolist() == [[2, 4, 7, 9]]
    same = on_input_grid(_sample(30, 60, _transform("shorter_side", 30), [[1, 2, 3, 4], [0, 0, 59, 29]]))
    assert same.entry.boxes.tolist() == [[1, 2, 3, 4], [0, 0, 59, 29]]


def test_boxes_on_center_crop_grid_drop_cut_off_boxes():
    # 40 x 80 -> resize 80 (scale 2: 80 x 160) -> crop 64: top 8, left 48. Box x 30..39 -> [60, 80) - 48 = 12..31
    sample = on_input_grid(_sample(40, 80, _transform("resize_crop", 64, 80), [[30, 10, 39, 19], [0, 0, 5, 5], [70, 0, 79, 39]]))
    assert sample.entry.boxes.tolist() == [[12, 12, 31, 31]]
    assert sample.entry.box_labels.tolist() == [0] and "2 box(es) outside the input crop" in sample.notes


def test_masks_follow_the_grid():
    mask = np.zeros((40, 80), dtype=bool)
    mask[10:20, 30:40] = True  # the same region as the first box above
    view = View(24.0, 4.0, 56.0, 36.0)  # resize 80 / crop 64 on 40 x 80, in original pixels
    on_grid = mask_on_grid(mask, view, (64, 64))
    ys, xs = np.nonzero(on_grid)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (12, 31, 12, 31) and on_grid.sum() == 400
    coco = CocoMasks([(0, [np.array([30, 10, 40, 10, 40, 20, 30, 20.0])])]).rasterize(40, 80, np.array([[30, 10, 39, 19]])).masks
    sample = on_input_grid(_sample(40, 80, _transform("resize_crop", 64, 80), [[30, 10, 39, 19]], masks=Fixed(coco)))
    assert np.array_equal(sample.entry.masks()[0], mask_on_grid(coco[0], view, (64, 64)))
    assert sample.view.is_full(64, 64) and sample.entry.masks()[0].shape == (64, 64)


def test_decoded_images_evaluate_at_original_keeps_original_grid(tmp_path):
    path = write_image(tmp_path / "a.jpg", 30, 60)
    entry = ImageEntry("a", path, (0,), boxes=np.array([[1, 2, 3, 4]]), box_labels=np.zeros(1, dtype=np.int64), box_difficult=np.zeros(1, dtype=bool))
    original = DecodedImages([entry], ProtocolTransform("squash", 32, (0.5,) * 3, (0.5,) * 3))[0]
    assert original.orig_size == (30, 60) and original.entry.boxes.tolist() == [[1, 2, 3, 4]]
    on_input = DecodedImages([entry], _transform("squash", 32))[0]
    assert on_input.orig_size == (32, 32) and on_input.source_size == (30, 60)
    assert on_input.entry.boxes.tolist() == [[0, 2, 2, 5]] and tuple(on_input.image.shape) == (3, 32, 32)


# --- box repairs ------------------------------------------------------------------------------

def _entry(boxes, labels=None):
    boxes = np.array(boxes, dtype=np.int64)
    labels = np.array(labels if labels is not None else [0] * len(boxes))
    return ImageEntry("x", Path("x"), tuple(sorted(set(labels.tolist()))), boxes=boxes, box_labels=labels,
                      box_difficult=np.zeros(len(boxes), dtype=bool), difficult_classes=(1,))


def test_clip_boxes_counts_repairs():
    entry, note = clip_boxes(_entry([[0, 0, 48, 40]]), 40, 48)  # far-edge coordinates: silent
    assert entry.boxes.tolist() == [[0, 0, 47, 39]] and note == ""
    entry, note = clip_boxes(_entry([[-2, 0, 10, 10], [5, 5, 49, 10]]), 40, 48)
    assert entry.boxes.tolist() == [[0, 0, 10, 10], [5, 5, 47, 10]] and note == "clipped 2 box(es) to the image"
    entry, note = clip_boxes(_entry([[1, 1, 5, 5], [50, 0, 60, 10]], [0, 1]), 40, 48)
    assert entry.boxes.tolist() == [[1, 1, 5, 5]] and note == "dropped 1 box(es) outside the image"
    assert entry.labels == (0,) and entry.difficult_classes == ()  # class 1 lost its only box
    assert clip_boxes(_entry([[48, 0, 60, 10]]), 40, 48) is None


# --- COCO -------------------------------------------------------------------------------------

def test_coco_box_and_masks_with_crowd_rle(tmp_path):
    assert edge_box([20.5, 10.0, 15.0, 10.0], "bbox") == [20, 10, 35, 19]
    crowd = {"counts": [40 * 10, 40 * 5, 40 * 25], "size": (40, 40)}  # column-major: columns 10..14
    polygon = [np.array([0, 0, 5, 0, 5, 4, 0, 4.0])]
    boxes = np.array([[10, 0, 14, 39], [0, 0, 4, 3], [0, 0, 4, 3]])
    masks, note, ignore = CocoMasks([(0, crowd), (0, polygon), (2, polygon)]).rasterize(40, 40, boxes)
    assert note == "" and ignore is None
    assert set(masks) == {0, 2} and masks[0].shape == (40, 40)
    assert masks[0][:, 10:15].all() and not masks[0][5:, 15:].any()
    assert masks[2][:4, :5].all() and masks[2].sum() == np.count_nonzero(masks[0][:, :10])


def test_coco17_loader_counts(tmp_path):
    images = [{"id": 139, "file_name": "000000000139.jpg", "height": 40, "width": 48},
              {"id": 285, "file_name": "000000000285.jpg", "height": 40, "width": 48}]
    anns = [{"image_id": 139, "category_id": 90, "bbox": [1, 1, 10, 10], "segmentation": [[1, 1, 11, 1, 11, 11, 1, 11]]},
            {"image_id": 139, "category_id": 1, "bbox": [0, 0, 48, 40], "segmentation": [[0, 0, 48, 0, 48, 40, 0, 40]]},
            {"image_id": 285, "category_id": 1, "bbox": [2, 2, 4, 4], "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]]},
            {"image_id": 285, "category_id": 1, "bbox": [0, 0, 2, 2], "segmentation": {"counts": [100], "size": [10, 10]}, "iscrowd": 1}]
    write_coco(tmp_path, 2017, images, anns, [{"id": 1, "name": "person"}, {"id": 90, "name": "toothbrush"}])
    data = build_dataset(dataset_cfg("coco17", root=str(tmp_path)))
    assert data.class_names == ["person", "toothbrush"] and len(data.entries) == 2 and not data.rejected
    first, second = (_decoded(e) for e in data.entries)
    assert first.entry.labels == (0, 1) and first.entry.difficult_classes == (1,)
    assert first.entry.boxes.tolist() == [[1, 1, 10, 10], [0, 0, 47, 39]]
    # the crowd RLE is sized 10x10, not 40x48 like the image: its box [0, 0, 1, 1] serves as its mask
    assert second.entry.masks()[0].sum() == 16 + 4 and second.entry.box_difficult.tolist() == [False, True]
    assert second.notes == "1 RLE mask(s) not sized 40x48 like the image: their boxes serve as masks"


# --- synthetic ----------------------------------------------------------------------------------

def test_synthetic_is_deterministic_with_exact_boxes():
    cfg = dataset_cfg("synthetic", size=6, max_objects=1)
    first, again = build_dataset(cfg), build_dataset(cfg)
    assert len(first.entries) == 6 and len(first.class_names) == 1000
    other = build_dataset(dataset_cfg("synthetic", size=6, max_objects=1, seed=1))
    assert [e.boxes.tolist() for e in first.entries] != [e.boxes.tolist() for e in other.entries]
    for entry, twin in zip(first.entries, again.entries):
        image, _ = entry.render()
        assert torch.equal(image, twin.render()[0]) and tuple(image.shape[1:]) in SIZES
        assert not entry.path.exists()
        # the shape is exactly where its box says: compare with the same image without it
        bare, _ = SyntheticImage(entry.render.seed, entry.render.height, entry.render.width, ())()
        ys, xs = np.nonzero((image != bare).any(dim=0).numpy())
        assert [xs.min(), ys.min(), xs.max(), ys.max()] == entry.boxes[0].tolist()


# --- decoding edge cases --------------------------------------------------------------------

def test_decode_min_side_is_exactly_eight(tmp_path):
    rgb, note, _ = decode_rgb(write_image(tmp_path / "ok.png", 8, 9))
    assert tuple(rgb.shape) == (3, 8, 9) and note == ""
    with pytest.raises(ImageDecodeError, match=r"image too small \(9x7 px, need >= 8\)"):
        decode_rgb(write_image(tmp_path / "small.png", 7, 9))


def test_decode_16bit_png_keeps_the_full_range(tmp_path):
    Image.fromarray(np.array([[0, 65535] * 4] * 8, dtype=np.uint16)).save(tmp_path / "a.png")
    rgb, note, _ = decode_rgb(tmp_path / "a.png")
    assert note == "converted I;16 to RGB" and rgb[:, 0, :2].tolist() == [[0, 255]] * 3


def test_image_box_and_class_counts_of_imagenet_and_cub_layouts(tmp_path):
    from dataset_fixtures import ilsvrc_xml, write_cub

    # ILSVRC flat images + bbox XMLs in class sub-folders of val_bbox/ (as some mirrors ship them)
    for i, (wnid, n_boxes) in enumerate([("n01440764", 2), ("n15075141", 1), ("n01443537", 3)], 1):
        image_id = f"ILSVRC2012_val_{i:08d}"
        write_image(tmp_path / "inet" / "val" / f"{image_id}.JPEG", seed=i)
        xml = tmp_path / "inet" / "val_bbox" / wnid / f"{image_id}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(ilsvrc_xml(image_id, (40, 48), [(wnid, j, j, j + 10, j + 10) for j in range(n_boxes)]))
    data = build_dataset(dataset_cfg("imagenet", root=str(tmp_path / "inet")))
    assert len(data.class_names) == 1000 and len(data.entries) == 3 and not data.rejected
    assert [e.labels for e in data.entries] == [(0,), (999,), (1,)]
    assert [len(e.boxes) for e in data.entries] == [2, 1, 3] and data.entries[2].boxes[2].tolist() == [2, 2, 12, 12]
    assert len(build_dataset(dataset_cfg("imagenet", root=str(tmp_path / "inet"), limit=2)).entries) == 2

    write_cub(tmp_path, [("001.Bird_1/a.jpg", 1, (1.0, 1.0, 5.0, 5.0), 1), ("002.Bird_2/b.jpg", 2, (0.5, 0.5, 5.0, 5.0), 0)])
    cub = {split: build_dataset(dataset_cfg("cub", root=str(tmp_path / "CUB_200_2011"), split=split)) for split in ("test", "train", "all")}
    assert len(cub["all"].class_names) == 200 and cub["all"].class_names[1] == "002.Bird_2"
    assert [len(cub[s].entries) for s in ("test", "train", "all")] == [1, 1, 2]
    assert cub["test"].entries[0].labels == (1,) and cub["test"].entries[0].boxes.tolist() == [[0, 0, 5, 5]]
