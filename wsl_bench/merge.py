"""Joining record parts into a run's results: used at the end of every run (by rank 0 under
torchrun) and by the merge command for data shards run as separate jobs (a cluster sweep):

    python -m wsl_bench.merge results/multirun/2026-11-23_03-40-00        # every configuration of a sweep
    python -m wsl_bench.merge run_shard0 run_shard1 --out results/merged   # the shards of one configuration

The shards of one configuration are the run directories whose configurations differ only in
`shard`; all n of them must be complete. The merged records equal a single run's row by row
(parts are joined in batch order), and the summary is computed from them as a run does."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import pyarrow as pa

from .config import ReportSettings, settings_from
from .errors import UserError
from .metrics import MetricSuite, RunInfo, create_metrics
from .records import read_records, record_schema
from .records.store import RECORDS_FILE, disk_error, done_batches, list_parts, merge_parts
from .report import summarize
from .report.outputs import write_outputs
from .resume import STATE_FILE, RunState, Shard, differences, fingerprint, read_state


def write_results(
    out_dir: Path, parts: Sequence[Path], schema: pa.Schema, metrics: MetricSuite, report: ReportSettings, provenance: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """records.parquet joined from the parts, then the summary and the other output files."""
    records = read_records(merge_parts(parts, schema, Path(out_dir) / RECORDS_FILE))
    return records, write_report(out_dir, records, metrics, report, provenance)


def write_report(out_dir: Path, records: pd.DataFrame, metrics: MetricSuite, report: ReportSettings, provenance: dict[str, Any]) -> pd.DataFrame:
    """The summary of the records and every output file beside them; each file is replaced only
    once all are written in full (a full disk leaves the previous ones)."""
    out_dir = Path(out_dir)
    summary = summarize(records, metrics, report)
    staging = out_dir / f".outputs-{os.getpid()}"
    try:
        staging.mkdir(exist_ok=True)
        write_outputs(staging, records, summary, metrics, provenance)
        for path in staging.iterdir():
            os.replace(path, out_dir / path.name)
    except OSError as exc:
        raise disk_error(exc, out_dir, "the summary files", 1 << 20) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def metrics_of(state: RunState) -> MetricSuite:
    return create_metrics(state.config.get("metric"), RunInfo(**state.run_info))


def _states(dirs: Sequence[Path]) -> list[tuple[Path, RunState]]:
    out = []
    for d in dirs:
        state = read_state(d)
        if state is None:
            raise UserError(f"{d} has no {STATE_FILE}: not a wsl_bench run directory")
        out.append((Path(d), state))
    return out


def group_shards(dirs: Sequence[Path]) -> list[list[tuple[Path, RunState]]]:
    """Run directories grouped by configuration (fingerprint without `shard`), in first-seen order."""
    groups: list[list[tuple[Path, RunState]]] = []
    for d, state in _states(dirs):
        key = {k: v for k, v in fingerprint(state.config).items() if k != "shard"}
        for group in groups:
            if {k: v for k, v in fingerprint(group[0][1].config).items() if k != "shard"} == key:
                group.append((d, state))
                break
        else:
            groups.append([(d, state)])
    return groups


def merge_shards(shards: Sequence[tuple[Path, RunState]], out_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One configuration's complete shards -> its records and summary in out_dir."""
    count = Shard.parse(shards[0][1].shard).count
    indices = sorted(Shard.parse(s.shard).index for _, s in shards)
    if indices != list(range(count)):
        missing = sorted(set(range(count)) - set(indices))
        raise UserError(f"shards of {shards[0][0]}'s configuration: have {', '.join(f'{i}/{count}' for i in indices)}; missing {', '.join(f'{i}/{count}' for i in missing)}")
    first = shards[0][1]
    for d, state in shards[1:]:
        diff = differences(fingerprint(first.config), fingerprint(state.config), ignore=("shard",))
        if diff:
            raise UserError(f"{d} is not a shard of {shards[0][0]}'s configuration ({'; '.join(diff)})")
    parts = []
    for d, state in shards:
        held = list_parts(d)
        missing = state.all_batches() - done_batches(held)
        if missing:
            raise UserError(f"shard {state.shard} in {d} is not finished ({len(missing)} batches to go); run its command again to complete it")
        parts.extend(held)
    metrics = metrics_of(first)
    provenance = json.loads((shards[0][0] / "provenance.json").read_text()) if (shards[0][0] / "provenance.json").is_file() else {}
    provenance.update({
        "merged_from": [str(d) for d, _ in sorted(shards, key=lambda s: Shard.parse(s[1].shard).index)],
        "wall_time_s": round(sum(session.get("wall_time_s", 0.0) for _, s in shards for session in s.sessions), 3),
        "dataset_images": first.n_images,
    })
    out_dir.mkdir(parents=True, exist_ok=True)
    report = settings_from(ReportSettings, first.config.get("report"))
    results = write_results(out_dir, parts, record_schema(metrics.columns()), metrics, report, provenance)
    if report.html:  # the shards keep no gallery maps: a report without the gallery
        from .report.html import write_run_report

        write_run_report(out_dir)
    return results


def run_dirs_under(root: Path) -> list[Path]:
    """The run directories in a sweep directory (or the folder itself when it is one)."""
    if (root / STATE_FILE).is_file():
        return [root]
    return sorted(p.parent for p in root.glob(f"*/{STATE_FILE}"))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m wsl_bench.merge", description="Join the data shards of runs into one result per configuration.")
    parser.add_argument("dirs", nargs="+", type=Path, help="run directories, or sweep directories holding them")
    parser.add_argument("--out", type=Path, help="output folder (one configuration); default <first dir's parent>/merged[_<k>]")
    args = parser.parse_args(argv)
    try:
        dirs = [d for root in args.dirs for d in run_dirs_under(root)]
        if not dirs:
            raise UserError(f"no run directories ({STATE_FILE}) in {', '.join(map(str, args.dirs))}")
        groups = [g for g in group_shards(dirs) if Shard.parse(g[0][1].shard).count > 1]
        if not groups:
            raise UserError("no sharded runs to merge (runs with shard=i/n, n > 1)")
        if args.out and len(groups) > 1:
            raise UserError(f"--out names one folder but the runs hold {len(groups)} configurations; leave --out out")
        for k, group in enumerate(groups):
            out = args.out or dirs[0].parent / ("merged" if len(groups) == 1 else f"merged_{k}")
            records, summary = merge_shards(group, out)
            from .report.terminal import format_for_terminal

            print(format_for_terminal(summary))
            print(f"\n{len(records)} records from {len(group)} shards; outputs in {out}")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
