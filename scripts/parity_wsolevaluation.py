"""wsl_bench's wsolevaluation protocol against wsolevaluation's own evaluation code (Choe et al.,
CVPR 2020; github.com/clovaai/wsolevaluation), on identical random maps and ground truth:

    python scripts/parity_wsolevaluation.py --wsolevaluation /path/to/wsolevaluation [--maps 300]
        [--peer-python /tmp/peers/bin/python] [--seed 0]

Writes random smooth maps (several blobs, rings with holes, plateaus, noise; all-zero, constant
and NaN maps among them) with boxes and OpenImages-style mask / ignore PNGs at original image size
into a temporary folder in wsolevaluation's metadata layout, then
- runs wsolevaluation's code in a subprocess of `--peer-python` (an interpreter with its
  dependencies: cv2, numpy, torch; `munch` is stubbed and numpy's removed np.float aliased):
  inference.normalize_scoremap, evaluation.BoxEvaluator (V1: multi_contour_eval=False; V2: True),
  evaluation.MaskEvaluator, each map accumulated on its own so its hits can be read off;
- scores the same maps with wsl_bench's units as a run does (metric.maxboxacc.mode=wsolevaluation,
  metric=pxap; boxes and masks put on the 224 grid by transform.gt_to_grid=wsolevaluation, masks
  read by dataset=openimages);
and prints the dataset-level figures side by side and the share of maps whose per-threshold hits
(or histograms) differ. Two sets: maps given at 224 x 224 ("same maps"), and CAMs at 7 / 14 / 28
px resized by each side ("resize": wsolevaluation's cv2.resize INTER_CUBIC on float64 against
transform.upsample=bicubic in float32).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from PIL import Image
from scipy import ndimage

from wsl_bench.data.base import build_dataset
from wsl_bench.data.sample import ImageEntry, Sample, View
from wsl_bench.data.transforms import boxes_on_grid, mask_on_grid
from wsl_bench.metrics import ImageTruth, MapChunk, map_status
from wsl_bench.metrics.maps import NO_PEAK, to_original_size
from wsl_bench.metrics.maxboxacc import MaxBoxAcc, MaxBoxAccSettings
from wsl_bench.metrics.pxap import PxAP, PxAPSettings

GRID = 224
IOUS = (30, 50, 70)

# Runs in the peer interpreter: wsolevaluation's own classes on the files written here.
DRIVER = textwrap.dedent('''
    import json, sys, types
    import numpy as np
    checkout, work = sys.argv[1], sys.argv[2]
    munch = types.ModuleType("munch")
    class Munch(dict):
        __getattr__, __setattr__ = dict.__getitem__, dict.__setitem__
    munch.Munch = Munch
    sys.modules["munch"] = munch
    np.float = float  # removed from numpy 1.24; wsolevaluation uses it as the float64 dtype
    sys.path.insert(0, checkout)
    import cv2
    from evaluation import BoxEvaluator, MaskEvaluator, configure_metadata
    from inference import normalize_scoremap
    out = {}
    for name in json.load(open(work + "/sets.json")):
        meta = configure_metadata(f"{work}/{name}/metadata/box")
        ids = [line.strip() for line in open(f"{work}/{name}/metadata/box/image_ids.txt")]
        cams = np.load(f"{work}/{name}/cams.npy", allow_pickle=True)
        thresholds = list(np.arange(0, 1, 0.01))
        common = dict(metadata=meta, dataset_name="ILSVRC", split="test", cam_threshold_list=thresholds,
                      iou_threshold_list=[30, 50, 70], mask_root=None)
        box = {contours: BoxEvaluator(multi_contour_eval=contours, **common) for contours in (False, True)}
        masks = MaskEvaluator(metadata=configure_metadata(f"{work}/{name}/metadata/mask"), dataset_name="OpenImages", split="test",
                              cam_threshold_list=thresholds, iou_threshold_list=[30, 50, 70], mask_root=f"{work}/{name}/OpenImages",
                              multi_contour_eval=False)
        hits = {False: [], True: []}
        hist_pos, hist_neg = [], []
        for image_id, cam in zip(ids, cams):
            if cam.shape != (224, 224):  # inference.CAMComputer: cv2.resize INTER_CUBIC, then normalize
                cam = cv2.resize(cam.astype(np.float64), (224, 224), interpolation=cv2.INTER_CUBIC)
            scoremap = normalize_scoremap(cam.astype(np.float64))
            for contours, evaluator in box.items():
                before = {k: v.copy() for k, v in evaluator.num_correct.items()}
                evaluator.accumulate(scoremap, image_id)
                hits[contours].append([(evaluator.num_correct[k] - before[k]).astype(int).tolist() for k in (30, 50, 70)])
            pos, neg = masks.gt_true_score_hist.copy(), masks.gt_false_score_hist.copy()
            masks.accumulate(scoremap, image_id.replace("box/", "test/"))
            hist_pos.append((masks.gt_true_score_hist - pos).astype(int).tolist())
            hist_neg.append((masks.gt_false_score_hist - neg).astype(int).tolist())
        out[name] = {"v1": [float(v) for v in box[False].compute()], "v2": [float(v) for v in box[True].compute()],
                     "pxap": float(masks.compute()), "hits_v1": hits[False], "hits_v2": hits[True],
                     "hist_pos": hist_pos, "hist_neg": hist_neg, "cv2": cv2.__version__}
    json.dump(out, open(work + "/theirs.json", "w"))
''')


def smooth_map(rng: np.random.Generator, size: int) -> np.ndarray:
    """Blobs of both signs, a ring (a hole) half the time, plateaus, noise."""
    yy, xx = np.mgrid[0:size, 0:size]
    m = np.zeros((size, size))
    for _ in range(rng.integers(1, 6)):
        s = rng.uniform(0.02, 0.2) * size
        m += rng.uniform(-1, 1.5) * np.exp(-((yy - rng.uniform(0, size)) ** 2 + (xx - rng.uniform(0, size)) ** 2) / (2 * s * s))
    if rng.random() < 0.5:
        d = np.hypot(yy - rng.uniform(0.2, 0.8) * size, xx - rng.uniform(0.2, 0.8) * size)
        m += rng.uniform(0.3, 1.5) * np.exp(-((d - rng.uniform(0.05, 0.25) * size) ** 2) / (2 * (rng.uniform(0.01, 0.04) * size) ** 2))
    if rng.random() < 0.2:
        m = np.minimum(m, np.quantile(m, rng.uniform(0.9, 0.99)))  # a flat top: ties
    if rng.random() < 0.3:
        m += rng.normal(0, rng.choice([0.005, 0.02]), m.shape)
    return m


def make_cams(rng: np.random.Generator, n: int, resize: bool) -> list[np.ndarray]:
    """float32 maps: at 224 ("same maps") or at 7 / 14 / 28 ("resize"); degenerate ones included."""
    cams = []
    for i in range(n):
        size = int(rng.choice([7, 14, 28])) if resize else GRID
        if i % 50 == 7:
            cam = np.zeros((size, size))
        elif i % 50 == 19:
            cam = np.full((size, size), 0.3)
        elif i % 50 == 31:
            cam = np.full((size, size), np.nan)
        else:
            cam = smooth_map(rng, size)
            if resize and rng.random() < 0.5:
                cam = np.maximum(cam, 0)  # a ReLU'd CAM: zero regions
        cams.append(cam.astype(np.float32))
    return cams


def ground_truth(rng: np.random.Generator, view: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes near the map's high regions (and one random box sometimes), a mask from a perturbed
    cut of the map and an ignore box, all at the original image size."""
    v = np.nan_to_num(view, nan=0.0)
    v = (v - v.min()) / max(float(v.max() - v.min()), 1e-12)
    labels, n = ndimage.label(v > rng.uniform(0.2, 0.8))
    boxes = []
    for sl in ndimage.find_objects(labels)[: rng.integers(1, 3)] if n else []:
        ys, xs = sl
        x0, x1 = (np.array([xs.start, xs.stop - 1]) + rng.integers(-12, 13, 2)) * width / GRID
        y0, y1 = (np.array([ys.start, ys.stop - 1]) + rng.integers(-12, 13, 2)) * height / GRID
        boxes.append([x0, y0, x1, y1])
    if not boxes or rng.random() < 0.3:
        x0, y0 = rng.uniform(0, width * 0.7), rng.uniform(0, height * 0.7)
        boxes.append([x0, y0, x0 + rng.uniform(10, width * 0.3), y0 + rng.uniform(10, height * 0.3)])
    boxes = np.array(boxes)
    boxes[:, [0, 2]] = np.clip(np.sort(boxes[:, [0, 2]], axis=1), 0, width - 1)
    boxes[:, [1, 3]] = np.clip(np.sort(boxes[:, [1, 3]], axis=1), 0, height - 1)
    big = np.asarray(Image.fromarray(v.astype(np.float32)).resize((width, height), Image.BILINEAR))
    noise = ndimage.gaussian_filter(rng.normal(0, 1, (height, width)), 8) * 8
    mask = big + 0.15 * noise > rng.uniform(0.3, 0.7)
    ignore = np.zeros((height, width), bool)
    if rng.random() < 0.7:
        x0, y0 = rng.integers(0, width // 2), rng.integers(0, height // 2)
        ignore[y0 : y0 + rng.integers(10, height // 2), x0 : x0 + rng.integers(10, width // 2)] = True
    return np.round(boxes).astype(np.int64), mask, ignore


def write_set(work: Path, name: str, cams: list[np.ndarray], rng: np.random.Generator) -> list[dict]:
    """The set in wsolevaluation's layouts: box metadata (ILSVRC-style) and OpenImages masks."""
    base = work / name
    box_meta, mask_meta, images = base / "metadata" / "box", base / "metadata" / "mask", base / "OpenImages"
    box_meta.mkdir(parents=True)
    mask_meta.mkdir(parents=True)
    items, ids, loc, sizes, mask_ids, mask_loc, labels = [], [], [], [], [], [], []
    for i, cam in enumerate(cams):
        width, height = int(rng.integers(200, 501)), int(rng.integers(200, 501))
        view = to_original_size(torch.from_numpy(cam)[None], (GRID, GRID), mode="bicubic")[0].numpy() if cam.shape[0] != GRID else cam
        boxes, mask, ignore = ground_truth(rng, view, width, height)
        image_id = f"box/c0/{i:04d}.jpg"
        oi_id = f"test/c0/{i:04d}.jpg"
        folder = images / "test" / "c0"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(images / oi_id)
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{i:04d}_mc0_0.png")
        Image.fromarray(ignore.astype(np.uint8) * 255).save(folder / f"{i:04d}_ignore.png")
        ids.append(image_id)
        loc += [f"{image_id},{b[0]},{b[1]},{b[2]},{b[3]}" for b in boxes]
        sizes.append(f"{image_id},{width},{height}")
        mask_ids.append(oi_id)
        mask_loc.append(f"{oi_id},test/c0/{i:04d}_mc0_0.png,test/c0/{i:04d}_ignore.png")
        labels.append(f"{oi_id},0")
        items.append({"image_id": image_id, "oi_id": oi_id, "boxes": boxes, "size": (height, width)})
    for folder, files in ((box_meta, {"image_ids": ids, "localization": loc, "image_sizes": sizes, "class_labels": [f"{i},0" for i in ids]}),
                          (mask_meta, {"image_ids": mask_ids, "localization": mask_loc, "class_labels": labels, "image_sizes": []})):
        for key, lines in files.items():
            (folder / f"{key}.txt").write_text("".join(line + "\n" for line in lines))
    np.save(base / "cams.npy", np.array(cams, dtype=object) if len({c.shape for c in cams}) > 1 else np.stack(cams), allow_pickle=True)
    return items


def score_ours(work: Path, name: str, cams: list[np.ndarray], items: list[dict]) -> pd.DataFrame:
    """The records a run would write for these maps: maps resized onto the 224 grid
    (transform.upsample=bicubic), ground truth put on it as wsolevaluation does, the units' columns."""
    boxacc = MaxBoxAcc(MaxBoxAccSettings(mode="wsolevaluation"))
    pxap = PxAP(PxAPSettings())
    masks = {e.image_id: e for e in build_dataset(OmegaConf.create({
        "name": "openimages", "root": str(work / name / "OpenImages"), "split": "test", "metadata": str(work / name / "metadata" / "mask"), "limit": None,
    })).entries}
    rows = []
    for cam, item in zip(cams, items):
        height, width = item["size"]
        full = View(0.0, 0.0, float(width), float(height))
        gt_boxes, _ = boxes_on_grid(item["boxes"], full, (GRID, GRID), "wsolevaluation")
        entry = masks[item["oi_id"]]
        grid_mask = mask_on_grid(entry.masks()[0], full, (GRID, GRID), "wsolevaluation")
        grid_ignore = mask_on_grid(entry.ignore(), full, (GRID, GRID), "wsolevaluation")
        on_grid = ImageEntry(item["image_id"], path=Path(item["image_id"]), labels=(0,), boxes=gt_boxes, box_labels=np.zeros(len(gt_boxes), np.int64),
                             masks=lambda m=grid_mask: {0: m}, ignore=lambda m=grid_ignore: m)
        truth = ImageTruth(Sample(on_grid, None, (GRID, GRID)))
        maps = to_original_size(torch.from_numpy(cam)[None], (GRID, GRID), mode="bicubic")
        chunk = MapChunk(maps, map_status(maps), np.array([0]), np.array([True]))
        columns = {**boxacc.score(chunk, truth), **pxap.score(chunk, truth)}
        rows.append({"image_id": item["image_id"], "target": 0, "target_source": "gt", "pred_rank": 0, "map_status": chunk.status[0],
                     **{k: v[0] for k, v in columns.items()}})
    return pd.DataFrame(rows)


def report(name: str, ours: pd.DataFrame, theirs: dict) -> list[tuple[str, float, float]]:
    images = pd.Index(ours["image_id"])
    stats = {s.name: s for s in MaxBoxAcc(MaxBoxAccSettings(mode="wsolevaluation")).statistics() + PxAP().statistics()}
    value = {k: stats[k].build(ours, images).value() for k in stats}
    n = len(ours)
    v1 = np.stack([np.asarray(h, bool) for h in ours["boxacc_v1_hits"]])
    v2 = np.stack([np.asarray(h, bool).reshape(len(IOUS), -1) for h in ours["boxacc_v2_hits"]])
    their_v1 = np.asarray(theirs["hits_v1"], bool)[:, IOUS.index(50)]
    their_v2 = np.asarray(theirs["hits_v2"], bool)
    pos, neg = np.stack(ours["pxap_pos_hist"].to_numpy()), np.stack(ours["pxap_neg_hist"].to_numpy())
    lines = [
        ("MaxBoxAcc (V1, IoU 0.5)", theirs["v1"][IOUS.index(50)], value["maxboxacc"], (v1 != their_v1).any(axis=1).mean()),
        *[(f"MaxBoxAccV2 IoU 0.{k // 10}", theirs["v2"][j], value[f"maxboxacc_v2_iou{k}"], (v2[:, j] != their_v2[:, j]).any(axis=1).mean()) for j, k in enumerate(IOUS)],
        ("MaxBoxAccV2 (mean)", float(np.mean(theirs["v2"])), value["maxboxacc_v2"], (v2 != their_v2).any(axis=(1, 2)).mean()),
        ("PxAP", theirs["pxap"], value["pxap"], ((pos != np.asarray(theirs["hist_pos"])) | (neg != np.asarray(theirs["hist_neg"]))).any(axis=1).mean()),
    ]
    degenerate = int(ours["map_status"].isin(NO_PEAK).sum())
    moved = int((np.abs(pos - np.asarray(theirs["hist_pos"])) + np.abs(neg - np.asarray(theirs["hist_neg"]))).sum()) // 2
    print(f"\n{name}: {n} maps, {degenerate} of them degenerate (all zero, constant, NaN); PxAP: {moved} of "
          f"{int(pos.sum() + neg.sum())} counted pixels in another bin")
    print("| figure | wsolevaluation | wsl_bench | difference | maps that differ |")
    print("|---|---|---|---|---|")
    for label, a, b, rate in lines:
        print(f"| {label} | {a:.4f} | {b:.4f} | {b - a:+.4f} | {100 * rate:.2f}% |")
    return [(label, a, b) for label, a, b, _ in lines]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wsolevaluation", required=True, type=Path, help="a checkout of github.com/clovaai/wsolevaluation")
    parser.add_argument("--peer-python", default=sys.executable, help="an interpreter with wsolevaluation's dependencies (cv2, numpy, torch)")
    parser.add_argument("--maps", type=int, default=300, help="maps per set")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.wsolevaluation / "evaluation.py").is_file():
        sys.exit(f"error: {args.wsolevaluation}/evaluation.py not found; pass --wsolevaluation=/path/to/a/wsolevaluation/checkout")
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sets = {}
        for name, resize in (("same maps", False), ("resize", True)):
            cams = make_cams(rng, args.maps, resize)
            sets[name] = (cams, write_set(work, name, cams, rng))
        (work / "sets.json").write_text(json.dumps(list(sets)))
        (work / "driver.py").write_text(DRIVER)
        done = subprocess.run([args.peer_python, str(work / "driver.py"), str(args.wsolevaluation.resolve()), str(work)], capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"error: wsolevaluation's code failed under {args.peer_python}:\n{done.stderr[-3000:]}")
        theirs = json.loads((work / "theirs.json").read_text())
        print(f"wsolevaluation at {args.wsolevaluation} (cv2 {theirs[next(iter(sets))]['cv2']}), thresholds 0..0.99 step 0.01, IoU 0.3 / 0.5 / 0.7, seed {args.seed}")
        worst = 0.0
        for name, (cams, items) in sets.items():
            ours = score_ours(work, name, cams, items)
            worst = max([worst] + [abs(b - a) for _, a, b in report(name, ours, theirs[name])])
        print(f"\nlargest dataset-level difference: {worst:.4f} points ({'within' if worst <= 0.1 else 'NOT within'} 0.1)")
    if worst > 0.1:
        sys.exit(1)


if __name__ == "__main__":
    main()
