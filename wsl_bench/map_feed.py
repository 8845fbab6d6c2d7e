"""The report's gallery maps in a run that scores in worker processes (wsl_bench.scoring).

The MapKeeper (records.maps) chooses its images from their record rows, which come back from the
workers a batch at a time, in any order; the maps stay in the run's process meanwhile (small: the
methods' grid, not the evaluation grid) and never travel to a worker. `MapFeed.hold` keeps one
explained batch's maps and photos; `MapFeed.ready` takes a scored batch and returns the batches
that can now be stored, in the run's batch order, after offering their images to the keeper in
that order: the keeper sees the images as an uninterrupted single-process run offers them, so its
choice and its maps.npz do not depend on the number of workers.

Resume: before each records part is written (`save`, the store's on_flush), the keeper's state is
written atomically to KEEPER_STATE. Every batch in a part was offered before it was stored, so a
restarted run that loads the state continues the keeper exactly where its records stop (a batch
offered but not yet stored is scored again and its second offer ignored): the resumed run's
maps.npz and report equal an uninterrupted run's. With records.save_maps=true the maps of every
image are streamed into maps.npz.tmp; before the state is saved, the keeper makes that file a whole
zip of the images offered so far (MapKeeper.checkpoint), and a restarted run continues it from
there, dropping what the stopped session wrote after it."""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa

from .records.maps import MapKeeper
from .records.store import replace_atomically

log = logging.getLogger("wsl_bench")

KEEPER_STATE = ".maps_keeper.pkl"
_STATE_VERSION = 1


@dataclass
class HeldImage:
    """One explained image, kept in the run's process until its rows are back."""

    sample: Any  # the Sample without its network input
    photo: Any  # MapKeeper.photo_of(sample)
    maps: dict[str, Any]  # {method: [T, h, w]} on the CPU
    classes: list[int]
    sources: list[tuple[str, int]]


class MapFeed:
    """Offers the images of scored batches to `keeper` in the order of `order` (the batches this
    process scores, in run order; batches not in it, e.g. the annotation rejects, pass at once)."""

    def __init__(self, keeper: MapKeeper, order: Sequence[int], out_dir: Path) -> None:
        self.keeper = keeper
        self.out_dir = Path(out_dir)
        self._order = [b for b in order if b >= 0]
        self._next = 0
        self._held: dict[int, list[HeldImage]] = {}
        self._done: dict[int, Any] = {}
        self._dirty = False

    @property
    def active(self) -> bool:
        return self.keeper.active

    def hold(self, batch: int, images: list[HeldImage]) -> None:
        if self.active:
            self._held[batch] = images

    def ready(self, scored: Any) -> list[Any]:
        """A scored batch (scoring.ScoredBatch) in; the scored batches now due, in order, out."""
        if not self.active or scored.batch not in self._order[self._next :]:
            return [scored]
        self._done[scored.batch] = scored
        out = []
        while self._next < len(self._order) and self._order[self._next] in self._done:
            batch = self._order[self._next]
            done = self._done.pop(batch)
            self._offer(self._held.pop(batch, []), done.rows)
            out.append(done)
            self._next += 1
        return out

    def _offer(self, images: list[HeldImage], rows: pa.RecordBatch) -> None:
        by_image: dict[str, list[dict[str, Any]]] = {}
        for row in rows.to_pylist():
            by_image.setdefault(row["image_id"], []).append(row)
        for held in images:
            image_rows = by_image.get(held.sample.entry.image_id, [])
            if image_rows and any(r.get("skip_reason") is None for r in image_rows):  # not failed in its worker
                self.keeper.offer_photo(held.sample, held.photo, held.maps, held.classes, held.sources, image_rows)
                self._dirty = True

    def save(self) -> None:
        """The keeper's state, for a restart (see the module docstring); written then renamed."""
        if not self.active or not self._dirty:
            return
        self.keeper.checkpoint()  # save_maps: maps.npz.tmp whole and closed, so the keeper pickles
        try:
            payload = pickle.dumps({"version": _STATE_VERSION, "keeper": self.keeper}, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:  # a dataset's photo that cannot be pickled
            log.warning("the gallery's state cannot be saved for a restart (%s): a resumed run's gallery would miss earlier images", exc)
            discard_keeper_state(self.out_dir)  # an older state would not match the stored records
            return
        # a full disk stops the run here as it would at the records part after it
        replace_atomically(self.out_dir / KEEPER_STATE, lambda tmp: tmp.write_bytes(payload), "the gallery's state", len(payload))
        self._dirty = False

    def close(self) -> Path | None:
        """maps.npz (MapKeeper.close). The saved state stays until the run is marked complete
        (discard_keeper_state): a run stopped before that writes maps.npz again from it."""
        return self.keeper.close()


def discard_keeper_state(out_dir: Path) -> None:
    """The gallery's saved state, once the run's records and outputs are final."""
    (Path(out_dir) / KEEPER_STATE).unlink(missing_ok=True)


def restored_keeper(keeper: MapKeeper, out_dir: Path, resumed: bool) -> MapKeeper:
    """`keeper` (new, from the settings) or, in a resumed run, the one its last session saved."""
    path = Path(out_dir) / KEEPER_STATE
    if not resumed or not keeper.active:
        path.unlink(missing_ok=True)
        return keeper
    if not path.is_file():
        log.warning("%s is missing: the gallery of this resumed run is chosen from the images scored since the restart", path)
        return keeper
    try:
        state = pickle.loads(path.read_bytes())
    except Exception as exc:  # noqa: BLE001 - a damaged state costs the gallery only
        log.warning("%s could not be read (%s): the gallery is chosen from the images scored since the restart", path, exc)
        return keeper
    saved = state.get("keeper") if isinstance(state, dict) and state.get("version") == _STATE_VERSION else None
    if not isinstance(saved, MapKeeper):
        return keeper
    if not saved.same_settings(keeper):
        log.warning("report.gallery / report.seed changed since the run started: the gallery is chosen from the images scored since the restart")
        return keeper
    if not saved.resume_in(out_dir):
        log.warning("%s is missing or shorter than when the run stopped: maps.npz holds the images scored since the restart", saved._tmp)
        return keeper
    return saved
