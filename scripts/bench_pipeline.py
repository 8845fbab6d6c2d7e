"""End-to-end benchmark of the real pipeline (build_run_spec + execute) on dataset=synthetic:
time per stage and the pipeline efficiency = time of the network passes the configuration needs
(forward, backward, the model metrics' forwards), measured alone on the same batches in the same
process with the same torch threads / total time of the run.

    python scripts/bench_pipeline.py [--images 64] [--image-size 375x500] [--rounds 3] [overrides ...]
    python scripts/bench_pipeline.py --no-overlap                      # also: scoring and decoding in the main process
    python scripts/bench_pipeline.py --compare-src /tmp/main_tree      # also: another source tree, side by side

Each round runs every variant once, each in a fresh subprocess (one interpreter per source tree),
in an order that alternates between rounds; in each subprocess the network alone and the run are
measured back to back, in alternating order, so a change in machine load hits both alike. The
figures are medians over the rounds. A CSV of every measurement goes to results/bench/."""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def one_round(args: argparse.Namespace) -> dict:
    """In the subprocess: build the run, measure the network alone and the whole run."""
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from wsl_bench import pipeline
    from wsl_bench.config import CONFIG_DIR
    from wsl_bench.data import DecodedImages, collate_samples
    from wsl_bench.methods import Explainer
    from wsl_bench.methods.core import frozen_for_explanation
    from wsl_bench.methods.targets import choose_targets
    from wsl_bench.metrics import ModelBatch

    if args.threads:
        torch.set_num_threads(args.threads)  # the run's and the network-alone measurement's alike
    height, width = (int(v) for v in args.image_size.split("x"))
    overrides = [
        "dataset=synthetic", f"dataset.size={args.images}", f"dataset.image_size=[{height},{width}]", "progress=false", f"device={args.device}",
        *args.overrides,
    ]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    spec = pipeline.build_run_spec(cfg)
    device = spec.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model = spec.model.module.to(device)
    explainer = Explainer(model, spec.model.target_layer, spec.methods, spec.method_params)
    decoded = DecodedImages(spec.dataset.entries, spec.transform)
    size = spec.loader.batch_size
    batches = [collate_samples([decoded[i] for i in range(s, min(len(decoded), s + size))])[0] for s in range(0, len(decoded), size)]
    precision = getattr(spec, "precision", "fp32")
    autocast = (lambda: torch.autocast(device.type, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[precision])) if precision != "fp32" else None

    def network_passes(batch) -> None:
        from contextlib import nullcontext

        with autocast() if autocast else nullcontext():
            images = batch.images.to(device)
            logits = explainer.forward(images)
            targets = choose_targets(logits, batch.samples, spec.targets)
            classes = targets.classes.to(device)
            maps = explainer.maps(classes)
            spec.metrics.score_models(
                ModelBatch(explainer.model, images, classes, targets.sources, spec.model.probabilities, spec.model.mean, spec.model.std), maps,
            )

    def network_alone() -> float:
        sync()
        start = time.perf_counter()
        with frozen_for_explanation(model):
            for group in batches:
                for batch in group:
                    network_passes(batch)
        sync()
        return time.perf_counter() - start

    def whole_run() -> tuple[float, dict]:
        with tempfile.TemporaryDirectory(prefix="wsl_bench_run_") as out:
            start = time.perf_counter()
            if "clock" in pipeline.execute.__code__.co_varnames:
                from wsl_bench.timing import StageClock

                clock = StageClock(sync if device.type == "cuda" else None)
                pipeline.execute(spec, Path(out), start, clock=clock)
                stages = clock.as_dict()
            else:
                pipeline.execute(spec, Path(out), start)
                stages = {}
            return time.perf_counter() - start, stages

    with frozen_for_explanation(model):  # warm-up: one batch, then the measured passes
        network_passes(batches[0][0])
    if args.order == 0:
        alone = network_alone()
        total, stages = whole_run()
    else:
        total, stages = whole_run()
        alone = network_alone()
    return {
        "network_alone_s": alone, "total_s": total, "stages": stages, "images": len(decoded), "torch_threads": torch.get_num_threads(),
        "device": str(device), "torch": torch.__version__,
        "settings": {k: OmegaConf.to_container(cfg[k]) for k in ("loader", "scoring", "records") if k in cfg},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--image-size", default="375x500", help="HxW of every synthetic image")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads of the run (default: torch's); the network alone is measured with the same")
    parser.add_argument("--no-overlap", action="store_true", help="also run this tree with decoding and scoring in the main process")
    parser.add_argument("--compare-src", type=Path, help="also run another source tree (its wsl_bench/ and conf/) side by side")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=ARGS",
                        help="also run this tree with these extra arguments, e.g. 'overlap, 1 thread=--threads=1 scoring.workers=1 loader.num_workers=1'")
    parser.add_argument("--one-round", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--order", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the run, e.g. method=gradcampp loader.batch_size=32")
    args = parser.parse_args()
    if args.one_round:
        print("RESULT " + json.dumps(one_round(args)))
        return
    variants = [("this", REPO, [])]
    if args.no_overlap:
        variants.append(("this, no overlap", REPO, ["scoring.workers=0", "loader.num_workers=0"]))
    for variant in args.variant:
        name, _, extra = variant.partition("=")
        variants.append((name, REPO, extra.split()))
    if args.compare_src:
        variants.append((f"other: {args.compare_src}", args.compare_src, []))
    results: dict[str, list[dict]] = {name: [] for name, _, _ in variants}
    load_before = os.getloadavg()
    for r in range(args.rounds):
        for name, src, extra in (variants if r % 2 == 0 else variants[::-1]):
            command = [
                sys.executable, str(Path(__file__).resolve()), "--one-round", f"--order={r % 2}", f"--images={args.images}",
                f"--image-size={args.image_size}", f"--device={args.device}", *([f"--threads={args.threads}"] if args.threads else []), *extra, *args.overrides,
            ]
            proc = subprocess.run(command, cwd=src, env=dict(os.environ, PYTHONPATH=str(src)), capture_output=True, text=True)
            lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            if proc.returncode or not lines:
                raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
            result = json.loads(lines[-1][len("RESULT "):])
            results[name].append(result)
            eff = result["network_alone_s"] / result["total_s"]
            print(f"round {r + 1} {name:>20}: total {result['total_s']:.1f} s, network alone {result['network_alone_s']:.1f} s, efficiency {eff:.2f}", flush=True)
    load_after = os.getloadavg()
    first = next(iter(results.values()))[0]
    print(f"\n{args.images} synthetic images of {args.image_size}, {first['device']}, {first['torch_threads']} torch threads, torch {first['torch']}, "
          f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} before / {load_after[0]:.1f} after; "
          f"overrides: {' '.join(args.overrides) or '(defaults)'}; medians of {args.rounds} rounds")
    print("\n| variant | total s | network alone s | efficiency | images/s |\n|---|---|---|---|---|")
    for name, rounds in results.items():
        total = statistics.median(r["total_s"] for r in rounds)
        alone = statistics.median(r["network_alone_s"] for r in rounds)
        eff = statistics.median(r["network_alone_s"] / r["total_s"] for r in rounds)
        print(f"| {name} | {total:.1f} | {alone:.1f} | {eff:.2f} | {first['images'] / total:.2f} |")
    for name, rounds in results.items():
        if not rounds[0]["stages"]:
            continue
        print(f"\nstages of '{name}' (busy seconds summed over processes; median over rounds)\n\n| stage | s | s / image |\n|---|---|---|")
        stages = sorted({k for r in rounds for k in r["stages"]}, key=lambda k: -statistics.median(r["stages"].get(k, 0.0) for r in rounds))
        for stage in stages:
            value = statistics.median(r["stages"].get(stage, 0.0) for r in rounds)
            print(f"| {stage} | {value:.2f} | {1000 * value / first['images']:.1f} ms |")
    out = REPO / "results" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"pipeline_{time.strftime('%Y-%m-%d_%H-%M-%S')}.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", "round", "quantity", "seconds", "images", "image_size", "overrides", "torch_threads", "cpus", "load_before", "load_after"])
        for name, rounds in results.items():
            for r, result in enumerate(rounds):
                rows = [("total", result["total_s"]), ("network_alone", result["network_alone_s"])] + [(f"stage {k}", v) for k, v in result["stages"].items()]
                for quantity, seconds in rows:
                    writer.writerow([name, r + 1, quantity, f"{seconds:.4f}", result["images"], args.image_size, " ".join(args.overrides),
                                     result["torch_threads"], os.cpu_count(), f"{load_before[0]:.2f}", f"{load_after[0]:.2f}"])
    print(f"\nCSV: {path}")


if __name__ == "__main__":
    main()
