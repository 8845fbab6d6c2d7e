"""`python -m wsl_bench.report PATH... [-o DIR] [--gallery N]`: the HTML report of finished runs.

A plain command, not a Hydra app: it reads what runs wrote (summary.csv, records.parquet,
maps.npz, provenance.json, .hydra/) and composes no configuration. Every run already writes its
own report.html at the end (unless report.html=false); this command rebuilds it, or puts the
runs of a sweep (`python -m wsl_bench -m ...` -> a multirun folder) side by side."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wsl_bench.report",
        description="Write report.html (+ figures/, report_tables.md, report_tables.tex) for run directories or a Hydra multirun directory.",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="run directories (holding summary.csv) or a multirun directory")
    parser.add_argument("-o", "--out", type=Path, default=None,
                        help="output folder (default: the run's folder; for several runs, the multirun folder or their common parent)")
    parser.add_argument("--gallery", type=int, default=None, help="show at most this many gallery images (default: all the run kept)")
    parser.add_argument("--no-run-reports", action="store_true", help="with several runs, do not write a report for runs lacking one")
    args = parser.parse_args(argv)
    from .html import build_report  # after parsing, so --help is fast

    start = time.perf_counter()
    try:
        path = build_report(args.paths, args.out, args.gallery, run_reports=not args.no_run_reports)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = path.stat().st_size / 1e6
    print(f"{path} ({size:.1f} MB, {time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
