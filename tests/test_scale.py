"""Runs at scale, through the real CLI on synthetic images (small, few, in small batches, so that
a 2-core machine runs this file in a few minutes): a run killed with SIGKILL or stopped with
Ctrl-C resumes to the records of an uninterrupted run, row by row; a directory of another
configuration is refused; torchrun with two CPU processes (gloo) and data shards joined by the
merge command give the single-process records; a full disk never replaces a good file.

Every CLI run here uses one torch thread (torchrun's default for several processes), so all of
them compute the network passes with the same arithmetic."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wsl_bench.merge import main as merge_main
from wsl_bench.records.store import BATCH_COLUMN, DiskFullError, merge_parts, write_atomic

RUN = [
    "dataset=synthetic", "dataset.size=16", "dataset.image_size=[48,64]", "loader.batch_size=2", "records.flush_images=2",
    "report.bootstrap=50", "report.gallery=4", "progress=false", "device=cpu",
]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def cli(*args: str, cwd: Path, run_dir: Path | None = None, module: str = "wsl_bench", timeout: int = 300) -> subprocess.CompletedProcess:
    tail = [f"hydra.run.dir={run_dir}"] if run_dir else []
    return subprocess.run([sys.executable, "-m", module, *args, *tail], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def start(*args: str, run_dir: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "wsl_bench", *args, f"hydra.run.dir={run_dir}"], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_same_records(a: Path, b: Path, maps: bool = True) -> None:
    """records.parquet of two runs equal row by row (floats by value, NaN = NaN), summary.csv byte
    for byte and (maps) the report's gallery: maps.npz member by member (its choice of images,
    their maps and photos)."""
    ra, rb = pd.read_parquet(a / "records.parquet"), pd.read_parquet(b / "records.parquet")
    assert list(ra.columns) == list(rb.columns) and len(ra) == len(rb)
    for column in ra.columns:
        for i, (x, y) in enumerate(zip(ra[column].tolist(), rb[column].tolist())):
            assert plain(x) == plain(y), f"{column} row {i}: {x!r} vs {y!r}"
    assert (a / "summary.csv").read_bytes() == (b / "summary.csv").read_bytes()
    if maps:
        with np.load(a / "maps.npz") as ma, np.load(b / "maps.npz") as mb:
            assert sorted(ma.files) == sorted(mb.files)
            for name in ma.files:
                assert ma[name].tobytes() == mb[name].tobytes(), f"maps.npz {name} differs"
            assert len(json.loads(ma["meta"].tobytes())["gallery"]) == 4


def plain(value: object) -> object:
    """A cell as plain Python values (arrays as lists, NaN as a marker), compared exactly."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list):
        return [plain(v) for v in value]
    return "nan" if isinstance(value, float) and value != value else value


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        out.extend(int(c) for c in task.read_text().split())
    return out


def wait_for_parts(proc: subprocess.Popen, run_dir: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not list((run_dir / "records").glob("part-*.parquet")):
        assert proc.poll() is None, f"the run ended before its first part: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "no record part appeared"
        time.sleep(0.05)


def sessions(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "run_state.json").read_text())["sessions"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted single-process run."""
    tmp = tmp_path_factory.mktemp("reference")
    result = cli(*RUN, cwd=tmp, run_dir=tmp / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp / "run" / "records").exists()  # parts are gone once records.parquet holds them
    return tmp / "run"


def test_sigkill_mid_run_then_restart_gives_the_uninterrupted_records(reference, tmp_path):
    run_dir = tmp_path / "run"
    proc = start(*RUN, run_dir=run_dir, cwd=tmp_path)
    wait_for_parts(proc, run_dir)
    workers = children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (run_dir / "records.parquet").exists()
    deadline = time.monotonic() + 30  # its worker processes die with it
    while any(Path(f"/proc/{w}").exists() and "zombie" not in Path(f"/proc/{w}/status").read_text() for w in workers):
        assert time.monotonic() < deadline, f"worker processes {workers} outlived the killed run"
        time.sleep(0.1)
    result = cli(*RUN, cwd=tmp_path, run_dir=run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_records(reference, run_dir)
    assert 0 < sessions(run_dir)[-1]["images_scored"] < 16  # it resumed: the saved batches were not scored again


def test_sigkill_with_every_map_saved_resumes_the_streamed_maps_file(tmp_path):
    # records.save_maps=true streams every image's maps into maps.npz.tmp; the restart continues
    # that file from the last checkpoint: maps.npz equals an uninterrupted run's, all 16 images
    args = [*RUN, "records.save_maps=true"]
    whole = cli(*args, cwd=tmp_path, run_dir=tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    run_dir = tmp_path / "run"
    proc = start(*args, run_dir=run_dir, cwd=tmp_path)
    wait_for_parts(proc, run_dir)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert (run_dir / "maps.npz.tmp").is_file() and not (run_dir / "maps.npz").exists()
    result = cli(*args, cwd=tmp_path, run_dir=run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "since the restart" not in result.stderr
    assert 0 < sessions(run_dir)[-1]["images_scored"] < 16  # it resumed
    assert_same_records(tmp_path / "whole", run_dir)
    with np.load(run_dir / "maps.npz") as kept:
        assert len(json.loads(kept["meta"].tobytes())["images"]) == 16


def test_ctrl_c_saves_what_is_finished_says_how_to_resume_and_the_resumed_run_is_identical(reference, tmp_path):
    run_dir = tmp_path / "run"
    proc = start(*RUN, run_dir=run_dir, cwd=tmp_path)
    wait_for_parts(proc, run_dir)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, stderr[-2000:]
    assert "stopped by SIGINT with" in stderr and "images scored; their records are saved in" in stderr
    resume = next(line for line in stderr.splitlines() if line.startswith("resume with: "))
    assert f"hydra.run.dir={run_dir}" in resume and "dataset.size=16" in resume
    saved = pq.read_table(run_dir / "records").column(BATCH_COLUMN).unique().to_pylist()
    assert 0 < len(saved) < 8
    result = cli(*RUN, cwd=tmp_path, run_dir=run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_records(reference, run_dir)
    assert sessions(run_dir)[-1]["images_scored"] == 16 - 2 * len(saved)


def test_a_directory_of_another_configuration_is_refused_in_one_line_and_left_as_it_was(reference, tmp_path):
    before = (reference / ".hydra" / "config.yaml").read_bytes()
    result = cli(*RUN, "metric.localization.threshold=0.2", cwd=tmp_path, run_dir=reference)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: hydra.run.dir={reference} holds a run of another configuration (metric.localization.threshold: 0.15 there, 0.2 here); "
        "resume it with its own overrides or use another hydra.run.dir"
    ]
    assert (reference / ".hydra" / "config.yaml").read_bytes() == before


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_cpu_processes_on_gloo_merge_to_the_single_process_records(reference, tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={free_port()}",
         "-m", "wsl_bench", *RUN, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((run_dir / "run_state.json").read_text())
    assert state["sessions"][-1]["ranks"] == 2
    assert_same_records(reference, run_dir, maps=False)  # the gallery is chosen among rank 0's images
    assert (run_dir / "maps.npz").is_file() and (run_dir / "report.html").is_file()


def test_data_shards_of_a_sweep_merge_to_the_single_run_records(reference, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, "-m", "wsl_bench", "--multirun", *RUN, "shard=0/3,1/3,2/3", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "join the shards with: python -m wsl_bench.merge" in result.stdout
    shard_dirs = sorted(p.parent for p in sweep.glob("*/run_state.json"))
    assert len(shard_dirs) == 3 and not any((d / "records.parquet").exists() for d in shard_dirs)
    with pytest.raises(SystemExit, match="2"):
        merge_main([str(shard_dirs[0]), str(shard_dirs[2])])
    assert capsys.readouterr().err.strip().endswith("have 0/3, 2/3; missing 1/3")
    merged = cli(str(sweep), "--out", str(tmp_path / "merged"), module="wsl_bench.merge", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr[-3000:]
    assert "records from 3 shards" in merged.stdout
    assert_same_records(reference, tmp_path / "merged", maps=False)  # shards keep no gallery maps
    assert (tmp_path / "merged" / "report.html").is_file()
    assert json.loads((tmp_path / "merged" / "provenance.json").read_text())["merged_from"] == [str(d) for d in shard_dirs]


def test_the_slurm_launcher_config_composes_a_sweep_over_methods_models_and_shards():
    import hydra_plugins.hydra_submitit_launcher  # noqa: F401  (the test extra installs it)
    from hydra import compose, initialize_config_dir

    from wsl_bench.config import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "method=gradcampp", "model=resnet50", "shard=2/4"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (cfg.hydra.launcher.partition, cfg.hydra.launcher.gpus_per_node, cfg.hydra.launcher.max_num_timeout) == ("gpu", 1, 20)
    assert cfg.shard == "2/4" and list(cfg.method) == ["gradcampp"] and cfg.model.name == "resnet50"


def part(batches: list[int], rows_per_batch: int = 2) -> pa.Table:
    ids = [f"img{b}_{r}" for b in batches for r in range(rows_per_batch)]
    return pa.table({"image_id": ids, BATCH_COLUMN: [b for b in batches for _ in range(rows_per_batch)]})


def test_merge_orders_parts_by_batch_keeps_each_batch_once_and_drops_the_batch_column(tmp_path):
    schema = pa.schema([("image_id", pa.string())])
    for name, batches in (("part-r1-000000", [1, 3]), ("part-r0-000000", [-1, 0, 2]), ("part-r0-000001", [3, 4])):
        pq.write_table(part(batches), tmp_path / f"{name}.parquet")
    out = merge_parts(sorted(tmp_path.glob("part-*.parquet")), schema, tmp_path / "records.parquet")
    merged = pq.read_table(out)
    assert merged.schema.names == ["image_id"]
    assert merged.column("image_id").to_pylist() == [f"img{b}_{r}" for b in (-1, 0, 1, 2, 3, 4) for r in range(2)]


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("a real full disk needs a tmpfs mount (root on Linux)")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")


def fill(disk: Path) -> Path:
    """Take every free byte of the filesystem."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_a_write_that_does_not_fit_leaves_the_old_file(tmp_path):
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "256k")
    try:
        good = pa.table({"x": list(range(10))})
        write_atomic(good, disk / "f.parquet", "f.parquet")
        filler = fill(disk)
        with pytest.raises(DiskFullError, match=r"no space left on device\); free about 1 MB there and run the same command again"):
            write_atomic(pa.table({"x": list(range(200_000))}), disk / "f.parquet", "f.parquet")
        assert pq.read_table(disk / "f.parquet").equals(good)
        assert sorted(p.name for p in disk.iterdir()) == ["f.parquet", "filler"]  # no temporary file left behind
        filler.unlink()
    finally:
        subprocess.run(["umount", str(disk)])


def test_a_full_disk_mid_run_stops_with_one_line_and_the_run_resumes_once_space_is_freed(reference, tmp_path):
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "1m")
    try:
        run_dir = disk / "run"
        filler = fill(disk)
        filler.write_bytes(b"\0" * (filler.stat().st_size - 48 * 1024))  # room for Hydra's files and a part or two
        result = cli(*RUN, cwd=tmp_path, run_dir=run_dir)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr[-3000:]
        assert lines[0].startswith("error: could not write ") and "(no space left on device); free about" in lines[0]
        assert not list(run_dir.rglob(".*tmp-*"))  # no half-written file
        for p in (run_dir / "records").glob("part-*.parquet"):
            pq.read_table(p)  # every part there is whole
        filler.unlink()
        result = cli(*RUN, cwd=tmp_path, run_dir=run_dir)
        assert result.returncode == 0, result.stderr[-3000:]
        assert_same_records(reference, run_dir)
        # the same command on a finished run writes its outputs again, each only once whole:
        # on a full disk the good ones stay
        before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
        filler = fill(disk)
        again = cli(*RUN, cwd=tmp_path, run_dir=run_dir)
        assert again.returncode == 2 and "no space left on device" in again.stderr
        assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name in before} == before
        filler.unlink()
    finally:
        subprocess.run(["umount", str(disk)])
        shutil.rmtree(disk, ignore_errors=True)


def compose_run(*overrides: str):
    from hydra import compose, initialize_config_dir

    from wsl_bench.config import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_records_do_not_depend_on_where_images_are_decoded_and_maps_scored(tmp_path):
    """In-process runs (this process's torch threads): decoding and scoring in the main process,
    or in worker processes with the device part of scoring (measure) in the main process."""
    from wsl_bench.pipeline import run

    small = [*(o for o in RUN if not o.startswith("dataset.size=")), "dataset.size=6", "method=[gradcam,gradcampp]", "transform=resize_crop"]
    inline = run(compose_run(*small, "scoring.workers=0", "loader.num_workers=0"), tmp_path / "inline")
    run(compose_run(*small, "scoring.workers=2", "scoring.device_measure=true", "loader.num_workers=1"), tmp_path / "split")
    assert inline.records["skip_reason"].isna().all() and inline.records["image_id"].nunique() == 6
    assert_same_records(tmp_path / "inline", tmp_path / "split")


def test_autocast_bf16_maps_match_fp32_per_map(lite0):
    """precision=bf16 runs the network passes under torch.autocast; every map (real photos, GT and
    top-5 targets, three CAM methods) keeps Pearson r >= 0.99 with its fp32 map."""
    import dataclasses

    from wsl_bench import pipeline
    from wsl_bench.data import DecodedImages, collate_samples
    from wsl_bench.methods import Explainer
    from wsl_bench.methods.core import frozen_for_explanation
    from wsl_bench.timing import StageClock

    spec = pipeline.build_run_spec(compose_run("method=[gradcam,gradcampp,layercam]", "precision=bf16", "device=cpu"))
    explainer = Explainer(spec.model.module, spec.model.target_layer, spec.methods, spec.method_params)
    decoded = DecodedImages(spec.dataset.entries, spec.transform)
    (batch,), _ = collate_samples([decoded[i] for i in range(len(decoded))])
    with frozen_for_explanation(spec.model.module):
        low = pipeline._explain_group(spec, explainer, batch, StageClock(), device_measure=False)
        full = pipeline._explain_group(dataclasses.replace(spec, precision="fp32"), explainer, batch, StageClock(), device_measure=False)
    compared = 0
    for a, b in zip(low, full):
        same = [t for t, (x, y) in enumerate(zip(a.classes, b.classes)) if x == y]  # a near tie may reorder the top 5
        assert all(t in same for t, (source, _) in enumerate(a.sources) if source == "gt")
        for method in spec.methods:
            assert a.maps[method].dtype == np.float32
            for t in same:
                r = np.corrcoef(a.maps[method][t].ravel(), b.maps[method][t].ravel())[0, 1]
                assert r >= 0.99, (a.sample.entry.image_id, method, t, r)
                compared += 1
    assert compared >= 7 * 3 * 5


def test_a_preemption_notice_saves_the_finished_batches_then_hands_the_signal_to_the_previous_handler(tmp_path, monkeypatch):
    """SIGUSR1 (Slurm's notice before a time limit or preemption; submitit requeues on it) in a run
    started from Python: the run stops after the current batch, raises RunInterrupted carrying
    the handler that was there before, and the restarted run ends with the uninterrupted records.
    The notice is sent (a real signal) once the second of four batches is explained, so the
    stop does not race the run."""
    from wsl_bench import pipeline
    from wsl_bench.pipeline import run
    from wsl_bench.stopping import RunInterrupted

    overrides = [*(o for o in RUN if not o.startswith("dataset.size=")), "dataset.size=8", "scoring.workers=1", "loader.num_workers=0"]
    run(compose_run(*overrides), tmp_path / "whole")
    received = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))
    explain = pipeline._explain_batch

    def explain_then_notice(spec, explainer, loaded, *args):
        job = explain(spec, explainer, loaded, *args)
        if loaded.index == 1:
            os.kill(os.getpid(), signal.SIGUSR1)
        return job

    try:
        monkeypatch.setattr(pipeline, "_explain_batch", explain_then_notice)
        with pytest.raises(RunInterrupted) as stop:
            run(compose_run(*overrides), tmp_path / "stopped")
        monkeypatch.undo()
        assert stop.value.signum == signal.SIGUSR1 and stop.value.done == 4 and received == []
        stop.value.forward_signal()
        assert received == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, previous)
    run(compose_run(*overrides), tmp_path / "stopped")
    assert_same_records(tmp_path / "whole", tmp_path / "stopped")


def test_a_run_stopped_after_its_gallery_was_written_but_before_its_summary_keeps_its_gallery(tmp_path, monkeypatch):
    """The gallery's saved state outlives maps.npz until the run is marked complete: a run that
    dies while joining its records (after the last batch) and is started again writes the same
    maps.npz as an uninterrupted run, not an empty gallery."""
    from wsl_bench import pipeline

    overrides = [*RUN, "scoring.workers=0", "loader.num_workers=0"]
    whole = pipeline.execute(pipeline.build_run_spec(compose_run(*overrides)), tmp_path / "whole").out_dir
    real_write_results = pipeline.write_results

    def dies(*args, **kwargs):
        raise RuntimeError("killed while joining the records")

    monkeypatch.setattr(pipeline, "write_results", dies)
    with pytest.raises(RuntimeError, match="joining"):
        pipeline.execute(pipeline.build_run_spec(compose_run(*overrides)), tmp_path / "stopped")
    assert (tmp_path / "stopped" / "maps.npz").is_file() and not (tmp_path / "stopped" / "records.parquet").exists()
    monkeypatch.setattr(pipeline, "write_results", real_write_results)
    again = pipeline.execute(pipeline.build_run_spec(compose_run(*overrides)), tmp_path / "stopped")
    assert again.records is not None and len(again.records) == len(pd.read_parquet(whole / "records.parquet"))
    with np.load(whole / "maps.npz") as ma, np.load(tmp_path / "stopped" / "maps.npz") as mb:
        assert sorted(ma.files) == sorted(mb.files)
        for name in ma.files:
            assert ma[name].tobytes() == mb[name].tobytes(), f"maps.npz {name} differs"
        assert len(json.loads(ma["meta"].tobytes())["gallery"]) == 4
    assert not list((tmp_path / "stopped").glob(".maps_keeper*"))


def test_a_second_live_session_in_the_same_run_directory_is_refused_in_one_line(tmp_path):
    """While one process holds the directory (as a running job does), another run there stops
    before scoring anything, naming the lock; once the holder has ended, the run goes ahead."""
    from wsl_bench import pipeline
    from wsl_bench.errors import UserError

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"h = open({str(run_dir / '.lock-r0')!r}, 'a'); fcntl.lockf(h, fcntl.LOCK_EX)\n"
        "print('held', flush=True); time.sleep(60)\n"
    )], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        spec = pipeline.build_run_spec(compose_run(*RUN, "report.html=false"))
        with pytest.raises(UserError, match=r"is in use by another running session \(it holds \.lock-r0; `fuser .*` names it\); wait for it to end, or give this run another hydra.run.dir"):
            pipeline.execute(spec, run_dir)
        assert not (run_dir / "records").exists()
    finally:
        holder.kill()
        holder.wait()
    assert pipeline.execute(spec, run_dir).records is not None


def test_atomic_writes_reach_the_disk_before_and_after_the_rename(tmp_path, monkeypatch):
    # the temporary file's data is flushed before it replaces the old file, and the folder after
    # (without both, a machine crash can leave an empty or missing part where a whole one was)
    flushed: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (flushed.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd))[1])
    renamed: list[str] = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renamed.append(str(b)), flushed.append("rename"), real_replace(a, b))[2])
    path = tmp_path / "part-000000.parquet"
    write_atomic(pa.table({"x": [1, 2, 3]}), path, "a records part")
    assert pq.read_table(path).column("x").to_pylist() == [1, 2, 3]
    assert renamed == [str(path)]
    tmp_name = flushed[0]
    assert Path(tmp_name).parent == tmp_path and Path(tmp_name).name.startswith(".part-000000.parquet.tmp")
    assert flushed[1:] == ["rename", str(tmp_path)]
