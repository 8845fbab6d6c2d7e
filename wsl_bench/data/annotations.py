"""The one rule every annotation parser follows (issue 13), and the helpers that apply it.

- A value that cannot be ground truth (missing, empty, not a number, NaN or infinite, a width or
  height that is not positive, a class or flag out of range) makes its image a skipped row whose
  reason names the file, the field and the value: `AnnotationError`, raised while parsing that
  image only.
- A value whose meaning is clear but is written unusually is repaired and the row's note says
  how: box corners given max-first are swapped (`corner_box`); coordinates beyond the image are
  clamped here and clipped to the image when its size is known (`base.clip_boxes`, with a note).
- A shared index file (split file, CSV, metadata table) is read line by line (`read_index`): a
  malformed line concerns only the image its first field names; lines that name no listed
  image are logged and concern nothing. Only a file that is missing, empty or has no readable
  line at all is a `DatasetLayoutError` (one line, before any compute).
- An image listed twice is scored once, with a note (`unique_listing`): the metrics are means
  over images, so a repeated id would weigh its image twice.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import DatasetLayoutError

log = logging.getLogger("wsl_bench")

# |coordinate| beyond this is clamped before integer conversion (no image is 2**31 px wide): the
# box is then clipped to the image with a note, or dropped as lying outside it.
COORD_LIMIT = 2**31
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)


class AnnotationError(Exception):
    """One image's annotation cannot be used; the message is the skip reason."""


def shown(value: Any, limit: int = 40) -> str:
    """A value as a reason quotes it: repr, cut to `limit` characters (huge or binary values)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def number(value: Any, where: str, text: bool = True) -> float:
    """A finite number from annotation text (XML, CSV: ASCII decimal notation only) or a JSON
    number (`text=False`: a JSON string is the wrong type); otherwise AnnotationError
    "<where> <value> is <problem>"."""
    if value is None:
        raise AnnotationError(f"{where} is missing")
    if isinstance(value, str) and text:
        text = value.strip()
        if not text:
            raise AnnotationError(f"{where} is empty")
        if not _NUMBER.fullmatch(text):
            try:
                special = not math.isfinite(float(text))  # 'nan', 'inf', 'Infinity'
            except ValueError:
                special = False
            raise AnnotationError(f"{where} {shown(value)} is {'not a finite number' if special else 'not a number'}")
        out = float(text)
        if not math.isfinite(out):
            raise AnnotationError(f"{where} {shown(value)} is out of range")
        return out
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AnnotationError(f"{where} {shown(value)} is not a number")
    try:
        out = float(value)
    except OverflowError:
        raise AnnotationError(f"{where} {shown(value)} is out of range") from None
    if not math.isfinite(out):
        raise AnnotationError(f"{where} {shown(value)} is not a finite number")
    return out


def integer(value: Any, where: str, text: bool = True) -> int:
    """An integer from text ('12', '-1') or JSON (12, or an integral float such as 12.0;
    `text=False`: a JSON string is the wrong type)."""
    if isinstance(value, str) and text and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    if value is None:
        raise AnnotationError(f"{where} is missing")
    if isinstance(value, str) and text and not value.strip():
        raise AnnotationError(f"{where} is empty")
    raise AnnotationError(f"{where} {shown(value)} is not an integer")


def flag(value: Any, where: str, default: bool | None = None, text: bool = True) -> bool:
    """A 0/1 flag (VOC `difficult`, COCO `iscrowd`); `default` when absent (None: required)."""
    if value is None and default is not None:
        return default
    if isinstance(value, bool):
        return value
    parsed = integer(value, where, text)
    if parsed not in (0, 1):
        raise AnnotationError(f"{where} {shown(value)} is not 0 or 1")
    return bool(parsed)


def _clamped(value: float) -> float:
    return min(max(value, -COORD_LIMIT), COORD_LIMIT)


def corner_box(values: Sequence[Any], where: str, names: Sequence[str] = ("xmin", "ymin", "xmax", "ymax"), offset: int = 0) -> tuple[list[int], bool]:
    """Inclusive pixel corners (x0, y0, x1, y1) as written (VOC, ILSVRC, Kaggle LOC,
    wsolevaluation): rounded to pixels, minus `offset` (1 for VOC's 1-based indices). Returns the
    0-based box and whether its corners were given max-first (then swapped: the box the
    annotator drew, only written in drag order)."""
    x0, y0, x1, y1 = (int(round(_clamped(number(v, f"{where} {n}")))) - offset for v, n in zip(values, names))
    swapped = x0 > x1 or y0 > y1
    return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], swapped


def edge_box(values: Sequence[Any], where: str, names: Sequence[str] = ("x", "y", "width", "height"), text: bool = True) -> list[int]:
    """[x, y, width, height] in continuous pixel-edge coordinates (COCO, CUB) -> the inclusive
    corners of the pixels the box touches (floor x, floor y, ceil(x + w) - 1, ceil(y + h) - 1).
    A width or height that is not positive covers no pixel: AnnotationError (never a 1-px box)."""
    x, y, w, h = (number(v, f"{where} {n}", text) for v, n in zip(values, names))
    for value, raw, name in ((w, values[2], names[2]), (h, values[3], names[3])):
        if value <= 0:
            raise AnnotationError(f"{where} {name} {shown(raw)} is not positive")
    x, y, w, h = _clamped(x), _clamped(y), _clamped(w), _clamped(h)
    x0, y0 = math.floor(x), math.floor(y)
    return [x0, y0, max(x0, math.ceil(x + w) - 1), max(y0, math.ceil(y + h) - 1)]


def swapped_note(n_swapped: int, source: str) -> str:
    """The note of a repair by `corner_box` ("" when nothing was swapped)."""
    return f"swapped the corners of {n_swapped} box(es) given max-first in {source}" if n_swapped else ""


def join_notes(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def unique_listing(ids: Iterable[str], source: str) -> tuple[list[str], dict[str, str]]:
    """Listed ids in first-seen order without repeats, and a note for each repeated id."""
    ids = list(ids)
    counts = Counter(ids)
    notes = {i: f"listed {n} times in {source}; scored once" for i, n in counts.items() if n > 1}
    return list(dict.fromkeys(ids)), notes


@dataclass
class IndexFile:
    """A shared index file read line by line, each line keyed by its first field.

    rows: key -> [(line number, the other fields)] for lines with the expected number of fields;
    bad: key -> reason for the first line of that key that was malformed."""

    name: str
    rows: dict[str, list[tuple[int, list[str]]]] = field(default_factory=dict)
    bad: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # keys in the order they first appear

    def lines(self, key: str) -> list[tuple[int, list[str]]]:
        """Every well-formed line of `key` (e.g. one box each); AnnotationError if one is malformed."""
        if key in self.bad:
            raise AnnotationError(self.bad[key])
        return self.rows.get(key, [])

    def one(self, key: str) -> tuple[int, list[str]] | None:
        """The one line of `key` (None when absent); lines repeated with different values are
        ambiguous: AnnotationError."""
        lines = self.lines(key)
        if len({tuple(fields) for _, fields in lines}) > 1:
            numbers = ", ".join(str(n) for n, _ in lines[:4])
            raise AnnotationError(f"{self.name} lines {numbers} give the image different values")
        return lines[0] if lines else None

    def warn_unlisted(self, listed: set[str]) -> None:
        """Log malformed lines that concern no listed image (they affect nothing)."""
        stray = [reason for key, reason in self.bad.items() if key not in listed]
        if stray:
            log.warning("%s: %d malformed line(s) name no listed image, ignored (first: %s)", self.name, len(stray), stray[0])


def read_text(path: Path, what: str, cfg: Any, hint: str) -> str:
    """A required annotation file's text; bytes that are not UTF-8 become U+FFFD (they then fail
    as values of the images they concern). Missing or unreadable is a layout error."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetLayoutError(f"dataset={cfg.name}: {what} not found at {path}; set dataset.root={hint}") from None
    except OSError as exc:
        raise DatasetLayoutError(f"dataset={cfg.name}: {what} {path} cannot be read ({exc.strerror or exc}); set dataset.root={hint}") from None
    return data.decode("utf-8", errors="replace").lstrip("\ufeff")


def text_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, stripped line) of the non-empty, non-comment lines. Lines end at
    '\\n' only: other Unicode line breaks inside a field stay in the field."""
    out = []
    for number_, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            out.append((number_, line))
    return out


def read_index(
    path: Path, what: str, cfg: Any, hint: str, n_fields: int, sep: str | None = None, free_last: bool = False,
    header: list[str] | None = None,
) -> IndexFile:
    """An index file of `key<sep>field...` lines (sep None: any whitespace) with `n_fields`
    fields each (`free_last`: the last field is the rest of the line, spaces included). With
    `header`, the first line must hold those field names (else a layout error)."""
    lines = text_lines(read_text(path, what, cfg, hint))
    if header is not None:
        if not lines or [p.strip() for p in lines[0][1].split(sep)[: len(header)]] != header:
            raise DatasetLayoutError(f"dataset={cfg.name}: {path} does not start with the header {(sep or ' ').join(header)!r}")
        lines = lines[1:]
    if not lines:
        raise DatasetLayoutError(f"dataset={cfg.name}: {what} {path} is empty; set dataset.root={hint}")
    index = IndexFile(path.name)
    for number_, line in lines:
        if sep is None:
            parts = line.split(maxsplit=n_fields - 1) if free_last else line.split()
        else:
            parts = [p.strip() for p in (line.split(sep, n_fields - 1) if free_last else line.split(sep))]
        if parts[0] not in index.rows and parts[0] not in index.bad:
            index.order.append(parts[0])
        if len(parts) == n_fields and parts[0]:
            index.rows.setdefault(parts[0], []).append((number_, parts[1:]))
        else:
            index.bad.setdefault(parts[0], f"{path.name} line {number_}: expected {n_fields} fields, got {shown(line, 60)}")
    if not index.rows:
        raise DatasetLayoutError(
            f"dataset={cfg.name}: {what} {path} has no readable line ({next(iter(index.bad.values()))}); set dataset.root={hint}"
        )
    return index
