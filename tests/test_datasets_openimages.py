"""dataset=openimages: wsolevaluation's OpenImages30k layout (images, instance mask PNGs, ignore
PNGs, metadata/OpenImages/<split>), written as real files; bad masks become skipped or noted
rows; PxAP through the real CLI on the network grid."""

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
from wsl_bench.data.base import build_dataset
from wsl_bench.data.datasets.openimages import MaskDecodeError
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


def test_openimages_layout_masks_ignore_and_bad_inputs(tmp_path):
    root, meta = write_openimages(tmp_path)
    data = load(root)  # metadata found at <root>/../../metadata/OpenImages/test
    rejected = dict(data.rejected)
    assert rejected["test/0bt_c3/c.jpg"].startswith("mask PNG not found:")
    assert rejected["test/0bt_c3/d.jpg"].startswith("mask PNG unreadable (")
    entries = {e.image_id: e for e in data.entries}
    assert sorted(entries) == ["test/0bt_c3/a.jpg", "test/0by6g/b.jpg", "test/0by6g/e.jpg", "test/0by6g/f.jpg", "test/0by6g/g.jpg"]
    assert data.class_names[:3] == ["0bt_c3", "0by6g", "class_2"] and len(data.class_names) == 100
    a = entries["test/0bt_c3/a.jpg"]
    union = rect(5, 15, 5, 20) | rect(25, 35, 30, 40)
    assert a.labels == (0,) and len(a.boxes) == 0 and a.notes == ""
    assert (a.masks()[0] == union).all()
    assert (a.ignore() == (rect(0, 20, 0, 30) & ~union)).all()  # the ignore box minus the objects
    e = entries["test/0by6g/e.jpg"]
    assert e.notes == "mask e_m0by6g_1.png is 24x20, image 48x40: resized (nearest)"
    assert (e.masks()[1] == rect(0, 20, 0, 24)).all()
    f = entries["test/0by6g/f.jpg"]
    assert f.notes.startswith("ignore PNG not found:") and f.notes.endswith("no ignore region") and not f.ignore().any()
    with pytest.raises(MaskDecodeError, match=r"unreadable mask PNG g_m0by6g_1.png"):
        entries["test/0by6g/g.jpg"].masks()
    assert len(load(root, metadata=str(meta), limit=2).entries) == 2


def test_openimages_layout_errors(tmp_path):
    root, meta = write_openimages(tmp_path)
    with pytest.raises(DatasetLayoutError, match=r"metadata folder .* not found; set dataset.metadata="):
        load(root, split="val")
    (meta / "localization.txt").write_text("test/0bt_c3/a.jpg,1,2,3,4\n")
    with pytest.raises(DatasetLayoutError, match=r"localization.txt:1: expected 3 comma-separated fields"):
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
    assert skipped["test/0by6g/g.jpg"].startswith("error: MaskDecodeError: unreadable mask PNG g_m0by6g_1.png")
    assert skipped["test/0bt_c3/c.jpg"].startswith("mask PNG not found:") and summary.loc[0, "n_skipped"] == 3
