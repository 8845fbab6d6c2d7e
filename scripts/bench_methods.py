"""Throughput of every method, measured side by side in one run, against a forward-only pass.

    python scripts/bench_methods.py                       # ResNet-50 (random weights), batch 16, 224 px, CPU
    python scripts/bench_methods.py --batch 4 --size 160 --repeats 2 --methods gradcam,gradcampp

Cases run interleaved (repeat 1 of every case, then repeat 2, ...) after one untimed warm-up each,
and the median is reported, so that load on a noisy machine hits all cases alike.

Main table (batch x size): images/s and the ratio of throughput to a forward-only pass
(model(images) under torch.inference_mode) of the same model and batch, each method alone with
the top-1 target, five gradient methods together, and top-5 vs top-1 targets.
Perturbation table (--pert-batch x --pert-size, smaller: Score-CAM on a 2048-channel layer is 2048
forwards per image): the same ratios, plus Score-CAM against the cost of its own masked forward
passes alone (the same number of inputs, in the same chunks, with no mask building or weighting).

Extremal perturbation (optimized masks: hundreds of forward/backward passes per image and
target): its cost per (image, target) at --ep-size px, measured over --ep-iterations iterations
with TorchRay's four areas and extrapolated to the 800 iterations of the method's default.

Iterative table (--iter-batch x --iter-size): methods whose cost is a number of forward/backward
passes per image (SmoothGrad samples, Integrated Gradients path points, meaningful-perturbation
iterations, each set by --iter-units): seconds per image, seconds per image and unit, and that unit
cost against one forward/backward to the input of the same batch (what each unit needs at least).

Targets (issue 3): each layer-gradient method alone >= 0.9x forward-only; five gradient methods
together >= 0.8x; top-5 <= 1.3x the time of top-1; Score-CAM <= 1.2x its masked forwards.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
import torchvision

from wsl_bench.methods import METHODS, Explainer

PERTURBATION = ["scorecam", "scorecam_channel_softmax", "ablationcam", "occlusion", "rise"]
OPTIMIZED = ["extremal_perturbation"]  # its own section: per-image cost, not throughput
# Iterative methods and the param that counts their forward/backward passes per image.
ITERATIVE = {"smoothgrad": "samples", "integrated_gradients": "steps", "meaningful_perturbation": "iterations"}
FIVE = ["gradcam", "gradcampp", "xgradcam", "layercam", "hirescam"]
LAYER_GRADIENT = {"gradcam", "gradcam_neg", "hirescam", "gradcampp", "xgradcam", "layercam"}


def timed(fn: Callable[[], object]) -> float:
    _sync()
    start = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - start


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def explain_call(model, layer, images, names, params, topk):
    def run():
        explainer = Explainer(model, layer, names, params)
        logits = explainer.forward(images)
        explainer.maps(logits.topk(topk, dim=1).indices)

    return run


def masked_forwards_only(model, images, layer, batch_size):
    """What Score-CAM's masked forwards alone cost: as many inputs as it scores (one per
    non-constant channel per image), in the same chunks, under inference mode."""
    store = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda _m, _i, out: store.setdefault("a", out))
    with torch.inference_mode():
        model(images)
    handle.remove()
    flat = store["a"].flatten(2)
    n_inputs = int((flat.amax(2) > flat.amin(2)).sum())
    inputs = images[:1].expand(batch_size, -1, -1, -1).contiguous()

    def run():
        with torch.inference_mode():
            for start in range(0, n_inputs, batch_size):
                model(inputs[: min(batch_size, n_inputs - start)])

    return run, n_inputs


def forward_backward(model, images):
    """One forward and one backward to the input (the least each iterative unit costs)."""

    def run():
        x = images.detach().clone().requires_grad_(True)
        model(x)[:, 0].sum().backward()

    return run


def measure(cases: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    for fn in cases.values():  # warm-up: allocator, oneDNN primitives for each shape
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            times[name].append(timed(fn))
    return {name: statistics.median(t) for name, t in times.items()}


def table(title: str, medians: dict[str, float], batch: int, forward: str, notes: dict[str, str]) -> None:
    print(f"\n{title}")
    print("| case | s / batch | images/s | x forward-only | target |")
    print("|---|---|---|---|---|")
    for name, seconds in medians.items():
        ratio = medians[forward] / seconds
        print(f"| {name} | {seconds:.3f} | {batch / seconds:.2f} | {ratio:.3f} | {notes.get(name, '')} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--layer", default="layer4")
    parser.add_argument("--methods", default="", help="comma-separated; default: every registered method")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smooth-samples", type=int, default=5, help="Smooth Grad-CAM++ samples (each one more forward/backward)")
    parser.add_argument("--pert-batch", type=int, default=1)
    parser.add_argument("--pert-size", type=int, default=64)
    parser.add_argument("--pert-chunk", type=int, default=64, help="batch_size param of the perturbation methods")
    parser.add_argument("--rise-masks", type=int, default=256)
    parser.add_argument("--ep-iterations", type=int, default=10, help="extremal perturbation iterations timed (default 800 extrapolated)")
    parser.add_argument("--ep-size", type=int, default=224)
    parser.add_argument("--iter-batch", type=int, default=2)
    parser.add_argument("--iter-size", type=int, default=112)
    parser.add_argument("--iter-units", type=int, default=8, help="samples / steps / iterations of the iterative methods")
    parser.add_argument("--device", default="cpu", help="cpu (the issue's setting) or cuda")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = torchvision.models.resnet50(weights=None).eval().to(device)  # random weights: nothing downloaded
    # The pipeline freezes the model once per run (frozen_for_explanation), not per batch; so does this.
    model.requires_grad_(False)
    names = args.methods.split(",") if args.methods else METHODS.names()
    params = {
        "smoothgradcampp": {"samples": args.smooth_samples},
        "scorecam": {"batch_size": args.pert_chunk},
        "ablationcam": {"batch_size": args.pert_chunk},
        "occlusion": {"batch_size": args.pert_chunk, "patch": max(1, args.pert_size // 4), "stride": max(1, args.pert_size // 8)},
        "rise": {"batch_size": args.pert_chunk, "n_masks": args.rise_masks},
        "scorecam_channel_softmax": {"batch_size": args.pert_chunk},
        **{name: {unit: args.iter_units} for name, unit in ITERATIVE.items()},
    }
    print(
        f"torch {torch.__version__}, {args.device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), ResNet-50 (random weights), target layer {args.layer}, "
        f"median of {args.repeats} interleaved repeats"
    )

    # Main table: batch x size.
    images = torch.randn(args.batch, 3, args.size, args.size, device=device)
    cases: dict[str, Callable[[], None]] = {"forward-only": lambda: _forward(model, images)}
    notes = {}
    for name in [n for n in names if n not in PERTURBATION + OPTIMIZED and n not in ITERATIVE]:
        cases[name] = explain_call(model, args.layer, images, [name], params, 1)
        notes[name] = ">= 0.9x" if name in LAYER_GRADIENT else ""
    if not args.methods or set(FIVE) <= set(names):
        cases["5 together: " + "+".join(FIVE)] = explain_call(model, args.layer, images, FIVE, params, 1)
        notes["5 together: " + "+".join(FIVE)] = ">= 0.8x"
        cases["gradcam top-5 targets"] = explain_call(model, args.layer, images, ["gradcam"], params, 5)
        cases["5 together, top-5 targets"] = explain_call(model, args.layer, images, FIVE, params, 5)
    medians = measure(cases, args.repeats)
    table(f"Batch {args.batch} x {args.size} px (top-1 target unless noted)", medians, args.batch, "forward-only", notes)
    if "gradcam top-5 targets" in medians:
        print(
            f"\ntop-5 / top-1 time: gradcam {medians['gradcam top-5 targets'] / medians['gradcam']:.3f}, "
            f"5 methods together {medians['5 together, top-5 targets'] / medians['5 together: ' + '+'.join(FIVE)]:.3f} (target <= 1.3)"
        )

    # Iterative table: iter-batch x iter-size.
    iterative = [n for n in names if n in ITERATIVE]
    if iterative:
        images = torch.randn(args.iter_batch, 3, args.iter_size, args.iter_size, device=device)
        cases = {"forward+backward": forward_backward(model, images)}
        for name in iterative:
            cases[name] = explain_call(model, args.layer, images, [name], params, 1)
        medians = measure(cases, args.repeats)
        print(f"\nIterative methods, batch {args.iter_batch} x {args.iter_size} px, top-1 target, {args.iter_units} units each")
        print("| case | s / image | s / image / unit | unit / forward+backward |")
        print("|---|---|---|---|")
        unit_floor = medians["forward+backward"] / args.iter_batch
        print(f"| forward+backward | {unit_floor:.4f} | | |")
        for name in iterative:
            per_image = medians[name] / args.iter_batch
            per_unit = per_image / args.iter_units
            print(f"| {name} ({ITERATIVE[name]}) | {per_image:.4f} | {per_unit:.4f} | {per_unit / unit_floor:.2f} |")

    if "extremal_perturbation" in names:
        extremal_cost(model, args, device)

    # Perturbation table: pert-batch x pert-size.
    perturbation = [n for n in names if n in PERTURBATION]
    if not perturbation:
        return
    small = torch.randn(args.pert_batch, 3, args.pert_size, args.pert_size, device=device)
    cases = {"forward-only": lambda: _forward(model, small)}
    for name in perturbation:
        cases[name] = explain_call(model, args.layer, small, [name], params, 1)
    if "scorecam" in perturbation:
        masked, n_inputs = masked_forwards_only(model, small, args.layer, args.pert_chunk)
        masked_name = f"scorecam's {n_inputs} masked forwards alone"
        cases[masked_name] = masked
    medians = measure(cases, args.repeats)
    table(f"Perturbation methods, batch {args.pert_batch} x {args.pert_size} px, chunks of {args.pert_chunk}", medians, args.pert_batch, "forward-only", {})
    if "scorecam" in perturbation:
        print(f"\nScore-CAM / its masked forwards alone: {medians['scorecam'] / medians[masked_name]:.3f} (target <= 1.2)")


def extremal_cost(model: torch.nn.Module, args: argparse.Namespace, device: torch.device) -> None:
    """Seconds per (image, target) of extremal perturbation at its default 800 iterations,
    extrapolated from --ep-iterations, against the forward-only pass of its four masked inputs."""
    image = torch.randn(1, 3, args.ep_size, args.ep_size, device=device)
    areas = [0.025, 0.05, 0.1, 0.2]
    params = {"extremal_perturbation": {"max_iter": args.ep_iterations, "areas": areas}}
    four = image.expand(len(areas), -1, -1, -1).contiguous()
    medians = measure({"forward-only x4": lambda: _forward(model, four), "ep": explain_call(model, args.layer, image, ["extremal_perturbation"], params, 1)}, args.repeats)
    per_iteration = medians["ep"] / args.ep_iterations
    print(
        f"\nExtremal perturbation, 1 image x {args.ep_size} px, 1 target, {len(areas)} areas: {per_iteration:.3f} s per iteration "
        f"({per_iteration / medians['forward-only x4']:.2f}x a forward-only pass of its {len(areas)} masked inputs); "
        f"{800 * per_iteration:.1f} s per image and target at the default 800 iterations (extrapolated from {args.ep_iterations})"
    )


def _forward(model: torch.nn.Module, images: torch.Tensor) -> None:
    with torch.inference_mode():
        model(images)


if __name__ == "__main__":
    main()
