"""Parity of wsl_bench's pointing game with TorchRay's own code, on identical images and weights.

    # a VOC-layout folder of real photos shipped in scikit-image and matplotlib, hand-annotated
    python scripts/parity_torchray.py --make-photos /tmp/parity/photos
    # random weights in TorchRay's Caffe layout (parity is about code, not weights)
    python scripts/parity_torchray.py --write-random-checkpoint /tmp/parity/vgg16_voc-random.pth.tar
    # the comparison (TorchRay runs in its own virtualenv)
    python scripts/parity_torchray.py --voc /tmp/parity/photos --checkpoint /tmp/parity/vgg16_voc-random.pth.tar \
        --peer-python /tmp/peers/bin/python

wsl_bench side: one real run of the pipeline (`python -m wsl_bench`, model=torchray_<arch>,
transform=torchray, TorchRay's method settings, records and summary as any run writes them).
TorchRay side: this script re-invoked with the peers' interpreter (where `torchray` is
importable; it installs with `pip install --no-deps torchray`; wsl_bench is not imported there):
TorchRay's `get_model` (its Caffe
loader, fed the same file), `get_transform`, its VOCDetection, its attribution functions with the
arguments of its `examples/attribution_benchmark.py` (resize to the image, smooth=0.02,
get_pointing_gradient, its layers, its model patches per method), `_saliency_to_point`'s argmax
and `PointingGameBenchmark` (all and difficult; the difficult flags are the same file both sides
read, in TorchRay's format). It also reports how far wsl_bench's network input is from TorchRay's.

Printed per method: pairs compared, share of (image, class) pairs whose points are identical,
largest point distance (px), on how many of the pairs both sides score they agree on hit / miss,
both pointing accuracies (all / difficult) as mean over the classes seen (wsl_bench's
definition) and TorchRay's own `PointingGame.accuracy` (mean over all 20 classes, classes never
seen counting 0). RISE and extremal perturbation are slow on a CPU: they run on the first
--slow-images images with --rise-masks masks and --ep-iterations iterations, on both sides.

Threads: both sides run torch with --threads threads (default 1). TorchRay resizes its input and
its maps with the network's threads, and some of those kernels round differently with another
thread count, which moves TorchRay's own points on exact ties; wsl_bench decodes and scores with
one thread whatever the network uses (its records do not depend on where an image was scored).
--self-check-threads N also runs TorchRay with N threads and lists the points of its own that move.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
FAST = ["center", "gradient", "deconvnet", "guided_backprop", "grad_cam", "excitation_backprop", "contrastive_excitation_backprop"]
SLOW = ["rise", "extremal_perturbation"]
# TorchRay method name -> wsl_bench method name (only Grad-CAM differs).
WSL_NAME = {"grad_cam": "gradcam"}
VOC_AREAS = [0.025, 0.05, 0.1, 0.2]  # TorchRay's attribution_benchmark.py, voc_2007

# Real photos shipped in installed packages, with hand-drawn VOC boxes: 0-based inclusive corners
# (x_min, y_min, x_max, y_max) on the image at its stored size.
PHOTOS = [
    ("chelsea", "skimage", "data/chelsea.png", [("cat", 0, 0, 395, 299)]),
    ("camera", "skimage", "data/camera.png", [("person", 0, 65, 335, 511)]),
    ("motorcycle_left", "skimage", "data/motorcycle_left.png",
     [("motorbike", 92, 95, 686, 452), ("bicycle", 0, 128, 44, 232), ("bottle", 399, 55, 419, 93)]),
    ("motorcycle_right", "skimage", "data/motorcycle_right.png",
     [("motorbike", 48, 18, 630, 452), ("bicycle", 0, 140, 24, 222), ("bottle", 379, 55, 400, 93)]),
    ("astronaut", "skimage", "data/astronaut.png", [("person", 20, 15, 365, 511)]),
    ("coffee", "skimage", "data/coffee.png", [("diningtable", 0, 0, 599, 399)]),
    ("grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", [("person", 30, 20, 511, 599)]),
]
LFW_PEOPLE = 14  # skimage's lfw_subset.npy: 25 x 25 face photos (Labeled Faces in the Wild), class person


def package_file(package: str, relative: str) -> Path:
    module = __import__(package)
    return Path(module.__file__).parent / relative


def make_photos(root: Path) -> None:
    """VOCdevkit/VOC2007 (JPEGImages, Annotations, ImageSets/Main/test.txt) from the photos above,
    plus difficult_flags.txt: the EBP difficult subset by its rule, in TorchRay's file format."""
    from PIL import Image

    from wsl_bench.data.datasets.voc import VOC_CLASSES
    from wsl_bench.data.difficult import ebp_difficult_classes

    voc = root / "VOCdevkit" / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    items = [(name, Image.open(package_file(pkg, rel)).convert("RGB"), objects) for name, pkg, rel, objects in PHOTOS]
    faces = np.load(package_file("skimage", "data/lfw_subset.npy"))
    for i in range(LFW_PEOPLE):
        image = Image.fromarray(np.round(faces[i] * 255).astype(np.uint8)).convert("RGB")
        items.append((f"lfw_{i:02d}", image, [("person", 0, 0, image.width - 1, image.height - 1)]))
    flags = []
    for name, image, objects in items:
        image.save(voc / "JPEGImages" / f"{name}.jpg", quality=95)
        annotation = ET.Element("annotation")
        ET.SubElement(annotation, "filename").text = f"{name}.jpg"
        size = ET.SubElement(annotation, "size")
        for key, value in (("width", image.width), ("height", image.height), ("depth", 3)):
            ET.SubElement(size, key).text = str(value)
        for cls, x0, y0, x1, y1 in objects:
            obj = ET.SubElement(annotation, "object")
            ET.SubElement(obj, "name").text = cls
            ET.SubElement(obj, "difficult").text = "0"
            box = ET.SubElement(obj, "bndbox")
            for key, value in zip(("xmin", "ymin", "xmax", "ymax"), (x0 + 1, y0 + 1, x1 + 1, y1 + 1)):  # VOC: 1-based
                ET.SubElement(box, key).text = str(value)
        ET.ElementTree(annotation).write(voc / "Annotations" / f"{name}.xml")
        boxes = np.array([o[1:] for o in objects], dtype=np.int64)
        labels = np.array([VOC_CLASSES.index(o[0]) for o in objects], dtype=np.int64)
        hard = set(ebp_difficult_classes(boxes, labels, image.height, image.width))
        flags.append("\t".join([name] + ["1" if c in hard else "0" for c in range(len(VOC_CLASSES))]))
    (voc / "ImageSets" / "Main" / "test.txt").write_text("\n".join(name for name, _, _ in items) + "\n")
    (root / "difficult_flags.txt").write_text("\n".join(flags) + "\n")
    print(f"{len(items)} photos, {sum(len(o) for _, _, o in items)} objects in {voc}; difficult flags in {root / 'difficult_flags.txt'}")


def to_caffe_layout(arch: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """wsl_bench's module state dict -> TorchRay's published Caffe layout (what its loader reads)."""
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        if arch == "vgg16":
            key = re.sub(r"^classifier\.3\.", "classifier.2.", re.sub(r"^classifier\.6\.", "classifier.4.", key))
            if key.startswith("classifier.") and key.endswith("weight"):
                value = value.reshape(value.shape[0], -1)
        else:
            key = re.sub(r"(bn\d|downsample\.1)\.(running_mean|running_var)$", r"\1.0.\2", key)
            key = re.sub(r"(bn\d|downsample\.1)\.(weight|bias)$", r"\1.1.\2", key)
            if key == "fc.weight":
                value = value.reshape(value.shape[0], -1)
        if key in ("features.0.weight", "conv1.weight"):
            value = value[:, [2, 1, 0]]  # RGB -> BGR
        out[key] = value.clone()
    return out


def write_random_checkpoint(path: Path, arch: str, classes: int, seed: int) -> None:
    from torch import nn

    from wsl_bench.models.zoo.torchray_models import CaffeResNet50, CaffeVGG16

    torch.manual_seed(seed)
    module = CaffeVGG16(classes) if arch == "vgg16" else CaffeResNet50(classes)
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.normal_(m.bias, std=0.01)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.0)
            nn.init.normal_(m.bias, std=0.1)
            m.running_mean.normal_(std=0.1)
            m.running_var.uniform_(0.5, 2.0)
    # Class scores of a trained pointing-game model are moderate; keep these so too (TorchRay's
    # seed exp(s) overflows float32 for s > 88, which would make its maps NaN, not different).
    classifier = module.classifier[6] if arch == "vgg16" else module.fc
    with torch.no_grad():
        probe = torch.rand(2, 3, 224, 298) * 255 - 120
        scale = 10.0 / float(module.eval().score_map(probe).abs().max())
        classifier.weight.mul_(scale)
        classifier.bias.mul_(scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(to_caffe_layout(arch, module.state_dict()), path)
    print(f"random {arch} ({classes} classes, seed {seed}) in TorchRay's Caffe layout: {path}")


# ----------------------------------------------------------------------------- wsl_bench side
def wsl_overrides(args: argparse.Namespace, methods: list[str], arch: str) -> list[str]:
    """One pipeline run with TorchRay's protocol and method settings."""
    names = [WSL_NAME.get(m, m) for m in methods]
    out = [
        "dataset=voc07", f"dataset.root={args.voc}", f"dataset.difficult_flags={args.voc / 'difficult_flags.txt'}",
        f"model=torchray_{arch}", f"model.checkpoint={args.checkpoint}", "transform=torchray",
        f"method=[{','.join(names)}]", "targets.topk=0", "metric.energy_pointing.enabled=false", "metric.maxboxacc.enabled=false",
        "metric.avg_drop.enabled=false", "metric.pointing.no_peak=argmax", "report.bootstrap=100", "loader.batch_size=8", "device=cpu",
    ]
    params = {
        "center": ["origin=torchray"],
        "gradient": ["smooth=0.02"], "deconvnet": ["smooth=0.02"], "guided_backprop": ["smooth=0.02"],
        "excitation_backprop": ["zero_sum=torchray"], "contrastive_excitation_backprop": ["zero_sum=torchray"],
        "rise": [f"n_masks={args.rise_masks}", "score=probability", "input_size=224", "batch_size=32"],
        "extremal_perturbation": [f"max_iter={args.ep_iterations}", "batch_size=8"],
    }
    for method in names:
        out += [f"method.{method}.params.{p}" for p in params.get(method, [])]
    return out


def subprocess_env(args: argparse.Namespace) -> dict[str, str]:
    """This checkout first on the path; --threads sets both sides' torch threads."""
    return dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS=str(args.threads))


def save_network_inputs(args: argparse.Namespace, arch: str) -> Path:
    """What wsl_bench's pipeline feeds the network for each photo (its decoder, transform=torchray,
    the model's mean and std, one thread), for the TorchRay side to compare with its own input."""
    from omegaconf import OmegaConf

    from wsl_bench.data import build_dataset
    from wsl_bench.data.decode import decode_rgb
    from wsl_bench.data.transforms import ProtocolTransform
    from wsl_bench.models.zoo.torchray_models import CAFFE_RGB_MEAN

    from wsl_bench.threads import torch_threads

    cfg = OmegaConf.merge(OmegaConf.load(REPO / "conf" / "dataset" / "voc07.yaml"), {"root": str(args.voc)})
    transform = ProtocolTransform("torchray", 224, tuple(m / 255.0 for m in CAFFE_RGB_MEAN), (1 / 255.0,) * 3)
    with torch_threads(1):  # as the pipeline decodes, whatever the network's thread count
        inputs = {e.image_id: transform(decode_rgb(e.path)[0])[0] for e in build_dataset(cfg).entries}
    path = args.out / f"inputs_{arch}.pt"
    torch.save(inputs, path)
    return path


def run_wsl_bench(args: argparse.Namespace, methods: list[str], arch: str, limit: int | None, tag: str):
    import pandas as pd

    run_dir = args.out / f"wsl_bench_{arch}_{tag}"
    command = [sys.executable, "-m", "wsl_bench", *wsl_overrides(args, methods, arch), f"hydra.run.dir={run_dir}"]
    if limit:
        command.append(f"dataset.limit={limit}")
    done = subprocess.run(command, cwd=REPO, env=subprocess_env(args), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"wsl_bench run failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return pd.read_parquet(run_dir / "records.parquet"), pd.read_csv(run_dir / "summary.csv")


# ----------------------------------------------------------------------------- TorchRay side
def torchray_side(args: argparse.Namespace) -> None:
    """Runs in the peers' interpreter: TorchRay's benchmark loop on the same files."""
    import torchray.attribution.extremal_perturbation as elp
    from torchvision.datasets import VOCDetection
    from torchray.attribution.common import get_pointing_gradient
    from torchray.attribution.deconvnet import deconvnet
    from torchray.attribution.excitation_backprop import contrastive_excitation_backprop, excitation_backprop, update_resnet
    from torchray.attribution.grad_cam import grad_cam
    from torchray.attribution.gradient import gradient
    from torchray.attribution.guided_backprop import guided_backprop
    from torchray.attribution.rise import rise
    from torchray.benchmark import models as tr_models
    from torchray.benchmark.datasets import voc_as_class_ids, voc_as_image_size
    from torchray.benchmark.pointing_game import PointingGameBenchmark

    arch = args.arch
    ours = torch.load(args.inputs, weights_only=True)  # wsl_bench's network inputs, by image id
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    tr_models.torch.hub.load_state_dict_from_url = lambda *a, **k: {k2: v.clone() for k2, v in state.items()}  # feed TorchRay's loader our file

    def model_for(method: str):
        model = tr_models.get_model(arch=arch, dataset="voc", convert_to_fully_convolutional=True)
        if arch == "resnet50" and method not in ("rise", "extremal_perturbation", "center"):
            model.avgpool = torch.nn.AvgPool2d((7, 7), stride=1)  # the benchmark's patch for backprop methods
            if "excitation_backprop" in method:
                model = update_resnet(model)
        return model.eval()

    layers = {"vgg16": ("features.29", "features.23", "classifier.4"), "resnet50": ("layer4", "layer3", "avgpool")}[arch]
    gradcam_layer, saliency_layer, contrast_layer = layers
    flags = {}
    for row in (args.voc / "difficult_flags.txt").read_text().splitlines():
        cells = row.split("\t")
        flags[cells[0]] = [bool(int(x)) for x in cells[1:]]
    results = {"points": [], "input_max_abs_diff": 0.0, "accuracy": {}}
    for method in args.methods:
        size = (224, 224) if method == "rise" else 224
        # torchvision's VOCDetection (what PointingGameBenchmark expects): TorchRay's subclass passes
        # its arguments positionally to a base class whose signature changed in torchvision 0.13+.
        data = VOCDetection(str(args.voc), year="2007", image_set="test", transform=tr_models.get_transform(dataset="voc_2007", size=size))
        pointing = PointingGameBenchmark(data, difficult=False)
        pointing_difficult = PointingGameBenchmark(data, difficult=True)
        pointing_difficult.difficult_flags = flags  # the same flags wsl_bench reads
        model = model_for(method)
        count = min(len(data), args.slow_images) if method in SLOW else len(data)
        for i in range(count):
            x, label = data[i]
            x = x[None]
            name = Path(data.images[i]).stem
            if method != "rise":
                results["input_max_abs_diff"] = max(results["input_max_abs_diff"], float((ours[name] - x[0]).abs().max()))
            image_size = voc_as_image_size(label)
            rise_saliency = None
            for class_id in sorted(voc_as_class_ids(label)):
                torch.manual_seed(0)
                common = dict(resize=image_size, get_backward_gradient=get_pointing_gradient)
                if method == "center":
                    w, h = image_size
                    point = torch.tensor([[w / 2, h / 2]])
                else:
                    if method == "gradient":
                        saliency = gradient(model, x.clone(), class_id, smooth=0.02, **common)
                    elif method == "deconvnet":
                        saliency = deconvnet(model, x.clone(), class_id, smooth=0.02, **common)
                    elif method == "guided_backprop":
                        saliency = guided_backprop(model, x.clone(), class_id, smooth=0.02, **common)
                    elif method == "grad_cam":
                        saliency = grad_cam(model, x.clone(), class_id, saliency_layer=gradcam_layer, **common)
                    elif method == "excitation_backprop":
                        saliency = excitation_backprop(model, x.clone(), class_id, saliency_layer, **common)
                    elif method == "contrastive_excitation_backprop":
                        saliency = contrastive_excitation_backprop(
                            model, x.clone(), class_id, saliency_layer=saliency_layer, contrast_layer=contrast_layer, **common
                        )
                    elif method == "rise":
                        if rise_saliency is None:
                            rise_saliency = rise(model, x.clone(), resize=image_size, seed=0, num_masks=args.rise_masks)
                        saliency = rise_saliency[:, class_id][:, None]
                    elif method == "extremal_perturbation":
                        masks, _ = elp.extremal_perturbation(
                            model, x.clone(), class_id, areas=VOC_AREAS, num_levels=8, step=7, sigma=21, max_iter=args.ep_iterations,
                            jitter=True, smooth=0.09, resize=image_size, perturbation="blur", reward_func=elp.simple_reward,
                            variant=elp.PRESERVE_VARIANT,
                        )
                        saliency = masks.sum(dim=0, keepdim=True)
                    flat = saliency.view(len(saliency), -1).argmax(dim=1, keepdim=True)  # _saliency_to_point
                    point = torch.cat((flat % saliency.shape[3], flat // saliency.shape[3]), dim=1)
                hit = pointing.evaluate(label, class_id, point[0])
                hit_difficult = pointing_difficult.evaluate(label, class_id, point[0])
                pointing.aggregate(hit, class_id)
                pointing_difficult.aggregate(hit_difficult, class_id)
                results["points"].append(
                    {"method": method, "image_id": name, "target": class_id, "x": float(point[0, 0]), "y": float(point[0, 1]), "hit": hit, "hit_difficult": hit_difficult}
                )
        results["accuracy"][method] = {
            "torchray_all": float(pointing.accuracy), "torchray_difficult": float(pointing_difficult.accuracy),
        }
        print(f"torchray {arch} {method}: {count} images", file=sys.stderr, flush=True)
    Path(args.torchray_side).write_text(json.dumps(results))


# ----------------------------------------------------------------------------- comparison
def seen_class_mean(rows: list[dict], key: str) -> float:
    """Mean over the classes with any scored pair of hits / (hits + misses) (wsl_bench's rule)."""
    per_class: dict[int, list[int]] = {}
    for row in rows:
        if row[key] != 0:
            per_class.setdefault(row["target"], []).append(row[key] == 1)
    return 100 * float(np.mean([np.mean(v) for v in per_class.values()])) if per_class else float("nan")


def compare(args: argparse.Namespace, arch: str) -> None:
    import pandas as pd

    fast = [m for m in args.methods if m in FAST]
    slow = [m for m in args.methods if m in SLOW]
    frames = []
    if fast:
        frames.append(run_wsl_bench(args, fast, arch, None, "fast"))
    if slow:
        frames.append(run_wsl_bench(args, slow, arch, args.slow_images, "slow"))
    side = args.out / f"torchray_{arch}.json"
    inputs = save_network_inputs(args, arch)
    theirs = run_torchray_side(args, arch, inputs, side, args.threads)
    print(f"\n{arch}: {args.checkpoint.name}; {args.threads} torch thread(s) both sides; max |wsl_bench input - TorchRay input| = "
          f"{theirs['input_max_abs_diff']:.3g} (0-255 units)")
    print("| method | pairs | identical points | max distance (px) | same hit | acc all: wsl_bench / TorchRay (seen classes) / TorchRay .accuracy | acc difficult: same |")
    print("|---|---|---|---|---|---|---|")
    for method in args.methods:
        name = WSL_NAME.get(method, method)
        records, summary = next((r, s) for r, s in frames if name in set(r["method"]))
        mine = records[(records["method"] == name) & records["skip_reason"].isna()]
        ours = {(r.image_id, int(r.target)): (float(r.point_x), float(r.point_y), r.point_hit) for r in mine.itertuples()}
        rows = [r for r in theirs["points"] if r["method"] == method and (r["image_id"], r["target"]) in ours]
        distances = [math.dist(ours[(r["image_id"], r["target"])][:2], (r["x"], r["y"])) for r in rows]
        same = sum(d == 0 for d in distances)
        # TorchRay's hit is +1 / -1 (0: not scored); ours True / False / null
        scored = [r for r in rows if r["hit"] != 0 and not pd.isna(ours[(r["image_id"], r["target"])][2])]
        same_hit = sum((r["hit"] == 1) == bool(ours[(r["image_id"], r["target"])][2]) for r in scored)
        row = summary[summary["method"] == name].iloc[0]
        acc = theirs["accuracy"][method]
        print(
            f"| {method} | {len(distances)} | {100 * same / max(1, len(distances)):.1f}% ({same}/{len(distances)}) | {max(distances, default=float('nan')):.2f} | "
            f"{same_hit}/{len(scored)} | "
            f"{row['pointing_acc']:.1f} / {seen_class_mean(rows, 'hit'):.1f} / {100 * acc['torchray_all']:.1f} | "
            f"{row['pointing_acc_difficult']:.1f} / {seen_class_mean(rows, 'hit_difficult'):.1f} / {100 * acc['torchray_difficult']:.1f} |"
        )
    if args.self_check_threads:
        torchray_self_check(args, arch, theirs)


def run_torchray_side(args: argparse.Namespace, arch: str, inputs: Path, side: Path, threads: int) -> dict:
    command = [
        str(args.peer_python), __file__, "--torchray-side", str(side), "--inputs", str(inputs), "--voc", str(args.voc), "--checkpoint", str(args.checkpoint),
        "--arch", arch, "--methods", ",".join(args.methods), "--rise-masks", str(args.rise_masks),
        "--ep-iterations", str(args.ep_iterations), "--slow-images", str(args.slow_images),
    ]
    done = subprocess.run(command, env=dict(subprocess_env(args), OMP_NUM_THREADS=str(threads)), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"TorchRay side failed:\n{done.stderr[-4000:]}")
    return json.loads(side.read_text())


def torchray_self_check(args: argparse.Namespace, arch: str, theirs: dict) -> None:
    """TorchRay against itself with --self-check-threads threads: the pairs whose point moves."""
    inputs = args.out / f"inputs_{arch}.pt"
    other = run_torchray_side(args, arch, inputs, args.out / f"torchray_{arch}_{args.self_check_threads}threads.json", args.self_check_threads)
    points = {(r["method"], r["image_id"], r["target"]): (r["x"], r["y"]) for r in theirs["points"]}
    moved = [(r["method"], r["image_id"], r["target"], points[(r["method"], r["image_id"], r["target"])], (r["x"], r["y"]))
             for r in other["points"] if points.get((r["method"], r["image_id"], r["target"])) != (r["x"], r["y"])]
    print(f"TorchRay with {args.self_check_threads} threads vs TorchRay with {args.threads}: {len(moved)} of {len(other['points'])} points differ"
          + "".join(f"\n  {m} {i} class {t}: {a} -> {b}" for m, i, t, a, b in moved))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--make-photos", type=Path, help="write the VOC-layout photo folder here and exit")
    parser.add_argument("--write-random-checkpoint", type=Path, help="write random weights in TorchRay's Caffe layout here and exit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--voc", type=Path, help="folder holding VOCdevkit/VOC2007 and difficult_flags.txt")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--arch", choices=["vgg16", "resnet50"], help="default: from the checkpoint's name")
    parser.add_argument("--methods", default=",".join(FAST + SLOW))
    parser.add_argument("--rise-masks", type=int, default=8000)
    parser.add_argument("--ep-iterations", type=int, default=800)
    parser.add_argument("--slow-images", type=int, default=1000000, help="RISE and extremal perturbation on the first N images only")
    parser.add_argument("--peer-python", type=Path, default=Path("/tmp/peers/bin/python"))
    parser.add_argument("--out", type=Path, default=Path("results/parity_torchray"))
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch threads of both sides (OMP_NUM_THREADS). TorchRay resizes inputs and maps with the network's threads, and several "
        "of those kernels round differently with another thread count, which moves its points on exact ties; wsl_bench decodes and "
        "scores with one thread whatever the network uses. Default 1: the same arithmetic on both sides",
    )
    parser.add_argument("--self-check-threads", type=int, default=0, help="also run TorchRay with this many threads and print the points that move")
    parser.add_argument("--torchray-side", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.methods = [m for m in args.methods.split(",") if m]
    if args.make_photos:
        return make_photos(args.make_photos)
    arch = args.arch or ("resnet50" if "resnet50" in (args.checkpoint or args.write_random_checkpoint).name else "vgg16")
    if args.write_random_checkpoint:
        return write_random_checkpoint(args.write_random_checkpoint, arch, 20, args.seed)
    args.arch = arch
    args.voc, args.checkpoint = args.voc.resolve(), args.checkpoint.resolve()
    if args.torchray_side:
        return torchray_side(args)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    compare(args, arch)


if __name__ == "__main__":
    main()
