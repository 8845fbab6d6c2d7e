"""TorchRay's pointing-game protocol as configuration: its resizing, its published difficult-flag
files (VOC and COCO, from a path or an installed torchray package), the per-dataset and per-model
defaults the method yamls read, and the at-image-size steps through the real pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tests.dataset_fixtures import write_coco, write_voc
from wsl_bench import explain
from wsl_bench.data import DecodedImages, build_dataset
from wsl_bench.data.decode import decode_rgb
from wsl_bench.data.transforms import ProtocolTransform
from wsl_bench.errors import DatasetLayoutError
from wsl_bench.methods.smoothing import smooth_saliency
from wsl_bench.metrics.maps import argmax_points, to_original_size
from wsl_bench.pipeline import run

CONF = Path(__file__).resolve().parent.parent / "conf"


def ruled_subsets(cfg) -> dict[str, tuple[int, ...]]:
    """The difficult subset by rule, computed when an image is decoded (its size then known)."""
    data = build_dataset(OmegaConf.merge(cfg, {"difficult_flags": None}))
    images = DecodedImages(data.entries, ProtocolTransform("squash", 32, (0.5,) * 3, (0.5,) * 3))
    return {e.image_id: images[i].entry.difficult_classes for i, e in enumerate(data.entries)}


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize("height, width, expected", [(375, 500, (224, 298)), (500, 333, (336, 224)), (64, 64, (224, 224))])
def test_torchray_resize_truncates_the_longer_side_and_does_not_antialias(height, width, expected):
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8)
    mean, std = (0.48, 0.46, 0.41), (1 / 255,) * 3
    out, view = ProtocolTransform("torchray", 224, mean, std)(image)
    assert tuple(out.shape[1:]) == expected  # int(224 * 500 / 375) = 298 where rounding gives 299
    # TorchRay's get_transform written out: ToTensor, F.interpolate (bilinear, no antialias), Normalize
    reference = F.interpolate(image.float().div(255)[None], size=expected, mode="bilinear", align_corners=False)[0]
    reference = (reference - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-4)
    assert (view.x1, view.y1) == (width, height)


def torchray_rows(ids_flags: dict[str, list[int]], n_classes: int) -> str:
    return "".join(f"{i}\t" + "\t".join("1" if c in flags else "0" for c in range(n_classes)) + "\n" for i, flags in ids_flags.items())


def voc_fixture(root: Path) -> Path:
    write_voc(root, {
        "000001": ((60, 80), [("dog", 5, 5, 30, 30), ("person", 40, 10, 79, 59)]),
        "000002": ((51, 71), [("cat", 1, 1, 70, 50)]),  # odd sides: TorchRay's center point lies between pixels
    })
    return root


def test_voc_difficult_subset_from_torchrays_file_format(tmp_path):
    root = voc_fixture(tmp_path / "voc")
    flags = tmp_path / "pointing_game_ebp_voc07_difficult.txt"
    flags.write_text(torchray_rows({"000001": [14], "000002": []}, 20))  # person (14) difficult, dog not
    cfg = OmegaConf.merge(OmegaConf.load(CONF / "dataset" / "voc07.yaml"), {"root": str(root), "difficult_flags": str(flags)})
    entries = {e.image_id: e for e in build_dataset(cfg).entries}
    assert entries["000001"].difficult_classes == (14,) and entries["000002"].difficult_classes == ()
    # by rule instead: the dog's box covers under a quarter of the image and another class is present
    assert ruled_subsets(cfg)["000001"] == (11,)
    flags.write_text("000001\t0\t1\n")
    with pytest.raises(DatasetLayoutError, match=r"line 1: expected 'image_id class' or 'image_id' and 20 0/1 flags"):
        build_dataset(cfg)


def test_flags_from_an_installed_torchray_package(tmp_path, monkeypatch):
    root = voc_fixture(tmp_path / "voc")
    cfg = OmegaConf.merge(OmegaConf.load(CONF / "dataset" / "voc07.yaml"), {"root": str(root), "difficult_flags": "torchray"})
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(DatasetLayoutError, match="pointing_game_ebp_voc07_difficult.txt from an installed torchray package"):
        build_dataset(cfg)
    monkeypatch.undo()
    package = tmp_path / "site" / "torchray"
    (package / "benchmark").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('located, never imported')\n")
    (package / "benchmark" / "pointing_game_ebp_voc07_difficult.txt").write_text(torchray_rows({"000001": [11, 14]}, 20))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    entries = {e.image_id: e for e in build_dataset(cfg).entries}
    assert entries["000001"].difficult_classes == (11, 14)


def test_coco_difficult_subset_from_torchrays_file_by_image_name(tmp_path):
    root = write_coco(
        tmp_path / "coco", 2014,
        images=[{"id": 42, "file_name": "COCO_val2014_000000000042.jpg", "height": 40, "width": 48}],
        annotations=[{"image_id": 42, "category_id": 1, "bbox": [1, 1, 10, 10]}, {"image_id": 42, "category_id": 3, "bbox": [5, 5, 30, 30]}],
        categories=[{"id": i, "name": f"c{i}"} for i in (1, 2, 3)],
    )
    flags = tmp_path / "pointing_game_ebp_coco_difficult.txt"
    flags.write_text(torchray_rows({"COCO_val2014_000000000042": [2]}, 3))  # TorchRay names images without extension
    cfg = OmegaConf.merge(OmegaConf.load(CONF / "dataset" / "coco14.yaml"), {"root": str(root), "difficult_flags": str(flags)})
    (entry,) = build_dataset(cfg).entries
    assert entry.difficult_classes == (2,)
    assert ruled_subsets(cfg) == {"COCO_val2014_000000000042.jpg": (0,)}
    # a malformed line concerns only its image (another line is readable): its reason names the line
    flags.write_text("COCO_val2014_000000000042 c9\n" + torchray_rows({"COCO_val2014_000000000001": []}, 3))
    with pytest.raises(DatasetLayoutError, match=r"first: COCO_val2014_000000000042.jpg: difficult flag file pointing_game_ebp_coco_difficult.txt line 1: unknown class 'c9'"):
        build_dataset(cfg)  # (its only image: none can be scored)  # by rule: category 1's box is small and another is present


def test_method_defaults_follow_the_dataset_and_the_model():
    voc = composed("dataset=voc07", "model=torchray_vgg16", "method=[extremal_perturbation,excitation_backprop]")
    assert list(voc.method.extremal_perturbation.params.areas) == [0.025, 0.05, 0.1, 0.2]
    assert voc.method.excitation_backprop.params.saliency_layer == "features.23"
    coco = composed("dataset=coco14", "model=torchray_resnet50", "method=[extremal_perturbation,contrastive_excitation_backprop]")
    assert list(coco.method.extremal_perturbation.params.areas) == [0.018, 0.025, 0.05, 0.1]
    assert coco.method.contrastive_excitation_backprop.params.saliency_layer == "layer3"
    other = composed("method=[extremal_perturbation,excitation_backprop]")
    assert list(other.method.extremal_perturbation.params.areas) == [0.025, 0.05, 0.1, 0.2]
    assert other.method.excitation_backprop.params.saliency_layer == ""  # the model's target layer


def test_pipeline_applies_the_steps_at_image_size(tmp_path):
    root = voc_fixture(tmp_path / "voc")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=20).eval()
    torch.save(model.state_dict(), tmp_path / "resnet18_voc.pth")
    cfg = composed(
        "dataset=voc07", f"dataset.root={root}", "model=torchvision", "model.name=resnet18", f"model.checkpoint={tmp_path / 'resnet18_voc.pth'}",
        "model.num_classes=20", "model.multilabel=true", "transform=torchray", "transform.size=64", "method=[gradient,center]",
        "method.gradient.params.smooth=0.1", "method.center.params.origin=torchray", "targets.topk=0", "metric.energy_pointing.enabled=false",
        "metric.maxboxacc.enabled=false", "metric.avg_drop.enabled=false", "report.bootstrap=10", "device=cpu", "progress=false",
    )
    records = run(cfg, tmp_path / "run").records
    transform = ProtocolTransform("torchray", 64, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    moved = []
    for image_id, rows in records.groupby("image_id"):
        image, _ = transform(decode_rgb(root / "VOCdevkit" / "VOC2007" / "JPEGImages" / f"{image_id}.jpg")[0])
        height, width = int(rows["height"].iloc[0]), int(rows["width"].iloc[0])
        for row in rows.itertuples():
            if row.method == "center":
                assert (row.point_x, row.point_y) == (width / 2, height / 2)  # (35.5, 25.5) on the odd image
                continue
            saliency = explain(model, image[None], torch.tensor([row.target]), methods=["gradient"], target_layer="layer4")["gradient"]
            expected = argmax_points(smooth_saliency(to_original_size(saliency, (height, width)), 0.1))[0].tolist()
            unsmoothed = argmax_points(to_original_size(saliency, (height, width)))[0].tolist()
            assert [row.point_x, row.point_y] == expected
            moved.append(expected != unsmoothed)
    assert len(moved) == 3 and any(moved)  # the blur moved a point: the test sees the step
