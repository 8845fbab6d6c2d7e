"""Fuzz tests of every dataset parser (issue 13): per format, hypothesis writes a small valid
dataset in the real on-disk layout, corrupts fields of some images (tests/fuzz_formats.py), and
the real loading path must satisfy the property of `fuzz_formats.check`: it completes (or stops
with one layout-error line only when every image was corrupted), every listed image has exactly
one row, a skipped image has a specific reason, a repaired one a note, and the uncorrupted images'
ground truth equals the clean dataset's exactly.

CI runs a small, derandomized budget per format. Soak locally with e.g.
    WSL_BENCH_FUZZ_EXAMPLES=2000 WSL_BENCH_FUZZ_REPORT=results/fuzz/soak.json python -m pytest -q tests/test_datasets_fuzz.py
(random examples; the report tallies, per format and corruption kind, what each became).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import pytest
import torch
import torchvision
from hypothesis import HealthCheck, given, settings

from fuzz_formats import FORMATS, check, load

EXAMPLES = int(os.environ.get("WSL_BENCH_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXAMPLES or 20,
    deadline=None,
    derandomize=not EXAMPLES,  # CI: the same examples every run
    **({} if EXAMPLES else {"database": None}),  # a soak keeps failing examples in .hypothesis/ to replay them
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
TALLY: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
RUNS: Counter = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    path = os.environ.get("WSL_BENCH_FUZZ_REPORT")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        out = {name: {"examples": RUNS[name], "outcomes": {kind: dict(c.most_common()) for kind, c in sorted(kinds.items())}}
               for name, kinds in TALLY.items()}
        Path(path).write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")


def fuzz_one(name: str, plan) -> None:
    fmt = FORMATS[name]
    images, corruptions, options = plan
    with tempfile.TemporaryDirectory() as scratch:
        clean_cfg, clean_ids = fmt.write(Path(scratch) / "clean", images, [], options)
        bad_cfg, listed = fmt.write(Path(scratch) / "bad", images, corruptions, options)
        check(fmt, images, corruptions, load(clean_cfg), clean_ids, load(bad_cfg), listed, TALLY[name])
    RUNS[name] += 1


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_parser_fuzz(name):
    @FUZZ
    @given(FORMATS[name].plan())
    def run(plan):
        fuzz_one(name, plan)

    run()


# --- through the real pipeline, a few examples per format --------------------------------------------

@pytest.fixture(scope="module")
def heads(tmp_path_factory):
    """Checkpoints of a real architecture (ResNet-18, seeded) for the 3-, 20-, 100- and 200-class
    datasets; the ImageNet-class ones use the default EfficientNet-Lite0."""
    folder = tmp_path_factory.mktemp("heads")
    out = {}
    for n in (3, 20, 100, 200):
        torch.manual_seed(0)
        torch.save(torchvision.models.resnet18(num_classes=n).state_dict(), folder / f"r18_{n}.pth")
        out[n] = folder / f"r18_{n}.pth"
    return out


def model_overrides(name: str, heads: dict) -> list[str]:
    n = {"voc_xml": 20, "coco_json": 3, "cub_tables": 200, "openimages_masks": 100}.get(name)
    if n is None:
        return []
    return ["model=torchvision", "model.name=resnet18", f"model.checkpoint={heads[n]}", f"model.num_classes={n}",
            f"model.multilabel={str(n in (3, 20)).lower()}"] + (["+metric=[pxap]"] if n == 100 else [])


PIPELINE = settings(FUZZ, max_examples=max(2, EXAMPLES // 100) if EXAMPLES else 1)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_pipeline_fuzz(name, heads):
    """The corrupted dataset through `wsl_bench.pipeline.run` (real model, real metrics): every
    listed image has its rows (one per method when skipped) and the summary counts add up."""
    from hydra import compose, initialize_config_dir

    from wsl_bench.errors import DatasetLayoutError
    from wsl_bench.pipeline import run as run_pipeline

    fmt = FORMATS[name]
    conf = Path(__file__).resolve().parent.parent / "conf"

    @PIPELINE
    @given(fmt.plan())
    def run(plan):
        images, corruptions, options = plan
        with tempfile.TemporaryDirectory() as scratch:
            cfg, listed = fmt.write(Path(scratch) / "bad", images, corruptions, options)
            overrides = [f"dataset={fmt.dataset}", *(f"dataset.{k}={v}" for k, v in cfg.items() if k in ("root", "metadata", "annotations", "difficult_flags") and v is not None),
                         *model_overrides(name, heads), "method=[gradcam,center]", "targets.topk=1", "transform.size=64",
                         "loader.batch_size=3", "progress=false", "report.bootstrap=0", "metric.avg_drop.enabled=false"]
            with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
                full = compose("config", overrides=overrides)
            try:
                result = run_pipeline(full, Path(scratch) / "out")
            except DatasetLayoutError as exc:
                assert len({c.image for c in corruptions}) == len(images), exc
                return
            records = result.records
            assert set(records["image_id"]) == set(listed)
            skipped = records[records["skip_reason"].notna()]
            assert (skipped.groupby(["image_id", "method"]).size() == 1).all()
            assert not (set(skipped["image_id"]) & set(records.loc[records["skip_reason"].isna(), "image_id"]))
            assert not skipped["skip_reason"].str.startswith("error:").any(), skipped["skip_reason"].tolist()
            summary = result.summary.set_index("method")
            for method in ("gradcam", "center"):
                assert summary.loc[method, "n_images"] + summary.loc[method, "n_skipped"] == len(listed)
            scored_column = "pxap_pos_hist" if name == "openimages_masks" else "iou"  # OpenImages: masks, no boxes
            assert pd.notna(records.loc[records["skip_reason"].isna(), scored_column]).any() or records["skip_reason"].notna().all()

    run()
