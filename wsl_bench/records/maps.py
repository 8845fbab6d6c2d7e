"""Maps kept for the report's gallery, so a report can be rebuilt from a finished run without the
dataset, a model or a GPU.

`MapKeeper.offer` sees every scored image once. It picks gallery candidates online with bounded
memory: the images where the methods disagree most, each method's worst failures, and a seeded
random sample (the images with the smallest seeded hash of their id: order-independent, so the
sample does not depend on batch size or workers). `close()` writes `maps.npz` atomically:

  meta.npy            JSON (uint8 bytes): methods, per kept image its evaluation-grid size,
                      view, targets, and the gallery selection in display order with reasons
  map_<key>_<j>.npy   float16 [T, h, w]: method j's maps at its native grid, divided by
                      scale_<key>_<j>.npy (float32 [T], max |value| of each map) so float16
                      neither overflows nor flushes small maps to zero; map = map16 * scale
  thumb_<key>.npy     uint8: a JPEG of the photo on the evaluation grid, long side <= THUMB_SIDE

Only the gallery's images are kept, and only their ground-truth and top-1 targets; with
`records.save_maps=true` every image's maps (all targets) are streamed into the same file as the
run goes, for re-scoring later. Thumbnails are made at close() for the selected images only:
files are decoded again (decode_rgb, the run's own decoder), generated images rendered again,
and when maps are scored on the network input grid (transform.evaluate_at=input) the
denormalized network input is the photo.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from .store import fsync_path

MAPS_FILE = "maps.npz"
FORMAT_VERSION = 1
THUMB_SIDE = 384  # px, long side of the kept photo
THUMB_QUALITY = 85

# A photo, when offered, is a file (decoded at close), a zero-argument callable returning a
# [3, H, W] uint8 tensor or ([3, H, W], note) (called at close: a dataset's render), or the
# pixels themselves ([H, W, 3] or [3, H, W] uint8, thumbnailed when the image is kept).


def random_key(seed: int, image_id: str) -> float:
    """A uniform number in [0, 1) from (seed, image_id): the seeded random sample keeps the
    images with the smallest keys, whatever order they arrive in."""
    digest = hashlib.blake2b(f"{seed}:{image_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _gt_scores(rows: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> tuple[float, dict[str, float]]:
    """(disagreement, failure per method) of one image from its ground-truth rows.

    Failure of a (method, class): (1 - IoU) with no box counted as IoU 0, averaged with a pointing
    miss (1) / hit (0) when the class is scored by the pointing game; per method the mean over
    the image's classes. Disagreement: per class, the spread of IoU over methods plus 0.5 for each
    of box and point where some method passes and another fails; the image takes its largest."""
    per: dict[tuple[str, int], tuple[float, bool, bool | None]] = {}
    for r in rows:
        if r.get("target_source") == "gt" and r.get("skip_reason") is None:
            iou = r.get("iou")
            per[(r["method"], int(r["target"]))] = (0.0 if iou is None else float(iou), bool(r.get("loc_correct")), r.get("point_hit"))
    failure: dict[str, float] = {}
    for m in methods:
        values = []
        for (method, _), (iou, _, hit) in per.items():
            if method == m:
                values.append((1 - iou) if hit is None else 0.5 * (1 - iou) + 0.5 * (not hit))
        if values:
            failure[m] = float(np.mean(values))
    disagreement = 0.0
    for cls in {c for _, c in per}:
        scored = [per[(m, cls)] for m in methods if (m, cls) in per]
        if len(scored) < 2:
            continue
        ious = [s[0] for s in scored]
        boxes = {s[1] for s in scored}
        points = {s[2] for s in scored if s[2] is not None}
        disagreement = max(disagreement, max(ious) - min(ious) + 0.5 * (len(boxes) > 1) + 0.5 * (len(points) > 1))
    return disagreement, failure


class _TopK:
    """The k largest (score, tiebreak) entries seen: a min-heap; push returns the evicted key."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.heap: list[tuple[float, float, str]] = []

    def admits(self, score: float, tiebreak: float) -> bool:
        return self.k > 0 and (len(self.heap) < self.k or (score, tiebreak) > self.heap[0][:2])

    def push(self, score: float, tiebreak: float, key: str) -> str | None:
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, (score, tiebreak, key))
            return None
        return heapq.heappushpop(self.heap, (score, tiebreak, key))[2]

    def ranked(self) -> list[tuple[float, str]]:
        return [(s, key) for s, _, key in sorted(self.heap, reverse=True)]


@dataclass
class _Candidate:
    key: str
    image_id: str
    size: tuple[int, int]
    view: tuple[float, float, float, float] | None
    targets: list[int]
    sources: list[str]
    ranks: list[int]
    maps: dict[int, tuple[np.ndarray, np.ndarray]] | None  # method index -> (float16 maps, scales)
    photo: Any
    thumb: bytes | None = None
    scores: dict[str, float] = field(default_factory=dict)
    refs: int = 0


def _scaled_float16(maps: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """[T, h, w] -> (float16 maps / scale, float32 scale per map): max |finite value| -> 1."""
    m = maps.detach().to("cpu", torch.float32)
    finite = torch.where(torch.isfinite(m), m, torch.zeros(()))
    scale = finite.abs().flatten(1).amax(dim=1)
    scale = torch.where(scale > 0, scale, torch.ones(()))
    return (m / scale[:, None, None]).to(torch.float16).numpy(), scale.numpy().astype(np.float32)


def _as_hwc_uint8(pixels: Any) -> np.ndarray:
    if isinstance(pixels, tuple):  # a dataset's render(): (image, note)
        pixels = pixels[0]
    if isinstance(pixels, torch.Tensor):
        pixels = pixels.detach().cpu().numpy()
    arr = np.asarray(pixels)
    if arr.ndim == 3 and arr.shape[0] == 3 and arr.shape[-1] != 3:
        arr = arr.transpose(1, 2, 0)
    return np.ascontiguousarray(arr.astype(np.uint8))


def make_thumbnail(pixels: Any, size: tuple[int, int]) -> bytes:
    """JPEG bytes of the photo resized to the evaluation grid's aspect (size = (H, W)), long side
    at most THUMB_SIDE: boxes in evaluation-grid pixels map onto it by one scale per axis."""
    image = Image.fromarray(_as_hwc_uint8(pixels))
    height, width = size
    factor = min(1.0, THUMB_SIDE / max(height, width))
    target = (max(1, round(width * factor)), max(1, round(height * factor)))
    if image.size != target:
        image = image.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=THUMB_QUALITY, optimize=True)
    return buffer.getvalue()


def denormalized(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """The network input [3, H, W] (normalized) back to uint8 RGB [H, W, 3]."""
    m = torch.tensor(mean, dtype=image.dtype, device=image.device)[:, None, None]
    s = torch.tensor(std, dtype=image.dtype, device=image.device)[:, None, None]
    rgb = (image * s + m).clamp(0, 1).mul(255).round().to(torch.uint8)
    return rgb.permute(1, 2, 0).cpu().numpy()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


class MapKeeper:
    """Chooses and keeps the gallery's maps while a run goes; see the module docstring.

    gallery: how many images the gallery may show (0 = keep none). save_maps: also keep every
    image's maps. seed: the random sample's seed. methods: in the run's order."""

    def __init__(self, out_dir: Path, methods: Sequence[str], gallery: int = 48, save_maps: bool = False, seed: int = 0,
                 mean: Sequence[float] = (0.0, 0.0, 0.0), std: Sequence[float] = (1.0, 1.0, 1.0)) -> None:
        self.out_dir = Path(out_dir)
        self.methods = list(methods)
        self.gallery = max(0, int(gallery))
        self.save_maps = bool(save_maps)
        self.seed = int(seed)
        self.mean, self.std = tuple(mean), tuple(std)
        n = self.gallery
        self.quota_disagree = n // 3 if len(self.methods) > 1 else 0
        self.quota_worst = n // 3 if len(self.methods) > 1 else n // 2
        # each heap holds enough that the round-robin selection never runs out after de-duplication
        self._disagree = _TopK(n if self.quota_disagree else 0)
        per_method = math.ceil(self.quota_worst / max(1, len(self.methods))) + self.quota_disagree
        self._worst = {m: _TopK(min(n, per_method)) for m in self.methods}
        self._random = _TopK(n)
        self._pool: dict[str, _Candidate] = {}
        self._offered = 0
        self._offered_ids: set[str] = set()
        self._seen: list[dict[str, Any]] = []  # every image's meta, with save_maps only
        self._tmp = self.out_dir / (MAPS_FILE + ".tmp")
        self._zip: zipfile.ZipFile | None = None  # save_maps: maps.npz.tmp, open from the first image on
        self._checkpoint: tuple[int, bytes] | None = None  # save_maps: (offset, bytes) of its central directory at the last checkpoint

    @classmethod
    def from_settings(cls, report: Any, records: Any, out_dir: Path, methods: Sequence[str], mean: Sequence[float],
                      std: Sequence[float]) -> "MapKeeper":
        """From the run's settings: report.gallery images (none without report.html, unless
        records.save_maps), report.seed."""
        gallery = report.gallery if report.html or records.save_maps else 0
        return cls(out_dir, methods, gallery, records.save_maps, report.seed, mean, std)

    @property
    def active(self) -> bool:
        return self.gallery > 0 or self.save_maps

    def offer_sample(self, sample: Any, maps: Mapping[str, torch.Tensor], targets: Sequence[int],
                     sources: Sequence[tuple[str, int]], rows: Sequence[Mapping[str, Any]]) -> None:
        """The pipeline's call, once per scored image: its Sample, maps {method: [T, h, w]} for
        target columns `targets` with (source, rank) `sources`, and the image's records."""
        if not self.active:
            return
        self.offer_photo(sample, self.photo_of(sample), maps, targets, sources, rows)

    def photo_of(self, sample: Any) -> Any:
        """The photo `offer` keeps for a Sample: the denormalized network input when maps are
        scored on it (transform.evaluate_at=input), else the dataset's render or the file."""
        if sample.source_size is not None and tuple(sample.source_size) != tuple(sample.orig_size):
            return denormalized(sample.image, self.mean, self.std)
        return sample.entry.render if sample.entry.render is not None else sample.entry.path

    def offer_photo(self, sample: Any, photo: Any, maps: Mapping[str, torch.Tensor], targets: Sequence[int],
                    sources: Sequence[tuple[str, int]], rows: Sequence[Mapping[str, Any]]) -> None:
        """offer_sample with its photo taken earlier (photo_of): a run that scores in worker
        processes keeps the sample without its network input until the image's rows are back."""
        view = sample.view
        self.offer(sample.entry.image_id, photo, maps, rows, targets, sources, tuple(sample.orig_size),
                   None if view is None or view.is_full(*sample.orig_size) else (view.x0, view.y0, view.x1, view.y1))

    def offer(self, image_id: str, photo: Any, maps: Mapping[str, torch.Tensor], rows: Sequence[Mapping[str, Any]],
              targets: Sequence[int], sources: Sequence[tuple[str, int]], size: tuple[int, int],
              view: tuple[float, float, float, float] | None = None) -> None:
        """One image: keep it if it is a gallery candidate (and stream its maps with save_maps).
        photo: see `Photo`; size: the evaluation grid (H, W) the rows' boxes and points are on;
        view: the rectangle of that grid the maps cover (None = all of it)."""
        if not self.active or image_id in self._offered_ids:  # a batch scored again image by image
            return
        self._offered_ids.add(image_id)
        key = f"i{self._offered}"
        self._offered += 1
        targets = [int(t) for t in targets]
        if self.save_maps:
            stream = self._stream()
            for j, m in enumerate(self.methods):
                if m in maps:
                    values, scale = _scaled_float16(maps[m])
                    stream.writestr(f"map_{key}_{j}.npy", _npy_bytes(values))
                    stream.writestr(f"scale_{key}_{j}.npy", _npy_bytes(scale))
            self._seen.append(self._image_meta(key, image_id, size, view, targets, sources))
        disagreement, failure = _gt_scores(rows, self.methods)
        tiebreak = random_key(self.seed, image_id)
        wanted = []
        if self._disagree.admits(disagreement, tiebreak) and disagreement > 0:
            wanted.append((self._disagree, disagreement))
        for m, f in failure.items():
            if self._worst[m].admits(f, tiebreak):
                wanted.append((self._worst[m], f))
        if self._random.admits(-tiebreak, 0.0):
            wanted.append((self._random, -tiebreak))
        if not wanted:
            return
        keep = [t for t, (s, r) in enumerate(sources) if s == "gt" or r == 1]
        gt_classes = {targets[t] for t, (s, _) in enumerate(sources) if s == "gt"}
        keep = [t for t in keep if sources[t][0] == "gt" or targets[t] not in gt_classes]  # top-1 = a GT class: same map
        kept_maps = None
        if not self.save_maps:
            index = torch.tensor(keep, dtype=torch.long)
            kept_maps = {j: _scaled_float16(maps[m][index.to(maps[m].device)]) for j, m in enumerate(self.methods) if m in maps}
        else:  # the file already holds every column
            keep = list(range(len(targets)))
        cand = _Candidate(
            key, image_id, (int(size[0]), int(size[1])), None if view is None else tuple(float(v) for v in view),
            [targets[t] for t in keep], [sources[t][0] for t in keep], [int(sources[t][1]) for t in keep],
            kept_maps, photo, scores={"disagreement": disagreement, **{f"failure:{m}": f for m, f in failure.items()}},
        )
        if isinstance(photo, (np.ndarray, torch.Tensor)):
            cand.thumb, cand.photo = make_thumbnail(photo, cand.size), None
        self._pool[key] = cand
        for heap, score in wanted:
            cand.refs += 1
            evicted = heap.push(score, tiebreak, key)
            if evicted is not None:
                self._release(evicted)

    def _stream(self) -> zipfile.ZipFile:
        """save_maps: maps.npz.tmp open for appending, new or continued from the last checkpoint
        (what was written after it, by a session that was stopped, is dropped)."""
        if self._zip is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if self._checkpoint is None:
                self._zip = zipfile.ZipFile(self._tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
            else:
                offset, directory = self._checkpoint
                with open(self._tmp, "r+b") as f:
                    f.seek(offset)
                    f.write(directory)
                    f.truncate()
                self._zip = zipfile.ZipFile(self._tmp, "a", compression=zipfile.ZIP_STORED, allowZip64=True)
        return self._zip

    def checkpoint(self) -> None:
        """save_maps: maps.npz.tmp made a whole zip file of the maps streamed so far (its central
        directory written, flushed to disk and kept here, the file closed), so that a restarted run
        that loads this keeper's saved state continues the file from there (`resume_in`). The next
        image reopens it for appending."""
        if self._zip is None:
            return
        self._zip.close()  # writes the central directory after the entries, from start_dir on
        offset = self._zip.start_dir
        self._zip = None
        with open(self._tmp, "rb") as f:
            f.seek(offset)
            self._checkpoint = (offset, f.read())
        fsync_path(self._tmp)

    def resume_in(self, out_dir: Path) -> bool:
        """This keeper, loaded from a stopped session's saved state, continuing in `out_dir`; False
        when the maps it streamed (save_maps) are not there as its last checkpoint left them."""
        self.out_dir = Path(out_dir)
        self._tmp = self.out_dir / (MAPS_FILE + ".tmp")
        if self._checkpoint is None:
            return True
        return self._tmp.is_file() and self._tmp.stat().st_size >= self._checkpoint[0]

    def same_settings(self, other: "MapKeeper") -> bool:
        return (self.gallery, self.seed, self.methods, self.save_maps) == (other.gallery, other.seed, other.methods, other.save_maps)

    def _release(self, key: str) -> None:
        cand = self._pool[key]
        cand.refs -= 1
        if cand.refs == 0:
            del self._pool[key]

    def selection(self) -> list[tuple[str, str]]:
        """The gallery in display order: (key, reason) with reason "disagree", "worst:<method>"
        or "random"; disagreement first, then each method's worst in turn, the random sample last."""
        chosen: dict[str, str] = {}

        def take(key: str, reason: str) -> None:
            if key not in chosen and len(chosen) < self.gallery:
                chosen[key] = reason

        for score, key in self._disagree.ranked()[: self.quota_disagree]:
            take(key, "disagree")
        ranked = {m: [k for _, k in self._worst[m].ranked()] for m in self.methods}
        target = min(self.gallery, len(chosen) + self.quota_worst)
        while len(chosen) < target and any(ranked.values()):
            for m in self.methods:  # one image per method in turn
                queue = ranked[m]
                while queue and queue[0] in chosen:
                    queue.pop(0)
                if queue and len(chosen) < target:
                    take(queue.pop(0), f"worst:{m}")
        for _, key in self._random.ranked():
            take(key, "random")
        for heap in (self._disagree, *self._worst.values()):  # too few random candidates: any kept one
            for _, key in heap.ranked():
                take(key, "random")
        return list(chosen.items())

    def _image_meta(self, key: str, image_id: str, size: tuple[int, int], view: Any, targets: Sequence[int],
                    sources: Sequence[tuple[str, int]]) -> dict[str, Any]:
        return {"key": key, "image_id": image_id, "size": [int(size[0]), int(size[1])],
                "view": None if view is None else [float(v) for v in view], "targets": [int(t) for t in targets],
                "sources": [s for s, _ in sources], "ranks": [int(r) for _, r in sources]}

    def close(self) -> Path | None:
        """Thumbnails for the selected images, then maps.npz (written to a temporary file and
        renamed, so a crash never leaves a half-written file). None when nothing is kept."""
        if not self.active:
            return None
        selected = self.selection()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        zf = self._stream() if self.save_maps else zipfile.ZipFile(self._tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        images = {}
        try:
            for key, reason in selected:
                cand = self._pool[key]
                meta = {**self._image_meta(key, cand.image_id, cand.size, cand.view, cand.targets,
                                           list(zip(cand.sources, cand.ranks))), "reason": reason,
                        "scores": {k: round(v, 4) for k, v in cand.scores.items()}}
                if cand.maps is not None:
                    for j, (values, scale) in cand.maps.items():
                        zf.writestr(f"map_{key}_{j}.npy", _npy_bytes(values))
                        zf.writestr(f"scale_{key}_{j}.npy", _npy_bytes(scale))
                thumb, error = cand.thumb, None
                if thumb is None and cand.photo is not None:
                    thumb, error = self._thumbnail_of(cand)
                if thumb is not None:
                    zf.writestr(f"thumb_{key}.npy", _npy_bytes(np.frombuffer(thumb, dtype=np.uint8)))
                meta["thumbnail"] = thumb is not None
                if error:
                    meta["thumbnail_error"] = error
                images[key] = meta
            if self.save_maps:  # every image's maps are in the file; index them all
                for meta in self._seen:
                    images.setdefault(meta["key"], meta)
            meta_all = {"format": FORMAT_VERSION, "methods": self.methods, "thumb_side": THUMB_SIDE,
                        "save_maps": self.save_maps, "seed": self.seed, "gallery": [k for k, _ in selected],
                        "images": images}
            zf.writestr("meta.npy", _npy_bytes(np.frombuffer(json.dumps(meta_all).encode(), dtype=np.uint8)))
        finally:
            zf.close()
            self._zip = None
        final = self.out_dir / MAPS_FILE
        fsync_path(self._tmp)
        os.replace(self._tmp, final)
        fsync_path(self.out_dir)
        return final

    def _thumbnail_of(self, cand: _Candidate) -> tuple[bytes | None, str | None]:
        from ..data.decode import ImageDecodeError, decode_rgb

        try:
            pixels = cand.photo() if callable(cand.photo) else decode_rgb(Path(cand.photo))
            return make_thumbnail(pixels, cand.size), None
        except (ImageDecodeError, OSError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"[:200]


@dataclass
class KeptMaps:
    """maps.npz opened for reading (lazily: arrays are read when asked for)."""

    path: Path
    methods: list[str]
    images: dict[str, dict[str, Any]]
    gallery: list[str]
    _npz: Any

    def maps(self, key: str) -> dict[str, np.ndarray]:
        """{method: float32 [T, h, w]} at the methods' native grids, original scale."""
        out = {}
        for j, m in enumerate(self.methods):
            name = f"map_{key}_{j}"
            if name in self._npz.files:
                out[m] = self._npz[name].astype(np.float32) * self._npz[f"scale_{key}_{j}"][:, None, None]
        return out

    def thumbnail(self, key: str) -> np.ndarray | None:
        """The photo, uint8 [h, w, 3], or None when it could not be kept."""
        name = f"thumb_{key}"
        if name not in self._npz.files:
            return None
        with Image.open(io.BytesIO(self._npz[name].tobytes())) as img:
            return np.asarray(img.convert("RGB"))

    def close(self) -> None:
        self._npz.close()


def read_maps(path: Path) -> KeptMaps:
    """Open a run's maps.npz (or the run directory holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / MAPS_FILE
    npz = np.load(path, allow_pickle=False)
    meta = json.loads(npz["meta"].tobytes().decode())
    if meta.get("format") != FORMAT_VERSION:
        npz.close()
        raise ValueError(f"{path}: maps format {meta.get('format')} is not {FORMAT_VERSION}; rebuild it with this version")
    return KeptMaps(path, meta["methods"], meta["images"], meta["gallery"], npz)
