"""MapKeeper: which images the gallery keeps (disagreement, worst failures, seeded random sample),
chosen online in bounded memory and independent of arrival order; what maps.npz holds (float16
maps at the native grid that round-trip to the original scale, thumbnails on the evaluation grid)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wsl_bench.records.maps import MAPS_FILE, THUMB_SIDE, MapKeeper, make_thumbnail, random_key, read_maps

METHODS = ["gradcam", "gradcampp"]
SOURCES = [("gt", 0), ("top1", 1), ("top5", 2)]


def rows_for(image_id: str, ious: dict[str, float], hits: dict[str, bool], gt_class: int = 3) -> list[dict]:
    rows = []
    for m in METHODS:
        rows.append({"image_id": image_id, "method": m, "target": gt_class, "target_source": "gt", "pred_rank": 0,
                     "iou": ious[m], "loc_correct": ious[m] >= 0.5, "point_hit": hits[m], "skip_reason": None})
        for cls, (source, rank) in zip((7, 8), SOURCES[1:]):
            rows.append({"image_id": image_id, "method": m, "target": cls, "target_source": source, "pred_rank": rank,
                         "iou": None, "loc_correct": False, "point_hit": None, "skip_reason": None})
    return rows


def maps_for(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.rand(len(SOURCES), 7, 7, generator=g) for m in METHODS}


def synthetic_offers(n: int = 60):
    """Image i: gradcam IoU spread over [0, 1], gradcampp its mirror, pointing hits alternating."""
    offers = []
    for i in range(n):
        a = (i * 37 % n) / (n - 1)
        b = 1 - a if i % 3 else a
        ious = {"gradcam": a, "gradcampp": b}
        hits = {"gradcam": i % 2 == 0, "gradcampp": i % 4 == 0}
        offers.append((f"img{i:03d}", ious, hits))
    return offers


def expected_scores(ious: dict[str, float], hits: dict[str, bool]) -> tuple[float, dict[str, float]]:
    """The documented definitions, written out: failure = mean of (1 - IoU) and the miss;
    disagreement = IoU spread + 0.5 per pass/fail split (box, point)."""
    failure = {m: 0.5 * (1 - ious[m]) + 0.5 * (not hits[m]) for m in METHODS}
    spread = abs(ious["gradcam"] - ious["gradcampp"])
    split_box = (ious["gradcam"] >= 0.5) != (ious["gradcampp"] >= 0.5)
    split_point = hits["gradcam"] != hits["gradcampp"]
    return spread + 0.5 * split_box + 0.5 * split_point, failure


def run_keeper(tmp: Path, offers, gallery: int = 12, save_maps: bool = False, seed: int = 0) -> tuple[MapKeeper, list[int]]:
    keeper = MapKeeper(tmp, METHODS, gallery=gallery, save_maps=save_maps, seed=seed)
    pool_sizes = []
    for image_id, ious, hits in offers:
        photo = np.full((30, 40, 3), 128, dtype=np.uint8)
        keeper.offer(image_id, photo, maps_for(int(image_id[3:])), rows_for(image_id, ious, hits), [3, 7, 8], SOURCES, (30, 40))
        pool_sizes.append(len(keeper._pool))
    return keeper, pool_sizes


def test_selection_follows_each_criterion_and_quota(tmp_path):
    offers = synthetic_offers()
    keeper, pool_sizes = run_keeper(tmp_path, offers, gallery=12)
    selected = keeper.selection()
    assert len(selected) == 12
    by_reason: dict[str, list[str]] = {}
    ids = {f"i{k}": image_id for k, (image_id, _, _) in enumerate(offers)}
    for key, reason in selected:
        by_reason.setdefault(reason, []).append(ids[key])
    scores = {image_id: expected_scores(ious, hits) for image_id, ious, hits in offers}
    tie = {image_id: random_key(0, image_id) for image_id, _, _ in offers}
    # 12 // 3 = 4 images where the methods disagree most
    top_disagree = sorted(scores, key=lambda i: (scores[i][0], tie[i]), reverse=True)[:4]
    assert by_reason["disagree"] == top_disagree
    # then 4 worst failures, one per method in turn, each skipping images already chosen
    ranked = {m: sorted(scores, key=lambda i: (scores[i][1][m], tie[i]), reverse=True) for m in METHODS}
    chosen, worst = list(top_disagree), {m: [] for m in METHODS}
    while len(chosen) < 8:
        for m in METHODS:
            pick = next(i for i in ranked[m] if i not in chosen)
            chosen.append(pick)
            worst[m].append(pick)
    assert worst["gradcam"] != worst["gradcampp"]
    for m in METHODS:
        assert by_reason[f"worst:{m}"] == worst[m]
    # the rest: the seeded random sample, smallest keys first, skipping chosen images
    assert by_reason["random"] == [i for i in sorted(tie, key=tie.get) if i not in chosen][:4]
    # bounded memory: never more than the heaps' capacity (12 + 2 x (2 + 4) + 12 = 36 here)
    assert max(pool_sizes) <= 36 and len(keeper._pool) <= 36


def test_selection_does_not_depend_on_arrival_order(tmp_path):
    offers = synthetic_offers()
    forward, _ = run_keeper(tmp_path / "a", offers)
    backward, _ = run_keeper(tmp_path / "b", offers[::-1])
    n = len(offers)

    def named(keeper: MapKeeper, order) -> list[tuple[str, str]]:
        ids = {f"i{k}": image_id for k, (image_id, _, _) in enumerate(order)}
        return [(ids[k], r) for k, r in keeper.selection()]

    assert named(forward, offers) == named(backward, offers[::-1])
    other_seed, _ = run_keeper(tmp_path / "c", offers, seed=1)
    random_a = {i for i, r in named(forward, offers) if r == "random"}
    random_b = {i for i, r in named(other_seed, offers) if r == "random"}
    assert random_a != random_b and n == 60


def test_one_method_has_no_disagreement_and_more_worst(tmp_path):
    keeper = MapKeeper(tmp_path, ["gradcam"], gallery=10)
    for i in range(30):
        rows = [r for r in rows_for(f"img{i:03d}", {"gradcam": i / 29, "gradcampp": 0.0}, {"gradcam": True, "gradcampp": True})
                if r["method"] == "gradcam"]
        keeper.offer(f"img{i:03d}", np.zeros((8, 8, 3), np.uint8), {"gradcam": torch.rand(3, 7, 7)}, rows, [3, 7, 8], SOURCES, (8, 8))
    reasons = [r for _, r in keeper.selection()]
    assert "disagree" not in reasons and reasons.count("worst:gradcam") == 5 and reasons.count("random") == 5
    worst = [k for k, r in keeper.selection() if r == "worst:gradcam"]
    assert worst == ["i0", "i1", "i2", "i3", "i4"]  # lowest IoU first


def test_maps_file_round_trip(tmp_path):
    keeper = MapKeeper(tmp_path, METHODS, gallery=4)
    big = torch.zeros(3, 7, 7)
    big[0, 2, 3] = 1e6  # beyond float16's range unless scaled
    big[1] = 1e-9 * torch.arange(49.0).reshape(7, 7)  # below float16's resolution unless scaled
    big[2, 0, 0] = float("nan")
    photo = np.zeros((375, 500, 3), np.uint8)
    photo[:, 250:] = 255  # right half white
    rows = rows_for("only", {"gradcam": 0.2, "gradcampp": 0.9}, {"gradcam": False, "gradcampp": True})
    keeper.offer("only", photo, {"gradcam": big, "gradcampp": big * 2}, rows, [3, 7, 8], SOURCES, (375, 500), view=(10.0, 0.0, 490.0, 375.0))
    path = keeper.close()
    assert path == tmp_path / MAPS_FILE and not (tmp_path / (MAPS_FILE + ".tmp")).exists()
    kept = read_maps(tmp_path)
    (key,) = kept.gallery
    meta = kept.images[key]
    assert meta["image_id"] == "only" and meta["reason"] == "disagree" and meta["size"] == [375, 500]
    assert meta["view"] == [10.0, 0.0, 490.0, 375.0]
    # only the GT column and the top-1 column are kept (top-5 targets are not shown)
    assert meta["targets"] == [3, 7] and meta["sources"] == ["gt", "top1"] and meta["ranks"] == [0, 1]
    maps = kept.maps(key)
    assert maps["gradcam"].shape == (2, 7, 7) and maps["gradcam"].dtype == np.float32
    assert maps["gradcam"][0, 2, 3] == pytest.approx(1e6, rel=1e-3) and np.isfinite(maps["gradcam"][0]).all()
    assert np.allclose(maps["gradcam"][1], big[1].numpy(), rtol=1e-3, atol=1e-13)
    assert maps["gradcampp"][0, 2, 3] == pytest.approx(2e6, rel=1e-3)
    thumb = kept.thumbnail(key)
    assert thumb.shape == (288, 384, 3)  # the evaluation grid's aspect, long side THUMB_SIDE
    assert thumb[:, :180].mean() < 20 and thumb[:, 200:].mean() > 235
    with zipfile.ZipFile(path) as zf:
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())
    kept.close()


def test_save_maps_keeps_every_image_and_column(tmp_path):
    offers = synthetic_offers(20)
    keeper, _ = run_keeper(tmp_path, offers, gallery=6, save_maps=True)
    keeper.close()
    kept = read_maps(tmp_path)
    assert len(kept.images) == 20 and len(kept.gallery) == 6
    for k in range(20):
        maps = kept.maps(f"i{k}")
        assert set(maps) == set(METHODS) and maps["gradcam"].shape == (3, 7, 7)
        assert np.allclose(maps["gradcam"], maps_for(k)["gradcam"].numpy(), atol=1e-3)
    kept.close()


def test_thumbnail_from_file_and_render(tmp_path):
    rgb = np.zeros((100, 300, 3), np.uint8)
    rgb[:, :150, 0] = 255
    Image.fromarray(rgb).save(tmp_path / "wide.png")
    keeper = MapKeeper(tmp_path, ["gradcam"], gallery=2)
    rows = [r for r in rows_for("a", {"gradcam": 0.1, "gradcampp": 0}, {"gradcam": False, "gradcampp": False}) if r["method"] == "gradcam"]
    keeper.offer("a", tmp_path / "wide.png", {"gradcam": torch.rand(3, 7, 7)}, rows, [3, 7, 8], SOURCES, (100, 300))
    render = lambda: (torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), "")  # noqa: E731 - a dataset's render()
    keeper.offer("b", render, {"gradcam": torch.rand(3, 7, 7)}, rows, [3, 7, 8], SOURCES, (100, 300))
    keeper.close()
    kept = read_maps(tmp_path)
    for key in kept.gallery:
        thumb = kept.thumbnail(key)
        assert thumb.shape == (100, 300, 3)  # never upscaled
        assert thumb[:, :140, 0].mean() > 240 and thumb[:, 160:, 0].mean() < 15
    kept.close()
    assert len(make_thumbnail(rgb, (1000, 3000))) > 0
    with Image.open(io.BytesIO(make_thumbnail(rgb, (1000, 3000)))) as im:
        assert im.size == (THUMB_SIDE, 128)


def test_missing_photo_is_noted_not_raised(tmp_path):
    keeper = MapKeeper(tmp_path, ["gradcam"], gallery=1)
    rows = [r for r in rows_for("gone", {"gradcam": 0.1, "gradcampp": 0}, {"gradcam": False, "gradcampp": False}) if r["method"] == "gradcam"]
    keeper.offer("gone", tmp_path / "nowhere.jpg", {"gradcam": torch.rand(3, 7, 7)}, rows, [3, 7, 8], SOURCES, (50, 50))
    keeper.close()
    kept = read_maps(tmp_path)
    meta = kept.images[kept.gallery[0]]
    assert meta["thumbnail"] is False and "file not found" in meta["thumbnail_error"] and kept.thumbnail(kept.gallery[0]) is None
    kept.close()


def test_gallery_zero_keeps_nothing(tmp_path):
    keeper = MapKeeper(tmp_path, METHODS, gallery=0)
    keeper.offer("a", np.zeros((8, 8, 3), np.uint8), maps_for(0), rows_for("a", {"gradcam": 0, "gradcampp": 1}, {"gradcam": 0, "gradcampp": 1}),
                 [3, 7, 8], SOURCES, (8, 8))
    assert keeper.close() is None and not (tmp_path / MAPS_FILE).exists()


def test_keeper_from_run_settings(tmp_path):
    from wsl_bench.config import RecordSettings, ReportSettings

    def keeper(records: RecordSettings = RecordSettings(), **report):
        return MapKeeper.from_settings(ReportSettings(**report), records, tmp_path, METHODS, (0.5,) * 3, (0.25,) * 3)

    assert keeper(gallery=5, seed=3).gallery == 5 and keeper(gallery=5, seed=3).seed == 3
    assert not keeper(html=False).active  # no report: nothing kept
    kept = keeper(RecordSettings(save_maps=True), html=False)
    assert kept.active and kept.save_maps
    kept.close()
    assert keeper().gallery == 48


def test_an_image_offered_twice_is_kept_once(tmp_path):
    """A failing batch is scored again image by image: its images may be offered twice."""
    keeper = MapKeeper(tmp_path, METHODS, gallery=6)
    rows = rows_for("a", {"gradcam": 0.0, "gradcampp": 1.0}, {"gradcam": False, "gradcampp": True})
    for _ in range(2):
        keeper.offer("a", np.zeros((8, 8, 3), np.uint8), maps_for(0), rows, [3, 7, 8], SOURCES, (8, 8))
    assert [k for k, _ in keeper.selection()] == ["i0"]


@pytest.mark.parametrize("kind,evaluate_at", [("squash", "original"), ("resize_crop", "original"), ("squash", "input")])
def test_offer_sample_keeps_the_photo_of_the_evaluation_grid(tmp_path, kind, evaluate_at):
    """The pipeline's call on real decoded demo samples: the photo is the original file (decoded
    again at close) when maps are scored at original size, the network input when scored on it;
    a center crop's view is recorded so the gallery places the map inside it."""
    from omegaconf import OmegaConf

    from wsl_bench.data import DecodedImages, ProtocolTransform, build_dataset

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    data = build_dataset(OmegaConf.create({"name": "demo", "limit": 2}))
    samples = DecodedImages(data.entries, ProtocolTransform(kind, 224, mean, std, 256, evaluate_at))
    keeper = MapKeeper(tmp_path, ["gradcam"], gallery=4, mean=mean, std=std)
    for sample in samples:
        label = sample.entry.labels[0]
        rows = [{"method": "gradcam", "target": label, "target_source": "gt", "iou": 0.3, "loc_correct": False,
                 "point_hit": True, "skip_reason": None}]
        keeper.offer_sample(sample, {"gradcam": torch.rand(1, 7, 7)}, [label], [("gt", 0)], rows)
    keeper.close()
    kept = read_maps(tmp_path)
    for key in kept.gallery:
        meta = kept.images[key]
        sample = next(s for s in samples if s.entry.image_id == meta["image_id"])
        thumb = kept.thumbnail(key)
        height, width = sample.orig_size
        assert meta["size"] == [height, width]
        assert thumb.shape[:2] == (round(height * min(1, THUMB_SIDE / max(height, width))), round(width * min(1, THUMB_SIDE / max(height, width))))
        if evaluate_at == "input":
            assert (height, width) == (224, 224)
            expected = (sample.image * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]).clamp(0, 1) * 255
            assert np.abs(thumb.astype(float) - expected.permute(1, 2, 0).numpy()).mean() < 4  # JPEG error only
        else:
            original = np.asarray(Image.open(sample.entry.path).convert("RGB").resize((thumb.shape[1], thumb.shape[0])), dtype=float)
            assert np.abs(thumb.astype(float) - original).mean() < 6
        if kind == "resize_crop":
            v = sample.view
            assert meta["view"] == [v.x0, v.y0, v.x1, v.y1] and v.x1 - v.x0 < width
        else:
            assert meta["view"] is None
    kept.close()
