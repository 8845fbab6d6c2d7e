"""Score-CAM parity on real weights and real photos: our two rules against the reference code.

    python scripts/parity_scorecam.py --peer-python /tmp/peers/bin/python
    python scripts/parity_scorecam.py --limit 2 --topk 1          # a short run, no peers

EfficientNet-Lite0 (real ImageNet weights, target layer bn2, 1280 channels) on the demo photos,
squash 224, targets = each image's GT class and its top-5 predictions (duplicates dropped).
Prints, per comparison, the per-map Pearson r over pixels (min / median / number of maps):

1. `scorecam` (defaults) vs the authors' algorithm: cam/scorecam.py of github.com/haofanwang/
   Score-CAM, re-implemented below one channel at a time as their loop runs it (the one change:
   a masked forward does not depend on the class, so one forward per channel serves all of an
   image's classes, where their code repeats it per class). Maps at 224 x 224. Target r >= 0.995.
2. `scorecam_channel_softmax align_corners=true` vs pytorch-grad-cam 1.5.7's ScoreCAM, run by the
   peer interpreter (never imported here). Ours upsampled to 224 bilinearly (half-pixel centers,
   as pytorch-grad-cam's cv2.resize), theirs as returned. Target r >= 0.99.
3. `scorecam_channel_softmax` (align_corners=false) vs torchcam's ScoreCAM (peer), on the 7 x 7
   grid both return.
4. For scale: the two rules against each other.

The peers run unchanged on a wrapper of the model that remembers its outputs per exact input
(bytes hashed): both score the same masked inputs for every class of an image, so each masked
batch is computed once per image instead of once per (image, class). The raw image always
reaches the model (the peers' hooks read its activations).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from wsl_bench import explain
from wsl_bench.data import DecodedImages, ProtocolTransform, build_dataset
from wsl_bench.methods.core import capture_output
from wsl_bench.models import create_model

PEER_WORKER = r'''
import hashlib, sys, time
import torch, timm
from torch import nn

work = torch.load(sys.argv[1], weights_only=False)
model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
model.load_state_dict(work["state_dict"])
model.eval()


class Remembered(nn.Module):
    """model(x) remembered per exact input; raw images always run (hooks need them)."""

    def __init__(self, model, raw):
        super().__init__()
        self.model, self.memory, self.raw = model, {}, raw

    def forward(self, x):
        key = hashlib.blake2b(x.detach().contiguous().cpu().numpy().tobytes(), digest_size=16).digest()
        if key in self.raw:
            return self.model(x)
        if key not in self.memory:
            self.memory[key] = self.model(x).detach()
        return self.memory[key].clone()


images, targets = work["images"], work["targets"]
raw = {hashlib.blake2b(images[i : i + 1].contiguous().numpy().tobytes(), digest_size=16).digest() for i in range(len(images))}
wrapped = Remembered(model, raw).eval()
out = {}
torch.set_grad_enabled(True)
if "pytorch_grad_cam" in work["peers"]:
    from pytorch_grad_cam import ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    start = time.perf_counter()
    cam = ScoreCAM(model=wrapped, target_layers=[model.bn2])
    cam.batch_size = work["batch_size"]
    maps = []
    for i, classes in enumerate(targets):
        for c in classes:  # one (image, class) per call: the masked-input tensor is [N, C, 3, H, W]
            maps.append(torch.from_numpy(cam(input_tensor=images[i : i + 1], targets=[ClassifierOutputTarget(c)])[0]))
    out["pytorch_grad_cam"] = maps
    out["pytorch_grad_cam_s"] = time.perf_counter() - start
if "torchcam" in work["peers"]:
    from torchcam.methods import ScoreCAM as TorchcamScoreCAM
    start = time.perf_counter()
    maps = []
    with TorchcamScoreCAM(wrapped, target_layer=model.bn2, batch_size=work["batch_size"]) as extractor:
        for i, classes in enumerate(targets):
            for c in classes:
                with torch.no_grad():
                    wrapped(images[i : i + 1])
                maps.append(extractor(class_idx=c, normalized=False)[0][0].detach().clone())
    out["torchcam"] = maps
    out["torchcam_s"] = time.perf_counter() - start
torch.save(out, sys.argv[2])
'''


def demo_inputs(limit: int | None) -> tuple[Any, torch.Tensor, list[list[int]], list[str]]:
    loaded = create_model(OmegaConf.create({"name": "efficientnet_lite0", "target_layer": None}))
    data = build_dataset(OmegaConf.create({"name": "demo", "limit": limit}))
    transform = ProtocolTransform("squash", 224, loaded.mean, loaded.std)
    samples = [DecodedImages(data.entries, transform)[i] for i in range(len(data.entries))]
    return loaded, torch.stack([s.image for s in samples]), [list(s.entry.labels) for s in samples], [s.entry.image_id for s in samples]


def authors_scorecam(model: torch.nn.Module, layer: torch.nn.Module, image: torch.Tensor, classes: list[int]) -> torch.Tensor:
    """cam/scorecam.py (ScoreCAM.forward) of the Score-CAM authors, one channel at a time:
    upsample A^k bilinearly (align_corners=False) to the input; skip it when the upsampled map
    is constant; normalize it to [0, 1]; softmax of the model on input * mask; add the class
    probability times the upsampled (unnormalized) A^k; ReLU; min-max normalize. [T, H, W]."""
    with torch.no_grad(), capture_output(layer, detach=True) as store:
        model(image)
    activations = store["activations"]
    height, width = image.shape[-2:]
    saliency = torch.zeros(len(classes), 1, height, width)
    with torch.no_grad():
        for i in range(activations.shape[1]):
            upsampled = F.interpolate(activations[:, i : i + 1], size=(height, width), mode="bilinear", align_corners=False)
            if upsampled.max() == upsampled.min():
                continue
            normalized = (upsampled - upsampled.min()) / (upsampled.max() - upsampled.min())
            output = F.softmax(model(image * normalized), dim=1)
            score = output[0, classes]  # [T]: one forward serves every class
            saliency += score[:, None, None, None] * upsampled
    saliency = F.relu(saliency)[:, 0]
    low = saliency.amin(dim=(-2, -1), keepdim=True)
    return (saliency - low) / (saliency.amax(dim=(-2, -1), keepdim=True) - low)


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def to_input(maps: torch.Tensor, size: int) -> torch.Tensor:
    """Layer-grid maps [n, h, w] bilinearly upsampled with half-pixel centers (cv2.resize's rule)."""
    return F.interpolate(maps[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def report(name: str, rs: list[float], target: float | None) -> dict:
    values = np.array(rs, dtype=float)
    finite = values[np.isfinite(values)]
    line = f"{name}: r min {finite.min():.5f}, median {np.median(finite):.5f} over {len(finite)} maps"
    if len(finite) < len(values):
        line += f" ({len(values) - len(finite)} constant maps left out)"
    if target is not None:
        line += f"; target >= {target}: {'met' if finite.min() >= target else 'NOT met'}"
    print(line)
    return {"comparison": name, "min": float(finite.min()), "median": float(np.median(finite)), "n_maps": int(len(finite))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-python", default="", help="interpreter with pytorch-grad-cam 1.5.7 and torchcam (e.g. /tmp/peers/bin/python)")
    parser.add_argument("--peers", default="pytorch_grad_cam,torchcam")
    parser.add_argument("--limit", type=int, default=None, help="first N demo images")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16, help="masked inputs per forward (ours and the peers')")
    parser.add_argument("--json", default="", help="also write the figures to this file")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    loaded, images, gt, ids = demo_inputs(args.limit)
    model = loaded.module.eval()
    logits = model(images)
    targets = []
    for i in range(len(images)):
        classes = gt[i] + logits[i].topk(args.topk).indices.tolist()
        targets.append(list(dict.fromkeys(classes)))  # GT first, then top-k, duplicates dropped
    width = max(len(t) for t in targets)
    padded = torch.tensor([t + [t[-1]] * (width - len(t)) for t in targets])
    n_maps = sum(len(t) for t in targets)
    print(f"EfficientNet-Lite0 (bn2, 1280 channels), {len(images)} demo images {ids}, {n_maps} (image, class) maps")

    def ours(method: str, params: dict) -> tuple[list[torch.Tensor], float]:
        start = time.perf_counter()
        maps = explain(model, images, padded, methods=[method], target_layer=loaded.target_layer, params={method: {"batch_size": args.batch_size, **params}})[method]
        return [maps[i, t] for i in range(len(images)) for t in range(len(targets[i]))], time.perf_counter() - start

    results = []
    default, seconds = ours("scorecam", {})
    print(f"scorecam (defaults): {seconds:.1f} s")
    start = time.perf_counter()
    authors = [m for i in range(len(images)) for m in authors_scorecam(model, model.bn2, images[i : i + 1], targets[i])]
    print(f"authors' algorithm, one channel at a time: {time.perf_counter() - start:.1f} s")
    results.append(report("scorecam vs the authors' cam/scorecam.py", [pearson(a, b) for a, b in zip(default, authors)], 0.995))
    peer_aligned, seconds = ours("scorecam_channel_softmax", {"align_corners": True})
    print(f"scorecam_channel_softmax align_corners=true: {seconds:.1f} s")
    peer_half, seconds = ours("scorecam_channel_softmax", {"align_corners": False})
    print(f"scorecam_channel_softmax align_corners=false: {seconds:.1f} s")
    results.append(report("for scale: scorecam vs scorecam_channel_softmax", [pearson(a, to_input(b[None], 224)[0]) for a, b in zip(default, peer_half)], None))

    if args.peer_python:
        with tempfile.TemporaryDirectory() as tmp:
            work, out, worker = Path(tmp) / "in.pt", Path(tmp) / "out.pt", Path(tmp) / "peer_worker.py"
            torch.save({"images": images, "targets": targets, "state_dict": model.state_dict(), "batch_size": args.batch_size, "peers": args.peers.split(",")}, work)
            worker.write_text(PEER_WORKER)
            subprocess.run([args.peer_python, str(worker), str(work), str(out)], check=True)
            peer = torch.load(out, weights_only=False)
        if "pytorch_grad_cam" in peer:
            print(f"pytorch-grad-cam ScoreCAM: {peer['pytorch_grad_cam_s']:.1f} s")
            theirs = peer["pytorch_grad_cam"]
            results.append(report(
                "scorecam_channel_softmax align_corners=true vs pytorch-grad-cam 1.5.7 ScoreCAM",
                [pearson(to_input(a[None], 224)[0], b) for a, b in zip(peer_aligned, theirs)], 0.99,
            ))
            results.append(report(
                "  (align_corners=false vs pytorch-grad-cam, for scale)", [pearson(to_input(a[None], 224)[0], b) for a, b in zip(peer_half, theirs)], None
            ))
            results.append(report("  (scorecam vs pytorch-grad-cam, for scale)", [pearson(a, b) for a, b in zip(default, theirs)], None))
        if "torchcam" in peer:
            print(f"torchcam ScoreCAM: {peer['torchcam_s']:.1f} s")
            results.append(report(
                "scorecam_channel_softmax align_corners=false vs torchcam ScoreCAM (7 x 7)", [pearson(a, b) for a, b in zip(peer_half, peer["torchcam"])], None
            ))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
