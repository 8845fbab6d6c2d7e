"""Integrated Gradients and SmoothGrad against captum on real weights and real photos.

    python scripts/parity_gradients.py --peer-python /tmp/peers/bin/python
    python scripts/parity_gradients.py --limit 1 --topk 1 --steps 8 --samples 4   # a short run

EfficientNet-Lite0 (real ImageNet weights) on the demo photos, squash 224, targets = GT class +
top-5 predictions (duplicates dropped), as scripts/parity_scorecam.py. captum (IntegratedGradients,
NoiseTunnel over Saliency) runs in the peer interpreter, never imported here. Prints the per-map
Pearson r (min / median) of the maps (both reduced over colour channels the same way):

1. integrated_gradients (probability, baseline 0, 50 steps) vs captum IntegratedGradients with the
   same forward (softmax), baseline and number of steps, for rule riemann_right (the paper's Eq. 3)
   and gausslegendre (captum's default), channel_reduce abs_sum and sum; and completeness of ours:
   |sum of attributions - (F(x) - F(x'))| relative to |F(x) - F(x')|.
2. smoothgrad (logit, noise 15% of the input range, 50 samples, raw gradients) vs captum NoiseTunnel
   (nt_type smoothgrad, Saliency abs=False, stdev = 0.15 * (max - min) of the image): with the peer's
   global generator seeded as ours (the same normal draws, if captum consumes them as we do) and
   with another seed (independent noise: how close two SmoothGrad estimates are at this sample count).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from parity_scorecam import demo_inputs, pearson, report
from wsl_bench import explain
from wsl_bench.methods.core import reduce_channels

PEER_WORKER = r'''
import sys, time
import torch, timm
from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

work = torch.load(sys.argv[1], weights_only=False)
model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
model.load_state_dict(work["state_dict"])
model.eval().requires_grad_(False)
images, targets = work["images"], work["targets"]
out = {}
ig = IntegratedGradients(lambda x: torch.softmax(model(x), dim=1))
for rule in ("riemann_right", "gausslegendre"):
    start = time.perf_counter()
    out[f"ig_{rule}"] = [
        ig.attribute(images[i : i + 1], baselines=torch.zeros_like(images[i : i + 1]), target=c, n_steps=work["steps"],
                     method=rule, internal_batch_size=work["batch_size"])[0].detach()
        for i, classes in enumerate(targets) for c in classes
    ]
    out[f"ig_{rule}_s"] = time.perf_counter() - start
tunnel = NoiseTunnel(Saliency(model))
for name, seed in (("same_seed", work["seed"]), ("other_seed", work["seed"] + 1)):
    start = time.perf_counter()
    maps = []
    for i, classes in enumerate(targets):
        x = images[i : i + 1]
        stdev = float(work["noise_level"] * (x.max() - x.min()))
        for c in classes:
            torch.manual_seed(seed)
            maps.append(tunnel.attribute(x, nt_type="smoothgrad", nt_samples=work["samples"], nt_samples_batch_size=work["batch_size"],
                                         stdevs=stdev, target=c, abs=False)[0].detach())
    out[f"smoothgrad_{name}"] = maps
    out[f"smoothgrad_{name}_s"] = time.perf_counter() - start
torch.save(out, sys.argv[2])
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-python", required=True, help="interpreter with captum (e.g. /tmp/peers/bin/python)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--noise-level", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=25)
    args = parser.parse_args()
    loaded, images, gt, ids = demo_inputs(args.limit)
    model = loaded.module.eval().requires_grad_(False)
    with torch.no_grad():
        logits = model(images)
    targets = [list(dict.fromkeys(gt[i] + logits[i].topk(args.topk).indices.tolist())) for i in range(len(images))]
    width = max(len(t) for t in targets)
    padded = torch.tensor([t + [t[-1]] * (width - len(t)) for t in targets])
    print(f"EfficientNet-Lite0, {len(images)} demo images {ids}, {sum(map(len, targets))} (image, class) maps")

    def ours(method: str, params: dict) -> list[torch.Tensor]:
        start = time.perf_counter()
        maps = explain(model, images, padded, methods=[method], target_layer=loaded.target_layer, params={method: {"batch_size": args.batch_size, **params}})[method]
        print(f"{method} {params}: {time.perf_counter() - start:.1f} s")
        return [maps[i, t] for i in range(len(images)) for t in range(len(targets[i]))]

    with tempfile.TemporaryDirectory() as tmp:
        work, out, worker = Path(tmp) / "in.pt", Path(tmp) / "out.pt", Path(tmp) / "peer_worker.py"
        torch.save({
            "images": images, "targets": targets, "state_dict": model.state_dict(), "steps": args.steps, "samples": args.samples,
            "noise_level": args.noise_level, "seed": args.seed, "batch_size": args.batch_size,
        }, work)
        worker.write_text(PEER_WORKER)
        subprocess.run([args.peer_python, str(worker), str(work), str(out)], check=True)
        peer = torch.load(out, weights_only=False)
    for key in sorted(k for k in peer if k.endswith("_s")):
        print(f"captum {key[:-2]}: {peer[key]:.1f} s")

    def reduced(attributions: list[torch.Tensor], how: str) -> list[torch.Tensor]:
        return [reduce_channels(a[None, None], how)[0, 0] for a in attributions]

    with torch.no_grad():
        gap = torch.softmax(model(images), 1) - torch.softmax(model(torch.zeros_like(images)), 1)
    gaps = [gap[i, c] for i, classes in enumerate(targets) for c in classes]
    for rule in ("riemann_right", "gausslegendre"):
        for how in ("abs_sum", "sum"):
            mine = ours("integrated_gradients", {"steps": args.steps, "rule": rule, "channel_reduce": how})
            report(f"integrated_gradients {rule} {how} vs captum IntegratedGradients", [pearson(a, b) for a, b in zip(mine, reduced(peer[f"ig_{rule}"], how))], None)
            if how == "sum":
                errors = [float((m.sum() - g).abs() / g.abs()) for m, g in zip(mine, gaps)]
                print(f"  completeness, |sum - (F(x) - F(x'))| / |F(x) - F(x')|: median {sorted(errors)[len(errors) // 2]:.4f}, max {max(errors):.4f}")
    mine = ours("smoothgrad", {"samples": args.samples, "noise_level": args.noise_level, "seed": args.seed})
    for name in ("same_seed", "other_seed"):
        report(f"smoothgrad vs captum NoiseTunnel(Saliency), {name.replace('_', ' ')}", [pearson(a, b) for a, b in zip(mine, reduced(peer[f"smoothgrad_{name}"], "abs_sum"))], None)


if __name__ == "__main__":
    sys.exit(main())
