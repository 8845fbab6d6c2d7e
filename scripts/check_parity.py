"""Records of this checkout against another one's (e.g. main before a change), row by row and
bit by bit: each case runs the CLI once per source tree and torch thread count, in subprocesses,
and every cell of records.parquet is compared (floats by their bits, NaN equal to NaN, lists
element-wise); summary.csv is compared byte for byte.

    git archive <commit> | tar -x -C /tmp/base      # the other tree, e.g. main at e779a38
    python scripts/check_parity.py --baseline-src /tmp/base [--threads 1 2] [--cases demo synthetic]

Cases may add overrides for this checkout only (`new`): settings that must not change a record
(scoring workers, the device/host split of scoring, decoding workers) are checked that way.
A baseline run made earlier can be reused with --baseline-runs DIR (DIR/<case>_t<threads>/)."""

from __future__ import annotations

import argparse
import math
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent

# name: (overrides for both trees, extra overrides for this checkout)
CASES: dict[str, tuple[list[str], list[str]]] = {
    "demo": ([], []),
    "synthetic": (["dataset=synthetic", "dataset.size=40"], []),
    "synthetic_inline": (["dataset=synthetic", "dataset.size=40"], ["scoring.workers=0", "loader.num_workers=0"]),
    "synthetic_split": (["dataset=synthetic", "dataset.size=40"], ["scoring.device_measure=true", "scoring.workers=2"]),
    "synthetic_shapes": (
        ["dataset=synthetic", "dataset.size=20", "dataset.seed=3", "method=[gradcam,gradcampp,gradient]", "transform=shorter_side", "loader.batch_size=5"], [],
    ),
    # the other tree decodes in a DataLoader worker (one torch thread), as this checkout always does
    "synthetic_decode_1thread": (["dataset=synthetic", "dataset.size=40", "loader.num_workers=1"], []),
    "synthetic_crop": (["dataset=synthetic", "dataset.size=12", "dataset.seed=5", "transform=resize_crop"], []),
}


def run_case(src: Path, overrides: list[str], out: Path, threads: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "wsl_bench", *overrides, "progress=false", "device=cpu", f"hydra.run.dir={out}"],
        cwd=src, env=env, capture_output=True, text=True,
    )
    if proc.returncode:
        raise SystemExit(f"run failed in {src}: {' '.join(overrides)}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def cell(value: object) -> object:
    """A comparable form of one cell: floats by their bits, arrays as nested lists."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list):
        return [cell(v) for v in value]
    if isinstance(value, float):
        return "nan" if math.isnan(value) else struct.pack("<d", value)
    return value


def compare(a_dir: Path, b_dir: Path) -> tuple[int, dict[str, tuple[int, str]], bool]:
    """(rows, {column: (differing cells, first example)}, summary.csv identical)."""
    a, b = pd.read_parquet(a_dir / "records.parquet"), pd.read_parquet(b_dir / "records.parquet")
    diffs: dict[str, tuple[int, str]] = {}
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        diffs["<shape>"] = (1, f"{a.shape} {list(a.columns)} vs {b.shape} {list(b.columns)}")
        return len(a), diffs, False
    for column in a.columns:
        bad = [i for i, (x, y) in enumerate(zip(a[column].tolist(), b[column].tolist())) if cell(x) != cell(y)]
        if bad:
            i = bad[0]
            diffs[column] = (len(bad), f"row {i} ({a['image_id'][i]}, {a['method'][i]}, {a['target_source'][i]}): {a[column][i]!r} vs {b[column][i]!r}")
    same_summary = (a_dir / "summary.csv").read_bytes() == (b_dir / "summary.csv").read_bytes()
    return len(a), diffs, same_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", type=Path, required=True, help="the other source tree (holds wsl_bench/ and conf/)")
    parser.add_argument("--baseline-runs", type=Path, help="reuse baseline runs made before: <dir>/<case>_t<threads>/")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="wsl_parity_"))
    failed = False
    print("| case | torch threads | rows | differing cells (column: count) | summary.csv | time base / this (s) |\n|---|---|---|---|---|---|")
    for threads in args.threads:
        for name in args.cases:
            both, extra = CASES[name]
            base_key = f"{name.replace('_inline', '').replace('_split', '')}_t{threads}"
            base_dir = (args.baseline_runs or out / "base") / base_key
            t_base = 0.0
            if not (base_dir / "records.parquet").exists():
                t_base = run_case(args.baseline_src, both, base_dir, threads)
            new_dir = out / "new" / f"{name}_t{threads}"
            t_new = run_case(REPO, both + extra, new_dir, threads)
            rows, diffs, same_summary = compare(base_dir, new_dir)
            failed |= bool(diffs) or not same_summary
            shown = ", ".join(f"{c}: {n}" for c, (n, _) in diffs.items()) or "none"
            print(f"| {name} | {threads} | {rows} | {shown} | {'identical' if same_summary else 'differs'} | {t_base:.0f} / {t_new:.0f} |", flush=True)
            for column, (_, example) in diffs.items():
                print(f"    {column}: {example}")
    print(f"\nruns in {out}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
