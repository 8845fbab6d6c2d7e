"""Per-image cost of each metric at 500 x 375, and MaxBoxAccV2 (100 thresholds) by the one-pass
sweep against re-labeling the map once per threshold, measured side by side in this run.

    python scripts/bench_metrics.py [--repeats 5] [--no-model] [--device cpu|cuda]

Map-only metrics run on CAM-like maps (a random 7 x 7 map upsampled bilinearly to 375 x 500).
Model-based metrics use the default model (EfficientNet-Lite0, 224 x 224 input) and report the
forwards they need; their cost is the model's."""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from wsl_bench.data.sample import ImageEntry, Sample
from wsl_bench.metrics import METRICS, ImageTruth, MapChunk, MapMetric, map_status
from wsl_bench.metrics.maxboxacc import minmax_normalize, sweep_ious, sweep_thresholds, threshold_components, threshold_components_relabel

HEIGHT, WIDTH = 375, 500


def cam_like(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.relu(torch.randn(n, 1, 7, 7, generator=g))
    return F.interpolate(coarse, size=(HEIGHT, WIDTH), mode="bilinear", align_corners=False)[:, 0]


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--maps", type=int, default=8, help="maps per measurement (per-image cost = total / maps)")
    parser.add_argument("--no-model", action="store_true", help="skip the model-based metrics")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    maps = cam_like(args.maps)
    box = np.array([[150, 100, 349, 274]])
    thresholds = sweep_thresholds(0.01)
    normalized = [minmax_normalize(m) for m in maps]
    print(f"map-only metrics, {args.maps} CAM-like maps of {WIDTH}x{HEIGHT}, CPU, {torch.get_num_threads()} threads, mean of {args.repeats} runs")
    rows = []
    # every map explains the image's one GT class (0), whose box is `box`: each unit scores them all
    entry = ImageEntry("bench", path=None, labels=(0,), boxes=box, box_labels=np.array([0]), box_difficult=np.array([False]))  # type: ignore[arg-type]
    truth = ImageTruth(Sample(entry, None, (HEIGHT, WIDTH)))
    chunk = MapChunk(maps, map_status(maps), np.zeros(args.maps, dtype=np.int64), np.ones(args.maps, dtype=bool))
    for name in METRICS.names():
        if issubclass(METRICS.get(name), MapMetric):
            unit = METRICS.get(name)()
            t = timed(lambda: unit.score(chunk, truth), args.repeats)
            rows.append((f"unit {name} (every map of the chunk)", t / args.maps))

    def one_pass() -> None:
        for v in normalized:
            sweep_ious(threshold_components(v, thresholds, "ge", 8), box, len(thresholds))

    def relabel() -> None:
        for v in normalized:
            sweep_ious(threshold_components_relabel(v, thresholds, "ge", 8), box, len(thresholds))

    # interleaved, so that a change in machine load hits both sides alike
    one_pass()
    fast = slow = 0.0
    rounds = max(1, args.repeats // 2)
    for _ in range(rounds):
        start = time.perf_counter()
        one_pass()
        fast += time.perf_counter() - start
        start = time.perf_counter()
        relabel()
        slow += time.perf_counter() - start
    fast, slow = fast / (rounds * args.maps), slow / (rounds * args.maps)
    rows.append(("MaxBoxAcc V1+V2, 100 thresholds, one-pass sweep", fast))
    rows.append(("MaxBoxAcc V1+V2, 100 thresholds, relabel per threshold", slow))
    for name, sec in rows:
        print(f"  {name:<58s} {1000 * sec:9.2f} ms / map")
    print(f"  MaxBoxAccV2 speed-up, one-pass vs relabel per threshold: {slow / fast:.1f}x")

    if args.no_model:
        return
    from omegaconf import OmegaConf

    from wsl_bench.metrics.avg_drop import AvgDropSettings, explanation_confidence
    from wsl_bench.metrics.insertion_deletion import InsertionDeletionSettings, insertion_deletion
    from wsl_bench.metrics.occlusion_corr import OcclusionCache, OcclusionCorrSettings, occlusion_correlation
    from wsl_bench.models import create_model

    loaded = create_model(OmegaConf.create({"name": "efficientnet_lite0", "target_layer": None}))
    device = torch.device(args.device)
    model = loaded.module.to(device)
    images = torch.randn(1, 3, 224, 224, device=device)
    small = cam_like(1)[:, ::27, ::36].contiguous().to(device)  # a 14 x 14 map
    classes = torch.tensor([1], device=device)
    index = torch.arange(1, device=device)

    def once(fn) -> float:  # heavy: one timed call (the model is warm from the first metric)
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    print(f"\nmodel-based metrics, {loaded.name} at 224x224 on {device}, per (image, map); the cost is the forwards")
    t = timed(lambda: explanation_confidence(model, images, index, small, classes, loaded.mean, loaded.std, AvgDropSettings(), loaded.probabilities), 2)
    print(f"  {'average drop / increase (1 forward)':<58s} {1000 * t:9.2f} ms")
    settings = InsertionDeletionSettings(step=224)
    t = once(lambda: insertion_deletion(model, images, index, small, classes, settings, loaded.probabilities))
    print(f"  {'insertion + deletion, 224 px/step (2 x 225 forwards)':<58s} {1000 * t:9.2f} ms")
    occ = OcclusionCorrSettings(patch=45, stride=16)
    cache = OcclusionCache(None, loaded.name, occ)
    holder = {}
    t_occ = once(lambda: holder.update(grids=cache.grids(model, images, [[1]])[0]))
    grid = holder["grids"][0][1][None].to(device)
    label = f"occlusion map, patch 45 stride 16 ({grid.numel()} forwards), cached"
    print(f"  {label:<58s} {1000 * t_occ:9.2f} ms")
    t = timed(lambda: occlusion_correlation(small, grid, (224, 224), 45, 16), args.repeats)
    print(f"  {'occlusion correlation given the (cached) occlusion map':<58s} {1000 * t:9.2f} ms")


if __name__ == "__main__":
    main()
