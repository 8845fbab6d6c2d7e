"""What makes a run directory resumable: `run_state.json`, written before the first batch, holds
the configuration (its fingerprint: every setting that can change a record), the batch plan and
what the summary needs. A run restarted with the same command and `hydra.run.dir` continues
from its record parts (wsl_bench.records.store); a directory made by another configuration is
refused with one line naming what differs; the shards of one configuration are recognized by
their fingerprints (equal but for `shard`)."""

from __future__ import annotations

import fcntl
import json
import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from .errors import ConfigError, UserError
from .records.store import replace_atomically

STATE_FILE = "run_state.json"
# Settings that change how a run is executed, never a record: a run may resume with other values.
EXECUTION_KEYS = ("progress", "loader.num_workers", "scoring", "records", "report")


def fingerprint(config: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved configuration without the execution settings (and without Hydra's own node)."""
    flat = {k: v for k, v in flatten(config).items() if not k.startswith("hydra.")}
    return {k: v for k, v in flat.items() if not any(k == e or k.startswith(e + ".") for e in EXECUTION_KEYS)}


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def differences(old: Mapping[str, Any], new: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> list[str]:
    """'key: A there, B here' for each setting that differs (at most 3 listed, then a count)."""
    keys = sorted(k for k in set(old) | set(new) if k not in ignore and old.get(k, "<unset>") != new.get(k, "<unset>"))

    def show(v: Any) -> str:
        text = json.dumps(v, default=str) if v != "<unset>" else "unset"
        return text if len(text) <= 40 else text[:37] + "..."

    listed = [f"{k}: {show(old.get(k, '<unset>'))} there, {show(new.get(k, '<unset>'))} here" for k in keys[:3]]
    return listed + ([f"{len(keys) - 3} more"] if len(keys) > 3 else [])


@dataclass(frozen=True)
class Shard:
    """Data shard `index` of `count` (`shard=i/n`): the run scores the loader batches b with
    b % count == index (whole batches, so every image is in the same batch, with the same
    batch-mates, as in a single run)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> "Shard":
        if text in (None, "", "0/1"):
            return cls()
        parts = str(text).split("/")
        try:
            index, count = int(parts[0]), int(parts[1])
            if len(parts) != 2 or count < 1 or not 0 <= index < count:
                raise ValueError
        except (ValueError, IndexError):
            raise ConfigError(f"shard={text} is not valid; use shard=i/n with 0 <= i < n, e.g. shard=0/4") from None
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def batch_plan(n_images: int, batch_size: int, shard: Shard = Shard(), rank: int = 0, world: int = 1, rejects: bool = False) -> list[int]:
    """The loader batches one process scores, in order: those of its data shard, dealt to the
    torchrun ranks in turn. Batch -1, the rows of images rejected while reading the annotations
    (`rejects`: there are some), goes to shard 0, rank 0."""
    n_batches = math.ceil(n_images / batch_size)
    mine = [b for b in range(n_batches) if b % shard.count == shard.index][rank::world]
    return ([-1] if rejects and shard.index == 0 and rank == 0 else []) + mine


@dataclass
class RunState:
    config: dict[str, Any]  # the resolved configuration of the run's first start
    shard: str
    n_images: int
    batch_size: int
    n_rejected: int
    run_info: dict[str, Any]
    complete: bool = False
    sessions: list[dict[str, Any]] = field(default_factory=list)  # one per start: wall time, images scored

    def all_batches(self) -> set[int]:
        """The batches of this state's shard (all ranks), -1 included for shard 0."""
        shard = Shard.parse(self.shard)
        return set(batch_plan(self.n_images, self.batch_size, shard, rejects=self.n_rejected > 0))

    def write(self, run_dir: Path) -> None:
        text = json.dumps(asdict(self), indent=1, default=str) + "\n"
        replace_atomically(Path(run_dir) / STATE_FILE, lambda tmp: tmp.write_text(text), STATE_FILE, len(text))


def read_state(run_dir: Path) -> RunState | None:
    path = Path(run_dir) / STATE_FILE
    if not path.is_file():
        return None
    try:
        return RunState(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is unreadable ({exc}); use another hydra.run.dir or delete that folder") from None


def check_resumable(run_dir: Path, config: Mapping[str, Any]) -> RunState | None:
    """The state of an earlier run in run_dir made with the same configuration (None: a fresh
    directory); a directory made by another configuration, or holding records of a run without
    a state, is a one-line ConfigError naming what differs."""
    run_dir = Path(run_dir)
    state = read_state(run_dir)
    if state is None:
        if any((run_dir / "records").glob("part-*.parquet")) or (run_dir / "records.parquet").exists():
            raise ConfigError(f"hydra.run.dir={run_dir} holds records of a run without {STATE_FILE} (an older version); use another hydra.run.dir")
        return None
    diff = differences(fingerprint(state.config), fingerprint(config))
    if diff:
        raise ConfigError(
            f"hydra.run.dir={run_dir} holds a run of another configuration ({'; '.join(diff)}); "
            "resume it with its own overrides or use another hydra.run.dir"
        )
    return state


@contextmanager
def exclusive_run_dir(run_dir: Path, rank: int = 0) -> Iterator[None]:
    """This process's hold on `run_dir` for its rank (a POSIX lock: released when the process
    ends in any way, and not held by forked workers, which may outlive a killed run a moment): a
    second live session there, e.g. a requeued job whose predecessor still runs, is refused in one
    line instead of writing record parts under the same numbers."""
    lock = Path(run_dir) / f".lock-r{rank}"
    with open(lock, "a") as handle:  # left empty: a finished run's files stay as they were
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # EACCES or EAGAIN: held by another process
            raise UserError(
                f"{run_dir} is in use by another running session (it holds {lock.name}; `fuser {lock}` names it); "
                "wait for it to end, or give this run another hydra.run.dir"
            ) from None
        yield
