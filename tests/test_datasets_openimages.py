"""dataset=openimages: wsolevaluation's OpenImages30k layout (images, instance mask PNGs, ignore
PNGs, metadata/OpenImages/<split>), written as real files; bad masks become skipped or noted
rows, a malformed metadata line concerns only its image; PxAP through the real CLI on the
network grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from omegaconf import OmegaConf
from PIL import Image

from dataset_fixtures import write_image
from wsl_bench.data import DecodedImages, ProtocolTransform
from wsl_bench.data.base import build_dataset
from wsl_bench.errors import DatasetLayoutError

H, W = 40, 48


def png(path: Path, mask: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)
    return path.name


def rect(y0: int, y1: int, x0: int, x1: int, size: tuple[int, int] = (H, W)) -> np.ndarray:
    m = np.zeros(size, bool)
    m[y0:y1, x0:x1] = True
    return m


def write_openimages(tmp: Path) -> tuple[Path, Path]:
    """A wsolevaluation checkout: dataset/OpenImages/test/<class>/... and metadata/OpenImages/test.
    a: two instances and an ignore box overlapping one; b: another class; c: its mask PNG missing;
    d: a mask that is not a PNG; e: a mask of the wrong size; f: its ignore PNG missing; g: a PNG
    cut short (its header reads, its pixels do not)."""
    root, meta = tmp / "wsolevaluation" / "dataset" / "OpenImages", tmp / "wsolevaluation" / "metadata" / "OpenImages" / "test"
    meta.mkdir(parents=True)
    images = {"a": ("0bt_c3", 0), "b": ("0by6g", 1), "c": ("0bt_c3", 0), "d": ("0bt_c3", 0), "e": ("0by6g", 1), "f": ("0by6g", 1), "g": ("0by6g", 1)}
    ids, labels, lines = [], [], []
    for i, (name, (mid, label)) in enumerate(images.items()):
        image = f"test/{mid}/{name}.jpg"
        write_image(root / image, H, W, seed=i)
        ids.append(image)
        labels.append(f"{image},{label}")
    folder = lambda name: root / "test" / images[name][0]  # noqa: E731
    png(folder("a") / "a_m0bt_c3_1.png", rect(5, 15, 5, 20))
    png(folder("a") / "a_m0bt_c3_2.png", rect(25, 35, 30, 40))
    png(folder("a") / "a_ignore.png", rect(0, 20, 0, 30))  # overlaps instance 1
    lines += ["test/0bt_c3/a.jpg,test/0bt_c3/a_m0bt_c3_1.png,test/0bt_c3/a_ignore.png", "test/0bt_c3/a.jpg,test/0bt_c3/a_m0bt_c3_2.png,"]
    png(folder("b") / "b_m0by6g_1.png", rect(0, H, 0, 10))
    png(folder("b") / "b_ignore.png", np.zeros((H, W), bool))
    lines.append("test/0by6g/b.jpg,test/0by6g/b_m0by6g_1.png,test/0by6g/b_ignore.png")
    lines.append("test/0bt_c3/c.jpg,test/0bt_c3/c_m0bt_c3_1.png,test/0bt_c3/c_ignore.png")  # nothing written
    (folder("d") / "d_m0bt_c3_1.png").write_bytes(b"not a png at all")
    lines.append("test/0bt_c3/d.jpg,test/0bt_c3/d_m0bt_c3_1.png,test/0bt_c3/d_ignore.png")
    png(folder("e") / "e_m0by6g_1.png", rect(0, 10, 0, 12, size=(H // 2, W // 2)))  # half size
    png(folder("e") / "e_ignore.png", np.zeros((H, W), bool))
    lines.append("test/0by6g/e.jpg,test/0by6g/e_m0by6g_1.png,test/0by6g/e_ignore.png")
    png(folder("f") / "f_m0by6g_1.png", rect(10, 20, 10, 20))
    lines.append("test/0by6g/f.jpg,test/0by6g/f_m0by6g_1.png,test/0by6g/f_ignore.png")
    rng = np.random.default_rng(0)
    cut = folder("g") / "g_m0by6g_1.png"
    png(cut, rng.random((H, W)) > 0.5)  # noise: the PNG's data spans many bytes
    cut.write_bytes(cut.read_bytes()[:120])
    png(folder("g") / "g_ignore.png", np.zeros((H, W), bool))
    lines.append("test/0by6g/g.jpg,test/0by6g/g_m0by6g_1.png,test/0by6g/g_ignore.png")
    (meta / "image_ids.txt").write_text("\n".join(ids) + "\n")
    (meta / "class_labels.txt").write_text("\n".join(labels) + "\n")
    (meta / "localization.txt").write_text("\n".join(lines) + "\n")
    (meta / "image_sizes.txt").write_text("")  # wsolevaluation ships it empty for OpenImages
    return root, meta


def load(root: Path, **extra):
    return build_dataset(OmegaConf.create({"name": "openimages", "root": str(root), "split": "test", "metadata": None, "limit": None, **extra}))


def decoded(data) -> dict:
    """Every entry through the real decoding path (DecodedImages reads the mask PNGs)."""
    images = DecodedImages(data.entries, ProtocolTransform("squash", 32, (0.5,) * 3, (0.5,) * 3))
    return {e.image_id: images[i] for i, e in enumerate(data.entries)}


def test_openimages_layout_masks_ignore_and_bad_inputs(tmp_path):
    root, meta = write_openimages(tmp_path)
    data = load(root)  # metadata found at <root>/../../metadata/OpenImages/test
    rejected = dict(data.rejected)
    assert rejected["test/0bt_c3/c.jpg"] == "localization.txt line 4: mask PNG 'test/0bt_c3/c_m0bt_c3_1.png' not found"
    assert rejected["test/0bt_c3/d.jpg"] == "localization.txt line 5: mask PNG 'test/0bt_c3/d_m0bt_c3_1.png' unreadable (UnidentifiedImageError)"
    samples = decoded(data)
    assert sorted(samples) == ["test/0bt_c3/a.jpg", "test/0by6g/b.jpg", "test/0by6g/e.jpg", "test/0by6g/f.jpg", "test/0by6g/g.jpg"]
    assert data.class_names[:3] == ["0bt_c3", "0by6g", "class_2"] and len(data.class_names) == 100
    a = samples["test/0bt_c3/a.jpg"]
    union = rect(5, 15, 5, 20) | rect(25, 35, 30, 40)
    assert a.skip_reason is None and a.entry.labels == (0,) and len(a.entry.boxes) == 0 and a.notes == ""
    assert (a.entry.masks()[0] == union).all()
    assert (a.entry.ignore() == (rect(0, 20, 0, 30) & ~union)).all()  # the ignore box minus the objects
    e = samples["test/0by6g/e.jpg"]
    assert e.notes == "mask e_m0by6g_1.png is 24x20, image 48x40: resized (nearest)"
    assert (e.entry.masks()[1] == rect(0, 20, 0, 24)).all()
    f = samples["test/0by6g/f.jpg"]
    assert f.notes == "localization.txt line 7: ignore PNG 'test/0by6g/f_ignore.png' not found: no ignore region" and not f.entry.ignore().any()
    g = samples["test/0by6g/g.jpg"]  # its header reads, its pixels do not: skipped when decoded, with the file named
    assert g.image is None and g.skip_reason.startswith("mask PNG g_m0by6g_1.png cannot be decoded (OSError: ")
    assert len(load(root, metadata=str(meta), limit=2).entries) == 2


def test_openimages_metadata_lines_concern_their_images_only(tmp_path):
    """A malformed metadata line rejects only the image it names; a file without one readable
    line, or no image that can be scored, is a one-line layout error."""
    root, meta = write_openimages(tmp_path)
    with pytest.raises(DatasetLayoutError, match=r"metadata folder .* not found; set dataset.metadata="):
        load(root, split="val")
    lines = (meta / "localization.txt").read_text().splitlines()
    lines[0] = "test/0bt_c3/a.jpg,1,2,3,4"  # 5 fields
    lines.append("test/0by6g/b.jpg,,")  # a line without a mask path
    (meta / "localization.txt").write_text("\n".join(lines) + "\n")
    labels = (meta / "class_labels.txt").read_text().replace("test/0by6g/e.jpg,1", "test/0by6g/e.jpg,1x")
    (meta / "class_labels.txt").write_text(labels + "test/0by6g/f.jpg,0\n")  # f listed again with another class
    (meta / "image_ids.txt").write_text((meta / "image_ids.txt").read_text() + "test/0by6g/g.jpg\n")
    data = load(root)
    rejected = dict(data.rejected)
    assert rejected["test/0bt_c3/a.jpg"] == "localization.txt line 1: expected 3 fields, got 'test/0bt_c3/a.jpg,1,2,3,4'"
    assert rejected["test/0by6g/b.jpg"] == "localization.txt line 9: no mask path (expected image,mask.png,ignore.png)"
    assert rejected["test/0by6g/e.jpg"] == "class_labels.txt line 5: class label '1x' is not an integer"
    assert rejected["test/0by6g/f.jpg"] == "class_labels.txt lines 6, 8 give the image different values"
    assert [e.image_id for e in data.entries] == ["test/0by6g/g.jpg"]
    assert data.entries[0].notes == "listed 2 times in image_ids.txt; scored once"
    (meta / "localization.txt").write_text("test/0bt_c3/a.jpg,1,2,3,4\n")
    with pytest.raises(DatasetLayoutError, match=r"localization.txt .* has no readable line \(localization.txt line 1: expected 3 fields"):
        load(root)


def test_openimages_pxap_through_the_cli(tmp_path):
    from test_datasets_cli import cli_in_process

    root, _ = write_openimages(tmp_path)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=100).state_dict(), tmp_path / "oi100.pt")
    run_dir = tmp_path / "run"
    code, err = cli_in_process([
        "dataset=openimages", f"dataset.root={root}", "model=torchvision", "model.name=resnet18", f"model.checkpoint={tmp_path / 'oi100.pt'}",
        "model.num_classes=100", "transform=wsol", "transform.size=64", "+metric=[pxap]", "targets.topk=1", "progress=false",
        "metric.avg_drop.enabled=false",
    ], run_dir)
    assert code == 0, err[-3000:]
    records, summary = pd.read_parquet(run_dir / "records.parquet"), pd.read_csv(run_dir / "summary.csv")
    gt = records[records["target_source"] == "gt"].set_index("image_id")
    assert sorted(gt.index) == ["test/0bt_c3/a.jpg", "test/0by6g/b.jpg", "test/0by6g/e.jpg", "test/0by6g/f.jpg"]
    # on the 64 x 64 grid, every counted pixel is in one histogram; a's ignore pixels in neither
    counted = gt["pxap_pos_hist"].map(sum) + gt["pxap_neg_hist"].map(sum)
    assert counted["test/0by6g/b.jpg"] == 64 * 64 and counted["test/0bt_c3/a.jpg"] < 64 * 64
    # gt_to_grid=wsolevaluation (cv2 INTER_NEAREST): grid column i reads column floor(0.75 i) of
    # the 48; the mask's columns 0..9 -> grid columns 0..13
    assert gt.loc["test/0by6g/b.jpg", "pxap_pos_hist"].sum() == 64 * 14
    assert 0 < summary.loc[0, "pxap"] <= 100 and summary.loc[0, "pxap_lo"] <= summary.loc[0, "pxap"] <= summary.loc[0, "pxap_hi"]
    skipped = records[records["skip_reason"].notna()].set_index("image_id")["skip_reason"]
    assert skipped["test/0by6g/g.jpg"].startswith("mask PNG g_m0by6g_1.png cannot be decoded (OSError: ")
    assert skipped["test/0bt_c3/c.jpg"].endswith("mask PNG 'test/0bt_c3/c_m0bt_c3_1.png' not found") and summary.loc[0, "n_skipped"] == 3
