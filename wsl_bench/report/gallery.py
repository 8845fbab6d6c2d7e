"""The gallery's pictures, drawn from a finished run alone (maps.npz + records): per kept image
the photo with its ground-truth boxes, and per method the map over the photo with its predicted
box, its pointing point and pass / fail badges, for the ground-truth classes and the top-1
prediction. Maps are placed with the run's own rule (metrics.maps.to_original_size, on the
thumbnail's grid) so the heat shown is the heat that was scored."""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw

from ..data.sample import View
from ..metrics.maps import to_original_size
from ..records.maps import KeptMaps

ALPHA = 0.5  # heat over the photo
JPEG_QUALITY = 82
GT_COLOR = (34, 197, 94)
BOX_COLOR = (255, 255, 255)
HIT, MISS = (34, 197, 94), (239, 68, 68)
REASONS = {"disagree": "methods disagree", "random": "random sample"}
MAX_TARGETS = 3  # per image in the enlarged view: GT classes, then the top-1 prediction


@dataclass
class Badge:
    text: str
    kind: str  # ok / bad / info


@dataclass
class Panel:
    title: str
    src: str  # data URI
    badges: list[Badge] = field(default_factory=list)
    method: str | None = None


@dataclass
class TargetView:
    label: str  # "GT: tabby cat" / "top-1: tiger cat"
    panels: list[Panel]


@dataclass
class GalleryItem:
    key: str
    image_id: str
    reason: str
    classes: list[str]
    photo: Panel
    targets: list[TargetView]  # targets[0] is the one on the card
    rows: pd.DataFrame  # the image's records, every target and method
    size: tuple[int, int]


def reason_label(reason: str) -> str:
    if reason.startswith("worst:"):
        return f"worst of {reason.split(':', 1)[1]}"
    return REASONS.get(reason, reason)


def _jet() -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps["jet"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _scale_box(box: Sequence[int], sx: float, sy: float) -> tuple[float, float, float, float]:
    """Inclusive evaluation-grid pixels -> the thumbnail rectangle covering them."""
    x0, y0, x1, y1 = box
    return x0 * sx, y0 * sy, (x1 + 1) * sx - 1, (y1 + 1) * sy - 1


def _draw_boxes(draw: ImageDraw.ImageDraw, boxes: Sequence[Sequence[int]], sx: float, sy: float, color, width: int) -> None:
    for box in boxes:
        rect = _scale_box(box, sx, sy)
        draw.rectangle(rect, outline=(0, 0, 0), width=width + 2)
        draw.rectangle(rect, outline=color, width=width)


def placed_map(native: np.ndarray, size: tuple[int, int], view: Sequence[float] | None, thumb: tuple[int, int]) -> np.ndarray:
    """Maps (native grid [..., h, w]) on the thumbnail's grid `thumb` = (th, tw) of the
    evaluation grid `size` = (H, W), placed over `view` (evaluation-grid pixels) by the run's own
    rule, all in one call: [..., th, tw]."""
    th, tw = thumb
    sx, sy = tw / size[1], th / size[0]
    thumb_view = None if view is None else View(view[0] * sx, view[1] * sy, view[2] * sx, view[3] * sy)
    flat = torch.from_numpy(np.ascontiguousarray(native, dtype=np.float32)).reshape(-1, *native.shape[-2:])
    return to_original_size(flat, (th, tw), thumb_view).numpy().reshape(*native.shape[:-2], th, tw)


def heat(photo: np.ndarray, placed: np.ndarray, lut: np.ndarray) -> np.ndarray | None:
    """A placed map (placed_map) over the photo, min-max scaled for display; None when the map
    cannot be shown (non-finite or constant)."""
    if not np.isfinite(placed).all():
        return None
    lo, hi = float(placed.min()), float(placed.max())
    if hi <= lo:
        return None
    index = np.clip((placed - lo) * np.float32(255 / (hi - lo)), 0, 255).astype(np.uint8)
    weight = round(ALPHA * 256)  # integer blend: photo * (1 - ALPHA) + colour * ALPHA
    return ((photo.astype(np.uint16) * (256 - weight) + lut[index].astype(np.uint16) * weight + 128) >> 8).astype(np.uint8)


def _row_index(rows: pd.DataFrame) -> dict[tuple, dict[str, Any]]:
    """An image's records by (method, "gt", class) for GT targets and (method, "pred", rank) for
    predictions."""
    index: dict[tuple, dict[str, Any]] = {}
    for r in rows.to_dict("records"):
        key = (r["method"], "gt", int(r["target"])) if r["target_source"] == "gt" else (r["method"], "pred", int(r["pred_rank"]))
        index.setdefault(key, r)
    return index


def _badges(row: dict[str, Any] | None, source: str) -> list[Badge]:
    if row is None:
        return [Badge("no record", "info")]
    out = []
    if source != "gt" and not bool(row.get("class_in_gt")):
        out.append(Badge("wrong class", "bad"))
    iou = row.get("iou")
    has_iou = iou is not None and pd.notna(iou)
    if row.get("pred_box") is None:
        out.append(Badge("box ✗ none", "bad"))
    elif has_iou:
        ok = bool(row.get("loc_correct")) if source == "gt" else bool(row.get("loc_correct")) and bool(row.get("class_in_gt"))
        shown = math.floor(float(iou) * 100) / 100  # truncated: 0.4996 must not read as a passing 0.50
        out.append(Badge(f"box {'✓' if ok else '✗'} IoU {shown:.2f}", "ok" if ok else "bad"))
    hit = row.get("point_hit")
    if hit is not None and pd.notna(hit):
        out.append(Badge(f"point {'✓' if bool(hit) else '✗'}", "ok" if bool(hit) else "bad"))
    status = row.get("map_status")
    if status and status != "ok":
        out.append(Badge(f"map {status}", "bad"))
    return out


def _placeholder(size: tuple[int, int], side: int) -> np.ndarray:
    height, width = size
    factor = min(1.0, side / max(height, width))
    return np.full((max(1, round(height * factor)), max(1, round(width * factor)), 3), 200, dtype=np.uint8)


def render_item(kept: KeptMaps, key: str, rows: pd.DataFrame, methods: Sequence[str], lut: np.ndarray) -> GalleryItem:
    """One gallery image: the photo panel and, per target shown, one panel per method."""
    meta = kept.images[key]
    size = (int(meta["size"][0]), int(meta["size"][1]))
    photo = kept.thumbnail(key)
    if photo is None:
        photo = _placeholder(size, 320)
    th, tw = photo.shape[:2]
    sx, sy = tw / size[1], th / size[0]
    maps = kept.maps(key)
    gt_rows = rows[rows["target_source"] == "gt"]
    classes = list(dict.fromkeys(gt_rows["target_name"].dropna().astype(str)))

    base = Image.fromarray(photo)
    draw = ImageDraw.Draw(base)
    all_gt = [b for boxes in gt_rows.drop_duplicates("target")["gt_boxes"] for b in (boxes if boxes is not None else [])]
    _draw_boxes(draw, all_gt, sx, sy, GT_COLOR, 2)
    photo_panel = Panel("photo + GT boxes" if meta.get("thumbnail", True) else "photo not kept", data_uri(base),
                        [Badge(c, "info") for c in classes[:3]])

    columns = [t for t, s in enumerate(meta["sources"]) if s == "gt"] + [t for t, r in enumerate(meta["ranks"]) if r == 1]
    columns = list(dict.fromkeys(columns))[:MAX_TARGETS]
    # each method's shown maps placed on the thumbnail in one call
    placed = {m: placed_map(layer[columns], size, meta.get("view"), (th, tw)) for m, layer in maps.items()}
    index = _row_index(rows)
    targets = []
    for j, t in enumerate(columns):
        target, source, rank = int(meta["targets"][t]), meta["sources"][t], int(meta["ranks"][t])
        panels = []
        name = None
        for method in methods:
            row = index.get((method, "gt", target) if source == "gt" else (method, "pred", rank))
            if row is not None and name is None:
                name = str(row.get("target_name"))
            layer = maps.get(method)
            over = heat(photo, placed[method][j], lut) if layer is not None else None
            image = Image.fromarray(over if over is not None else (photo * 0.35 + 90).astype(np.uint8))
            d = ImageDraw.Draw(image)
            if row is not None:
                _draw_boxes(d, row["gt_boxes"] if row["gt_boxes"] is not None else [], sx, sy, GT_COLOR, 2)
                if row.get("pred_box") is not None:
                    _draw_boxes(d, [row["pred_box"]], sx, sy, BOX_COLOR, 2)
                if pd.notna(row.get("point_x")) and pd.notna(row.get("point_y")):
                    px, py = (float(row["point_x"]) + 0.5) * sx, (float(row["point_y"]) + 0.5) * sy
                    hit = row.get("point_hit")
                    color = HIT if hit is not None and pd.notna(hit) and bool(hit) else MISS if hit is not None and pd.notna(hit) else BOX_COLOR
                    d.ellipse((px - 6, py - 6, px + 6, py + 6), fill=color, outline=(0, 0, 0), width=2)
            badges = _badges(row, source)
            if layer is None:
                badges.insert(0, Badge("map not kept", "info"))
            panels.append(Panel(method, data_uri(image), badges, method))
        label = f"{'GT' if source == 'gt' else 'top-1'}: {name or target}"
        targets.append(TargetView(label, panels))
    return GalleryItem(key, str(meta["image_id"]), str(meta.get("reason", "")), classes, photo_panel, targets, rows, size)


def gallery_keys(kept: KeptMaps, limit: int | None = None) -> list[str]:
    """The kept selection's images in display order, at most `limit`."""
    return [k for k in kept.gallery if k in kept.images][: (len(kept.gallery) if limit is None else max(0, limit))]


def gallery_items(kept: KeptMaps, keys: Sequence[str], rows: pd.DataFrame, methods: Sequence[str]) -> list[GalleryItem]:
    """The gallery images `keys`; rows: their records (with boxes and points)."""
    by_image = dict(tuple(rows.groupby("image_id", sort=False)))
    lut = _jet()
    empty = rows.iloc[0:0]
    return [render_item(kept, k, by_image.get(kept.images[k]["image_id"], empty), methods, lut) for k in keys]


def records_table_rows(rows: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The enlarged view's per-target rows: header and cells (text)."""
    columns: list[tuple[str, str, Any]] = [
        ("method", "method", str), ("class", "target_name", str), ("source", "target_source", str),
        ("rank", "pred_rank", lambda v: str(int(v)) if int(v) else "–"), ("p", "prob", lambda v: f"{float(v):.3f}"),
        ("IoU", "iou", lambda v: f"{float(v):.3f}"), ("box", "loc_correct", lambda v: "✓" if bool(v) else "✗"),
        ("point", "point_hit", lambda v: "✓" if bool(v) else "✗"), ("energy", "energy", lambda v: f"{100 * float(v):.1f}%"),
        ("map", "map_status", str), ("p on L·I", "expl_prob", lambda v: f"{float(v):.3f}"),
        ("ins.", "insertion_auc", lambda v: f"{float(v):.3f}"), ("del.", "deletion_auc", lambda v: f"{float(v):.3f}"),
    ]
    present = [(h, c, f) for h, c, f in columns if c in rows.columns and rows[c].notna().any()]
    ordered = rows.sort_values(["target_source", "pred_rank", "target", "method"], kind="stable") if len(rows) else rows
    body = []
    for r in ordered.to_dict("records"):
        body.append(["–" if r[c] is None or (not isinstance(r[c], (list, np.ndarray)) and pd.isna(r[c])) else f(r[c]) for _, c, f in present])
    return [h for h, _, _ in present], body
